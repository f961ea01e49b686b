"""The authors' released A-GAME checkpoint (``*_beta_best.pth.tar``) mapped onto our network.

Their file is a ``torch.save`` dict whose ``"net"`` entry holds the state dict of their network
(ResNet-101 under ``trackseg.backbone.``, heads under ``trackseg.appmod/dynmod/fusmod/segmod``).
Every one of their keys is consumed exactly once and every shape is checked; the channel orders
their weights depend on (component order, the 4100-channel propagation input, the 516-channel
fusion input, the 256-channel blend inputs) are the orders our modules use, so no tensor needs
permuting — only the covariance regulariser changes shape, (K, 1, D, 1, 1) -> (K, D).

Their trainer's file also holds ``epoch``, ``net_type`` (kept in our metadata), ``optimizer``,
``stats`` (instances of their own running-average class) and ``use_gpu``; it is read by
:mod:`vos_cli.model.safe_load`, which needs none of their code.
"""

from __future__ import annotations

from typing import Any

import torch

from vos_cli.errors import VosError
from vos_cli.model.config import ModelConfig
from vos_cli.model.weights_format import FORMAT, VERSION

PREFIX = "trackseg."

# Their head key (after the prefix) -> ours. Conv weights and biases both follow the module.
HEAD_MODULES = {
    "appmod.conv_in": "appearance.conv_in",
    "dynmod.layers.layer00.conv": "propagation.conv_in",
    "dynmod.layers.layer01.conv0": "propagation.pyramid.0",
    "dynmod.layers.layer01.conv1": "propagation.pyramid.1",
    "dynmod.layers.layer01.conv2": "propagation.pyramid.2",
    "dynmod.layers.layer02.conv": "propagation.conv_out",
    "fusmod.layers.layer00.conv": "fusion.conv0",
    "fusmod.layers.layer01.conv": "fusion.conv1",
    "fusmod.predictor.layer00.conv": "fusion.predictor",
    "segmod.project_s8.conv": "upsampler.project_s8",
    "segmod.blend_s8.conv": "upsampler.blend_s8",
    "segmod.project_s4.conv": "upsampler.project_s4",
    "segmod.blend_s4.conv": "upsampler.blend_s4",
    "segmod.predictor.conv": "upsampler.predictor",
}
COV_REG = "appmod.cov_reg"
BACKBONE = "backbone."
OUR_BACKBONE = "backbone.body."


def is_official_checkpoint(data: dict[str, Any]) -> bool:
    net = data.get("net")
    return isinstance(net, dict) and any(str(k).startswith(PREFIX) for k in net)


def _config_from_shapes(net: dict[str, torch.Tensor]) -> ModelConfig:
    """The head widths and coarse kernel as recorded by the tensors themselves."""

    def shape(key: str) -> tuple[int, ...]:
        full = PREFIX + key
        if full not in net:
            raise VosError(f"A-GAME checkpoint lacks the key {full!r}")
        return tuple(net[full].shape)

    cov = shape(COV_REG)
    if len(cov) != 5 or cov[1] != 1 or cov[3:] != (1, 1):
        raise VosError(
            f"A-GAME checkpoint: {PREFIX}{COV_REG} has shape {cov}, expected (K,1,D,1,1)"
        )
    return ModelConfig.paper_r101(
        appearance_dim=shape("appmod.conv_in.weight")[0],
        propagation_dim=shape("dynmod.layers.layer00.conv.weight")[0],
        fusion_dim=shape("fusmod.layers.layer00.conv.weight")[0],
        encoding_dim=shape("fusmod.layers.layer01.conv.weight")[0],
        upsample_dim=shape("segmod.project_s8.conv.weight")[0],
        coarse_kernel=shape("fusmod.predictor.layer00.conv.weight")[-1],
        num_components=cov[0],
    )


def map_official_state(net: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Their state dict -> ours (names only, plus the regulariser's reshape)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in net.items():
        if not key.startswith(PREFIX):
            raise VosError(f"A-GAME checkpoint: unexpected key {key!r} (outside {PREFIX!r})")
        rest = key[len(PREFIX) :]
        if rest.startswith(BACKBONE):
            inner = rest[len(BACKBONE) :]
            if inner.startswith("fc."):
                continue  # the ImageNet classifier; A-GAME never uses it
            out[OUR_BACKBONE + inner] = value
        elif rest == COV_REG:
            out["appearance.cov_reg"] = value.reshape(value.shape[0], value.shape[2])
        else:
            module, _, param = rest.rpartition(".")
            if module not in HEAD_MODULES or param not in ("weight", "bias"):
                raise VosError(f"A-GAME checkpoint: unexpected key {key!r}")
            out[f"{HEAD_MODULES[module]}.{param}"] = value
    return out


def convert_official(data: dict[str, Any], source: str = "checkpoint") -> dict[str, Any]:
    """An authors' checkpoint dict -> a vos weights dict (backbone included)."""
    net = data["net"]
    bad = [k for k, v in net.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise VosError(f"A-GAME checkpoint: {bad[0]!r} is not a tensor")
    config = _config_from_shapes(net)
    meta = {
        "source": source,
        "origin": "authors' A-GAME release (ResNet-101; DAVIS 2017 + YouTube-VOS training)",
    }
    # The trainer's own fields (its optimizer state and running averages are not carried over).
    for key in ("epoch", "net_type"):
        if key in data and isinstance(data[key], int | float | str):
            meta[key] = data[key]
    return {
        "format": FORMAT,
        "version": VERSION,
        "config": config.to_dict(),
        "state_dict": map_official_state(net),
        "backbone_included": True,
        "meta": meta,
    }
