"""`vos segment --jobs` in one process: masks as single runs give, the report, reruns that skip
what is complete, failures that do not stop the others, and bad input refused before any work."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import first_mask, moving_shapes_frames, write_video
from vos_cli.cli import app
from vos_cli.io.masks import read_mask, write_mask
from vos_cli.jobs.report import read_report

runner = CliRunner()
LENGTHS = (6, 9, 5)


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture()
def batch(tmp_path: Path) -> Path:
    """Three short clips, their mask, and jobs.csv naming them with relative paths."""
    for i, count in enumerate(LENGTHS):
        write_video(tmp_path / f"clip{i}.mp4", moving_shapes_frames(count))
    write_mask(tmp_path / "first.png", first_mask())
    (tmp_path / "jobs.csv").write_text(
        "source,mask,out,overlay\n"
        "clip0.mp4,first.png,,\n"
        "clip1.mp4,first.png,masks/one,masks/one.mp4\n"
        "clip2.mp4,first.png,masks/two,\n"
    )
    return tmp_path / "jobs.csv"


def jobs(csv: Path, weights: Path, *extra: object):
    return run("segment", "--jobs", csv, "--weights", weights, "--device", "cpu", *extra)


def _out_dirs(folder: Path) -> list[Path]:
    return [folder / "clip0_masks", folder / "masks/one", folder / "masks/two"]


def _masks(folder: Path) -> list[np.ndarray]:
    return [read_mask(p) for p in sorted(folder.glob("*.png"))]


def _statuses(report: Path) -> list[str]:
    return [row["status"] for row in read_report(report)]


def test_jobs_give_the_masks_of_single_runs_and_a_report(batch: Path, tiny_model_path: Path):
    folder = batch.parent
    result = jobs(batch, tiny_model_path)
    assert result.exit_code == 0, result.output
    assert "3 jobs: 3 done; 20 frames segmented" in result.output
    for i, out in enumerate(_out_dirs(folder)):
        single = folder / f"single{i}"
        alone = run(
            "segment", folder / f"clip{i}.mp4", "--mask", folder / "first.png", "--out", single,
            "--weights", tiny_model_path, "--device", "cpu",
        )  # fmt: skip
        assert alone.exit_code == 0, alone.output
        ours, theirs = _masks(out), _masks(single)
        assert len(ours) == LENGTHS[i] == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            np.testing.assert_array_equal(a, b)
    assert (folder / "masks/one.mp4").stat().st_size > 0
    rows = read_report(folder / "jobs-report.csv")
    assert [(r["line"], r["status"], r["frames"]) for r in rows] == [
        ("2", "done", "6"),
        ("3", "done", "9"),
        ("4", "done", "5"),
    ]
    assert all(float(r["fps"]) > 0 and r["error"] == "" for r in rows)


def test_a_rerun_skips_complete_jobs_and_redoes_the_rest(batch: Path, tiny_model_path: Path):
    folder = batch.parent
    assert jobs(batch, tiny_model_path).exit_code == 0
    kept = {p: p.stat().st_mtime_ns for p in (folder / "clip0_masks").iterdir()}
    st = (folder / "clip1.mp4").stat()
    os.utime(folder / "clip1.mp4", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # input changed
    (folder / "masks/two/00003.png").unlink()  # an output no longer complete
    result = jobs(batch, tiny_model_path)  # no --force: these outputs are this tool's own
    assert result.exit_code == 0, result.output
    assert _statuses(folder / "jobs-report.csv") == ["skipped", "done", "done"]
    assert {p: p.stat().st_mtime_ns for p in (folder / "clip0_masks").iterdir()} == kept
    assert len(_masks(folder / "masks/two")) == 5
    again = jobs(batch, tiny_model_path)
    assert again.exit_code == 0 and "3 skipped (done earlier)" in again.output
    assert _statuses(folder / "jobs-report.csv") == ["skipped"] * 3


def test_a_failing_job_is_reported_and_the_others_go_on(batch: Path, tiny_model_path: Path):
    folder = batch.parent
    (folder / "clip1.mp4").write_text("not a video\n")
    result = jobs(batch, tiny_model_path)
    assert result.exit_code == 1, result.output
    rows = read_report(folder / "jobs-report.csv")
    assert [r["status"] for r in rows] == ["done", "failed", "done"]
    assert rows[1]["error"] and "\n" not in rows[1]["error"] and rows[1]["frames"] == "0"
    assert "failed line 3 clip1.mp4" in result.output
    write_video(folder / "clip1.mp4", moving_shapes_frames(LENGTHS[1]))
    result = jobs(batch, tiny_model_path)  # the failed job's outputs are ours: no --force
    assert result.exit_code == 0, result.output
    assert _statuses(folder / "jobs-report.csv") == ["skipped", "done", "skipped"]


def test_an_interrupted_job_is_done_again_by_the_rerun(
    batch: Path, tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Ctrl-C in the second job: its outputs are closed part-way, the third never starts; the
    rerun skips the first, overwrites the second's partial outputs and does the third."""
    import vos_cli.jobs.runner as runner_module

    folder = batch.parent
    real = runner_module.segment_video

    def stopped_at_frame_3(request, notify, progress):
        def progress_then_stop(done: int, total: int | None) -> None:
            progress(done, total)
            if request.source.name == "clip1.mp4" and done == 3:
                raise KeyboardInterrupt

        return real(request, notify, progress_then_stop)

    monkeypatch.setattr(runner_module, "segment_video", stopped_at_frame_3)
    result = jobs(batch, tiny_model_path)
    assert result.exit_code == 130, result.output
    rows = read_report(folder / "jobs-report.csv")
    assert [(r["status"], r["frames"]) for r in rows] == [
        ("done", "6"),
        ("interrupted", "3"),
        ("not run", "0"),
    ]
    assert len(_masks(folder / "masks/one")) == 3
    monkeypatch.setattr(runner_module, "segment_video", real)
    result = jobs(batch, tiny_model_path)
    assert result.exit_code == 0, result.output
    assert _statuses(folder / "jobs-report.csv") == ["skipped", "done", "done"]
    assert len(_masks(folder / "masks/one")) == LENGTHS[1]


def test_bad_jobs_are_all_listed_exit_2_and_nothing_is_written(batch: Path, tiny_model_path):
    folder = batch.parent
    batch.write_text("source,mask,box\nclip0.mp4,first.png,1\n")
    result = jobs(batch, tiny_model_path)
    assert result.exit_code == 2, result.output
    assert "unknown column 'box'" in result.output
    batch.write_text("source,mask,out\nnope.mp4,first.png,a\nclip1.mp4,none.png,a\n")
    before = sorted(p.name for p in folder.iterdir())
    result = jobs(batch, tiny_model_path)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert all(line.startswith("error:") for line in lines), result.output
    assert "jobs.csv:2: source not found" in result.output
    assert "jobs.csv:3: Mask not found" in result.output
    assert "jobs.csv:3: out" in result.output and "is also line 2's out" in result.output
    assert lines[-1] == "error: 3 problems in the jobs file; nothing was run"
    assert sorted(p.name for p in folder.iterdir()) == before


def test_outputs_that_are_not_ours_need_force(batch: Path, tiny_model_path: Path):
    folder = batch.parent
    (folder / "masks/two").mkdir(parents=True)
    (folder / "masks/two/mine.txt").write_text("user data")
    result = jobs(batch, tiny_model_path)
    assert result.exit_code == 2, result.output
    assert "jobs.csv:4: out" in result.output and "--force" in result.output
    assert not (folder / "jobs-report.csv").exists() and not (folder / "clip0_masks").exists()
    result = jobs(batch, tiny_model_path, "--force")
    assert result.exit_code == 0, result.output
    assert (folder / "masks/two/mine.txt").read_text() == "user data"


def test_a_report_path_holding_other_data_is_refused(batch: Path, tiny_model_path: Path):
    mine = batch.parent / "mine.csv"
    mine.write_text("a,b\n1,2\n")
    result = jobs(batch, tiny_model_path, "--report", mine)
    assert result.exit_code == 2 and "is not a report of vos" in result.output
    assert mine.read_text() == "a,b\n1,2\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["segment", "clip.mp4", "--jobs", "jobs.csv"], "SOURCE goes in the jobs file's source"),
        (["segment", "--jobs", "jobs.csv", "--mask", "m.png"], "--mask goes in the jobs file"),
        (["segment", "clip.mp4", "--mask", "m.png", "--report", "r.csv"], "--report goes with"),
        (["segment"], "give a video"),
        (["segment", "--jobs", "missing.csv"], "jobs file not found"),
    ],
)
def test_options_that_do_not_go_together(args: list[str], message: str):
    result = run(*args)
    assert result.exit_code == 2
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines


def test_bad_weights_are_listed_with_the_other_problems(batch: Path, tmp_path: Path):
    (batch.parent / "masks/two").mkdir(parents=True)
    (batch.parent / "masks/two/mine.txt").write_text("user data")
    result = jobs(batch, tmp_path / "missing.pt")
    assert result.exit_code == 2, result.output
    assert "weights file not found" in result.output and "jobs.csv:4: out" in result.output
    assert "2 problems" in result.output
