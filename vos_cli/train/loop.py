"""The training loop: recurrent end-to-end training with exact resume and optional DDP.

Determinism: sample i of epoch e is a pure function of (seed, e, i), batches are consecutive
index ranges, and the optimiser, scheduler and RNG states are checkpointed, so a run killed and
resumed from a checkpoint produces the same weights as an uninterrupted one.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler, default_collate

from vos_cli.errors import VosError, WriteError, reworded
from vos_cli.inference.runtime import (
    autocast,
    keep_freed_memory,
    resolve_device,
    resolve_precision,
    tune_for_device,
)
from vos_cli.model.agame import AGame
from vos_cli.model.factory import (
    build_model,
    checkpoint_dict,
    load_model,
    load_state_strict,
    normalise_weights,
    read_weights_file,
    save_weights,
)
from vos_cli.model.fold import fold_frozen_batchnorm
from vos_cli.signals import STOP_SIGNALS, Interrupted, ignore_stop_signals
from vos_cli.train.checkpoint import (
    load_training_checkpoint,
    resumed_config_note,
    rng_state,
    save_training_checkpoint,
    set_rng_state,
)
from vos_cli.train.config import ExperimentConfig
from vos_cli.train.unroll import SnippetUnroller

LogFn = Callable[[str], None]


class EpochBatches(Sampler[list[int]]):
    """Consecutive index ranges of one epoch, sharded over ranks, starting at a given batch."""

    def __init__(self, samples: int, batch_size: int, rank: int, world: int, start_batch: int):
        self.batch_size = batch_size
        self.rank, self.world = rank, world
        self.num_batches = samples // (batch_size * world)
        self.start_batch = start_batch

    def __len__(self) -> int:
        return max(0, self.num_batches - self.start_batch)

    def __iter__(self) -> Iterator[list[int]]:
        for b in range(self.start_batch, self.num_batches):
            first = (b * self.world + self.rank) * self.batch_size
            yield list(range(first, first + self.batch_size))


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    epochs: int
    best_metric: float | None
    interrupted: bool
    stopped_early: bool
    stop_signal: int | None = None
    """The signal that interrupted the run (SIGINT, SIGTERM, SIGHUP), when ``interrupted``."""


class _Interrupt:
    """SIGINT, SIGTERM or SIGHUP sets a flag; the loop saves a checkpoint at the next step
    boundary and stops. A signal the process ignores (``nohup``: SIGHUP) stays ignored."""

    def __init__(self) -> None:
        self.requested = False
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Interrupt:
        for signum in (signal.SIGINT, *STOP_SIGNALS):
            try:
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not in the main thread
                break
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # a second Ctrl-C aborts at once
            raise KeyboardInterrupt if signum == signal.SIGINT else Interrupted(signum)
        self.requested = True
        self.signum = signum

    def __exit__(self, *exc: Any) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


def _distributed() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return rank, world, local


class Trainer:
    def __init__(
        self,
        config: ExperimentConfig,
        out_dir: Path,
        resume: Path | None = None,
        log: LogFn = print,
        progress: bool = True,
        build_dataset: Callable[..., Any] | None = None,
        validate: Callable[..., dict[str, float]] | None = None,
    ):
        self.config = config
        self.out_dir = Path(out_dir)
        self.resume = resume
        self.log = log
        self.progress = progress
        self.rank, self.world, self.local_rank = _distributed()
        if build_dataset is None:
            from vos_cli.train.datasets import build_training_dataset as build_dataset
        if validate is None:
            from vos_cli.train.validate import validate
        self.build_dataset = build_dataset
        self.validate = validate
        self._run_config: dict[str, Any] | None = None  # a resumed run's config so far

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ------------------------------------------------------------------------------------------
    def _setup(self) -> None:
        cfg = self.config
        if cfg.train.threads > 0:
            torch.set_num_threads(cfg.train.threads)
        device = resolve_device(cfg.train.device)
        if self.world > 1 and not dist.is_initialized():
            # Rank 0 validates alone while the others wait: allow for a long validation.
            dist.init_process_group(
                backend="nccl" if device.type == "cuda" else "gloo",
                timeout=datetime.timedelta(hours=2),
            )
        if device.type == "cuda" and self.world > 1:
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        self.device = device
        tune_for_device(device)
        if device.type == "cpu":
            keep_freed_memory()
        self.dtype = resolve_precision(cfg.train.precision, device)
        torch.manual_seed(cfg.train.seed)
        # A run started from a file that carries its own backbone (e.g. the authors' release)
        # saves it whole: its backbone differs from the ImageNet one we would rebuild.
        self.include_backbone = False
        if cfg.train.init_weights:
            init_path = Path(cfg.train.init_weights)
            init, _ = normalise_weights(read_weights_file(init_path), init_path)
            self.include_backbone = bool(init.get("backbone_included"))
            model, _ = load_model(init_path, backbone_weights=cfg.train.backbone_weights)
            if model.config.to_dict() != cfg.model.to_dict():
                model.config = cfg.model
                fresh = build_model(cfg.model, backbone_weights=cfg.train.backbone_weights)
                load_state_strict(fresh, model.state_dict(), True, source=str(init_path))
                model = fresh
        else:
            model = build_model(cfg.model, backbone_weights=cfg.train.backbone_weights)
        self.model: AGame = model.to(device)
        self.model.train()
        if device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)
        params = self.model.trainable_parameters()
        if not params:
            raise VosError("the model has no trainable parameters")
        self.optimizer = torch.optim.Adam(
            params,
            lr=cfg.optim.lr,
            weight_decay=cfg.optim.weight_decay,
        )
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(
            self.optimizer, gamma=cfg.optim.lr_decay
        )
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=device.type == "cuda" and self.dtype == torch.float16
        )
        unroller = SnippetUnroller(
            self.model,
            cfg.optim.coarse_loss_weight,
            cfg.optim.iou_loss_weight,
            cfg.optim.iou_loss_on_coarse,
        )
        if self.world > 1:
            unroller = torch.nn.parallel.DistributedDataParallel(
                unroller, device_ids=[device.index] if device.type == "cuda" else None
            )
        self.unroller = unroller
        self.dataset = self.build_dataset(cfg)
        self.steps_per_epoch = cfg.data.samples_per_epoch // (cfg.data.batch_size * self.world)
        if self.steps_per_epoch < 1:
            raise VosError("data.samples_per_epoch is smaller than one batch per process")

    # ------------------------------------------------------------------------------------------
    def _state(self, epoch: int, batch_in_epoch: int) -> dict[str, Any]:
        return {
            "weights": checkpoint_dict(
                self.model,
                include_backbone=self.include_backbone,
                meta={"step": self.step, "epoch": epoch, "config_name": self.config.name},
            ),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "epoch": epoch,
            "batch_in_epoch": batch_in_epoch,
            "rng": rng_state(),
            "config": asdict(self.config),
            "best_metric": self.best_metric,
            "bad_epochs": self.bad_epochs,
        }

    def _save(self, name: str, epoch: int, batch_in_epoch: int) -> None:
        if self.is_main:
            path = self.out_dir / "checkpoints" / name
            try:
                save_training_checkpoint(path, self._state(epoch, batch_in_epoch))
            except WriteError as exc:  # the file is replaced atomically: the old one is whole
                kept = (
                    f"; {path} still holds the previous checkpoint (--resume last continues "
                    "from it)"
                    if path.is_file()
                    else ""
                )
                raise reworded(exc, f"{exc} at step {self.step}{kept}") from None

    def _restore(self, path: Path) -> tuple[int, int]:
        data = load_training_checkpoint(path)
        weights = data["weights"]
        included = bool(weights.get("backbone_included"))
        load_state_strict(self.model, weights["state_dict"], included, source=str(path))
        self.optimizer.load_state_dict(data["optimizer"])
        self.scheduler.load_state_dict(data["scheduler"])
        self.scaler.load_state_dict(data["scaler"])
        set_rng_state(data["rng"])
        self.step = int(data["step"])
        self.best_metric = data.get("best_metric")
        self.bad_epochs = int(data.get("bad_epochs", 0))
        self._run_config = data.get("config")
        return int(data["epoch"]), int(data["batch_in_epoch"])

    def _write_log(self, record: dict[str, Any]) -> None:
        """Append one line; on a failed write the log is cut back to its last whole line."""
        if not self.is_main:
            return
        path = self.out_dir / "log.jsonl"
        line = json.dumps(record) + "\n"
        try:
            with open(path, "a") as fh:
                start = fh.tell()
                try:
                    fh.write(line)
                    fh.flush()
                except OSError:
                    fh.truncate(start)
                    raise
        except OSError as exc:
            raise WriteError(f"Cannot write {path}: {exc.strerror or exc}") from None

    # ------------------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        self._setup()
        cfg = self.config
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.step = 0
        self.best_metric: float | None = None
        self.bad_epochs = 0
        start_epoch, start_batch = 0, 0
        if self.resume is not None:
            start_epoch, start_batch = self._restore(self.resume)
            self.log(f"resumed from {self.resume} at step {self.step} (epoch {start_epoch})")
            if note := resumed_config_note(self._run_config, self.config):
                self.log(note)
        self._fold_frozen_backbone()
        total_steps = cfg.optim.epochs * self.steps_per_epoch
        if cfg.train.max_steps:
            total_steps = min(total_steps, cfg.train.max_steps)
        interrupted = stopped_early = False
        epoch = start_epoch
        with _Interrupt() as interrupt, self._progress(total_steps) as advance:
            advance(self.step, {})
            while epoch < cfg.optim.epochs and self.step < total_steps:
                batch_in_epoch = start_batch if epoch == start_epoch else 0
                self.dataset.set_epoch(epoch)
                loader = DataLoader(
                    self.dataset,
                    batch_sampler=EpochBatches(
                        cfg.data.samples_per_epoch,
                        cfg.data.batch_size,
                        self.rank,
                        self.world,
                        batch_in_epoch,
                    ),
                    num_workers=cfg.data.workers,
                    persistent_workers=False,
                    worker_init_fn=ignore_stop_signals,
                )
                tic = time.perf_counter()
                for batch in loader:
                    record = self._train_step(batch)
                    self.step += 1
                    batch_in_epoch += 1
                    record.update(
                        step=self.step,
                        epoch=epoch,
                        lr=self.optimizer.param_groups[0]["lr"],
                        sec_per_step=time.perf_counter() - tic,
                    )
                    tic = time.perf_counter()
                    advance(self.step, record)
                    if self.step % cfg.train.log_every == 0:
                        self._write_log({"type": "train", **record})
                    if self.step % cfg.train.checkpoint_every == 0:
                        self._save("last.pt", epoch, batch_in_epoch)
                    if cfg.train.snapshot_every and self.step % cfg.train.snapshot_every == 0:
                        self._save_snapshot(epoch)
                    if interrupt.requested or self.step >= total_steps:
                        break
                if interrupt.requested:
                    self._save("last.pt", epoch, batch_in_epoch)
                    interrupted = True
                    break
                if batch_in_epoch >= self.steps_per_epoch:
                    epoch += 1
                    self.scheduler.step()
                    stopped_early = self._end_of_epoch(epoch)
                    self._save("last.pt", epoch, 0)
                    if stopped_early:
                        break
                else:  # max_steps reached mid-epoch
                    self._save("last.pt", epoch, batch_in_epoch)
        if self.world > 1 and dist.is_initialized():
            dist.barrier()
        return TrainResult(
            self.out_dir,
            self.step,
            epoch,
            self.best_metric,
            interrupted,
            stopped_early,
            interrupt.signum if interrupted else None,
        )

    def _fold_frozen_backbone(self) -> None:
        """Frozen backbone BatchNorms folded into their convs: same function, faster. Frozen
        tensors are not saved, so checkpoints keep the unfolded layout (fold after a restore);
        a run that saves its backbone whole does not fold."""
        if not self.include_backbone:
            fold_frozen_batchnorm(self.model.backbone)

    def time_steps(self, steps: int, warmup: int) -> list[float]:
        """Seconds of each of ``steps`` training steps after ``warmup`` untimed ones, as
        :meth:`run` trains (same setup, same step), on the run's first batches loaded
        beforehand, so that data loading is not timed. Nothing is written."""
        self._setup()
        self._fold_frozen_backbone()
        self.step = 0
        self.dataset.set_epoch(0)
        epoch = list(
            EpochBatches(
                self.config.data.samples_per_epoch,
                self.config.data.batch_size,
                self.rank,
                self.world,
                0,
            )
        )
        batches = [  # the epoch's batches as run() draws them, then the same again
            default_collate([self.dataset[i] for i in epoch[b % len(epoch)]])
            for b in range(warmup + steps)
        ]
        seconds = []
        for index, batch in enumerate(batches):
            tic = time.perf_counter()
            self._train_step(batch)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            if index >= warmup:
                seconds.append(time.perf_counter() - tic)
        return seconds

    def _train_step(self, batch: dict[str, Any]) -> dict[str, Any]:
        images = batch["images"].to(self.device, non_blocking=True)
        labels = batch["labels"].to(self.device, non_blocking=True)
        num_objects = batch["num_objects"]
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.dtype):
            out = self.unroller(images, labels, num_objects)
        loss = out.loss
        if not torch.isfinite(loss):
            raise VosError(f"training diverged: loss is {loss.item()} at step {self.step + 1}")
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(
            self.model.trainable_parameters(), self.config.optim.clip_grad_norm
        )
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {
            "loss": float(loss.detach()),
            "fine": float(out.fine_loss),
            "coarse": float(out.coarse_loss),
            "iou": float(out.iou),
            "grad_norm": float(grad_norm),
        }

    def _end_of_epoch(self, epoch: int) -> bool:
        """Validate, track the best checkpoint; True when early stopping says stop."""
        cfg = self.config
        last = epoch == cfg.optim.epochs  # always scored: the run's final weights are a candidate
        if cfg.val.kind == "none" or (epoch % max(1, cfg.val.every_epochs) != 0 and not last):
            return False
        metrics: dict[str, float] = {}
        if self.is_main:
            self.model.eval()
            tic = time.perf_counter()
            metrics = self.validate(self.model, cfg.val, self.device, self.dtype)
            self.model.train()
            metric = metrics["score"]
            self._write_log(
                {
                    "type": "val",
                    "step": self.step,
                    "epoch": epoch,
                    "seconds": time.perf_counter() - tic,
                    **metrics,
                }
            )
            self.log(
                f"epoch {epoch} step {self.step}: "
                + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            )
            if self.best_metric is None or metric > self.best_metric:
                self.best_metric = metric
                self.bad_epochs = 0
                self._save_best(epoch, metrics)
            else:
                self.bad_epochs += 1
        stop = cfg.train.patience > 0 and self.bad_epochs >= cfg.train.patience
        if self.world > 1:
            flag = torch.tensor([int(stop)], device=self.device)
            dist.broadcast(flag, src=0)
            stop = bool(flag.item())
        return stop

    def _save_weights(self, relative: str, epoch: int, **meta: Any) -> None:
        """The model alone, as a vos weights file under ``checkpoints/`` (no optimizer state)."""
        save_weights(
            self.model,
            self.out_dir / "checkpoints" / relative,
            include_backbone=self.include_backbone,
            meta={"step": self.step, "epoch": epoch, **meta, "config_name": self.config.name},
        )

    def _save_snapshot(self, epoch: int) -> None:
        """The points that ``vos weights average`` averages."""
        if self.is_main:
            self._save_weights(f"snapshots/step_{self.step:06d}.pt", epoch)

    def _save_best(self, epoch: int, metrics: dict[str, float]) -> None:
        self._save_weights("best.pt", epoch, val=metrics)

    def _progress(self, total: int):
        from vos_cli.train.progress import training_progress

        return training_progress(total, enabled=self.progress and self.is_main)
