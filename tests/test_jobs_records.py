"""Completion records: a job counts as complete only with its inputs, options and outputs as
recorded, not because its outputs exist."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import first_mask
from vos_cli.io.masks import write_mask
from vos_cli.jobs.manifest import Job, JobDefaults, load_manifest
from vos_cli.jobs.records import (
    done_record,
    fingerprint,
    identity,
    is_complete,
    owned_outputs,
    read_record,
    record_path,
    started_record,
    write_record,
)
from vos_cli.segment import SegmentSummary


def _job(folder: Path, defaults: JobDefaults | None = None) -> Job:
    (folder / "jobs.csv").write_text("source,mask,out,overlay\nclip.mp4,first.png,masks,o.mp4\n")
    return load_manifest(folder / "jobs.csv", defaults or JobDefaults())[0]


@pytest.fixture()
def finished(tmp_path: Path) -> tuple[Job, dict, Path]:
    """A job whose outputs (3 masks, an overlay) are on disk with a done record."""
    (tmp_path / "clip.mp4").write_bytes(b"video bytes")
    write_mask(tmp_path / "first.png", first_mask())
    (tmp_path / "w.pt").write_bytes(b"weights")
    job = _job(tmp_path)
    (tmp_path / "masks").mkdir()
    for i in range(3):
        write_mask(tmp_path / f"masks/{i:05d}.png", first_mask())
    (tmp_path / "o.mp4").write_bytes(b"overlay")
    fp = fingerprint(job, tmp_path / "w.pt")
    summary = SegmentSummary(frames=3, objects=[1, 4], seconds=1.5, out_dir=None, overlay=None)
    write_record(record_path(job), done_record(job, fp, summary, rank=0))
    return job, fp, tmp_path


def _complete(job: Job, folder: Path) -> bool:
    return is_complete(read_record(record_path(job)), fingerprint(job, folder / "w.pt"))


def test_the_record_sits_beside_the_first_output_and_is_written_whole(finished):
    job, fp, folder = finished
    assert record_path(job) == folder / ".masks.vos-job.json"
    record = read_record(record_path(job))
    assert record["status"] == "done" and record["frames"] == 3 and record["rank"] == 0
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert _complete(job, folder)
    assert owned_outputs(record) == {str(folder / "masks"), str(folder / "o.mp4")}


@pytest.mark.parametrize(
    "change", ["mask touched", "weights changed", "frame lost", "overlay cut", "record broken"]
)
def test_any_change_makes_the_job_incomplete(finished, change: str):
    job, fp, folder = finished
    if change == "mask touched":
        st = (folder / "first.png").stat()
        os.utime(folder / "first.png", ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    elif change == "weights changed":
        (folder / "w.pt").write_bytes(b"other weights")
    elif change == "frame lost":
        (folder / "masks/00001.png").unlink()
    elif change == "overlay cut":
        (folder / "o.mp4").write_bytes(b"over")
    elif change == "record broken":
        record_path(job).write_text('{"version": 1, "status": "do')
    assert not _complete(job, folder)


def test_other_options_or_a_started_record_are_not_complete(finished):
    job, fp, folder = finished
    other = _job(folder, JobDefaults(size=360))
    assert not is_complete(read_record(record_path(job)), fingerprint(other, folder / "w.pt"))
    write_record(record_path(job), started_record(fp, rank=1))
    started = read_record(record_path(job))
    assert started["status"] == "started" and started["pid"] == os.getpid()
    assert not _complete(job, folder)
    assert owned_outputs(started) == {str(folder / "masks"), str(folder / "o.mp4")}


def test_a_frame_folder_is_known_by_its_frames(tmp_path: Path):
    (tmp_path / "00000.jpg").write_bytes(b"a")
    before = identity(tmp_path)
    (tmp_path / ".hidden").write_bytes(b"ignored")
    assert identity(tmp_path) == before
    (tmp_path / "00001.jpg").write_bytes(b"b")
    assert identity(tmp_path)["files"] == 2 and identity(tmp_path) != before
    assert identity(tmp_path / "gone.mp4") == {"path": str(tmp_path / "gone.mp4"), "missing": True}
