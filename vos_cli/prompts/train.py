"""Training the mask maker (``vos train --config maskmaker-lite0``), apart from the tracker's.

A config is a mask-maker one when its TOML has ``kind = "mask-maker"`` at the top; the tables are
:class:`MaskMakerExperiment`'s. Each step: a batch of crops (:class:`~vos_cli.prompts.data.
PromptSamples`) through the backbone once, then 0 to ``optim.max_clicks`` passes of the decoder
without gradients, each adding a simulated corrective click per crop where that pass went wrong
(positive on a missed part, negative on a wrong one) and feeding the pass's mask back, and a last
pass with gradients whose loss (binary cross-entropy plus soft Dice, "unknown" pixels ignored, a
stride-8 auxiliary term) is minimised. So the network learns the refinement it runs at inference.

Resumable and deterministic: sample i of the run is a pure function of (seed, i), the number of
clicks of step s of (seed, s), and the optimiser and schedule are checkpointed every
``train.checkpoint_every`` steps to ``RUN/checkpoints/last.pt`` (and on Ctrl-C / SIGTERM):
``--resume last`` continues where it stopped. Validation (every ``val.every_steps``) scores the
held-out objects as ``vos bench prompts`` does and keeps the best weights; the run ends by writing
``RUN/maskmaker.pt`` (float16, the best validated weights, else the last) to ship as
``weights/maskmaker-lite0.pt``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Sampler

from vos_cli.errors import VosError, WriteError
from vos_cli.prompts.clicks import click_maps, next_click
from vos_cli.prompts.data import ObjectItem, PromptSamples, SampleSettings, load_items
from vos_cli.prompts.model import (
    PROMPT_CHANNELS,
    MaskMakerConfig,
    MaskMakerNet,
    save_maskmaker,
    weights_dict,
)
from vos_cli.prompts.types import Point

KIND = "mask-maker"
TRAIN_FORMAT = "vos-maskmaker-train"

LogFn = Callable[[str], None]


@dataclass
class PromptSource:
    kind: str
    root: str
    split: str = "train"
    weight: float = 1.0
    partial: bool = False
    """Other objects of these images are not annotated: no negative clicks, background down-weighted."""
    every: int = 5
    """davis16: every this many frames of each sequence."""
    min_area: float = 0.005
    """instances: objects under this fraction of their image are left out."""


@dataclass
class PromptData:
    batch_size: int = 8
    workers: int = 2
    box_jitter: float = 0.08
    no_box_prob: float = 0.1
    flip: bool = True
    color_jitter: float = 0.2
    sources: list[PromptSource] = field(default_factory=list)


@dataclass
class PromptVal:
    every_steps: int = 0
    """0: no validation (the last weights are the run's)."""
    max_items: int = 0
    """Score only the first this many objects of each source (0: all)."""
    max_clicks: int = 3
    sources: list[PromptSource] = field(default_factory=list)


@dataclass
class PromptOptim:
    steps: int = 30000
    lr: float = 3e-4
    backbone_lr_scale: float = 0.1
    weight_decay: float = 1e-4
    warmup_steps: int = 500
    clip_grad_norm: float = 1.0
    max_clicks: int = 3
    """Corrective clicks simulated per step: uniform in 0..this."""
    dice_weight: float = 1.0
    aux_weight: float = 0.4
    partial_bg_weight: float = 0.5


@dataclass
class PromptTrain:
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    threads: int = 0
    log_every: int = 20
    checkpoint_every: int = 500
    backbone_weights: str = "imagenet"


@dataclass
class MaskMakerExperiment:
    kind: str = KIND
    name: str = "maskmaker"
    model: MaskMakerConfig = field(default_factory=MaskMakerConfig)
    data: PromptData = field(default_factory=PromptData)
    val: PromptVal = field(default_factory=PromptVal)
    optim: PromptOptim = field(default_factory=PromptOptim)
    train: PromptTrain = field(default_factory=PromptTrain)


def is_maskmaker_config(data: dict[str, Any]) -> bool:
    return data.get("kind") == KIND


def parse_maskmaker_config(data: dict[str, Any]) -> MaskMakerExperiment:
    from vos_cli.train.config import _build

    if "stages" in data:
        raise VosError("a mask-maker config has no [[stages]]")
    config = _build(MaskMakerExperiment, data, "")
    config.model.check()
    if not config.data.sources:
        raise VosError("a mask-maker config needs at least one [[data.sources]]")
    if config.data.batch_size < 1 or config.optim.steps < 1:
        raise VosError("config keys 'data.batch_size' and 'optim.steps' must be at least 1")
    return config


def load_maskmaker_experiment(name_or_path: str, overrides: list[str]) -> MaskMakerExperiment:
    from vos_cli.train.config import apply_override, load_config_dict

    data = load_config_dict(name_or_path)
    for item in overrides:
        if "=" not in item:
            raise VosError(f"--set expects key=value, got {item!r}")
        key, raw = (part.strip() for part in item.split("=", 1))
        apply_override(data, key, raw)
    return parse_maskmaker_config(data)


def _items(sources: list[PromptSource], max_items: int = 0) -> list[tuple[list[ObjectItem], float]]:
    out = []
    for s in sources:
        items = load_items(s.kind, s.root, s.split, s.partial, s.every, s.min_area)
        out.append((items[:max_items] if max_items else items, s.weight))
    return out


class _StepBatches(Sampler[list[int]]):
    def __init__(self, start: int, steps: int, batch: int) -> None:
        self.start, self.steps, self.batch = start, steps, batch

    def __len__(self) -> int:
        return max(0, self.steps - self.start)

    def __iter__(self):
        for step in range(self.start, self.steps):
            yield list(range(step * self.batch, (step + 1) * self.batch))


def masked_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore: torch.Tensor,
    partial: torch.Tensor,
    partial_bg_weight: float,
    dice_weight: float,
) -> torch.Tensor:
    """BCE + soft Dice per crop, "unknown" pixels out; background of partial crops down-weighted.

    logits (B,1,h,w) at any stride; target, ignore (B,S,S) are resampled to it.
    """
    if logits.shape[-2:] != target.shape[-2:]:
        size = logits.shape[-2:]
        target = F.interpolate(target[:, None], size=size, mode="area")[:, 0]
        ignore = F.interpolate(ignore[:, None].float(), size=size, mode="area")[:, 0] > 0.05
    logits = logits[:, 0].float()
    weight = (~ignore).float()
    bg = (1 - target) * (1 - partial[:, None, None] * (1 - partial_bg_weight))
    weight = weight * (target + bg)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    bce = (bce * weight).sum(dim=(1, 2)) / weight.sum(dim=(1, 2)).clamp_min(1.0)
    prob = torch.sigmoid(logits) * weight
    inter = (prob * target).sum(dim=(1, 2))
    dice = 1 - (2 * inter + 1) / (prob.sum(dim=(1, 2)) + (target * weight).sum(dim=(1, 2)) + 1)
    return (bce + dice_weight * dice).mean()


def step_prompts(
    net: MaskMakerNet,
    feats,
    batch: dict[str, torch.Tensor],
    clicks: int,
    config: MaskMakerConfig,
) -> torch.Tensor:
    """The prompt maps of the step's graded pass, after ``clicks`` corrective passes (no grad)."""
    size = config.crop_size
    b = batch["image"].shape[0]
    device = batch["image"].device
    window = (0.0, 0.0, float(size), float(size))  # crop pixels are the click coordinates
    points: list[list[Point]] = [[] for _ in range(b)]
    for i in range(b):
        if batch["click"][i, 2] > 0:
            x, y = float(batch["click"][i, 0]), float(batch["click"][i, 1])
            points[i].append(Point(x, y, True))
    maps = torch.zeros((b, PROMPT_CHANNELS, size, size), device=device)
    maps[:, 0] = batch["box"]

    def fill(previous: torch.Tensor | None) -> torch.Tensor:
        out = maps.clone()
        for i in range(b):
            out[i, 1:3] = click_maps(points[i], window, size, config.click_sigma).to(device)
        if previous is not None:
            out[:, 3] = previous
            out[:, 4] = 1.0
        return out

    previous = None
    target = batch["target"].cpu().numpy() > 0.5
    ignore = batch["ignore"].cpu().numpy()
    partial = batch["partial"].cpu().numpy() > 0.5
    for _ in range(clicks):
        with torch.no_grad():
            logits = net.decode(_detached(feats), fill(previous))[:, 0].float()
        previous = torch.sigmoid(logits)
        pred = (previous >= 0.5).cpu().numpy()
        for i in range(b):
            click = next_click(target[i], pred[i], ignore[i], negatives=not partial[i])
            if click is not None:
                points[i].append(click)
    return fill(previous)


def _detached(feats):
    from vos_cli.prompts.model import CropFeatures

    return CropFeatures(*(t.detach() for t in (feats.s16, feats.s8, feats.s4, feats.s2)))


@dataclass
class PromptTrainResult:
    out_dir: Path
    steps: int
    best: float | None
    interrupted: bool
    weights: Path | None
    stop_signal: int | None = None


class MaskMakerTrainer:
    def __init__(
        self,
        config: MaskMakerExperiment,
        out_dir: Path,
        resume: Path | None = None,
        log: LogFn = print,
        progress: bool = True,
    ) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        self.resume = resume
        self.log = log
        self.progress = progress

    def _setup(self) -> None:
        from vos_cli.inference.runtime import resolve_device, resolve_precision

        cfg = self.config
        if cfg.train.threads > 0:
            torch.set_num_threads(cfg.train.threads)
        self.device = resolve_device(cfg.train.device)
        self.dtype = resolve_precision(cfg.train.precision, self.device)
        torch.manual_seed(cfg.train.seed)
        weights = cfg.train.backbone_weights or None
        self.net = MaskMakerNet(cfg.model, backbone_weights=weights).to(self.device)
        self.net.train()
        backbone = [p for p in self.net.backbone.parameters() if p.requires_grad]
        own = [p for n, p in self.net.named_parameters() if not n.startswith("backbone.")]
        groups = [{"params": own, "lr": cfg.optim.lr}]
        if backbone:
            groups.append({"params": backbone, "lr": cfg.optim.lr * cfg.optim.backbone_lr_scale})
        self.optimizer = torch.optim.AdamW(groups, weight_decay=cfg.optim.weight_decay)
        steps, warm = cfg.optim.steps, max(0, cfg.optim.warmup_steps)

        def schedule(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            t = (step - warm) / max(1, steps - warm)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        d = cfg.data
        settings = SampleSettings(d.box_jitter, d.no_box_prob, d.flip, d.color_jitter)
        self.samples = PromptSamples(_items(d.sources), cfg.model, settings, cfg.train.seed)
        self.val_items: list[ObjectItem] = [
            item for items, _ in _items(cfg.val.sources, cfg.val.max_items) for item in items
        ]

    def _state(self) -> dict[str, Any]:
        return {
            "format": TRAIN_FORMAT,
            "weights": weights_dict(self.net, {"step": self.step}, half=False),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "best": self.best,
            "config": asdict(self.config),
        }

    def _save(self, name: str) -> None:
        from vos_cli.model.factory import atomic_save

        atomic_save(self._state(), self.out_dir / "checkpoints" / name, what="checkpoint")

    def _restore(self, path: Path) -> dict[str, Any] | None:
        """Loads the run's state; returns the config it recorded."""
        from vos_cli.train.checkpoint import load_training_checkpoint

        data = load_training_checkpoint(path, TRAIN_FORMAT, "mask maker training checkpoint")
        self.net.load_state_dict(data["weights"]["state_dict"])
        self.optimizer.load_state_dict(data["optimizer"])
        self.scheduler.load_state_dict(data["scheduler"])
        self.step = int(data["step"])
        self.best = data.get("best")
        return data.get("config")

    def _log(self, record: dict[str, Any]) -> None:
        path = self.out_dir / "log.jsonl"
        try:
            with open(path, "a") as fh:
                fh.write(json.dumps(record) + "\n")
        except OSError as exc:
            raise WriteError(f"Cannot write {path}: {exc.strerror or exc}") from None

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        from vos_cli.inference.runtime import autocast

        cfg = self.config
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        rng = np.random.default_rng([cfg.train.seed, 1, self.step])
        clicks = int(rng.integers(0, cfg.optim.max_clicks + 1))
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.dtype):
            feats = self.net.features(batch["image"])
            prompt = step_prompts(self.net, feats, batch, clicks, cfg.model)
            logits, aux = self.net.decode(feats, prompt, aux=True)
        o = cfg.optim
        args = (batch["target"], batch["ignore"], batch["partial"], o.partial_bg_weight)
        main = masked_loss(logits, *args, o.dice_weight)
        loss = main + o.aux_weight * masked_loss(aux, *args, o.dice_weight)
        if not torch.isfinite(loss):
            raise VosError(f"training diverged: loss is {loss.item()} at step {self.step + 1}")
        loss.backward()
        grad = torch.nn.utils.clip_grad_norm_(self.net.trainable_parameters(), o.clip_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        with torch.no_grad():
            pred = logits[:, 0] >= 0
            target = batch["target"] > 0.5
            keep = ~batch["ignore"]
            inter = ((pred & target) & keep).sum(dim=(1, 2)).float()
            union = ((pred | target) & keep).sum(dim=(1, 2)).float().clamp_min(1)
        return {
            "loss": float(loss.detach()),
            "main": float(main.detach()),
            "iou": float((inter / union).mean()),
            "clicks": clicks,
            "grad_norm": float(grad),
        }

    def validate(self) -> dict[str, float]:
        from vos_cli.prompts.evaluate import evaluate, summarize
        from vos_cli.prompts.predictor import MaskMaker

        self.net.eval()
        try:
            maker = MaskMaker(self.net, self.device)
            summary = summarize(evaluate(maker, self.val_items, self.config.val.max_clicks))
        finally:
            self.net.train()
        metrics = {"box_iou": summary.ious[0], "clicks_iou": summary.ious[-1]}
        metrics["score"] = (metrics["box_iou"] + metrics["clicks_iou"]) / 2
        for name, part in summary.by_source.items():
            metrics[f"{name}/box_iou"] = part.ious[0]
        return metrics

    def run(self) -> PromptTrainResult:
        from vos_cli.signals import ignore_stop_signals
        from vos_cli.train.checkpoint import resumed_config_note
        from vos_cli.train.loop import _Interrupt

        self._setup()
        cfg = self.config
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.step = 0
        self.best: float | None = None
        if self.resume is not None:
            run_config = self._restore(self.resume)
            self.log(f"resumed from {self.resume} at step {self.step}")
            if note := resumed_config_note(run_config, self.config):
                self.log(note)
        loader = DataLoader(
            self.samples,
            batch_sampler=_StepBatches(self.step, cfg.optim.steps, cfg.data.batch_size),
            num_workers=cfg.data.workers,
            worker_init_fn=ignore_stop_signals,
        )
        interrupted = False
        tic = time.perf_counter()
        with _Interrupt() as interrupt, self._progress() as advance:
            advance(self.step, {})
            for batch in loader:
                record = self.train_step(batch)
                self.step += 1
                record.update(
                    step=self.step,
                    lr=self.optimizer.param_groups[0]["lr"],
                    sec_per_step=time.perf_counter() - tic,
                )
                tic = time.perf_counter()
                advance(self.step, record)
                if self.step % cfg.train.log_every == 0:
                    self._log({"type": "train", **record})
                if (
                    cfg.val.every_steps
                    and self.val_items
                    and (self.step % cfg.val.every_steps == 0 or self.step == cfg.optim.steps)
                ):
                    self._validate_and_keep()
                if self.step % cfg.train.checkpoint_every == 0 or self.step == cfg.optim.steps:
                    self._save("last.pt")
                if interrupt.requested:
                    self._save("last.pt")
                    interrupted = True
                    break
        weights = None
        if not interrupted:
            weights = self.out_dir / "maskmaker.pt"
            best = self.out_dir / "checkpoints" / "best.pt"
            if best.is_file():
                from vos_cli.prompts.model import load_maskmaker

                net, meta = load_maskmaker(best)
                save_maskmaker(net, weights, meta)
            else:
                save_maskmaker(self.net, weights, {"step": self.step, "config_name": cfg.name})
        return PromptTrainResult(
            self.out_dir,
            self.step,
            self.best,
            interrupted,
            weights,
            interrupt.signum if interrupted else None,
        )

    def _validate_and_keep(self) -> None:
        tic = time.perf_counter()
        metrics = self.validate()
        self._log(
            {"type": "val", "step": self.step, "seconds": time.perf_counter() - tic, **metrics}
        )
        self.log(
            f"step {self.step}: box IoU {metrics['box_iou']:.4f}, after "
            f"{self.config.val.max_clicks} clicks {metrics['clicks_iou']:.4f}"
        )
        if self.best is None or metrics["score"] > self.best:
            self.best = metrics["score"]
            meta = {"step": self.step, "config_name": self.config.name, "val": metrics}
            save_maskmaker(self.net, self.out_dir / "checkpoints" / "best.pt", meta, half=False)

    def _progress(self):
        from vos_cli.train.progress import training_progress

        return training_progress(self.config.optim.steps, enabled=self.progress)
