"""Training: the loss falls, a clip can be overfitted, resume is exact, DDP runs, config errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from vos_cli.cli import app
from vos_cli.data.shapes import MovingShapes
from vos_cli.errors import VosError
from vos_cli.prompts.train import load_maskmaker_experiment
from vos_cli.train.config import load_config, load_config_dict
from vos_cli.train.loop import Trainer

runner = CliRunner()


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_smoke_trains_and_loss_falls(tmp_path):
    result = runner.invoke(
        app,
        ["train", "--config", "smoke", "--out", str(tmp_path / "run"), "--no-progress"]
        + ["--set", "train.snapshot_every=5"],
    )
    assert result.exit_code == 0, result.output
    log = records(tmp_path / "run")
    losses = [r["loss"] for r in log if r["type"] == "train"]
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
    # the checkpoint is usable as weights
    info = runner.invoke(app, ["weights", "info", str(tmp_path / "run/checkpoints/last.pt")])
    assert info.exit_code == 0 and "training checkpoint" in info.output
    # weight snapshots every 5 steps, which average into one model
    snapshots = sorted((tmp_path / "run" / "checkpoints" / "snapshots").iterdir())
    assert [p.name for p in snapshots] == ["step_000005.pt", "step_000010.pt"]
    mean = tmp_path / "mean.pt"
    averaged = runner.invoke(app, ["weights", "average", *map(str, snapshots), "-o", str(mean)])
    assert averaged.exit_code == 0, averaged.output
    assert "steps: 5, 10" in runner.invoke(app, ["weights", "info", str(mean)]).output


class OneClip(MovingShapes):
    """The same snippet at every index and epoch: something to overfit."""

    def sample(self, epoch: int, index: int) -> dict:
        return super().sample(0, 0)


def test_overfits_one_generated_clip(tmp_path):
    config = load_config(
        "smoke",
        ["optim.epochs=1", "data.samples_per_epoch=240", "optim.lr=3e-3", "train.log_every=1"],
    )
    data = OneClip(num_frames=4, size=(64, 96), seed=3, samples_per_epoch=240)
    trainer = Trainer(
        config, tmp_path, log=lambda m: None, progress=False, build_dataset=lambda cfg: data
    )
    trainer.run()
    ious = [r["iou"] for r in records(tmp_path)]
    assert max(ious[-10:]) > 0.9, ious[-10:]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["weights"]["state_dict"]


def test_resume_gives_identical_weights(tmp_path):
    straight = tmp_path / "straight"
    Trainer(
        load_config("smoke", ["train.max_steps=6"]), straight, progress=False, log=lambda m: None
    ).run()
    split = tmp_path / "split"
    Trainer(
        load_config("smoke", ["train.max_steps=3"]), split, progress=False, log=lambda m: None
    ).run()
    lines: list[str] = []
    Trainer(
        load_config("smoke", ["train.max_steps=6"]),
        split,
        progress=False,
        log=lines.append,
        resume=split / "checkpoints" / "last.pt",
    ).run()
    assert "the config differs from the run's so far: train.max_steps: 3 -> 6" in lines
    a, b = _weights(straight / "checkpoints/last.pt"), _weights(split / "checkpoints/last.pt")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_starts_from_a_trained_model_with_other_settings(tmp_path):
    """``train.init_weights`` with a config that differs in settings, not shapes: the network is
    rebuilt from the config and starts from every one of the trained model's tensors."""
    base = tmp_path / "base"
    Trainer(
        load_config("smoke", ["train.max_steps=2"]), base, progress=False, log=lambda m: None
    ).run()
    init = base / "checkpoints" / "last.pt"
    config = load_config(
        "smoke", ["train.max_steps=2", f"train.init_weights='{init}'", "model.update_rate=0.2"]
    )
    trainer = Trainer(config, tmp_path / "next", progress=False, log=lambda m: None)
    trainer._setup()
    assert trainer.model.config.update_rate == 0.2
    start = trainer.model.state_dict()
    for key, value in _weights(init).items():
        assert torch.equal(start[key], value.to(start[key].dtype)), key


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "optim.learning_rate=1"], "unknown config key 'optim.learning_rate'"),
        (["--set", "data.batch_size='four'"], "must be int"),
        (["--set", "data.sources=[{kind='davis16', root='/no/such/folder'}]"], "not found"),
        (["--set", "data.size=[360, 640]"], "multiples of 16"),
        (["--set", "data.max_stride=0"], "'data.max_stride' must be at least 1"),
        (["--set", "data.sources=[{kind='generated', twin_prob=0.5}]"], "synthetic sources only"),
        (["--set", "data.sources=[{kind='synth-coco', twin_prob=2.0}]"], "must be in [0, 1]"),
    ],
)
def test_config_errors_are_one_line(extra, message, tmp_path):
    result = runner.invoke(
        app, ["train", "--config", "smoke", "--out", str(tmp_path / "r"), "--no-progress", *extra]
    )
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_max_stride_reaches_the_real_video_sources(tmp_path):
    from tests.test_bench_davis import make_davis16
    from vos_cli.train.datasets import build_training_dataset

    root = make_davis16(tmp_path / "davis", ["a", "b"])
    config = load_config(
        "smoke",
        [
            f"data.sources=[{{kind='davis16', root='{root}', split='val'}}]",
            "data.max_stride=3",
        ],
    )
    dataset = build_training_dataset(config)
    assert dataset.max_stride == 3


def test_every_shipped_config_parses():
    from vos_cli.prompts.train import is_maskmaker_config, load_maskmaker_experiment
    from vos_cli.train.config import builtin_config_names, load_config_dict

    names = builtin_config_names()
    assert {"smoke", "lite0-cpu", "paper-r101", "maskmaker-lite0"} <= set(names)
    for name in names:
        if is_maskmaker_config(load_config_dict(name)):  # the mask maker's, not the tracker's
            assert load_maskmaker_experiment(name, []).name == name
            with pytest.raises(VosError, match="mask-maker config"):
                load_config(name)
        else:
            assert load_config(name).name == name


def test_every_experiment_config_parses():
    """The experiment record's configs outside the package still parse with this code."""
    folder = Path(__file__).resolve().parents[1] / "experiments" / "configs"
    paths = sorted(folder.glob("*.toml"))
    assert len(paths) >= 7
    for path in paths:
        if load_config_dict(str(path)).get("kind") == "mask-maker":
            assert load_maskmaker_experiment(str(path), []).name == path.stem
        else:
            assert load_config(str(path)).name == path.stem


def test_unknown_config_name():
    with pytest.raises(VosError, match="not found"):
        load_config("no-such-config")


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "vos_cli",
        "train",
        "--config",
        "smoke",
        "--out",
        str(tmp_path / "ddp"),
        "--no-progress",
        "--set",
        "train.max_steps=2",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    log = records(tmp_path / "ddp")
    assert [r["step"] for r in log] == [1, 2]  # rank 0 alone logs
    assert (tmp_path / "ddp" / "checkpoints" / "last.pt").is_file()


def test_validates_every_n_epochs_and_always_after_the_last(tmp_path):
    config = load_config("smoke", ["val.kind=davis16", "val.every_epochs=2", "optim.epochs=3"])
    scored: list[int] = []

    def fake_validate(model, val_cfg, device, dtype) -> dict[str, float]:
        scored.append(len(scored))
        return {"score": 0.5 + 0.1 * len(scored)}

    Trainer(config, tmp_path, log=lambda m: None, progress=False, validate=fake_validate).run()
    val_epochs = [r["epoch"] for r in records(tmp_path) if r["type"] == "val"]
    assert val_epochs == [2, 3]  # epoch 2 by the interval, epoch 3 because it is the last
    assert (tmp_path / "checkpoints" / "best.pt").is_file()
