"""Scoring the mask maker on held-out objects: from a box, then after corrective clicks.

Protocol (``vos bench prompts`` and the validation of ``vos train`` with a mask-maker config):
each object's box is its tight box with 5% of its side added on every edge (clipped to the
image). Row "box itself": the box as the mask. Then the mask maker from the box alone, then up to
``max_clicks`` simulated corrective clicks (NoC protocol, :func:`vos_cli.prompts.clicks.next_click`:
each at the centre of the largest wrong region, on a missed part or a wrongly claimed one),
each time from the box and all clicks so far, as ``vos mask`` runs them. IoU is over the image's
pixels minus its "unknown" (255) ones; an object whose mask is right stays right (no click
needed). Seconds per box: ``set_image`` plus the first prediction, features not cached.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from vos_cli.prompts.clicks import next_click
from vos_cli.prompts.data import ObjectItem, margin_box
from vos_cli.prompts.predictor import MaskMaker
from vos_cli.prompts.types import Box, ObjectPrompt


@dataclass
class ItemScore:
    source: str
    box_iou: float
    """IoU of the box itself as the mask."""
    ious: list[float]
    """The mask maker's IoU from the box, then after each corrective click."""
    seconds: float
    size: tuple[int, int]
    """(width, height) of the image."""


def iou(pred: np.ndarray, target: np.ndarray, ignore: np.ndarray | None = None) -> float:
    """Intersection over union of two boolean masks, ``ignore`` pixels left out (1 if both empty)."""
    if ignore is not None:
        keep = ~ignore
        pred, target = pred & keep, target & keep
    union = np.count_nonzero(pred | target)
    return float(np.count_nonzero(pred & target) / union) if union else 1.0


def pixel_rect(box: Box, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the whole pixels ``box`` touches, clipped to an image of ``shape``."""
    h, w = shape
    x0, y0 = max(0, int(np.floor(box.x0))), max(0, int(np.floor(box.y0)))
    x1, y1 = min(w, int(np.ceil(box.x1))), min(h, int(np.ceil(box.y1)))
    return x0, y0, x1, y1


def box_as_mask(box: Box, shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, bool)
    x0, y0, x1, y1 = pixel_rect(box, shape)
    out[y0:y1, x0:x1] = True
    return out


def score_item(maker: MaskMaker, item: ObjectItem, max_clicks: int = 3) -> ItemScore:
    rgb, obj, ignore = item.load()
    box = margin_box(obj)
    tic = time.perf_counter()
    maker.set_image(rgb)
    pred = maker.predict_object(ObjectPrompt(box)) >= 0.5
    seconds = time.perf_counter() - tic
    ious = [iou(pred, obj, ignore)]
    points = []
    for _ in range(max_clicks):
        click = next_click(obj, pred, ignore, negatives=not item.partial)
        if click is None:
            ious.append(ious[-1])
            continue
        points.append(click)
        pred = maker.predict_object(ObjectPrompt(box, list(points))) >= 0.5
        ious.append(iou(pred, obj, ignore))
    return ItemScore(
        item.source,
        iou(box_as_mask(box, obj.shape), obj, ignore),
        ious,
        seconds,
        (obj.shape[1], obj.shape[0]),
    )


@dataclass
class Summary:
    name: str
    count: int
    box_iou: float
    ious: list[float]
    seconds: float
    by_source: dict[str, Summary] = field(default_factory=dict)


def summarize(scores: list[ItemScore], name: str = "all") -> Summary:
    def one(rows: list[ItemScore], label: str) -> Summary:
        return Summary(
            label,
            len(rows),
            float(np.mean([r.box_iou for r in rows])),
            [float(v) for v in np.mean([r.ious for r in rows], axis=0)],
            float(np.median([r.seconds for r in rows])),
        )

    total = one(scores, name)
    for source in sorted({s.source for s in scores}):
        total.by_source[source] = one([s for s in scores if s.source == source], source)
    return total


def evaluate(
    maker: MaskMaker,
    items: list[ObjectItem],
    max_clicks: int = 3,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> list[ItemScore]:
    scores = []
    for done, item in enumerate(items, 1):
        scores.append(score_item(maker, item, max_clicks))
        progress(done, len(items))
    return scores
