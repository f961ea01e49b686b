"""Building networks and reading/writing vos checkpoints.

A vos weights file is a ``torch.save`` dict::

    {"format": "vos-agame", "version": 1,
     "config": ModelConfig.to_dict(),
     "state_dict": {...},            # AGame.state_dict() keys (see docs in README "Weights")
     "backbone_included": bool,      # False: frozen backbone tensors omitted, rebuilt from ImageNet
     "meta": {...}}                  # free-form: training data, step, metrics, source file

Omitting the frozen Lite0 backbone keeps the shipped default model to a few MB; the package that
supplies its ImageNet weights is a dependency, so nothing is lost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vos_cli.errors import VosError, WriteError
from vos_cli.io.atomic import write_atomically
from vos_cli.model.agame import AGame
from vos_cli.model.config import ModelConfig
from vos_cli.model.official import convert_official, is_official_checkpoint
from vos_cli.model.safe_load import load_untrusted
from vos_cli.model.weights_format import FORMAT, TRAIN_FORMAT, VERSION


def build_model(config: ModelConfig, backbone_weights: str | Path | None = "imagenet") -> AGame:
    return AGame(config, backbone_weights=backbone_weights)


def frozen_backbone_keys(model: AGame) -> set[str]:
    """State-dict keys of backbone tensors that training never changes."""
    trainable = {f"backbone.{n}" for n, p in model.backbone.named_parameters() if p.requires_grad}
    return {k for k in model.state_dict() if k.startswith("backbone.") and k not in trainable}


def checkpoint_dict(
    model: AGame, include_backbone: bool = False, meta: dict[str, Any] | None = None
) -> dict[str, Any]:
    state = model.state_dict()
    if not include_backbone:
        dropped = frozen_backbone_keys(model)
        state = {k: v for k, v in state.items() if k not in dropped}
    return {
        "format": FORMAT,
        "version": VERSION,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in state.items()},
        "backbone_included": include_backbone,
        "meta": dict(meta or {}),
    }


def atomic_save(obj: Any, path: str | Path, what: str = "weights file") -> None:
    """torch.save to a temp file in the target folder, then rename: never a half-written file.

    An earlier file at ``path`` stays loadable when the write fails (:class:`WriteError`, which
    names ``what``, the path and the cause, e.g. a full disk).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WriteError(f"Cannot create folder {path.parent}: {err.strerror or err}") from None
    write_atomically(path, lambda file: torch.save(obj, file), what)


def save_weights(
    model: AGame, path: str | Path, include_backbone: bool = False, meta: dict | None = None
) -> None:
    atomic_save(checkpoint_dict(model, include_backbone, meta), path)


def read_weights_file(path: str | Path) -> dict[str, Any]:
    """Load a weights file's dict (vos format or the authors'), with clean errors.

    Only data is built, on the CPU: classes the file names (the authors' trainer pickles its own
    running averages) become inert stand-ins, and a file that would run code is refused.
    """
    path = Path(path)
    if not path.exists():
        raise VosError(f"weights file not found: {path}")
    if path.is_dir():
        raise VosError(f"weights path is a folder, not a file: {path}")
    data = load_untrusted(path)
    if not isinstance(data, dict):
        raise VosError(f"weights file {path} does not hold a dict of tensors")
    return data


def normalise_weights(data: dict[str, Any], path: Path) -> tuple[dict[str, Any], str]:
    """Any supported file -> (vos weights dict, what the file was).

    Accepts vos weights, vos training checkpoints (their ``weights`` entry) and the authors'
    released A-GAME checkpoint, recognised by its contents rather than its name.
    """
    if data.get("format") == FORMAT:
        return data, "vos weights"
    if data.get("format") == TRAIN_FORMAT and isinstance(data.get("weights"), dict):
        return data["weights"], "vos training checkpoint"
    if is_official_checkpoint(data):
        return convert_official(data, source=str(path)), "authors' A-GAME checkpoint"
    raise VosError(
        f"{path} is neither a vos weights file nor an A-GAME checkpoint "
        "(no 'format' entry and no 'net' state dict)"
    )


def load_model(
    path: str | Path,
    backbone_weights: str | Path | None = "imagenet",
    expect_backbone: str | None = None,
) -> tuple[AGame, dict[str, Any]]:
    """Rebuild the network recorded in a weights file and load its tensors.

    Accepts vos files and the authors' released A-GAME checkpoint (recognised by its contents).
    Returns the model (eval mode) and the file's metadata.
    """
    data, _ = normalise_weights(read_weights_file(path), Path(path))
    if data.get("version") != VERSION:
        raise VosError(f"{path}: unsupported vos weights version {data.get('version')!r}")
    config = ModelConfig.from_dict(data["config"])
    if expect_backbone is not None and config.backbone != expect_backbone:
        raise VosError(
            f"{path} holds a {config.backbone} model, but a {expect_backbone} one was asked for"
        )
    included = bool(data.get("backbone_included"))
    model = build_model(config, backbone_weights=None if included else backbone_weights)
    load_state_strict(model, data["state_dict"], included, source=str(path))
    model.eval()
    return model, dict(data.get("meta", {}))


def load_state_strict(
    model: AGame, state: dict[str, torch.Tensor], backbone_included: bool, source: str
) -> None:
    """Load tensors, refusing any unexpected, missing or mis-shaped key with a named error."""
    own = model.state_dict()
    optional = set() if backbone_included else frozen_backbone_keys(model)
    unexpected = sorted(set(state) - set(own))
    if unexpected:
        raise VosError(
            f"{source}: unexpected key {unexpected[0]!r}"
            + (f" (+{len(unexpected) - 1} more)" if len(unexpected) > 1 else "")
            + f"; the file does not fit a {model.config.backbone} A-GAME network"
        )
    missing = sorted(set(own) - set(state) - optional)
    if missing:
        raise VosError(
            f"{source}: missing key {missing[0]!r}"
            + (f" (+{len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    for key, value in state.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise VosError(
                f"{source}: {key} has shape {tuple(value.shape)}, the network expects "
                f"{tuple(own[key].shape)}"
            )
    model.load_state_dict(state, strict=False)
