"""Model configuration: every choice that changes the network's shape or behaviour.

It is stored inside every checkpoint, so a weights file always rebuilds the network that made it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from vos_cli.errors import VosError

# Options of experiments that were removed from vos (their code is in git and their results in
# docs/experiments.md): the option, the value that means "off", and what it was.
_REMOVED = {
    "use_matching": (False, "feature matching (model/matching.py)"),
    "use_mask_prior": (False, "the previous fine mask prior (model/mask_prior.py)"),
}
#: Keys that only sized a removed module; meaningless (and dropped) while it is off.
_REMOVED_SIZES = ("matching_dim",)
#: The last commit that still had the removed experiments' code.
REMOVED_AT = "77fe63f"


def drop_legacy_keys(data: dict[str, Any]) -> dict[str, Any]:
    """A stored config without the keys of removed experiments, which files written before their
    removal carry; a file that turns one of them on cannot be rebuilt and is refused."""
    for key, (off, what) in _REMOVED.items():
        if key in data and data[key] != off:
            raise VosError(
                f"this model uses {what}, which vos no longer has; "
                f"use vos at commit {REMOVED_AT} for it"
            )
    legacy = set(_REMOVED) | set(_REMOVED_SIZES)
    return {k: v for k, v in data.items() if k not in legacy}


@dataclass
class ModelConfig:
    """Shape and behaviour of an A-GAME network.

    The paper's configuration (``paper_r101``) uses 512-wide heads on ResNet-101; ``lite0`` scales
    the widths down to the 320-channel EfficientNet-Lite0 features so the heads cost about as much as
    the backbone on a CPU.
    """

    backbone: str = "lite0"
    backbone_train_from: str | None = None
    appearance_dim: int = 128
    propagation_dim: int = 128
    fusion_dim: int = 128
    encoding_dim: int = 64
    upsample_dim: int = 64
    coarse_kernel: int = 1
    num_components: int = 4
    update_rate: float = 0.1
    # Keep frame 0's mixture, never updated, beside the running one; the fusion sees both
    # scores. What the first frame knows then survives an update that learned a leak.
    first_frame_mixture: bool = False
    cov_reg_init: float = -2.0
    # Initialisation of the appearance projection: "kaiming" (uniform, the authors' choice for
    # every head conv) or "pytorch" (nn.Conv2d's own, 2.45x smaller bounds; the shipped lite0
    # model was trained from it). Only matters when training from scratch.
    appearance_init: str = "kaiming"
    use_appearance: bool = True
    use_propagation: bool = True
    appearance_softmax: bool = False
    detach_appearance: bool = False
    update_appearance: bool = True
    test_recurrence: str = "aggregated_fine"
    # Short side (pixels) the network runs at by default in `segment`/`bench`; 0 = the video's
    # own resolution. A model trained at low resolution can be both faster and better there.
    inference_size: int = 0
    # Short side for videos whose smallest object in the first mask covers fewer than 12
    # stride-16 cells at inference_size (vos_cli/inference/sizing.py); 0 = no switch.
    small_object_size: int = 0

    def __post_init__(self) -> None:
        if self.backbone not in ("lite0", "lite1", "lite2", "resnet101"):
            raise VosError(
                f"unknown backbone {self.backbone!r} (choose lite0, lite1, lite2 or resnet101)"
            )
        if self.num_components not in (2, 4):
            raise VosError(
                "num_components must be 2 (unimodal) or 4 (with hard-example components)"
            )
        if not (self.use_appearance or self.use_propagation):
            raise VosError("at least one of use_appearance and use_propagation must be on")
        if self.appearance_init not in ("kaiming", "pytorch"):
            raise VosError("appearance_init must be 'kaiming' or 'pytorch'")
        if self.test_recurrence not in ("aggregated_fine", "coarse"):
            raise VosError("test_recurrence must be 'aggregated_fine' or 'coarse'")

    @classmethod
    def paper_r101(cls, **overrides: Any) -> ModelConfig:
        """The authors' network: ResNet-101, 512-wide heads, layer4 trained."""
        base = dict(
            backbone="resnet101",
            backbone_train_from="layer4",
            appearance_dim=512,
            propagation_dim=512,
            fusion_dim=512,
            encoding_dim=128,
            upsample_dim=128,
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def lite0(cls, **overrides: Any) -> ModelConfig:
        """The CPU-friendly default: EfficientNet-Lite0, 128/64-wide heads."""
        return cls(**overrides)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        data = drop_legacy_keys(data)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise VosError(f"unknown model config key(s): {', '.join(unknown)}")
        return cls(**data)
