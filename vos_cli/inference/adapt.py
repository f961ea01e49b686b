"""First-frame adaptation: fine-tune the heads on snippets dreamed from the first mask.

A network trained on a few dozen videos generalises poorly to a new object and background; the
first frame's mask is the one piece of ground truth a user's video brings. Before tracking, the
heads are trained for a few hundred steps on short videos made from that frame alone (see
:mod:`vos_cli.data.dreaming`). The backbone stays frozen, so its features of the dreamed frames
are computed once and every step runs the heads only; by default only the stride-16 heads
(appearance projection, mask propagation, fusion and coarse predictor) are trained, on the coarse
loss, which costs a fraction of a full training step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from vos_cli.data.dreaming import DreamMotion, FirstFrameDreamer
from vos_cli.errors import VosError
from vos_cli.inference.adapt_config import AdaptConfig
from vos_cli.inference.runtime import autocast
from vos_cli.model.agame import AGame
from vos_cli.train.unroll import SnippetUnroller


@dataclass
class AdaptReport:
    """What an adaptation did: the loss of every step and the time it took."""

    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def adapted_modules(model: AGame, train: str) -> list[nn.Module]:
    """The heads an adaptation trains (see :attr:`AdaptConfig.train`)."""
    if train == "appearance":
        return [model.appearance] if model.appearance is not None else []
    if train == "fusion":
        return [model.fusion]
    modules: list[nn.Module] = [
        m for m in (model.appearance, model.propagation, model.fusion) if m is not None
    ]
    if train == "heads":
        modules.append(model.upsampler)
    return modules


def adapt_to_frame(
    model: AGame,
    image: Tensor,
    labels: Tensor,
    config: AdaptConfig,
    dtype: torch.dtype = torch.float32,
) -> AdaptReport:
    """Fine-tune ``model``'s heads in place on snippets dreamed from one frame.

    ``image``: (3, H, W) float in [0, 1] on the model's device, H and W multiples of 16 (the
    tracker's network input); ``labels``: (H, W) int64 with objects 1..O, 0 background, 255
    ignored. The trained parameters are left with ``requires_grad`` off, as they were.
    """
    report = AdaptReport()
    if config.steps == 0:
        return report
    start = time.perf_counter()
    device = image.device
    rng = np.random.default_rng(config.seed)
    dreamer = FirstFrameDreamer(
        image.detach().float().cpu(),
        labels.detach().cpu(),
        config.frames,
        motion=DreamMotion(elastic=config.elastic),
    )
    pool = [dreamer.sample(rng) for _ in range(config.snippets)]
    images = torch.stack([p[0] for p in pool]).to(device)  # (P, T, 3, H, W)
    pool_labels = torch.stack([p[1] for p in pool]).to(device)  # (P, T, H, W)

    with torch.no_grad(), autocast(device, dtype):
        features = [model.backbone(clip) for clip in images]  # per snippet: (s16, s8, s4)
    s16, s8, s4 = (torch.stack([f[i] for f in features]) for i in range(3))

    modules = adapted_modules(model, config.train)
    params = [p for m in modules for p in m.parameters()]
    if not params:
        raise VosError(f"this network has no {config.train!r} heads to adapt")
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(params, lr=config.lr)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and dtype == torch.float16)
    unroller = SnippetUnroller(model)
    batch = min(config.batch, config.snippets)
    num_objects = torch.full((batch,), dreamer.num_objects, dtype=torch.long)
    try:
        for _ in range(config.steps):
            pick = torch.from_numpy(rng.choice(config.snippets, size=batch, replace=False))
            pick = pick.to(device)
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, dtype):
                encoding = model.encode_features(
                    *(
                        x[pick].flatten(0, 1).contiguous(memory_format=torch.channels_last)
                        for x in (s16, s8, s4)
                    )
                )
                out = unroller.unroll(
                    encoding, pool_labels[pick], num_objects, fine=config.train == "heads"
                )
            if not torch.isfinite(out.loss):
                raise VosError("first-frame adaptation diverged (non-finite loss)")
            scaler.scale(out.loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, config.clip_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            report.losses.append(float(out.loss.detach()))
    finally:
        for p in params:
            p.requires_grad_(False)
            p.grad = None
    report.seconds = time.perf_counter() - start
    return report
