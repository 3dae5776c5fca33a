# Copied unchanged (but for this header) from the project's model recipe (shared/models/recipe/make_dynamic.py),
# the reference rebuild of the default models. Run by models/fetch; see models/manifest.toml.
"""Set symbolic batch (and optionally H/W) dims on inputs/outputs, strip shape info of intermediates; verify with ORT.
usage: make_dynamic.py in.onnx out.onnx [hw]"""
import sys, onnx
m = onnx.load(sys.argv[1]); g = m.graph; hw = len(sys.argv) > 3 and sys.argv[3] == "hw"
for vi in list(g.input) + list(g.output):
    d = vi.type.tensor_type.shape.dim
    d[0].ClearField("dim_value"); d[0].dim_param = "N"
    if hw and vi in g.input:
        for k, n in ((2, "H"), (3, "W")): d[k].ClearField("dim_value"); d[k].dim_param = n
    if vi in g.output:
        for k in range(1, len(d)): d[k].ClearField("dim_value"); d[k].dim_param = f"{vi.name}_d{k}"
del g.value_info[:]
onnx.save(m, sys.argv[2]); print("saved", sys.argv[2])
