"""Builds two tiny YOLO-shaped ONNX models for tests/yolo.rs: their heads output fixed candidate
boxes (whatever the image), with the batch dimension following the input's.

    make_yolo.py OUT_DIR     -> OUT_DIR/yolov8_tiny.onnx, OUT_DIR/yolov5_tiny.onnx

Input `images` [N, 3, 64, 64]. Candidates (input pixels, centre x, centre y, w, h):
  0: (16, 32, 8, 16)  class 0 score 0.9
  1: (17, 32, 8, 16)  class 0 score 0.8   (overlaps 0: suppressed)
  2: (48, 32, 8, 8)   class 1 score 0.7
  3: (48, 48, 4, 4)   class 0 score 0.3   (below threshold)
Runs in the models-onnx venv (onnx, numpy).
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BOXES = [(16, 32, 8, 16, 0, 0.9), (17, 32, 8, 16, 0, 0.8), (48, 32, 8, 8, 1, 0.7), (48, 48, 4, 4, 0, 0.3)]
CLASSES = 2


def head(v5):
    if v5:  # [1, boxes, 5 + C]: cx cy w h obj classes...
        rows = []
        for cx, cy, w, h, c, s in BOXES:
            cls = [0.0] * CLASSES
            cls[c] = 1.0
            rows.append([cx, cy, w, h, s] + cls)
        return np.array([rows], np.float32)
    cols = []  # [1, 4 + C, boxes]
    for cx, cy, w, h, c, s in BOXES:
        cls = [0.0] * CLASSES
        cls[c] = s
        cols.append([cx, cy, w, h] + cls)
    return np.array([cols], np.float32).transpose(0, 2, 1).copy()


def model(v5):
    const = head(v5)
    nodes = [
        helper.make_node("ReduceMean", ["images", "axes"], ["mean"], keepdims=1),
        helper.make_node("Reshape", ["mean", "shape"], ["mean3"]),
        helper.make_node("Mul", ["mean3", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "head"], ["output0"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([1, 2, 3], np.int64), "axes"),
        numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        numpy_helper.from_array(const, "head"),
    ]
    g = helper.make_graph(
        nodes, "tiny_yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 64, 64])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["N", const.shape[1], const.shape[2]])],
        inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


out = sys.argv[1]
os.makedirs(out, exist_ok=True)
onnx.save(model(False), os.path.join(out, "yolov8_tiny.onnx"))
onnx.save(model(True), os.path.join(out, "yolov5_tiny.onnx"))
