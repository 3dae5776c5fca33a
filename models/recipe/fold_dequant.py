# Copied unchanged (but for this header) from the project's model recipe (shared/models/recipe/fold_dequant.py),
# the reference rebuild of the default models. Run by models/fetch; see models/manifest.toml.
"""Fold constant DequantizeLinear nodes (incl. opset-21 blocked quantization) into fp32 initializers.
Also removes initializers from graph inputs. Usage: fold_dequant.py in.onnx out.onnx"""
import sys, numpy as np, onnx
from onnx import numpy_helper, helper
m = onnx.load(sys.argv[1]); g = m.graph
inits = {i.name: i for i in g.initializer}
new_nodes, folded, folded_out = [], 0, {}
for n in g.node:
    if n.op_type == "DequantizeLinear" and all(i in inits for i in n.input if i):
        x = numpy_helper.to_array(inits[n.input[0]]).astype(np.float32)
        s = numpy_helper.to_array(inits[n.input[1]]).astype(np.float32)
        zp = numpy_helper.to_array(inits[n.input[2]]).astype(np.float32) if len(n.input) > 2 and n.input[2] else np.zeros_like(s)
        a = {at.name: helper.get_attribute_value(at) for at in n.attribute}
        axis, bs = a.get("axis", 1), a.get("block_size", 0)
        if s.size == 1:
            y = (x - zp.reshape(())) * s.reshape(())
        else:
            axis = axis % x.ndim
            if bs and s.shape[axis] != x.shape[axis]:   # blocked
                s = np.repeat(s, bs, axis=axis); zp = np.repeat(zp, bs, axis=axis)
                sl = [slice(None)] * x.ndim; sl[axis] = slice(0, x.shape[axis]); s, zp = s[tuple(sl)], zp[tuple(sl)]
            elif s.ndim == 1:                            # per-axis
                shp = [1] * x.ndim; shp[axis] = -1; s, zp = s.reshape(shp), zp.reshape(shp)
            y = (x - zp) * s
        g.initializer.append(numpy_helper.from_array(y.astype(np.float32), n.output[0])); folded_out[n.output[0]] = y; folded += 1
    elif n.op_type == "Reshape" and all(i in inits or i in folded_out for i in n.input):
        get = lambda k: folded_out[k] if k in folded_out else numpy_helper.to_array(inits[k])
        y = get(n.input[0]).reshape(get(n.input[1]).astype(np.int64))
        g.initializer.append(numpy_helper.from_array(y.astype(np.float32), n.output[0])); folded_out[n.output[0]] = y; folded += 1
    else:
        new_nodes.append(n)
del g.node[:]; g.node.extend(new_nodes)
# drop now-unused initializers
used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
keep = [i for i in g.initializer if i.name in used]
del g.initializer[:]; g.initializer.extend(keep)
init_names = {i.name for i in g.initializer}
real_inputs = [i for i in g.input if i.name not in init_names and i.name in used]
del g.input[:]; g.input.extend(real_inputs)
onnx.checker.check_model(m)
onnx.save(m, sys.argv[2]); print("folded", folded, "DequantizeLinear nodes ->", sys.argv[2])
