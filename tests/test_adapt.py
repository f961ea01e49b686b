"""First-frame adaptation: it learns, trains only what it says, and the tracker undoes it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import first_mask, moving_shapes_frames
from vos_cli.cli import app
from vos_cli.errors import VosError
from vos_cli.inference.adapt import adapt_to_frame, adapted_modules
from vos_cli.inference.adapt_config import AdaptConfig, adapt_config
from vos_cli.inference.tracker import Tracker
from vos_cli.io.masks import read_mask, write_mask
from vos_cli.model.factory import load_model

runner = CliRunner()
SMALL = dict(lr=1e-3, snippets=4, frames=3, batch=2)


@pytest.fixture()
def model(tiny_model_path):
    m, _ = load_model(tiny_model_path)
    return m.eval().requires_grad_(False)


def frame_and_labels() -> tuple[torch.Tensor, torch.Tensor]:
    """Frame 0 of the shapes clip as network input and its mask with ids 1..2."""
    frame = moving_shapes_frames(1)[0]
    image = torch.from_numpy(frame.copy()).permute(2, 0, 1).float() / 255.0
    mask = first_mask()
    labels = torch.from_numpy(np.select([mask == 1, mask == 4], [1, 2], 0).astype(np.int64))
    return image, labels


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(before[k], v) for k, v in module.state_dict().items())


def test_adaptation_lowers_the_loss_and_trains_only_the_coarse_heads(model, one_torch_thread):
    image, labels = frame_and_labels()
    before = {name: snapshot(getattr(model, name)) for name in ("backbone", "upsampler")}
    heads = {m: snapshot(m) for m in adapted_modules(model, "coarse")}
    report = adapt_to_frame(model, image, labels, AdaptConfig(steps=30, **SMALL))
    assert len(report.losses) == 30 and report.seconds > 0
    assert np.mean(report.losses[-5:]) < 0.8 * np.mean(report.losses[:5])
    assert not changed(before["backbone"], model.backbone)
    assert not changed(before["upsampler"], model.upsampler)
    assert all(changed(state, m) for m, state in heads.items())
    assert not any(p.requires_grad for p in model.parameters())


def test_heads_mode_trains_the_upsampler_too(model, one_torch_thread):
    image, labels = frame_and_labels()
    before = snapshot(model.upsampler)
    backbone = snapshot(model.backbone)
    adapt_to_frame(model, image, labels, AdaptConfig(steps=3, train="heads", **SMALL))
    assert changed(before, model.upsampler)
    assert not changed(backbone, model.backbone)


def test_same_seed_same_adaptation(tiny_model_path, one_torch_thread):
    image, labels = frame_and_labels()
    runs = []
    for _ in range(2):
        m, _ = load_model(tiny_model_path)
        m.eval().requires_grad_(False)
        runs.append(adapt_to_frame(m, image, labels, AdaptConfig(steps=4, **SMALL)).losses)
    assert runs[0] == runs[1]


def test_tracker_adapts_once_per_video_and_reset_restores_the_weights(model, one_torch_thread):
    frames = moving_shapes_frames(4)
    callers = snapshot(model)
    tracker = Tracker(model, device="cpu", precision="fp32", adapt=AdaptConfig(steps=5, **SMALL))
    loaded = snapshot(tracker.model)
    tracker.add_mask(0, first_mask())
    first = tracker.step(frames[0])
    np.testing.assert_array_equal(first, first_mask())  # the given mask, ids kept
    report = tracker.adapt_report
    assert report is not None and len(report.losses) == 5
    assert changed(loaded, tracker.model)
    for frame in frames[1:]:
        assert set(np.unique(tracker.step(frame)).tolist()) <= {0, 1, 4}
    assert tracker.adapt_report is report  # not again on later frames
    tracker.reset()
    assert tracker.adapt_report is None
    assert not changed(loaded, tracker.model)
    assert not changed(callers, model)  # the caller's model is never trained


def test_zero_steps_is_the_plain_tracker(model, one_torch_thread):
    frames = moving_shapes_frames(3)
    outputs = []
    for adapt in (None, AdaptConfig(steps=0)):
        tracker = Tracker(model, device="cpu", precision="fp32", adapt=adapt)
        tracker.add_mask(0, first_mask())
        outputs.append([tracker.step(f) for f in frames])
        assert tracker.adapt_report is None
    for a, b in zip(*outputs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_options_are_checked():
    assert adapt_config(0) is None
    assert adapt_config(7) == AdaptConfig(steps=7)
    with pytest.raises(VosError, match="0 or more"):
        adapt_config(-1)
    with pytest.raises(VosError, match="appearance, fusion, coarse, heads"):
        AdaptConfig(train="backbone")
    with pytest.raises(VosError, match="lr > 0"):
        AdaptConfig(lr=0.0)
    with pytest.raises(VosError, match="elastic"):
        AdaptConfig(elastic=-0.1)


def test_cli_segment_with_adaptation(tmp_path: Path, shapes_video, tiny_model_path):
    mask = tmp_path / "first.png"
    write_mask(mask, first_mask())
    out = tmp_path / "masks"
    base = ["segment", str(shapes_video), "--mask", str(mask), "--weights", str(tiny_model_path)]
    result = runner.invoke(app, [*base, "--out", str(out), "--device", "cpu", "--adapt", "3"])
    assert result.exit_code == 0, result.output
    assert "segmented 12 frames, 2 object(s) [1,4]" in result.output
    assert "note: adapting the network to frame 0's mask first (3 steps)" in result.output
    assert "(adaptation " in result.output
    np.testing.assert_array_equal(read_mask(out / "00000.png"), first_mask())
    bad = runner.invoke(app, [*base, "--out", str(tmp_path / "other"), "--adapt", "-2"])
    assert bad.exit_code == 2 and "error:" in bad.output and "0 or more" in bad.output
    refused = runner.invoke(app, ["bench", "speed", "--adapt", "3"])
    assert refused.exit_code == 2 and "--adapt applies to dataset benchmarks" in refused.output
