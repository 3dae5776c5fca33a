# Copied unchanged (but for this header) from the project's model recipe (shared/models/recipe/dump_ssd_anchors.py),
# the reference rebuild of the default models. Run by models/fetch; see models/manifest.toml.
"""Dump the 1917 SSD anchors (ymin,xmin,ymax,xmax normalized) from a TF-OD-API frozen graph. usage: dump_ssd_anchors.py frozen.pb out.npy"""
import sys, numpy as np, tensorflow as tf
gd = tf.compat.v1.GraphDef(); gd.ParseFromString(open(sys.argv[1], "rb").read())
g = tf.Graph()
with g.as_default(): tf.import_graph_def(gd, name="")
with tf.compat.v1.Session(graph=g) as s:
    anc = s.run(g.get_tensor_by_name("Postprocessor/Tile:0"), {"image_tensor:0": np.zeros((1, 300, 300, 3), np.uint8)})
np.save(sys.argv[2], anc.reshape(-1, 4).astype(np.float32)); print(sys.argv[2], anc.shape)
