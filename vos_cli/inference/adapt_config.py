"""Options of first-frame adaptation (torch-free, so the CLI can parse them cheaply)."""

from __future__ import annotations

from dataclasses import dataclass

from vos_cli.errors import VosError

TRAINABLE = ("appearance", "fusion", "coarse", "heads")
DEFAULT_ADAPT_STEPS = 0


@dataclass(frozen=True)
class AdaptConfig:
    """How to adapt to a video's first frame (``steps = 0``: no adaptation)."""

    steps: int = 200
    lr: float = 1e-4
    snippets: int = 8
    """Dreamed snippets in the pool whose backbone features are computed once."""
    frames: int = 6
    batch: int = 4
    train: str = "coarse"
    """What is fine-tuned: ``appearance`` (the feature projection the mixture is fitted in),
    ``fusion`` (fusion and coarse predictor), ``coarse`` (all stride-16 heads: appearance,
    propagation, fusion) on the coarse loss; ``heads``: the upsampler too, on both losses."""
    elastic: float = 0.2
    """Non-rigid warp of the dreamed objects (:attr:`~vos_cli.data.dreaming.DreamMotion.elastic`):
    without it the dreamed videos show only the first frame's pose."""
    clip_grad_norm: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise VosError(f"adaptation steps must be 0 or more, got {self.steps}")
        if self.train not in TRAINABLE:
            raise VosError(f"adaptation trains one of {', '.join(TRAINABLE)}, not {self.train!r}")
        if self.lr <= 0 or self.snippets < 1 or self.frames < 2 or self.batch < 1:
            raise VosError("adaptation needs lr > 0, snippets >= 1, frames >= 2 and batch >= 1")
        if self.elastic < 0:
            raise VosError(f"adaptation's elastic warp must be 0 or more, got {self.elastic}")


def adapt_config(steps: int | None) -> AdaptConfig | None:
    """The ``--adapt STEPS`` option as a config (None: the default; 0: no adaptation)."""
    steps = DEFAULT_ADAPT_STEPS if steps is None else steps
    if steps < 0:
        raise VosError(f"--adapt takes a number of steps, 0 or more; got {steps}")
    return AdaptConfig(steps=steps) if steps else None
