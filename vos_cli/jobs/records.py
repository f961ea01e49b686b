"""Completion records: how a rerun knows which jobs an earlier run finished.

An output merely existing proves nothing: a run killed mid-way leaves a mask folder with half
the frames. So each job keeps a small JSON file beside its first output,
``.<output name>.vos-job.json``, replaced atomically (temp file, fsync, rename):

* ``started`` before the work: the outputs named there are this tool's, so a rerun may
  overwrite them without ``--force`` (a user's files never are);
* ``done`` only after :func:`~vos_cli.segment.segment_video` returned with every output
  closed, with the frame count and the size of each output file.

A job is complete when its record says ``done``, the inputs' identity (size and modification
time of the video, masks and weights; for a frame folder, of every frame) and the options that
change the masks are those of the job now, and every output is still there (each file at its
recorded size, each folder with its ``00000.png`` ... frames).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from vos_cli.io.atomic import temp_beside
from vos_cli.io.masks import mask_filename
from vos_cli.jobs.manifest import Job
from vos_cli.segment import SegmentSummary

RECORD_VERSION = 1
RECORD_SUFFIX = ".vos-job.json"


def record_path(job: Job) -> Path:
    """``.<name>.vos-job.json`` beside the job's first output (outputs are unique per job)."""
    first = job.outputs[0]
    return first.parent / f".{first.name}{RECORD_SUFFIX}"


def identity(path: Path) -> dict[str, Any]:
    """Size and modification time of a file; for a folder, a digest of its visible files'."""
    try:
        if path.is_dir():
            digest = hashlib.sha256()
            count = 0
            for entry in sorted(os.scandir(path), key=lambda e: e.name):
                if entry.name.startswith(".") or not entry.is_file():
                    continue
                st = entry.stat()
                digest.update(f"{entry.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
                count += 1
            return {"path": str(path), "files": count, "digest": digest.hexdigest()}
        st = path.stat()
    except OSError:
        return {"path": str(path), "missing": True}
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def fingerprint(job: Job, weights: Path) -> dict[str, Any]:
    """What makes a job's outputs what they are: inputs, options that change them, outputs."""
    r = job.request
    data = {
        "inputs": {
            "source": identity(r.source),
            "masks": [[frame, identity(path)] for frame, path in r.masks],
            "weights": identity(weights),
        },
        "options": {
            "size": r.size,
            "objects": r.objects,
            "feather": r.feather,
            "flip": r.flip,
            "precision": r.precision,
        },
        "outputs": {column: str(path) for column, path in job.output_columns.items()},
    }
    return json.loads(json.dumps(data))  # as it reads back from a file (lists, not tuples)


def read_record(path: Path) -> dict[str, Any] | None:
    """The record at ``path``; None when there is none or it cannot be read as one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
        return None
    return data


def write_record(path: Path, data: dict[str, Any]) -> None:
    """Replace the record atomically: a reader sees the old one or the new one, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_beside(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _stamp(rank: int) -> dict[str, Any]:
    return {
        "rank": rank,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def started_record(fp: dict[str, Any], rank: int) -> dict[str, Any]:
    return {"version": RECORD_VERSION, "status": "started", **fp, **_stamp(rank)}


def done_record(job: Job, fp: dict[str, Any], summary: SegmentSummary, rank: int) -> dict[str, Any]:
    return {
        "version": RECORD_VERSION,
        "status": "done",
        **fp,
        **_stamp(rank),
        "frames": summary.frames,
        "seconds": summary.seconds,
        "objects": summary.objects,
        "warnings": summary.warnings,
        "written": written(job, summary.frames),
    }


def written(job: Job, frames: int) -> list[dict[str, Any]]:
    """What each output holds now: a file's size, a folder's frame count."""
    folders = job.folder_outputs()
    entries = []
    for path in job.outputs:
        if path in folders:
            entries.append({"path": str(path), "frames": frames})
        else:
            entries.append({"path": str(path), "size": path.stat().st_size})
    return entries


def _intact(entries: list[dict[str, Any]]) -> bool:
    for entry in entries:
        path = Path(entry["path"])
        try:
            if "frames" in entry:
                names = set(os.listdir(path))
                if any(mask_filename(i) not in names for i in range(entry["frames"])):
                    return False
            elif path.stat().st_size != entry["size"]:
                return False
        except OSError:
            return False
    return True


def is_complete(record: dict[str, Any] | None, fp: dict[str, Any]) -> bool:
    """Whether ``record`` says the job with this fingerprint finished, outputs still intact."""
    if record is None or record.get("status") != "done":
        return False
    if any(record.get(key) != fp[key] for key in ("inputs", "options", "outputs")):
        return False
    return _intact(record.get("written", []))


def owned_outputs(record: dict[str, Any] | None) -> set[str]:
    """Output paths an earlier run of this tool wrote (or started to): safe to overwrite."""
    if record is None:
        return set()
    outputs = record.get("outputs", {})
    return {str(p) for p in outputs.values()} if isinstance(outputs, dict) else set()
