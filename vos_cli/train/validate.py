"""Validation during training: J&F of the tracker on held-out DAVIS sequences or YouTube-VOS
training videos (the paper's early stopping holds out 300 of those, never a test split)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from vos_cli.bench.metrics.driver import evaluate_sequence
from vos_cli.bench.metrics.stats import SequenceScores
from vos_cli.bench.protocol import aggregate_single
from vos_cli.data.davis import load_davis
from vos_cli.data.ytvos import load_ytvos
from vos_cli.inference.sequences import track_sequence
from vos_cli.inference.tracker import Tracker
from vos_cli.model.agame import AGame
from vos_cli.train.config import ValConfig

_PRECISION = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def validate(
    model: AGame, config: ValConfig, device: torch.device, dtype: torch.dtype
) -> dict[str, float]:
    """Runs whole sequences (or their first ``max_frames``) through the streaming tracker.

    Each dataset is tracked under its benchmark's protocol (``vos_cli.bench.protocol``).
    Returns J&F, J and F means over objects; ``score`` (J&F) drives best-checkpoint tracking.
    """

    def tracker() -> Tracker:
        return Tracker(
            model,
            device=device.type,
            precision=_PRECISION[dtype],
            size=config.size or None,
            aggregate_single=aggregate_single(config.kind),
        )

    scored = _ytvos(config, tracker) if config.kind == "ytvos" else _davis(config, tracker)
    j_means, f_means = [], []
    for scores in scored:
        for row in scores.object_scores():
            j_means.append(row.j_mean)
            f_means.append(row.f_mean)
    j, f = float(np.mean(j_means)), float(np.mean(f_means))
    return {"score": (j + f) / 2, "jf": (j + f) / 2, "j": j, "f": f}


def _davis(config: ValConfig, tracker: Callable[[], Tracker]) -> Iterator[SequenceScores]:
    year = "2016" if config.kind == "davis16" else "2017"
    for seq in load_davis(config.root, config.split, year):
        total = len(seq.frame_paths)
        if config.max_frames:
            total = min(total, config.max_frames)
        preds = np.stack(list(track_sequence(tracker(), seq, total)))
        gts = np.stack([seq.read_annotation(i) for i in range(total)])
        yield evaluate_sequence(
            gts, preds, seq.num_objects(), name=seq.name, binary=seq.binary_annotations
        )


def _ytvos(config: ValConfig, tracker: Callable[[], Tracker]) -> Iterator[SequenceScores]:
    """From each video's first annotated frame, its objects there (renumbered 1..K) over its
    annotated frames; objects that appear later are left out, as in the authors' validation."""
    for video in load_ytvos(Path(config.root), config.split):
        total = len(video) if not config.max_frames else min(len(video), config.max_frames)
        if total < 3:  # the first and last frames are not scored
            continue
        first = video.read_annotation(0)
        ids = sorted(set(np.unique(first).tolist()) - {0, 255})
        if not ids:
            continue
        lut = np.zeros(256, np.uint8)
        lut[ids] = np.arange(1, len(ids) + 1)
        track = tracker()
        track.add_mask(0, lut[first])
        preds = np.stack([track.step(video.read_frame(i)) for i in range(total)])
        gts = np.stack([lut[video.read_annotation(i)] for i in range(total)])
        yield evaluate_sequence(gts, preds, len(ids), name=video.name)
