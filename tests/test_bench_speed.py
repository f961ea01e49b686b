"""`vos bench speed`: generated and given clips, per object count, JSON output, bad options."""

from __future__ import annotations

import json
import mmap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from vos_cli.bench.clip import generate_clip
from vos_cli.bench.rss import RssSampler
from vos_cli.bench.speed import parse_objects, run_speed_bench, speed_table
from vos_cli.cli import app
from vos_cli.errors import VosError

runner = CliRunner()


def test_generated_clip_is_deterministic_with_every_object_visible() -> None:
    frames, mask = generate_clip(3, 48, 64, 5)
    again, mask2 = generate_clip(3, 48, 64, 5)
    assert all(np.array_equal(a, b) for a, b in zip(frames, again, strict=True))
    np.testing.assert_array_equal(mask, mask2)
    assert frames[0].shape == (48, 64, 3) and frames[0].dtype == np.uint8
    assert set(np.unique(mask).tolist()) == {0, 1, 2, 3, 4, 5}
    assert not np.array_equal(frames[0], frames[2])  # things move


def test_speed_on_generated_clip(tmp_path: Path, tiny_model_path: Path) -> None:
    report = run_speed_bench(
        frames=4,
        height=48,
        width=64,
        objects=[1, 2],
        weights=tiny_model_path,
        device="cpu",
        precision="fp32",
        warmup=1,
    )
    assert [r.objects for r in report.rows] == [1, 2]
    for row in report.rows:
        assert row.frames == 4
        assert row.model_fps > 0 and row.e2e_fps > 0
        assert row.peak_rss_mb is not None and row.peak_rss_mb > 0
        assert row.rss_increase_mb is not None and row.rss_increase_mb >= 0
        assert row.cuda_peak_mb is None
    assert report.max_rss_mb and report.max_rss_mb >= report.rows[0].peak_rss_mb - 1
    assert (report.height, report.width) == (48, 64) and report.source == "generated clip"
    data = report.to_dict()
    assert data["rows"][0]["model_fps"] == pytest.approx(report.rows[0].model_fps)
    assert speed_table(report).row_count == 2


def test_speed_with_the_flip_ensemble_and_the_models_own_size(
    tmp_path: Path, tiny_model_path: Path
) -> None:
    from vos_cli.model.factory import load_model, save_weights

    model, _ = load_model(tiny_model_path)
    model.config.inference_size = 32  # as the shipped model's 240: used when --size is not given
    path = tmp_path / "small.pt"
    save_weights(model, path, include_backbone=True)
    report = run_speed_bench(
        frames=2, height=48, width=64, objects=[1], weights=path, device="cpu", warmup=0, flip=True
    )
    assert report.flip and report.rows[0].frames == 2
    assert (report.work_height, report.work_width) == (32, 43)
    assert "flip ensemble" in speed_table(report).caption
    assert "network at 43x32" in speed_table(report).caption


def test_speed_on_a_frame_folder_via_cli(tmp_path: Path, tiny_model_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        rgb = np.full((40, 56, 3), 20 * i, np.uint8)
        Image.fromarray(rgb).save(folder / f"{i:05d}.jpg")
    out = tmp_path / "speed.json"
    args = ["bench", "speed", "--source", str(folder), "--frames", "10", "--objects", "1"]
    args += ["--weights", str(tiny_model_path), "--device", "cpu", "--warmup", "0"]
    args += ["--json", str(out)]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    data = json.loads(out.read_text())
    assert data["source"] == "frame folder frames"
    assert [row["frames"] for row in data["rows"]] == [3]  # capped at the clip's length
    assert "End-to-end" in r.output


def test_bad_speed_options() -> None:
    assert parse_objects("1, 3,5,3") == [1, 3, 5]
    for text in ("", "a", "0", "300"):
        with pytest.raises(VosError, match="--objects"):
            parse_objects(text)
    with pytest.raises(VosError, match="--size"):
        run_speed_bench(source=Path("x.mp4"), height=100)
    with pytest.raises(VosError, match="--frames"):
        run_speed_bench(frames=0)
    r = runner.invoke(app, ["bench", "speed", "--root", "x"])
    assert r.exit_code == 2 and "--root" in r.output
    r = runner.invoke(app, ["bench", "speed", "--backbone", "vgg"])
    assert r.exit_code == 2 and "vgg" in r.output


def test_rss_sampler_sees_an_allocation() -> None:
    with RssSampler(interval_s=0.001) as rss:
        # fresh pages from the OS (a malloc'd block may reuse heap memory already resident)
        block = mmap.mmap(-1, 64 * 1024 * 1024)
        np.frombuffer(block, dtype=np.uint8)[:] = 1  # touch every page
        seen, deadline = rss.samples, time.monotonic() + 5
        while rss.samples < seen + 3 and time.monotonic() < deadline:
            time.sleep(0.01)  # keep the block alive until the sampler has looked
        block.close()
    if rss.start_mb is None:
        pytest.skip("no /proc/self/status here")
    assert rss.increase_mb is not None and rss.increase_mb > 30, (rss.start_mb, rss.peak_mb)


@pytest.mark.parametrize("name", ["lite1", "lite2"])
def test_speed_model_for_a_named_lite_backbone(name: str) -> None:
    """--backbone lite1/lite2 times that backbone (it once fell through to the ResNet-101 config)."""
    from vos_cli.bench.speed import _load_speed_model

    model, label = _load_speed_model(None, name)
    assert label is None
    assert model.config.backbone == name and model.config.appearance_dim == 128
