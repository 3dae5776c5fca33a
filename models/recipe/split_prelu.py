# The hub's own step (not in the shared recipe). Run by models/fetch; see models/manifest.toml.
"""Rewrites every PRelu(x, slope) as Relu(x) + slope * Min(x, 0): the same values bit for bit
(each output is either x or slope * x, the other term an exact zero), but ONNX Runtime 1.31.1
runs PRelu about 11 times slower than 1.24.1 did (on SFace: 17.5 ms of 34.5 ms a face, against
1.6 ms), while the four plain element-wise ops stay fast (SFace 34 -> 20 ms a face on one core).
Checks on a fixed random input that the output is unchanged. usage: split_prelu.py in.onnx out.onnx"""
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

m = onnx.load(sys.argv[1])
g = m.graph
zero = "xl_prelu_zero"
g.initializer.append(numpy_helper.from_array(np.zeros((), np.float32), zero))
nodes, split = [], 0
for n in g.node:
    if n.op_type != "PRelu":
        nodes.append(n)
        continue
    (x, slope), y = n.input, n.output[0]
    nodes += [
        helper.make_node("Relu", [x], [f"{y}/pos"]),
        helper.make_node("Min", [x, zero], [f"{y}/neg"]),
        helper.make_node("Mul", [f"{y}/neg", slope], [f"{y}/neg_scaled"]),
        helper.make_node("Add", [f"{y}/pos", f"{y}/neg_scaled"], [y]),
    ]
    split += 1
del g.node[:]
g.node.extend(nodes)
onnx.checker.check_model(m)
onnx.save(m, sys.argv[2])


def run(path):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    i = s.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in i.shape]
    x = np.random.default_rng(7).uniform(0, 255, shape).astype(np.float32)
    return s.run(None, {i.name: x})[0]


diff = float(np.abs(run(sys.argv[1]) - run(sys.argv[2])).max())
assert diff == 0.0, f"outputs differ by {diff}"
print("split", split, "PRelu nodes, outputs unchanged ->", sys.argv[2])
