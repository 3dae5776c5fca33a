"""Run the three default models on real images and compare with the references recorded in
models/reference/*.json (tolerance 1e-3); or, with --record, write those references.

    verify.py --models DIR --media DIR --reference DIR [--only ssd,yunet,sface] [--record]
              [--save-pixels DIR]

With --save-pixels, also writes each image as decoded here (Pillow, RGB) to DIR/<name>.png: the
exact pixels the references were computed from, for the Rust checks (a JPEG decoder other than
libjpeg's differs by a grey level here and there, which moves SFace embeddings by ~3e-3).

Runs in the models-onnx venv (numpy, onnxruntime, Pillow; see requirements-onnx.txt). Called by
models/fetch after a build; exits 1 naming the model on any mismatch.

Pre- and post-processing are written so that a Rust port can reproduce the model inputs exactly:
- images are decoded as stored (no EXIF rotation; none of the test images has one), grey PNGs
  replicated to three channels;
- SSD input: nearest-neighbour resize to 300x300 with integer source indices
  sx = ((2*x + 1) * W) // 600, sy = ((2*y + 1) * H) // 600, RGB, then v / 127.5 - 1 in f32;
- YuNet input: the image at its own size, zero-padded right/bottom to multiples of 32, BGR 0..255;
- SFace input: the largest YuNet face, its 5 landmarks mapped onto the 112x112 template by the
  least-squares similarity transform (closed form below, no RANSAC), warped with bilinear
  sampling (destination pixel (x, y) samples the source at M^-1 (x, y); neighbours outside the
  image count as 0; the result rounded with floor(v + 0.5) and clamped to 0..255), RGB 0..255.
The decode arithmetic is that of the recipe's reference decoders (persons.py, faces.py, recog.py);
NMS is greedy in descending score order (ties by index), suppressing IoU > threshold, as
cv2.dnn.NMSBoxes does.
"""
import argparse
import json
import math
import os
import re
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image

TOL = 1e-3
SSD_FILE = "ssd_mobilenet_v2_coco_raw.onnx"
SSD_ANCHORS = "ssd_mobilenet_v2_coco_anchors_ymin_xmin_ymax_xmax.f32"
YUNET_FILE = "yunet_2023mar_fp32_dyn.onnx"
SFACE_FILE = "sface_2021dec_fp32_dynbatch.onnx"
SSD_IMAGES = ["basketball1.png", "astronaut.png"]
YUNET_IMAGES = ["astronaut.png", "basketball1.png", "obama.jpg", "biden.jpg"]
SFACE_IMAGES = ["obama.jpg", "obama2.jpg", "obama3.jpg", "obama_partial_face.jpg",
                "obama_partial_face2.jpg", "biden.jpg"]
SSD_SCORE, SSD_NMS = 0.5, 0.6
YUNET_SCORE, YUNET_NMS = 0.6, 0.3
TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                         [41.5493, 92.3655], [70.7299, 92.2041]], np.float64)


class Mismatch(Exception):
    pass


def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1  # frugal; results do not depend on it
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def load_rgb(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def nms(boxes, scores, thr):
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))  # stable: ties by index
    keep = []
    for i in order:
        bi = [float(v) for v in boxes[i]]
        if all(iou(bi, [float(v) for v in boxes[k]]) <= thr for k in keep):
            keep.append(i)
    return keep


# ---------- SSD-MobileNet-v2 COCO (persons) ----------
def ssd_input(rgb):
    h, w = rgb.shape[:2]
    ys = ((2 * np.arange(300) + 1) * h) // 600
    xs = ((2 * np.arange(300) + 1) * w) // 600
    x = rgb[ys][:, xs].astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    return x[None]  # [1,300,300,3] RGB NHWC


def ssd_run(sess, anchors, rgb):
    h, w = rgb.shape[:2]
    box, logit = sess.run(None, {"Preprocessor/sub:0": ssd_input(rgb)})
    a = anchors
    ya, xa = (a[:, 0] + a[:, 2]) / 2, (a[:, 1] + a[:, 3]) / 2
    ha, wa = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
    t = box[0]
    yc = t[:, 0] / 10 * ha + ya
    xc = t[:, 1] / 10 * wa + xa
    hh = np.exp(t[:, 2] / 5) * ha
    ww = np.exp(t[:, 3] / 5) * wa
    score = 1 / (1 + np.exp(-logit[0, :, 1]))  # class 1 = person
    norm = np.stack([xc - ww / 2, yc - hh / 2, xc + ww / 2, yc + hh / 2], 1)  # x0,y0,x1,y1 in 0..1
    idx = np.where(score > SSD_SCORE)[0]
    keep = nms(norm[idx] * [w, h, w, h], score[idx], SSD_NMS)
    persons = [{"anchor": int(idx[k]), "score": float(score[idx[k]]),
                "box_norm_xyxy": [float(v) for v in norm[idx[k]]],
                "box_xyxy": [float(v) for v in norm[idx[k]] * [w, h, w, h]]} for k in keep]
    top = np.argsort(-logit[0, :, 1], kind="stable")[:5]
    raw = {"anchors": [int(i) for i in top],
           "person_logit": [float(logit[0, i, 1]) for i in top],
           "box_encoding_ty_tx_th_tw": [[float(v) for v in box[0, i]] for i in top],
           "max_abs_box_encoding": float(np.abs(box).max()),
           "mean_logit": float(logit.mean())}
    scores_near = [float(s) for s in score if abs(s - SSD_SCORE) < 10 * TOL]
    return {"persons": persons, "raw": raw}, scores_near


def ssd_anchors(fmaps=(19, 10, 5, 3, 2, 1), min_scale=0.2, max_scale=0.95,
                aspect_ratios=(1.0, 2.0, 0.5, 3.0, 0.3333)):
    """The TF OD API multiscale anchor grid of ssd_mobilenet_v2_coco ([1917, 4] ymin, xmin, ymax,
    xmax, normalized): what Postprocessor/Tile:0 holds, within an f32 ulp."""
    n = len(fmaps)
    scales = [min_scale + (max_scale - min_scale) * i / (n - 1) for i in range(n)] + [1.0]
    out = []
    for layer, g in enumerate(fmaps):
        s, s_next = scales[layer], scales[layer + 1]
        if layer == 0:  # reduce_boxes_in_lowest_layer
            specs = [(0.1, 1.0), (s, 2.0), (s, 0.5)]
        else:  # the aspect ratios, then ratio 1 at the interpolated scale
            specs = [(s, a) for a in aspect_ratios] + [(math.sqrt(s * s_next), 1.0)]
        for y in range(g):
            for x in range(g):
                yc, xc = (y + 0.5) / g, (x + 0.5) / g
                for sc, ar in specs:
                    h, w = sc / math.sqrt(ar), sc * math.sqrt(ar)
                    out.append([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2])
    return np.array(out)


# ---------- YuNet 2023mar (faces) ----------
def yunet_run(sess, rgb):
    h, w = rgb.shape[:2]
    H, W = -(-h // 32) * 32, -(-w // 32) * 32
    canvas = np.zeros((H, W, 3), np.uint8)
    canvas[:h, :w] = rgb[..., ::-1]  # BGR
    x = canvas.transpose(2, 0, 1)[None].astype(np.float32)
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"input": x})))
    B, S, K, near = [], [], [], []
    best = 0.0
    for st in (8, 16, 32):
        cols = W // st
        cls, obj = out[f"cls_{st}"][0, :, 0], out[f"obj_{st}"][0, :, 0]
        bb, kp = out[f"bbox_{st}"][0], out[f"kps_{st}"][0]
        score = np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1))
        best = max(best, float(score.max()))
        near += [float(s) for s in score if abs(s - YUNET_SCORE) < 10 * TOL]
        for i in np.where(score > YUNET_SCORE)[0]:
            r, c = divmod(int(i), cols)
            cx, cy = (c + float(bb[i, 0])) * st, (r + float(bb[i, 1])) * st
            bw, bh = math.exp(float(bb[i, 2])) * st, math.exp(float(bb[i, 3])) * st
            B.append([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
            S.append(float(score[i]))
            K.append([[(float(kp[i, 2 * j]) + c) * st, (float(kp[i, 2 * j + 1]) + r) * st]
                      for j in range(5)])
    keep = nms(B, S, YUNET_NMS)
    faces = [{"score": S[k], "box_xyxy": B[k], "landmarks_xy": K[k]} for k in keep]
    return {"faces": faces, "raw": {"max_score": best}}, near


# ---------- SFace 2021dec (embeddings) ----------
def similarity_transform(src, dst):
    """Least-squares similarity (rotation, uniform scale, translation) taking src points to dst:
    returns the 2x3 matrix [[a, -b, tx], [b, a, ty]]."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    n = (s ** 2).sum()
    a = (s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1]).sum() / n
    b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum() / n
    tx = md[0] - (a * ms[0] - b * ms[1])
    ty = md[1] - (b * ms[0] + a * ms[1])
    return np.array([[a, -b, tx], [b, a, ty]])


def warp_similarity(img, M, size=112):
    """Bilinear warp; out-of-image neighbours are 0; rounds with floor(v + 0.5)."""
    a, b, tx = M[0, 0], M[1, 0], M[0, 2]
    ty = M[1, 2]
    k = 1.0 / (a * a + b * b)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    u, v = xs - tx, ys - ty
    sx = k * (a * u + b * v)
    sy = k * (-b * u + a * v)
    x0, y0 = np.floor(sx).astype(np.int64), np.floor(sy).astype(np.int64)
    fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
    h, w = img.shape[:2]
    src = img.astype(np.float64)

    def px(yy, xx):
        ok = (xx >= 0) & (xx < w) & (yy >= 0) & (yy < h)
        out = np.zeros(xx.shape + (img.shape[2],), np.float64)
        out[ok] = src[yy[ok], xx[ok]]
        return out

    val = ((1 - fx) * (1 - fy) * px(y0, x0) + fx * (1 - fy) * px(y0, x0 + 1)
           + (1 - fx) * fy * px(y0 + 1, x0) + fx * fy * px(y0 + 1, x0 + 1))
    return np.clip(np.floor(val + 0.5), 0, 255).astype(np.uint8)


def sface_run(sess, yunet, media, names):
    rows, E = [], []
    for n in names:
        rgb = load_rgb(os.path.join(media, n))
        faces = yunet_run(yunet, rgb)[0]["faces"]
        if not faces:
            raise Mismatch(f"yunet found no face in {n} (needed for sface)")
        f = max(faces, key=lambda d: (d["box_xyxy"][2] - d["box_xyxy"][0]) * (d["box_xyxy"][3] - d["box_xyxy"][1]))
        M = similarity_transform(f["landmarks_xy"], TEMPLATE_112)
        face = warp_similarity(rgb, M)  # RGB 112x112
        x = face.transpose(2, 0, 1)[None].astype(np.float32)
        e = sess.run(None, {"data": x})[0].reshape(-1).astype(np.float64)
        e /= np.linalg.norm(e)
        E.append(e)
        rows.append({"image": n, "face_box_xyxy": f["box_xyxy"], "embedding_dim": int(e.size),
                     "embedding_first8": [float(v) for v in e[:8]],
                     "aligned_face_mean_rgb": [float(v) for v in face.reshape(-1, 3).mean(0)]})
    E = np.array(E)
    cos = E @ E.T
    return {"faces": rows, "labels": names, "cosine": [[float(v) for v in r] for r in cos]}


# ---------- comparison ----------
def close(what, got, want, tol=TOL):
    g, w = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if g.shape != w.shape:
        raise Mismatch(f"{what}: shape {g.shape}, reference {w.shape}")
    d = float(np.abs(g - w).max()) if g.size else 0.0
    if not d <= tol:
        raise Mismatch(f"{what}: max difference {d:.6f} > {tol} (got {np.round(g, 5).tolist()}, "
                       f"reference {np.round(w, 5).tolist()})")
    return d


def match_dets(what, got, want, boxkey, scale):
    """Each reference detection against the candidate with the highest IoU; coordinates compared
    after dividing by `scale` (the image's larger side, or 1 for normalized boxes)."""
    if len(got) != len(want):
        raise Mismatch(f"{what}: {len(got)} detections, reference has {len(want)}: "
                       f"got {[round(d['score'], 4) for d in got]}, reference {[round(d['score'], 4) for d in want]}")
    worst = 0.0
    for i, w in enumerate(want):
        j = max(range(len(got)), key=lambda j: iou(got[j][boxkey], w[boxkey]))
        g = got[j]
        worst = max(worst, close(f"{what} #{i} score", g["score"], w["score"]))
        worst = max(worst, close(f"{what} #{i} box", np.array(g[boxkey]) / scale, np.array(w[boxkey]) / scale))
        if "landmarks_xy" in w:
            worst = max(worst, close(f"{what} #{i} landmarks", np.array(g["landmarks_xy"]) / scale,
                                     np.array(w["landmarks_xy"]) / scale))
    return worst


def env_info():
    import PIL
    return {"onnxruntime": ort.__version__, "numpy": np.__version__, "pillow": PIL.__version__}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True)
    ap.add_argument("--media", required=True)
    ap.add_argument("--reference", required=True)
    ap.add_argument("--only", default="ssd,yunet,sface")
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--save-pixels")
    args = ap.parse_args()
    if args.save_pixels:
        os.makedirs(args.save_pixels, exist_ok=True)
        for n in sorted(set(SSD_IMAGES + YUNET_IMAGES + SFACE_IMAGES)):
            Image.fromarray(load_rgb(os.path.join(args.media, n))).save(
                os.path.join(args.save_pixels, n + ".png"), format="PNG")
    only = args.only.split(",")
    media = args.media
    failed = []

    def model_path(f):
        return os.path.join(args.models, f)

    def ref_path(name):
        return os.path.join(args.reference, name)

    def load_ref(name):
        with open(ref_path(name)) as f:
            return json.load(f)

    def rounded(o):  # 1e-6 is far below the tolerance and keeps the files readable
        if isinstance(o, float):
            return round(o, 6)
        if isinstance(o, dict):
            return {k: rounded(v) for k, v in o.items()}
        if isinstance(o, list):
            return [rounded(v) for v in o]
        return o

    def save_ref(name, obj):
        text = json.dumps(rounded(obj), indent=1)
        # lists of numbers on one line each
        text = re.sub(r"\[\s*(-?[0-9][-0-9.e+]*(?:,\s*-?[0-9][-0-9.e+]*)*)\s*\]",
                      lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)
        with open(ref_path(name), "w") as f:
            f.write(text + "\n")
        print(f"verify: recorded {ref_path(name)}", file=sys.stderr)

    yunet = None
    if "yunet" in only or "sface" in only:
        yunet = session(model_path(YUNET_FILE))

    if "ssd" in only:
        name = "ssd_mobilenet_v2_coco"
        try:
            sess = session(model_path(SSD_FILE))
            anchors = np.fromfile(model_path(SSD_ANCHORS), "<f4").reshape(1917, 4)
            d = float(np.abs(anchors - ssd_anchors()).max())
            if not d <= 1e-6:
                raise Mismatch(f"anchors {SSD_ANCHORS} differ from the TF anchor grid by {d:.3g} (> 1e-6)")
            npy = model_path(SSD_ANCHORS[:-4] + ".npy")
            if os.path.exists(npy) and not np.array_equal(np.load(npy).reshape(-1, 4), anchors):
                raise Mismatch(f"{npy} and {SSD_ANCHORS} hold different anchors")
            res, near = {}, {}
            for n in SSD_IMAGES:
                rgb = load_rgb(os.path.join(media, n))
                r, nr = ssd_run(sess, anchors, rgb)
                r["image_size_wh"] = [rgb.shape[1], rgb.shape[0]]
                res[n], near[n] = r, nr
            if args.record:
                for n, nr in near.items():
                    if nr:
                        sys.exit(f"verify: {name}: {n} has scores {nr} too close to the threshold to record")
                save_ref(name + ".json", {
                    "model": name, "file": SSD_FILE, "anchors": SSD_ANCHORS, "recorded_with": env_info(),
                    "input": "nearest-neighbour 300x300, sx = ((2x+1)W)//600, sy = ((2y+1)H)//600; RGB; f32 v/127.5-1; NHWC [1,300,300,3]",
                    "decode": "yc = ty/10*ha+ya, xc = tx/10*wa+xa, h = exp(th/5)*ha, w = exp(tw/5)*wa; score = sigmoid(logit[1]) > 0.5; NMS IoU 0.6 on pixel boxes",
                    "tolerance": "1e-3 on scores, logits, encodings and normalized box coordinates",
                    "images": res})
            else:
                ref = load_ref(name + ".json")["images"]
                worst = 0.0
                for n in SSD_IMAGES:
                    g, w = res[n], ref[n]
                    idx = w["raw"]["anchors"]
                    sess_raw = g["raw"]
                    # raw outputs at the reference's anchors (not ours: robust to ties)
                    box, logit = sess.run(None, {"Preprocessor/sub:0": ssd_input(load_rgb(os.path.join(media, n)))})
                    worst = max(worst, close(f"{n} person logits at anchors {idx}", logit[0, idx, 1], w["raw"]["person_logit"]))
                    worst = max(worst, close(f"{n} box encodings at anchors {idx}", box[0, idx], w["raw"]["box_encoding_ty_tx_th_tw"]))
                    worst = max(worst, close(f"{n} mean logit", sess_raw["mean_logit"], w["raw"]["mean_logit"]))
                    worst = max(worst, match_dets(f"{n} persons", g["persons"], w["persons"], "box_norm_xyxy", 1.0))
                print(f"verify: {name}: OK on {', '.join(SSD_IMAGES)} (max difference {worst:.2e})", file=sys.stderr)
        except (Mismatch, FileNotFoundError, KeyError) as e:
            failed.append((name, e))

    if "yunet" in only:
        name = "yunet_2023mar"
        try:
            res, near = {}, {}
            for n in YUNET_IMAGES:
                rgb = load_rgb(os.path.join(media, n))
                r, nr = yunet_run(yunet, rgb)
                r["image_size_wh"] = [rgb.shape[1], rgb.shape[0]]
                res[n], near[n] = r, nr
            if args.record:
                for n, nr in near.items():
                    if nr:
                        sys.exit(f"verify: {name}: {n} has scores {nr} too close to the threshold to record")
                save_ref(name + ".json", {
                    "model": name, "file": YUNET_FILE, "recorded_with": env_info(),
                    "input": "image at native size, zero-padded right/bottom to multiples of 32; BGR 0..255 f32; NCHW [1,3,H,W]",
                    "decode": "score = sqrt(clip(cls,0,1)*clip(obj,0,1)) > 0.6; cell i -> r,c = divmod(i, W/s); cx=(c+bbox0)*s, cy=(r+bbox1)*s, w=exp(bbox2)*s, h=exp(bbox3)*s; landmark j = ((kps[2j]+c)*s, (kps[2j+1]+r)*s); NMS IoU 0.3",
                    "tolerance": "1e-3 on scores, and on coordinates divided by the image's larger side",
                    "images": res})
            else:
                ref = load_ref(name + ".json")["images"]
                worst = 0.0
                for n in YUNET_IMAGES:
                    g, w = res[n], ref[n]
                    worst = max(worst, close(f"{n} max score", g["raw"]["max_score"], w["raw"]["max_score"]))
                    worst = max(worst, match_dets(f"{n} faces", g["faces"], w["faces"], "box_xyxy", max(w["image_size_wh"])))
                print(f"verify: {name}: OK on {', '.join(YUNET_IMAGES)} (max difference {worst:.2e})", file=sys.stderr)
        except (Mismatch, FileNotFoundError, KeyError) as e:
            failed.append((name, e))

    if "sface" in only:
        name = "sface_2021dec"
        try:
            sess = session(model_path(SFACE_FILE))
            r = sface_run(sess, yunet, media, SFACE_IMAGES)
            if args.record:
                save_ref(name + ".json", {
                    "model": name, "file": SFACE_FILE, "face_detector": YUNET_FILE, "recorded_with": env_info(),
                    "input": "largest YuNet face; least-squares similarity from its 5 landmarks to the 112x112 template; bilinear warp (outside = 0, floor(v+0.5)); RGB 0..255 f32; NCHW [1,3,112,112]",
                    "decode": "128-d output, L2-normalized; cosine = dot product",
                    "tolerance": "1e-3 on embedding values and cosines",
                    **r})
            else:
                w = load_ref(name + ".json")
                worst = 0.0
                for g, wr in zip(r["faces"], w["faces"]):
                    worst = max(worst, close(f"{g['image']} embedding[0:8]", g["embedding_first8"], wr["embedding_first8"]))
                worst = max(worst, close("cosine matrix " + ",".join(r["labels"]), r["cosine"], w["cosine"]))
                print(f"verify: {name}: OK on {', '.join(SFACE_IMAGES)} (max difference {worst:.2e})", file=sys.stderr)
        except (Mismatch, FileNotFoundError, KeyError) as e:
            failed.append((name, e))

    for name, e in failed:
        print(f"verify: FAILED: model {name}: {e}", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
