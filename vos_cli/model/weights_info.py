"""``vos weights info`` and ``vos weights convert``: what a weights file holds, and our format."""

from __future__ import annotations

from pathlib import Path

from vos_cli.io.paths import prepare_output_file
from vos_cli.model.config import ModelConfig
from vos_cli.model.factory import (
    atomic_save,
    build_model,
    load_state_strict,
    normalise_weights,
    read_weights_file,
)


def _size_text(size: int) -> str:
    return f"{size}p" if size else "the video's resolution"


def describe_weights(path: Path) -> list[str]:
    """Human-readable lines about a weights file (nothing is built but the config)."""
    weights, kind = normalise_weights(read_weights_file(path), Path(path))
    config = ModelConfig.from_dict(weights["config"])
    state = weights["state_dict"]
    params = sum(v.numel() for v in state.values())
    lines = [
        f"file: {path}",
        f"kind: {kind}",
        f"backbone: {config.backbone} ("
        + ("included" if weights.get("backbone_included") else "ImageNet weights from the package")
        + ")",
        f"heads: appearance {config.appearance_dim}, propagation {config.propagation_dim}, "
        f"fusion {config.fusion_dim}, encoding {config.encoding_dim}, "
        f"upsampling {config.upsample_dim}, {config.num_components} Gaussian components",
        f"tensors: {len(state)} ({params / 1e6:.2f} M values)",
        f"network size: {_size_text(config.inference_size)}"
        + (
            f" ({_size_text(config.small_object_size)} for videos with a small object)"
            if config.small_object_size
            else ""
        ),
    ]
    for key, value in sorted(weights.get("meta", {}).items()):
        lines.append(f"{key}: {value}")
    return lines


def convert_weights(
    source: Path,
    target: Path,
    force: bool = False,
    half: bool = False,
    inference_size: int | None = None,
    small_object_size: int | None = None,
) -> None:
    """Write any supported file as a vos weights file, checking it loads into our network.

    ``inference_size`` records the short side the network should run at by default, and
    ``small_object_size`` the one for videos with a small object (:mod:`vos_cli.inference.sizing`).
    ``half`` stores floating-point tensors as float16 (half the size; loading casts them back to
    the network's float32), which is how the shipped default model stays small enough for git.
    """
    weights, _ = normalise_weights(read_weights_file(source), Path(source))
    sizes = {"inference_size": inference_size, "small_object_size": small_object_size}
    sizes = {k: v for k, v in sizes.items() if v is not None}
    if sizes:
        weights = dict(weights)
        weights["config"] = {**weights["config"], **sizes}
    if half:
        weights = dict(weights)
        weights["state_dict"] = {
            k: v.half() if v.is_floating_point() else v for k, v in weights["state_dict"].items()
        }
    target = prepare_output_file(target, force, protect=[source])
    config = ModelConfig.from_dict(weights["config"])
    included = bool(weights.get("backbone_included"))
    model = build_model(config, backbone_weights=None if included else "imagenet")
    load_state_strict(model, weights["state_dict"], included, source=str(source))
    atomic_save(weights, target)
