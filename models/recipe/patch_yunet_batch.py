# Copied unchanged (but for this header) from the project's model recipe (shared/models/recipe/patch_yunet_batch.py),
# the reference rebuild of the default models. Run by models/fetch; see models/manifest.toml.
"""YuNet reshapes are [1,-1,C]; make them [0,-1,C] so batch>1 works. usage: in.onnx out.onnx"""
import sys, onnx
from onnx import numpy_helper
m = onnx.load(sys.argv[1]); inits = {i.name: i for i in m.graph.initializer}
for n in m.graph.node:
    if n.op_type == "Reshape" and n.input[1] in inits:
        a = numpy_helper.to_array(inits[n.input[1]]).copy()
        if a[0] == 1: a[0] = 0; inits[n.input[1]].CopyFrom(numpy_helper.from_array(a, n.input[1]))
onnx.save(m, sys.argv[2])
