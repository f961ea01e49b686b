"""`vos bench davis17|davis16`: a tiny generated DAVIS layout segmented and scored end to end."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from vos_cli.bench.davis import run_davis_bench
from vos_cli.bench.metrics.report import SEQUENCE_COLUMNS
from vos_cli.bench.metrics.stats import GLOBAL_COLUMNS
from vos_cli.bench.tracking import TrackerSettings
from vos_cli.cli import app
from vos_cli.errors import VosError
from vos_cli.io.masks import DAVIS_PALETTE

H, W = 64, 96
N_FRAMES = 4

runner = CliRunner()


def objects_at(t: int, n_objects: int) -> np.ndarray:
    """Boxes for objects 1..n drifting right by 2 px per frame, plus a void strip."""
    ids = np.zeros((H, W), np.uint8)
    for k in range(1, n_objects + 1):
        y0, x0 = 6 + 18 * (k - 1), 8 + 2 * t + 10 * (k - 1)
        ids[y0 : y0 + 14, x0 : x0 + 20] = k
    ids[-2:, :] = 255
    return ids


def frame_from(ids: np.ndarray) -> np.ndarray:
    rgb = np.full((H, W, 3), 40, np.uint8)
    for k in range(1, 6):
        rgb[ids == k] = (60 * k % 256, 200, 255 - 40 * k)
    return rgb


def save_palette(path: Path, ids: np.ndarray) -> None:
    img = Image.fromarray(ids.astype(np.uint8), mode="P")
    img.putpalette(DAVIS_PALETTE.tobytes())
    img.save(path)


def make_davis17(root: Path, seqs: dict[str, int], split: str = "val") -> Path:
    """DAVIS 2017 layout: ``seqs`` maps sequence names to object counts."""
    for name, n_obj in seqs.items():
        fdir = root / "JPEGImages" / "480p" / name
        adir = root / "Annotations" / "480p" / name
        fdir.mkdir(parents=True)
        adir.mkdir(parents=True)
        for t in range(N_FRAMES):
            ids = objects_at(t, n_obj)
            Image.fromarray(frame_from(ids)).save(fdir / f"{t:05d}.jpg", quality=95)
            save_palette(adir / f"{t:05d}.png", ids)
    lists = root / "ImageSets" / "2017"
    lists.mkdir(parents=True, exist_ok=True)
    (lists / f"{split}.txt").write_text("\n".join(seqs) + "\n")
    return root


def make_davis16(root: Path, names: list[str]) -> Path:
    """DAVIS 2016 layout: grayscale 0/255 masks (255 is the object), 2016 name list."""
    for name in names:
        fdir = root / "JPEGImages" / "480p" / name
        adir = root / "Annotations" / "480p" / name
        fdir.mkdir(parents=True)
        adir.mkdir(parents=True)
        for t in range(N_FRAMES):
            ids = objects_at(t, 1)
            ids[ids == 255] = 0
            Image.fromarray(frame_from(ids)).save(fdir / f"{t:05d}.jpg", quality=95)
            Image.fromarray((ids * 255).astype(np.uint8), mode="L").save(adir / f"{t:05d}.png")
    lists = root / "ImageSets" / "2016"
    lists.mkdir(parents=True)
    (lists / "val.txt").write_text("\n".join(names) + "\n")
    return root


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="") as fh:
        return list(csv.reader(fh))


def copy_ground_truth(root: Path, results: Path, names: list[str]) -> None:
    """The ground truth as a results folder: a perfect method (void 255 becomes background)."""
    for name in names:
        (results / name).mkdir(parents=True)
        for png in sorted((root / "Annotations" / "480p" / name).glob("*.png")):
            with Image.open(png) as img:
                mode, ids = img.mode, np.array(img)
            if mode == "P":
                ids[ids == 255] = 0
                save_palette(results / name / png.name, ids)
            else:  # DAVIS 2016 0/255 grayscale, kept as it is
                shutil.copy(png, results / name / png.name)


def invoke(*args: str):
    return runner.invoke(app, ["bench", *args])


def error_line(result) -> str:
    return " ".join(result.output.split())


# ----------------------------------------------------------------------------- end to end


def test_cli_davis17_segments_and_scores(tmp_path: Path, tiny_model_path: Path) -> None:
    root = make_davis17(tmp_path / "davis", {"cows": 3, "dogs": 2})
    results = tmp_path / "res"
    r = invoke(
        "davis17",
        "--root",
        str(root),
        "--results",
        str(results),
        "--weights",
        str(tiny_model_path),
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--processes",
        "2",
    )
    assert r.exit_code == 0, r.output
    for name, n_obj in {"cows": 3, "dogs": 2}.items():
        pngs = sorted(p.name for p in (results / name).glob("*.png"))
        assert pngs == [f"{t:05d}.png" for t in range(N_FRAMES)]
        for t in range(N_FRAMES):
            with Image.open(results / name / f"{t:05d}.png") as img:
                assert img.mode == "P"
                ids = np.asarray(img)
            assert set(np.unique(ids).tolist()) <= set(range(n_obj + 1))
        # frame 0 reproduces the given annotation (void becomes background)
        first = np.asarray(Image.open(results / name / "00000.png"))
        expected = objects_at(0, n_obj)
        expected[expected == 255] = 0
        np.testing.assert_array_equal(first, expected)

    g = read_csv(results / "global_results-val.csv")
    assert g[0] == list(GLOBAL_COLUMNS) and len(g) == 2
    per_seq = read_csv(results / "per-sequence_results-val.csv")
    assert per_seq[0] == list(SEQUENCE_COLUMNS)
    assert [row[0] for row in per_seq[1:]] == ["cows_1", "cows_2", "cows_3", "dogs_1", "dogs_2"]
    timing = read_csv(results / "timing-val.csv")
    assert timing[0] == ["sequence", "frames", "model_fps", "total_fps"]
    assert [row[:2] for row in timing[1:]] == [["cows", "4"], ["dogs", "4"]]
    assert all(float(row[2]) > 0 and float(row[3]) > 0 for row in timing[1:])
    out = error_line(r)
    assert "J&F-Mean" in out and "frames/s" in out and "model" in out
    assert "J&F by object size" in out


def test_cli_davis_with_the_flip_ensemble(tmp_path: Path, tiny_model_path: Path) -> None:
    root = make_davis17(tmp_path / "davis", {"cows": 2})
    results = tmp_path / "res"
    args = ["--weights", str(tiny_model_path), "--device", "cpu", "--precision", "fp32"]
    r = invoke("davis17", "--root", str(root), "--results", str(results), "--flip", *args)
    assert r.exit_code == 0, r.output
    assert "J&F-Mean" in r.output
    refused = invoke("davis17", "--root", str(root), "--eval-only", "--flip")
    assert refused.exit_code == 2 and "--flip" in error_line(refused)


def test_refuses_non_empty_results_without_force(tmp_path: Path, tiny_model_path: Path) -> None:
    root = make_davis17(tmp_path / "davis", {"cows": 1})
    results = tmp_path / "res"
    results.mkdir()
    (results / "keep.txt").write_text("mine")
    args = ["davis17", "--root", str(root), "--results", str(results)]
    args += ["--weights", str(tiny_model_path), "--device", "cpu", "--processes", "1"]
    r = invoke(*args)
    assert r.exit_code == 2
    assert "not empty" in error_line(r) and "--force" in error_line(r)
    r = invoke(*args, "--force")
    assert r.exit_code == 0, r.output
    assert (results / "keep.txt").read_text() == "mine"
    assert (results / "global_results-val.csv").is_file()


def test_eval_only_perfect_results_and_other_split(tmp_path: Path) -> None:
    root = make_davis17(tmp_path / "davis", {"cows": 3, "dogs": 2}, split="dev")
    results = tmp_path / "gt-as-results"
    copy_ground_truth(root, results, ["cows", "dogs"])
    report = run_davis_bench(
        root, dataset="davis17", split="dev", results_dir=results, eval_only=True, processes=1
    )
    assert report.timing is None and report.result is not None
    assert report.result.jf_mean == pytest.approx(1.0)
    g = read_csv(results / "global_results-dev.csv")
    assert g[1][0] == "1.000"
    assert not (results / "timing-dev.csv").exists()


def test_default_results_folder_is_under_cwd(
    tmp_path: Path, tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_davis17(tmp_path / "davis", {"cows": 1})
    monkeypatch.chdir(tmp_path)
    report = run_davis_bench(
        root, weights=tiny_model_path, settings=TrackerSettings("cpu"), processes=1
    )
    assert report.results_dir == Path("results/davis17-val")
    assert (tmp_path / "results/davis17-val/cows/00003.png").is_file()
    assert (tmp_path / "results/davis17-val/per-sequence_results-val.csv").is_file()


# ----------------------------------------------------------------------------- DAVIS 2016


def test_davis16_zero_255_masks(tmp_path: Path, tiny_model_path: Path) -> None:
    root = make_davis16(tmp_path / "davis16", ["blackswan", "car"])
    results = tmp_path / "res16"
    report = run_davis_bench(
        root,
        dataset="davis16",
        results_dir=results,
        weights=tiny_model_path,
        settings=TrackerSettings("cpu"),
        processes=1,
    )
    for name in ("blackswan", "car"):
        first = np.asarray(Image.open(results / name / "00000.png"))
        expected = objects_at(0, 1)
        expected[expected == 255] = 0
        np.testing.assert_array_equal(first, expected)  # the 255 object became id 1
        for t in range(N_FRAMES):
            ids = np.asarray(Image.open(results / name / f"{t:05d}.png"))
            assert set(np.unique(ids).tolist()) <= {0, 1}
    assert [o.name for o in report.result.objects] == ["blackswan_1", "car_1"]

    # the ground truth itself (0/255 grayscale) scores perfectly in binary mode
    gt_results = tmp_path / "gt16"
    copy_ground_truth(root, gt_results, ["blackswan", "car"])
    perfect = run_davis_bench(
        root, dataset="davis16", results_dir=gt_results, eval_only=True, processes=1
    )
    assert perfect.result.jf_mean == pytest.approx(1.0)


@pytest.mark.parametrize(
    "dataset, option, expected",
    [
        ("davis17", None, True),
        ("davis16", None, False),
        ("davis17", "--no-aggregate-single", False),
    ],
)
def test_protocol_for_a_lone_object(
    dataset, option, expected, tmp_path: Path, tiny_model_path: Path, aggregate_single_seen
) -> None:
    """DAVIS 2017 aggregates a lone object as the authors do, DAVIS 2016 does not; a flag wins."""
    seen = aggregate_single_seen
    root = (
        make_davis17(tmp_path / "d", {"one": 1})
        if dataset == "davis17"
        else make_davis16(tmp_path / "d", ["one"])
    )
    args = [dataset, "--root", str(root), "--results", str(tmp_path / "r")]
    args += ["--weights", str(tiny_model_path), "--device", "cpu", "--processes", "1"]
    r = invoke(*args, *([option] if option else []))
    assert r.exit_code == 0, r.output
    assert seen == [expected]


# ----------------------------------------------------------------------------- bad input


def test_missing_root_is_a_clean_error(tmp_path: Path) -> None:
    r = invoke("davis17", "--root", str(tmp_path / "nope"), "--eval-only")
    assert r.exit_code == 2
    assert "does not exist" in error_line(r) and "Traceback" not in r.output


def test_missing_split_file(tmp_path: Path) -> None:
    root = make_davis17(tmp_path / "davis", {"cows": 1})
    r = invoke("davis17", "--root", str(root), "--split", "train", "--eval-only")
    assert r.exit_code == 2
    assert "split 'train'" in error_line(r) and "train.txt" in error_line(r)


def test_results_missing_frames_are_named(tmp_path: Path) -> None:
    root = make_davis17(tmp_path / "davis", {"cows": 2, "dogs": 1})
    results = tmp_path / "res"
    copy_ground_truth(root, results, ["cows", "dogs"])
    (results / "dogs" / "00002.png").unlink()
    r = invoke("davis17", "--root", str(root), "--results", str(results), "--eval-only")
    assert r.exit_code == 2
    assert "dogs/00002.png" in error_line(r)


def test_results_missing_sequence_is_named(tmp_path: Path) -> None:
    root = make_davis17(tmp_path / "davis", {"cows": 2, "dogs": 1})
    results = tmp_path / "res"
    copy_ground_truth(root, results, ["cows"])
    r = invoke("davis17", "--root", str(root), "--results", str(results), "--eval-only")
    assert r.exit_code == 2
    assert "dogs" in error_line(r) and "sequence" in error_line(r)


def test_ids_beyond_object_count(tmp_path: Path) -> None:
    root = make_davis17(tmp_path / "davis", {"cows": 2})
    results = tmp_path / "res"
    copy_ground_truth(root, results, ["cows"])
    bad = objects_at(1, 2)
    bad[bad == 255] = 0
    bad[30:34, 60:64] = 5
    save_palette(results / "cows" / "00001.png", bad)
    r = invoke(
        "davis17", "--root", str(root), "--results", str(results), "--eval-only", "--processes", "1"
    )
    assert r.exit_code == 2
    assert "object id 5" in error_line(r) and "2 object(s)" in error_line(r)


def test_unknown_sequence_and_benchmark_and_misplaced_options(tmp_path: Path) -> None:
    root = make_davis17(tmp_path / "davis", {"cows": 1})
    r = invoke("davis17", "--root", str(root), "--sequences", "cows,zebra", "--eval-only")
    assert r.exit_code == 2 and "zebra" in error_line(r)
    r = invoke("davis18", "--root", str(root))
    assert r.exit_code == 2 and "davis18" in error_line(r)
    r = invoke("davis17", "--root", str(root), "--objects", "1,2")  # a speed option
    assert r.exit_code == 2 and "--objects" in error_line(r)
    r = invoke("davis17")
    assert r.exit_code == 2 and "--root" in error_line(r)


def test_withheld_ground_truth_is_segmented_not_scored(
    tmp_path: Path, tiny_model_path: Path
) -> None:
    root = make_davis17(tmp_path / "davis", {"cows": 2}, split="test-dev")
    for t in range(1, N_FRAMES):  # test-dev: only the first frame is annotated
        (root / "Annotations" / "480p" / "cows" / f"{t:05d}.png").unlink()
    results = tmp_path / "res"
    report = run_davis_bench(
        root,
        split="test-dev",
        results_dir=results,
        weights=tiny_model_path,
        settings=TrackerSettings("cpu"),
    )
    assert report.result is None and report.note and "not scored" in report.note
    assert len(list((results / "cows").glob("*.png"))) == N_FRAMES
    assert (results / "timing-test-dev.csv").is_file()
    assert not (results / "global_results-test-dev.csv").exists()


def test_sequence_error_names_the_sequence(tmp_path: Path, tiny_model_path: Path) -> None:
    root = make_davis17(tmp_path / "davis", {"cows": 1})
    save_palette(root / "Annotations" / "480p" / "cows" / "00000.png", np.zeros((H, W), np.uint8))
    with pytest.raises(VosError, match="sequence cows: .*no object"):
        run_davis_bench(
            root,
            results_dir=tmp_path / "r",
            weights=tiny_model_path,
            settings=TrackerSettings("cpu"),
        )


def test_size_groups_split_objects_by_first_mask_area(tmp_path):
    from types import SimpleNamespace

    from vos_cli.bench.object_size import first_mask_fractions, size_groups
    from vos_cli.data.davis import DavisSequence

    # A 10x10 first annotation: object 1 covers 2 pixels (2%), object 2 covers 20 (20%),
    # 5 void pixels are nobody's.
    ids = np.zeros((10, 10), dtype=np.uint8)
    ids[0, :2] = 1
    ids[5:7, :] = 2
    ids[9, :5] = 255
    path = tmp_path / "00000.png"
    Image.fromarray(ids).save(path)
    seq = DavisSequence("s", [path], [path], binary_annotations=False)
    assert first_mask_fractions(seq) == {1: 0.02, 2: 0.2}

    def scored(object_id, j, f):
        return SimpleNamespace(sequence="s", object_id=object_id, j_mean=j, f_mean=f)

    objects = [scored(1, 0.2, 0.4), scored(2, 0.8, 0.6), scored(3, 0.5, 0.5)]  # 3 enters later
    small, large = size_groups(objects, [seq])
    assert (small.name, small.objects, large.name, large.objects) == ("small", 2, "large", 1)
    assert small.j_mean == pytest.approx(0.35) and small.f_mean == pytest.approx(0.45)
    assert large.jf_mean == pytest.approx(0.7)
