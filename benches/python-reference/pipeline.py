"""The plain Python reference for `xueliang bench --every-frame`: OpenCV decodes the video and
ONNX Runtime runs, in sequence on every frame, person detection (SSD), face detection on the
whole frame (YuNet) and an embedding of every face (SFace), as a straightforward script would.
Sessions use 2 intra-op threads with spinning off (the faster setting on this machine).

    pipeline.py MODELS_DIR VIDEO [--json]

Prints frames, seconds and frames/s.
"""
import json
import sys
import time

import cv2
import numpy as np
import onnxruntime as ort

TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                     [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)


def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def main():
    models, video = sys.argv[1], sys.argv[2]
    ssd = session(f"{models}/ssd_mobilenet_v2_coco_raw.onnx")
    yunet = session(f"{models}/yunet_2023mar_fp32_dyn.onnx")
    sface = session(f"{models}/sface_2021dec_fp32_dynbatch.onnx")
    anchors = np.fromfile(f"{models}/ssd_mobilenet_v2_coco_anchors_ymin_xmin_ymax_xmax.f32", "<f4").reshape(-1, 4)
    ya, xa = (anchors[:, 0] + anchors[:, 2]) / 2, (anchors[:, 1] + anchors[:, 3]) / 2
    ha, wa = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    cap = cv2.VideoCapture(video)
    frames = persons = faces = 0
    t0 = time.perf_counter()
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames += 1
        h, w = bgr.shape[:2]
        # persons
        x = cv2.cvtColor(cv2.resize(bgr, (300, 300)), cv2.COLOR_BGR2RGB).astype(np.float32) / 127.5 - 1
        box, logit = ssd.run(None, {"Preprocessor/sub:0": x[None]})
        score = 1 / (1 + np.exp(-logit[0, :, 1]))
        idx = np.where(score > 0.5)[0]
        t = box[0, idx]
        yc, xc = t[:, 0] / 10 * ha[idx] + ya[idx], t[:, 1] / 10 * wa[idx] + xa[idx]
        bh, bw = np.exp(t[:, 2] / 5) * ha[idx], np.exp(t[:, 3] / 5) * wa[idx]
        rects = [[float((c - ww / 2) * w), float((r - hh / 2) * h), float(ww * w), float(hh * h)]
                 for r, c, hh, ww in zip(yc, xc, bh, bw)]
        persons += len(cv2.dnn.NMSBoxes(rects, score[idx].tolist(), 0.5, 0.6)) if rects else 0
        # faces on the whole frame
        H, W = -(-h // 32) * 32, -(-w // 32) * 32
        canvas = np.zeros((H, W, 3), np.uint8)
        canvas[:h, :w] = bgr
        out = dict(zip([o.name for o in yunet.get_outputs()],
                       yunet.run(None, {"input": canvas.transpose(2, 0, 1)[None].astype(np.float32)})))
        B, S, K = [], [], []
        for st in (8, 16, 32):
            cols = W // st
            sc = np.sqrt(np.clip(out[f"cls_{st}"][0, :, 0], 0, 1) * np.clip(out[f"obj_{st}"][0, :, 0], 0, 1))
            for i in np.where(sc > 0.6)[0]:
                r, c = divmod(int(i), cols)
                bb, kp = out[f"bbox_{st}"][0, i], out[f"kps_{st}"][0, i]
                cx, cy = (c + bb[0]) * st, (r + bb[1]) * st
                fw, fh = np.exp(bb[2]) * st, np.exp(bb[3]) * st
                B.append([float(cx - fw / 2), float(cy - fh / 2), float(fw), float(fh)])
                S.append(float(sc[i]))
                K.append([((kp[2 * j] + c) * st, (kp[2 * j + 1] + r) * st) for j in range(5)])
        keep = cv2.dnn.NMSBoxes(B, S, 0.6, 0.3) if B else []
        # an embedding of every face
        for k in keep:
            M, _ = cv2.estimateAffinePartial2D(np.array(K[k], np.float32), TEMPLATE)
            aligned = cv2.warpAffine(bgr, M, (112, 112))
            rgb = cv2.cvtColor(aligned, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)[None].astype(np.float32)
            e = sface.run(None, {"data": rgb})[0][0]
            e /= np.linalg.norm(e)
            faces += 1
    secs = time.perf_counter() - t0
    result = {"frames": frames, "seconds": secs, "frames_per_second": frames / secs,
              "persons": persons, "faces_embedded": faces}
    if "--json" in sys.argv:
        print(json.dumps(result))
    else:
        print(f"python reference: {frames} frames in {secs:.1f} s = {frames / secs:.1f} frames/s "
              f"({persons} persons, {faces} faces embedded)")


if __name__ == "__main__":
    main()
