"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A training checkpoint is a dict with ``"format": "vos-train"``; its ``"weights"`` entry is an
ordinary vos weights dict, so ``vos segment --weights run/checkpoints/last.pt`` works too.
"""

from __future__ import annotations

import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vos_cli.errors import VosError
from vos_cli.model.factory import atomic_save

TRAIN_FORMAT = "vos-train"


def rng_state() -> dict[str, Any]:
    """RNG states as plain types, so checkpoints load with ``weights_only=True``."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(
        tuple(state["python"]) if isinstance(state["python"], list) else state["python"]
    )


def save_training_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Replaces ``path`` atomically: on a failed write (WriteError) the previous one loads."""
    atomic_save({"format": TRAIN_FORMAT, **payload}, path, what="checkpoint")


def load_training_checkpoint(
    path: Path, expected_format: str = TRAIN_FORMAT, kind: str = "vos training checkpoint"
) -> dict[str, Any]:
    """A training checkpoint's dict; ``expected_format`` tells the tracker's from the mask
    maker's, which share this loader and the one-line errors."""
    if not path.is_file():
        raise VosError(f"checkpoint to resume from not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise VosError(f"cannot read checkpoint {path} ({exc.__class__.__name__})") from None
    if not isinstance(data, dict) or data.get("format") != expected_format:
        raise VosError(f"{path} is not a {kind}")
    return data


def config_changes(before: Any, after: Any, key: str = "") -> list[str]:
    """``"key: old -> new"`` for each entry of two configs (``asdict`` form) that differs, in the
    configs' order: a resumed run reads its config again, and a change (meant, like more epochs,
    or not) makes it differ from one uninterrupted run, so the user is told which."""
    if isinstance(before, dict) and isinstance(after, dict):
        changes = []
        for name in [*before, *(k for k in after if k not in before)]:
            sub = f"{key}.{name}" if key else str(name)
            if name not in after:
                changes.append(f"{sub}: {before[name]!r} -> (absent)")
            elif name not in before:
                changes.append(f"{sub}: (absent) -> {after[name]!r}")
            else:
                changes.extend(config_changes(before[name], after[name], sub))
        return changes
    if isinstance(before, list | tuple) and isinstance(after, list | tuple):
        if len(before) == len(after) and all(isinstance(x, dict) for x in [*before, *after]):
            return [
                change
                for i, (old, new) in enumerate(zip(before, after, strict=True))
                for change in config_changes(old, new, f"{key}[{i}]")
            ]
        before, after = list(before), list(after)
    return [] if before == after else [f"{key}: {before!r} -> {after!r}"]


def resumed_config_note(run_config: dict[str, Any] | None, config: Any) -> str | None:
    """The line a resumed run logs when its config (a dataclass) differs from the one its
    checkpoint recorded; None when they agree or the checkpoint recorded none."""
    changes = config_changes(run_config, asdict(config)) if run_config is not None else []
    return "the config differs from the run's so far: " + "; ".join(changes) if changes else None
