"""Validation during training: J&F of the tracker on held-out DAVIS sequences."""

from __future__ import annotations

import numpy as np
import torch

from vos_cli.data.davis import load_davis
from vos_cli.inference.sequences import track_sequence
from vos_cli.inference.tracker import Tracker
from vos_cli.metrics import evaluate_sequence
from vos_cli.model.agame import AGame
from vos_cli.train.config import ValConfig

_PRECISION = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def validate(
    model: AGame, config: ValConfig, device: torch.device, dtype: torch.dtype
) -> dict[str, float]:
    """Runs whole sequences (or their first ``max_frames``) through the streaming tracker.

    Returns J&F, J and F means over objects; ``score`` (J&F) drives best-checkpoint tracking.
    """
    year = "2016" if config.kind == "davis16" else "2017"
    sequences = load_davis(config.root, config.split, year)
    j_means, f_means = [], []
    for seq in sequences:
        total = len(seq.frame_paths)
        if config.max_frames:
            total = min(total, config.max_frames)
        tracker = Tracker(
            model, device=device.type, precision=_PRECISION[dtype], size=config.size or None
        )
        preds = np.stack(list(track_sequence(tracker, seq, total)))
        gts = np.stack([seq.read_annotation(i) for i in range(total)])
        scores = evaluate_sequence(
            gts, preds, seq.num_objects(), name=seq.name, binary=seq.binary_annotations
        )
        for row in scores.object_scores():
            j_means.append(row.j_mean)
            f_means.append(row.f_mean)
    j, f = float(np.mean(j_means)), float(np.mean(f_means))
    return {"score": (j + f) / 2, "jf": (j + f) / 2, "j": j, "f": f}
