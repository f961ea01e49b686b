"""``paper-r101`` is the paper's two-stage recipe; the held-out YouTube-VOS videos follow a fixed
rule; stages run in sequence, each from the previous one's weights."""

from __future__ import annotations

import hashlib
import random
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from tests.test_data_ytvos import _palette_png
from vos_cli.cli import app
from vos_cli.data.ytvos import heldout_videos, load_ytvos, select_videos
from vos_cli.errors import VosError
from vos_cli.model.factory import load_model
from vos_cli.train.config import ValConfig, load_stages
from vos_cli.train.stages import DONE, run_stages


def test_paper_r101_is_the_papers_recipe():
    stage1, stage2 = load_stages("paper-r101")
    assert (stage1.name, stage2.name, stage2.init) == ("stage1", "stage2", "last")
    one, two = stage1.config, stage2.config
    assert one.model.backbone == "resnet101" and two.model == one.model
    # Stage 1: 80 epochs, three datasets, 240x432, 4 x 8, lr 1e-4 x 0.95 / epoch, wd 1e-5.
    assert {s.kind for s in one.data.sources} == {"ytvos", "davis17", "synth-salient"}
    assert (one.data.size, one.data.batch_size, one.data.num_frames) == ([240, 432], 4, 8)
    assert (one.optim.epochs, one.optim.lr, one.optim.lr_decay) == (80, 1e-4, 0.95)
    assert one.optim.weight_decay == 1e-5
    # Stage 2: 100 epochs, DAVIS 2017 train + YouTube-VOS equally likely, full resolution, 2 x 14,
    # lr 1e-5 x 0.985 / epoch, wd 1e-6; 2 x 60 DAVIS videos an epoch as the authors' sampler.
    assert sorted((s.kind, s.weight) for s in two.data.sources) == [
        ("davis17", 1.0),
        ("ytvos", 1.0),
    ]
    assert (two.data.size, two.data.batch_size, two.data.num_frames) == ([480, 864], 2, 14)
    assert (two.optim.epochs, two.optim.lr, two.optim.lr_decay) == (100, 1e-5, 0.985)
    assert two.optim.weight_decay == 1e-6 and two.data.samples_per_epoch == 120
    # Early stopping on 300 videos held out of the YouTube-VOS training set, never a test split.
    for config in (one, two):
        assert config.val.kind == "ytvos" and config.val.split == "train:heldout=300"
        for source in config.data.sources:
            if source.kind == "davis17":
                assert source.split == "train"
            if source.kind == "ytvos":
                assert source.split == "train:exclude-heldout=300"
    assert two.train.patience > 0 and two.val.every_epochs == 1


def fake_ids(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(40):010x}" for _ in range(count)]


def test_heldout_rule_is_fixed_and_partitions_the_folder():
    names = fake_ids(3471)
    held = heldout_videos(names, 300)
    assert len(held) == 300 and set(held) <= set(names)
    shuffled = names[::-1]
    assert heldout_videos(shuffled, 300) == held  # depends on the ids only
    digest = sorted(hashlib.sha256(f"vos-ytvos-holdout:{n}".encode()).hexdigest() for n in names)
    cut = digest[299]
    assert all(hashlib.sha256(f"vos-ytvos-holdout:{n}".encode()).hexdigest() <= cut for n in held)
    rest = select_videos(names, "exclude-heldout=300")
    assert sorted(rest + select_videos(names, "heldout=300")) == sorted(names)
    assert set(rest).isdisjoint(held) and len(rest) == 3171
    with pytest.raises(VosError):
        select_videos(names, "heldout=x")
    with pytest.raises(VosError):
        select_videos(names, "sometimes=3")


def make_train_folder(root: Path, names: list[str]) -> Path:
    """YouTube-VOS train layout: annotated frames 0, 5, 10, 15 of a square moving right."""
    for name in names:
        (root / "train" / "JPEGImages" / name).mkdir(parents=True)
        (root / "train" / "Annotations" / name).mkdir(parents=True)
        for f in (0, 5, 10, 15):
            ids = np.zeros((48, 64), np.uint8)
            ids[10:30, 4 + 2 * f : 24 + 2 * f] = 1
            rgb = np.full((48, 64, 3), 60, np.uint8)
            rgb[ids == 1] = (230, 40, 40)
            Image.fromarray(rgb).save(root / "train" / "JPEGImages" / name / f"{f:05d}.jpg")
            _palette_png(root / "train" / "Annotations" / name / f"{f:05d}.png", ids)
    return root


def test_list_selectors_and_ytvos_validation(tmp_path, tiny_model_path, monkeypatch):
    names = ["aaa", "bbb", "ccc"]
    root = make_train_folder(tmp_path / "yt", names)
    listed = tmp_path / "mine.txt"
    listed.write_text("bbb\n")
    assert [v.name for v in load_ytvos(root, "train:list=" + str(listed))] == ["bbb"]
    assert [v.name for v in load_ytvos(root, f"train:exclude-list={listed}")] == ["aaa", "ccc"]
    (held,) = heldout_videos(names, 1)
    assert [v.name for v in load_ytvos(root, "train:heldout=1")] == [held]

    import vos_cli.train.validate as validate_module

    scored = []
    original = validate_module.evaluate_sequence

    def spy(gts, preds, num_objects, **kwargs):
        scored.append(kwargs["name"])
        return original(gts, preds, num_objects, **kwargs)

    monkeypatch.setattr(validate_module, "evaluate_sequence", spy)
    model, _ = load_model(tiny_model_path)
    config = ValConfig(kind="ytvos", root=str(root), split="train:heldout=1", size=0)
    metrics = validate_module.validate(model, config, torch.device("cpu"), torch.float32)
    assert scored == [held]
    assert 0.0 <= metrics["jf"] <= 1.0 and metrics["score"] == metrics["jf"]


class _Result:
    interrupted = False
    steps = 1


def two_stage_config(tmp_path: Path) -> Path:
    smoke = (resources.files("vos_cli.train") / "configs" / "smoke.toml").read_text()
    path = tmp_path / "two.toml"
    path.write_text(
        smoke
        + '\n[[stages]]\nname = "first"\n\n[[stages]]\nname = "second"\n'
        + "\n[stages.optim]\nlr = 5e-5\n"
    )
    return path


def test_stages_run_in_sequence_from_the_previous_weights(tmp_path):
    config = two_stage_config(tmp_path)
    stages = load_stages(str(config), ["second.optim.epochs=7", "train.seed=3"])
    assert [s.config.optim.lr for s in stages] == [1e-3, 5e-5]
    assert [s.config.optim.epochs for s in stages] == [3, 7]
    assert [s.config.train.seed for s in stages] == [3, 3]
    calls = []

    def run(experiment, folder: Path, resume):
        calls.append((folder.name, experiment.train.init_weights, resume))
        (folder / "checkpoints").mkdir(parents=True)
        (folder / "checkpoints" / "last.pt").write_bytes(b"weights")
        return _Result()

    run_dir = tmp_path / "run"
    run_stages(stages, run_dir, None, run, log=lambda m: None)
    first_last = str(run_dir / "first" / "checkpoints" / "last.pt")
    assert calls == [("first", "", None), ("second", first_last, None)]
    assert (run_dir / "second" / DONE).is_file()
    with pytest.raises(VosError, match="already holds a run"):
        run_stages(stages, run_dir, None, run, log=lambda m: None)
    assert run_stages(stages, run_dir, run_dir / "x", run, log=lambda m: None) is None


def test_cli_trains_both_stages(tmp_path):
    config = two_stage_config(tmp_path)
    out = tmp_path / "run"
    args = ["train", "--config", str(config), "--out", str(out), "--no-progress"]
    result = CliRunner().invoke(app, [*args, "--set", "train.max_steps=2"])
    assert result.exit_code == 0, result.output
    assert (out / "first" / DONE).is_file() and (out / "second" / DONE).is_file()
    second = torch.load(out / "second" / "checkpoints" / "last.pt", weights_only=True)
    first = torch.load(out / "first" / "checkpoints" / "last.pt", weights_only=True)
    assert second["weights"]["state_dict"].keys() == first["weights"]["state_dict"].keys()
    again = CliRunner().invoke(app, [*args, "--resume", "last"])
    assert again.exit_code == 0 and "finished earlier" in again.output
