"""`vos bench ytvos`: a tiny valid-split layout with an object that appears at frame 2."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from vos_cli.bench.tracking import TrackerSettings
from vos_cli.bench.ytvos import load_ytvos_eval, run_ytvos
from vos_cli.cli import app
from vos_cli.errors import VosError
from vos_cli.io.masks import DAVIS_PALETTE

H, W = 64, 96
STEMS = ["00000", "00005", "00010", "00015", "00020"]

runner = CliRunner()


def labels_at(t: int, with_late: bool) -> np.ndarray:
    ids = np.zeros((H, W), np.uint8)
    ids[8:30, 6 + 2 * t : 30 + 2 * t] = 1
    if with_late:
        ids[36:60, 50:80] = 2
    return ids


def save_palette(path: Path, ids: np.ndarray) -> None:
    img = Image.fromarray(ids, mode="P")
    img.putpalette(DAVIS_PALETTE.tobytes())
    img.save(path)


def make_ytvos(root: Path, extra_frames: bool = False) -> Path:
    """Video ``late``: object 1 from 00000, object 2 from 00010 (frame 2). Video ``solo``: one
    object. ``extra_frames`` adds JPEGs meta.json does not list (an all-frames package)."""
    base = root / "valid"
    meta: dict = {"videos": {}}
    for video, late in (("late", True), ("solo", False)):
        fdir, adir = base / "JPEGImages" / video, base / "Annotations" / video
        fdir.mkdir(parents=True)
        adir.mkdir(parents=True)
        stems = list(STEMS)
        if extra_frames:
            stems += ["00001", "00002"]
        for stem in stems:
            t = int(stem)
            rgb = np.full((H, W, 3), 30, np.uint8)
            rgb[labels_at(t // 5, late and t >= 10) == 1] = (220, 40, 40)
            rgb[labels_at(t // 5, late and t >= 10) == 2] = (40, 220, 40)
            Image.fromarray(rgb).save(fdir / f"{stem}.jpg", quality=95)
        save_palette(adir / "00000.png", labels_at(0, False))
        objects = {"1": {"category": "cat", "frames": STEMS}}
        if late:
            # the first-appearance mask also shows object 1: only object 2 is to be given there
            save_palette(adir / "00010.png", labels_at(2, True))
            objects["2"] = {"category": "dog", "frames": STEMS[2:]}
        meta["videos"][video] = {"objects": objects}
    (base / "meta.json").write_text(json.dumps(meta))
    return root


def test_loader_finds_late_objects(tmp_path: Path) -> None:
    videos = {v.name: v for v in load_ytvos_eval(make_ytvos(tmp_path / "yt"))}
    late = videos["late"]
    assert late.starts == {0: [1], 2: [2]}
    assert late.output_frames == [0, 1, 2, 3, 4]
    masks, warnings = late.first_masks()
    assert sorted(masks) == [0, 2] and not warnings
    assert set(np.unique(masks[2]).tolist()) == {0, 2}  # restricted to the new object
    assert set(np.unique(masks[0]).tolist()) == {0, 1}


def test_run_writes_submission(tmp_path: Path, tiny_model_path: Path) -> None:
    root = make_ytvos(tmp_path / "yt", extra_frames=True)
    results = tmp_path / "sub"
    report = run_ytvos(
        root, results_dir=results, weights=tiny_model_path, settings=TrackerSettings("cpu", "fp32")
    )
    for video in ("late", "solo"):
        written = sorted(p.stem for p in (results / "Annotations" / video).glob("*.png"))
        assert written == STEMS  # meta.json's frames, not the extra JPEGs
    ids = {s: np.asarray(Image.open(results / "Annotations/late" / f"{s}.png")) for s in STEMS}
    assert 2 not in ids["00000"] and 2 not in ids["00005"]  # before object 2 appears
    np.testing.assert_array_equal(ids["00010"][36:60, 50:80], 2)  # given there
    assert 1 in ids["00000"]
    for s in STEMS:
        assert set(
            np.unique(np.asarray(Image.open(results / "Annotations/solo" / f"{s}.png")))
        ) <= {0, 1}

    with zipfile.ZipFile(results / "submission.zip") as zf:
        names = sorted(zf.namelist())
    assert names == sorted(f"Annotations/{v}/{s}.png" for v in ("late", "solo") for s in STEMS)
    assert report.submission == results / "submission.zip"
    assert [t.sequence for t in report.timing.sequences] == ["late", "solo"]
    assert report.timing.sequences[0].frames == 7  # every JPEG is tracked
    assert (results / "timing-valid.csv").is_file()

    everything = run_ytvos(
        root,
        results_dir=tmp_path / "all",
        videos=["late"],
        all_frames=True,
        weights=tiny_model_path,
        settings=TrackerSettings("cpu"),
    )
    assert everything.videos == ["late"]
    assert len(list((tmp_path / "all/Annotations/late").glob("*.png"))) == 7
    # object 2, given at a later frame, is started there
    late = np.asarray(Image.open(tmp_path / "all/Annotations/late/00010.png"))
    np.testing.assert_array_equal(late[36:60, 50:80], 2)


def test_cli_ytvos(tmp_path: Path, tiny_model_path: Path) -> None:
    root = make_ytvos(tmp_path / "yt")
    results = tmp_path / "out"
    args = ["bench", "ytvos", "--root", str(root), "--results", str(results)]
    args += ["--weights", str(tiny_model_path), "--device", "cpu", "--sequences", "solo"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "submission.zip" in r.output and "frames/s" in r.output
    assert sorted(p.name for p in (results / "Annotations").iterdir()) == ["solo"]

    r = runner.invoke(app, ["bench", "ytvos", "--root", str(root), "--eval-only"])
    assert r.exit_code == 2 and "--eval-only" in r.output  # nothing to score: withheld


def test_errors_name_the_file(tmp_path: Path) -> None:
    root = make_ytvos(tmp_path / "yt")
    (root / "valid/Annotations/late/00010.png").unlink()
    with pytest.raises(VosError, match="object 2 .*00010.png"):
        load_ytvos_eval(root)
    (root / "valid/meta.json").unlink()
    with pytest.raises(VosError, match="meta.json is missing"):
        load_ytvos_eval(root)
    with pytest.raises(VosError, match="test"):
        load_ytvos_eval(root, split="test")
    root2 = make_ytvos(tmp_path / "yt2")
    (root2 / "valid/JPEGImages/solo/00015.jpg").unlink()
    with pytest.raises(VosError, match="00015"):
        load_ytvos_eval(root2)
    with pytest.raises(VosError, match="nope"):
        load_ytvos_eval(root2, videos=["late", "nope"])


@pytest.mark.parametrize("option, expected", [(None, True), ("--no-aggregate-single", False)])
def test_ytvos_aggregates_a_lone_object_by_default(
    option, expected, tmp_path: Path, tiny_model_path: Path, aggregate_single_seen
) -> None:
    """The authors' YouTube-VOS protocol passes a lone object through the aggregation."""
    seen = aggregate_single_seen
    root = make_ytvos(tmp_path / "yt")
    args = ["bench", "ytvos", "--root", str(root), "--results", str(tmp_path / "out")]
    args += ["--weights", str(tiny_model_path), "--device", "cpu", "--sequences", "solo"]
    r = runner.invoke(app, args + ([option] if option else []))
    assert r.exit_code == 0, r.output
    assert seen == [expected]
