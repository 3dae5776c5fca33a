"""How the three default models share this machine's cores, without decoding or pre- and
post-processing (inputs made once from the video's first frame, as pipeline.py makes them; 5
faces embedded in 6 frames, like vtest.avi):
  seq2   one thread running SSD, YuNet (768x576) and SFace in sequence, 2-thread sessions
         (what pipeline.py does);
  mixed  two such threads with 1-thread sessions (what `xueliang bench --every-frame` does);
  split  one thread of SSD beside one of YuNet + SFace (workers dedicated to stages);
  batch  ms an item of SSD and SFace at batch 1 to 8, one 1-thread session alone.

    side_by_side.py MODELS_DIR VIDEO [SECONDS]   (in the venv of benches/python-reference/run)
"""
import sys
import threading
import time

import cv2
import numpy as np
import onnxruntime as ort

MODELS, VIDEO = sys.argv[1], sys.argv[2]
SECONDS = float(sys.argv[3]) if len(sys.argv) > 3 else 15
FILES = {"ssd": "ssd_mobilenet_v2_coco_raw.onnx", "yunet": "yunet_2023mar_fp32_dyn.onnx",
         "sface": "sface_2021dec_fp32_dynbatch.onnx"}
ok, FRAME = cv2.VideoCapture(VIDEO).read()
assert ok, f"cannot read {VIDEO}"
H, W = -(-FRAME.shape[0] // 32) * 32, -(-FRAME.shape[1] // 32) * 32
CANVAS = np.zeros((H, W, 3), np.uint8)
CANVAS[:FRAME.shape[0], :FRAME.shape[1]] = FRAME
ONE = {
    "ssd": cv2.cvtColor(cv2.resize(FRAME, (300, 300)), cv2.COLOR_BGR2RGB).astype(np.float32) / 127.5 - 1,
    "yunet": CANVAS.transpose(2, 0, 1).astype(np.float32),
    # a 112x112 patch of the frame where the faces are, as the aligned face would be
    "sface": cv2.resize(FRAME[100:212, 300:412], (112, 112)).transpose(2, 0, 1).astype(np.float32),
}


def session(model, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return ort.InferenceSession(f"{MODELS}/{FILES[model]}", so, providers=["CPUExecutionProvider"])


def inputs(model, batch=1):
    return np.repeat(ONE[model][None], batch, axis=0)


def frames_per_second(models, threads, out, key):
    sessions = {m: session(m, threads) for m in models}
    feeds = {m: {s.get_inputs()[0].name: inputs(m)} for m, s in sessions.items()}
    for m, s in sessions.items():
        s.run(None, feeds[m])
    frames, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < SECONDS:
        for m in models:
            if m == "sface" and frames % 6 == 5:
                continue
            sessions[m].run(None, feeds[m])
        frames += 1
    out[key] = frames / (time.perf_counter() - t0)


def side_by_side(plans, threads):
    out = {}
    workers = [threading.Thread(target=frames_per_second, args=(p, threads, out, k))
               for k, p in enumerate(plans)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return [round(out[k], 2) for k in range(len(plans))]


ALL = ["ssd", "yunet", "sface"]
print("seq2  frames/s", side_by_side([ALL], 2))
mixed = side_by_side([ALL, ALL], 1)
print("mixed frames/s per thread", mixed, "total", round(sum(mixed), 2))
split = side_by_side([["ssd"], ["yunet", "sface"]], 1)
print("split frames/s SSD thread, faces thread", split, "pipeline", min(split))
for model in ("sface", "ssd"):
    s = session(model, 1)
    name = s.get_inputs()[0].name
    for batch in (1, 2, 4, 8):
        feed = {name: inputs(model, batch)}
        s.run(None, feed)
        runs, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 4:
            s.run(None, feed)
            runs += 1
        print(f"batch {model} x{batch}: {(time.perf_counter() - t0) / (runs * batch) * 1e3:.2f} ms an item")
