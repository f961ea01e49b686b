"""`vos segment --jobs` as real processes: two torchrun ranks (the store on 127.0.0.1) give
the masks of single runs; a rank killed mid-job, or the whole run killed, leaves to the rerun
exactly the jobs that were not finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import first_mask, moving_shapes_frames, start_in_own_session, write_video
from vos_cli.io.masks import read_mask, write_mask
from vos_cli.jobs.report import read_report
from vos_cli.segment import SegmentRequest, segment_video

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.name != "posix", reason="signals")]

SHORT = (8, 4, 6, 5)
LONG = 150  # frames: seconds of work, so that a kill lands mid-job
SETTINGS = ["--device", "cpu", "--precision", "fp32", "--threads", "1"]


def _jobs_argv(csv: Path, weights: Path, processes: int) -> list[str]:
    vos = ["-m", "vos_cli", "segment", "--jobs", str(csv), "--weights", str(weights), *SETTINGS]
    if processes == 1:
        return vos
    return ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", *vos]


def _finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the run hung:\n{out}\n{err}")
    return proc.returncode, out + err


def _run(csv: Path, weights: Path, processes: int) -> tuple[int, str]:
    return _finish(start_in_own_session(_jobs_argv(csv, weights, processes)))


def _single(video: Path, mask: Path, out: Path, weights: Path) -> list[np.ndarray]:
    """The masks of one `vos segment` run, in this process (one thread, as the ranks)."""
    request = SegmentRequest(
        source=video, masks=[(0, mask)], out_dir=out, weights=weights, device="cpu",
        precision="fp32",
    )  # fmt: skip
    segment_video(request)
    return _masks(out)


def _masks(folder: Path) -> list[np.ndarray]:
    return [read_mask(p) for p in sorted(folder.glob("*.png"))]


def _assert_same(ours: list[np.ndarray], reference: list[np.ndarray]) -> None:
    assert len(ours) == len(reference)
    for a, b in zip(ours, reference, strict=True):
        np.testing.assert_array_equal(a, b)


def test_two_ranks_give_the_masks_of_single_runs(tmp_path: Path, tiny_model_path: Path):
    write_mask(tmp_path / "first.png", first_mask())
    rows = ["source,mask,out"]
    for i, count in enumerate(SHORT):
        write_video(tmp_path / f"clip{i}.mp4", moving_shapes_frames(count))
        rows.append(f"clip{i}.mp4,first.png,ranks/{i}")
    (tmp_path / "jobs.csv").write_text("\n".join(rows) + "\n")
    code, output = _run(tmp_path / "jobs.csv", tiny_model_path, processes=2)
    assert code == 0, output
    report = read_report(tmp_path / "jobs-report.csv")
    assert [r["status"] for r in report] == ["done"] * 4
    assert {r["rank"] for r in report} <= {"0", "1"}
    for i in range(len(SHORT)):
        video, mask = tmp_path / f"clip{i}.mp4", tmp_path / "first.png"
        reference = _single(video, mask, tmp_path / f"single/{i}", tiny_model_path)
        _assert_same(_masks(tmp_path / f"ranks/{i}"), reference)


@pytest.fixture(scope="module")
def long_batch(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path):
    """Short and long clips alternating, and the masks single runs give for each clip."""
    folder = tmp_path_factory.mktemp("long")
    write_mask(folder / "first.png", first_mask())
    write_video(folder / "short.mp4", moving_shapes_frames(SHORT[0]))
    write_video(folder / "long.mp4", moving_shapes_frames(LONG))
    references = {
        name: _single(folder / f"{name}.mp4", folder / "first.png", folder / name, tiny_model_path)
        for name in ("short", "long")
    }
    return folder, references


def _write_jobs(folder: Path) -> tuple[Path, list[str]]:
    """jobs.csv in a fresh folder: short, long, short, long (outputs out/0 ... out/3)."""
    folder.mkdir()
    clips = ["short", "long", "short", "long"]
    rows = ["source,mask,out"]
    rows += [f"../{clip}.mp4,../first.png,out/{i}" for i, clip in enumerate(clips)]
    (folder / "jobs.csv").write_text("\n".join(rows) + "\n")
    return folder / "jobs.csv", clips


def _record(folder: Path, i: int) -> dict | None:
    try:
        return json.loads((folder / f"out/.{i}.vos-job.json").read_text())
    except (OSError, ValueError):
        return None


def _wait_for(condition: Callable[[], object], proc: subprocess.Popen, what: str) -> object:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {what}:\n{''.join(proc.communicate())}")
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail(f"timed out waiting for {what}")


def _long_job_under_way(folder: Path, clips: list[str]) -> Callable[[], tuple[int, dict] | None]:
    """A long job started, with masks on disk, while another job is already done."""

    def check() -> tuple[int, dict] | None:
        records = {i: _record(folder, i) for i in range(len(clips))}
        if not any(r and r["status"] == "done" for r in records.values()):
            return None
        for i, record in records.items():
            started = clips[i] == "long" and record and record["status"] == "started"
            if started and any((folder / f"out/{i}").glob("*.png")):
                return i, record
        return None

    return check


def _rerun_finishes_what_was_left(folder: Path, csv: Path, weights: Path, processes: int, refs):
    clips = ["short", "long", "short", "long"]
    done_before = {i for i in range(4) if (_record(folder, i) or {}).get("status") == "done"}
    assert done_before and len(done_before) < 4
    code, output = _run(csv, weights, processes)
    assert code == 0, output
    statuses = [r["status"] for r in read_report(folder / "jobs-report.csv")]
    assert statuses == ["skipped" if i in done_before else "done" for i in range(4)], output
    for i, clip in enumerate(clips):
        _assert_same(_masks(folder / f"out/{i}"), refs[clip])


def test_a_killed_rank_leaves_its_job_to_the_rerun(long_batch, tiny_model_path: Path):
    base, refs = long_batch
    folder = base / "rank-killed"
    csv, clips = _write_jobs(folder)
    proc = start_in_own_session(_jobs_argv(csv, tiny_model_path, processes=2))
    index, record = _wait_for(_long_job_under_way(folder, clips), proc, "a long job under way")
    os.kill(record["pid"], signal.SIGKILL)  # one rank dies; torchrun stops the other
    code, output = _finish(proc)
    assert code != 0, output
    assert _record(folder, index)["status"] == "started"
    assert 0 < len(_masks(folder / f"out/{index}")) < LONG  # partial outputs, of this tool
    _rerun_finishes_what_was_left(folder, csv, tiny_model_path, 2, refs)


def test_a_killed_run_started_again_finishes_only_what_was_left(long_batch, tiny_model_path):
    base, refs = long_batch
    folder = base / "run-killed"
    csv, clips = _write_jobs(folder)
    proc = start_in_own_session(_jobs_argv(csv, tiny_model_path, processes=1))
    index, _ = _wait_for(_long_job_under_way(folder, clips), proc, "a long job under way")
    assert index == 1  # one process runs the jobs in order
    os.killpg(proc.pid, signal.SIGKILL)  # the whole run, no chance to tidy up
    _finish(proc)
    assert not (folder / "jobs-report.csv").exists()
    assert _record(folder, 0)["status"] == "done" and _record(folder, 2) is None
    _rerun_finishes_what_was_left(folder, csv, tiny_model_path, 1, refs)
