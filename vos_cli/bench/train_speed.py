"""``vos bench train``: seconds per training step of a config, and peak memory.

How long ``vos train`` takes is steps x seconds a step; this times the step itself (forward,
backward and optimiser update on the config's own batches, loaded beforehand) on this machine,
so that a recipe's cost, or a change to the training code, is measured rather than guessed.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from rich.table import Table

from vos_cli.bench.rss import RssSampler
from vos_cli.errors import VosError
from vos_cli.train.config import load_config, load_config_dict
from vos_cli.train.loop import Trainer

DEFAULT_STEPS = 8
DEFAULT_WARMUP = 2


@dataclass
class TrainSpeedReport:
    config: str
    batch_size: int
    frames: int
    size: tuple[int, int]
    device: str
    dtype: str
    threads: int
    step_seconds: list[float]
    peak_rss_mb: float | None

    @property
    def median(self) -> float:
        return statistics.median(self.step_seconds)

    def to_dict(self) -> dict:
        return {**asdict(self), "median_seconds": self.median}


def run_train_bench(
    config: str, overrides: list[str], steps: int = DEFAULT_STEPS, warmup: int = DEFAULT_WARMUP
) -> TrainSpeedReport:
    """Time ``steps`` training steps of ``config`` (a name or a .toml, with ``--set`` style
    ``overrides``) after ``warmup`` untimed ones; data is read in this process."""
    if steps < 1 or warmup < 0:
        raise VosError("--steps must be at least 1 and --warmup at least 0")
    if load_config_dict(config).get("kind") == "mask-maker":
        raise VosError(f"{config} is a mask-maker config: vos bench train times the tracker's")
    cfg = load_config(config, [*overrides, "data.workers=0"])
    trainer = Trainer(cfg, Path("."), progress=False)
    with RssSampler() as rss:
        seconds = trainer.time_steps(steps, warmup)
    return TrainSpeedReport(
        config=cfg.name,
        batch_size=cfg.data.batch_size,
        frames=cfg.data.num_frames,
        size=(cfg.data.size[0], cfg.data.size[1]),
        device=trainer.device.type,
        dtype=str(trainer.dtype).removeprefix("torch."),
        threads=torch.get_num_threads(),
        step_seconds=seconds,
        peak_rss_mb=rss.peak_mb,
    )


def train_speed_table(report: TrainSpeedReport) -> Table:
    s = report.step_seconds
    table = Table(
        title="Training speed",
        caption=f"{report.device} {report.dtype}, {report.threads} thread(s); {len(s)} timed steps",
    )
    table.add_column("Config")
    for column in ("Batch x frames", "Size", "s/step median", "min", "max", "Peak RSS MB"):
        table.add_column(column, justify="right")
    table.add_row(
        report.config,
        f"{report.batch_size} x {report.frames}",
        f"{report.size[0]}x{report.size[1]}",
        f"{report.median:.2f}",
        f"{min(s):.2f}",
        f"{max(s):.2f}",
        "-" if report.peak_rss_mb is None else f"{report.peak_rss_mb:.0f}",
    )
    return table
