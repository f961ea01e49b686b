"""``vos weights average``: one model from the mean of several checkpoints of one run.

Dev scores of single checkpoints swing by several points from one validation to the next, so
picking the best one partly picks noise. Averaging the weights of the checkpoints along the end
of a run (stochastic weight averaging, Izmailov et al. 2018) gives one model from the flat
region they share instead. This is sound here because every BatchNorm runs in eval mode in
training: the averaged network needs no recomputed statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from vos_cli.errors import VosError
from vos_cli.io.paths import prepare_output_file
from vos_cli.model.config import ModelConfig, drop_legacy_keys
from vos_cli.model.factory import (
    atomic_save,
    build_model,
    load_state_strict,
    normalise_weights,
    read_weights_file,
)

# Meta entries that describe the run rather than one checkpoint of it (a step or a validation
# score of the first source would be wrong for the mean).
_RUN_META = ("config_name",)


def _comparable_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config without test-time settings, which do not change the weights' meaning."""
    return {
        k: v
        for k, v in drop_legacy_keys(config).items()
        if k not in ("inference_size", "small_object_size", "update_rate", "test_recurrence")
    }


def average_state_dicts(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of floating-point tensors (summed in float64); others must agree."""
    if not states:
        raise VosError("nothing to average: no weights given")
    keys = list(states[0])
    for i, state in enumerate(states[1:], start=1):
        if set(state) != set(keys):
            raise VosError(f"weights {i + 1} holds other tensors than weights 1")
    averaged: dict[str, torch.Tensor] = {}
    for key in keys:
        first = states[0][key]
        tensors = [state[key] for state in states]
        if any(t.shape != first.shape for t in tensors):
            raise VosError(f"tensor {key!r} has different shapes in the weights to average")
        if first.is_floating_point():
            total = torch.zeros(first.shape, dtype=torch.float64)
            for t in tensors:
                total += t.to(torch.float64)
            averaged[key] = (total / len(tensors)).to(first.dtype)
        else:
            if any(not torch.equal(t, first) for t in tensors):
                raise VosError(f"integer tensor {key!r} differs between the weights to average")
            averaged[key] = first.clone()
    return averaged


def average_weights(sources: Sequence[Path], target: Path, force: bool = False) -> dict[str, Any]:
    """Write the average of ``sources`` (vos weights or training checkpoints of one network).

    The result keeps the first source's config and records its sources in ``meta``; it is
    checked to load into the network before it is written.
    """
    if len(sources) < 2:
        raise VosError("give at least two weights files to average")
    loaded = [normalise_weights(read_weights_file(p), Path(p))[0] for p in sources]
    first = loaded[0]
    for path, weights in zip(sources[1:], loaded[1:], strict=True):
        if _comparable_config(weights["config"]) != _comparable_config(first["config"]):
            raise VosError(f"{path} is a different network from {sources[0]} (configs differ)")
        if bool(weights.get("backbone_included")) != bool(first.get("backbone_included")):
            raise VosError(f"{path} and {sources[0]} differ in whether the backbone is stored")
    target = prepare_output_file(target, force, protect=sources)
    result = {
        **first,
        "state_dict": average_state_dicts([w["state_dict"] for w in loaded]),
        "meta": {
            **{k: v for k, v in first.get("meta", {}).items() if k in _RUN_META},
            "steps": ", ".join(str(w.get("meta", {}).get("step", "?")) for w in loaded),
            "averaged_from": ", ".join(Path(p).name for p in sources),
        },
    }
    config = ModelConfig.from_dict(result["config"])
    included = bool(result.get("backbone_included"))
    model = build_model(config, backbone_weights=None if included else "imagenet")
    load_state_strict(model, result["state_dict"], included, source=str(target))
    atomic_save(result, target)
    return result
