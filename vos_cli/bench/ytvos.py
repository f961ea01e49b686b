"""``vos bench ytvos``: segment a YouTube-VOS valid/test split into an official submission.

Layout read::

    <root>/<split>/JPEGImages/<video>/<frame>.jpg
    <root>/<split>/Annotations/<video>/<frame>.png   (only frames where objects first appear)
    <root>/<split>/meta.json  {"videos": {video: {"objects": {"1": {"frames": [...]}}}}}

Ground truth is withheld, so nothing is scored here: the run writes
``<results>/Annotations/<video>/<frame>.png`` for every frame meta.json lists (the frames the
evaluation server expects) and zips them as ``<results>/submission.zip`` with a top-level
``Annotations/`` folder, ready to upload. Objects that appear at a later frame are given to the
tracker there, restricted to the new object, as the protocol allows.
"""

from __future__ import annotations

import json
import os
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vos_cli.bench.distributed import gather_outcomes, init_distributed, run_on_main, shutdown
from vos_cli.bench.timing import RunReport, RunTiming, SequenceTiming, write_timing_csv
from vos_cli.bench.tracking import (
    Progress,
    TrackerSettings,
    default_results_dir,
    no_progress,
    track_and_write,
)
from vos_cli.data.davis import read_label_png, read_rgb_frame
from vos_cli.errors import VosError, WriteError
from vos_cli.inference.runtime import resolve_device
from vos_cli.io.atomic import temp_beside
from vos_cli.io.masks import NamedPngWriter
from vos_cli.io.paths import prepare_output_dir
from vos_cli.model.agame import AGame
from vos_cli.model.factory import load_model
from vos_cli.weights_registry import resolve_weights

_FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
_MAX_LISTED = 5


@dataclass
class YtvosVideo:
    """One video: every frame on disk, where each object starts, which frames to write."""

    name: str
    frame_paths: list[Path]
    annotation_dir: Path
    starts: dict[int, list[int]]
    """frame index -> object ids whose first annotation is at that frame"""
    output_frames: list[int]
    """frame indices to write (meta.json's frames, or every frame with ``all_frames``)"""

    @property
    def frame_names(self) -> list[str]:
        return [p.stem for p in self.frame_paths]

    def read_frame(self, i: int) -> np.ndarray:
        return read_rgb_frame(self.frame_paths[i])

    def first_masks(self) -> tuple[dict[int, np.ndarray], list[str]]:
        """The masks to give the tracker, each restricted to the objects starting there.

        Returns the masks and warnings for objects missing from their own first annotation
        (such an object cannot be tracked; the rest of the video still is).
        """
        masks: dict[int, np.ndarray] = {}
        warnings: list[str] = []
        for index, ids in sorted(self.starts.items()):
            path = self.annotation_dir / f"{self.frame_paths[index].stem}.png"
            labels = read_label_png(path, binary=False)
            present = [i for i in ids if bool((labels == i).any())]
            for i in ids:
                if i not in present:
                    warnings.append(f"video {self.name}: object {i} is not in {path}; skipped")
            if present:
                masks[index] = np.where(np.isin(labels, present), labels, 0).astype(np.uint8)
        return masks, warnings


def _listed(items: list[str]) -> str:
    more = "" if len(items) <= _MAX_LISTED else ", ..."
    return ", ".join(items[:_MAX_LISTED]) + more


def _split_folder(root: Path, split: str) -> Path:
    """``root/split``; ``root`` itself when it already is a split folder."""
    if not root.is_dir():
        raise VosError(f"YouTube-VOS root {root} does not exist or is not a directory")
    base = root / split
    if not base.is_dir() and (root / "meta.json").is_file() and (root / "JPEGImages").is_dir():
        return root
    if not base.is_dir():
        raise VosError(
            f"YouTube-VOS split folder {base} does not exist "
            f"(expected {split}/JPEGImages, {split}/Annotations and {split}/meta.json)"
        )
    return base


def _read_meta(path: Path) -> dict[str, dict]:
    if not path.is_file():
        raise VosError(f"YouTube-VOS meta file {path} is missing")
    try:
        videos = json.loads(path.read_text(encoding="utf-8"))["videos"]
        if not isinstance(videos, dict):
            raise TypeError("'videos' is not a mapping")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise VosError(f"{path} is not a YouTube-VOS meta.json ({exc})") from None
    return videos


def load_ytvos_eval(
    root: Path, split: str = "valid", videos: list[str] | None = None, all_frames: bool = False
) -> list[YtvosVideo]:
    """List the videos of a YouTube-VOS valid/test split (reads no pixels).

    Checked up front, each error naming the file: the split folder and meta.json, every video's
    frame folder, each object's first annotation, and that every frame meta.json lists exists.
    """
    base = _split_folder(Path(root), split)
    meta = _read_meta(base / "meta.json")
    images_dir, anno_dir = base / "JPEGImages", base / "Annotations"
    for folder in (images_dir, anno_dir):
        if not folder.is_dir():
            raise VosError(f"YouTube-VOS folder {folder} is missing")
    names = sorted(meta)
    if videos is not None:
        known = set(names)
        wanted = list(dict.fromkeys(videos))
        unknown = [v for v in wanted if v not in known]
        if unknown:
            raise VosError(f"Videos not in {base / 'meta.json'}: {_listed(unknown)}")
        names = wanted
    if not names:
        raise VosError(f"{base / 'meta.json'} lists no videos")

    out = []
    for name in names:
        frame_dir = images_dir / name
        if not frame_dir.is_dir():
            raise VosError(f"Video folder {frame_dir} is missing")
        frames = sorted(
            p for p in frame_dir.iterdir() if p.suffix.lower() in _FRAME_SUFFIXES and p.is_file()
        )
        if not frames:
            raise VosError(f"Video folder {frame_dir} holds no frames")
        index = {p.stem: i for i, p in enumerate(frames)}
        objects = meta[name].get("objects", {}) if isinstance(meta[name], dict) else {}
        if not objects:
            raise VosError(f"{base / 'meta.json'}: video {name} lists no objects")
        starts: dict[int, list[int]] = {}
        listed: set[str] = set()
        for key, obj in objects.items():
            try:
                obj_id = int(key)
                obj_frames = [str(f) for f in obj.get("frames", [])]
            except (TypeError, ValueError, AttributeError):
                raise VosError(
                    f"{base / 'meta.json'}: video {name} object {key!r} is malformed"
                ) from None
            if not 0 < obj_id < 255:
                raise VosError(f"{base / 'meta.json'}: video {name} has object id {obj_id}")
            if not obj_frames:
                continue
            missing = [f for f in obj_frames if f not in index]
            if missing:
                raise VosError(
                    f"Video {name}: meta.json lists frames with no image in {frame_dir}: "
                    f"{_listed(missing)}"
                )
            first = min(index[f] for f in obj_frames)
            anno = anno_dir / name / f"{frames[first].stem}.png"
            if not anno.is_file():
                raise VosError(
                    f"Video {name}: object {obj_id} starts at an unannotated frame ({anno} is missing)"
                )
            starts.setdefault(first, []).append(obj_id)
            listed.update(obj_frames)
        if not starts:
            raise VosError(f"{base / 'meta.json'}: video {name} lists no annotated frames")
        output = list(range(len(frames))) if all_frames else sorted(index[f] for f in listed)
        out.append(YtvosVideo(name, frames, anno_dir / name, starts, output))
    return out


def segment_ytvos_videos(
    videos: list[YtvosVideo],
    model: AGame,
    out_dir: Path,
    settings: TrackerSettings,
    progress: Progress = no_progress,
) -> tuple[list[SequenceTiming], list[str]]:
    """Track every frame on disk, write the wanted ones to ``out_dir/<video>/<frame>.png``.

    ``settings.aggregate_single`` (the authors' YouTube-VOS protocol aggregates a lone object):
    see :mod:`vos_cli.bench.protocol`.
    """
    timings, warnings = [], []
    progress("segment", 0, len(videos))
    for done, video in enumerate(videos, 1):
        try:
            masks, notes = video.first_masks()
        except VosError as exc:
            raise VosError(f"video {video.name}: {exc}") from None
        warnings += notes
        names: list[str | None] = [None] * len(video.frame_paths)
        for i in video.output_frames:
            names[i] = video.frame_paths[i].stem
        if not masks:  # no object could be started: the video's masks are all background
            start = time.perf_counter()
            empty = np.zeros(video.read_frame(0).shape[:2], dtype=np.uint8)
            writer = NamedPngWriter(out_dir / video.name)
            for i in video.output_frames:
                writer.write(video.frame_paths[i].stem, empty)
            writer.close()
            timings.append(SequenceTiming(video.name, 0, 0, 0.0, time.perf_counter() - start))
        else:
            tracker = settings.tracker(model)
            timings.append(
                track_and_write(
                    tracker,
                    video.name,
                    len(video.frame_paths),
                    video.read_frame,
                    masks,
                    out_dir / video.name,
                    names,
                )
            )
        progress("segment", done, len(videos))
    return timings, warnings


def zip_submission(videos: list[YtvosVideo], results_dir: Path) -> Path:
    """``results_dir/submission.zip`` holding ``Annotations/<video>/<frame>.png`` of this run.

    Only the files this run wrote go in (not leftovers of an earlier run in the same folder);
    PNGs are stored uncompressed since they already are compressed. Written atomically.
    """
    target = results_dir / "submission.zip"
    missing = []
    fd, tmp = temp_beside(target, suffix=".zip.tmp")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for video in videos:
                for i in video.output_frames:
                    rel = f"Annotations/{video.name}/{video.frame_paths[i].stem}.png"
                    path = results_dir / rel
                    if not path.is_file():
                        missing.append(rel)
                        continue
                    zf.write(path, rel)
        if missing:
            raise VosError(
                f"Cannot zip the submission: {len(missing)} mask(s) missing: {_listed(missing)}"
            )
        os.replace(tmp, target)
    except OSError as exc:
        raise WriteError(f"Cannot write {target}: {exc.strerror or exc}") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


@dataclass
class YtvosReport(RunReport):
    """What a YouTube-VOS run wrote and how fast it went (nothing is scored)."""

    split: str
    results_dir: Path
    videos: list[str]
    submission: Path | None = None
    warnings: list[str] = field(default_factory=list)


def run_ytvos(
    root: Path,
    *,
    split: str = "valid",
    results_dir: Path | None = None,
    videos: list[str] | None = None,
    all_frames: bool = False,
    weights: Path | None = None,
    settings: TrackerSettings = TrackerSettings(),
    force: bool = False,
    progress: Progress = no_progress,
) -> YtvosReport:
    """Segment a YouTube-VOS split into ``<results>/Annotations`` and zip the submission.

    ``all_frames`` writes a mask for every frame on disk instead of meta.json's frames (for the
    ``*_all_frames`` packages). Sharded over ranks under torchrun, rank 0 zips.
    ``settings.aggregate_single`` None follows the authors' protocol
    (:mod:`vos_cli.bench.protocol`).
    """
    settings = settings.for_dataset("ytvos")
    results_dir = (
        Path(results_dir) if results_dir is not None else default_results_dir("ytvos", split)
    )
    results_dir = results_dir.expanduser()
    root = Path(root).expanduser()
    settings.check()
    listed = load_ytvos_eval(root, split, videos, all_frames)
    report = YtvosReport(split, results_dir, [v.name for v in listed])
    weights_path = resolve_weights(weights)
    ctx = init_distributed(resolve_device(settings.device))
    try:
        run_on_main(
            ctx, lambda: prepare_output_dir(results_dir, force, protect=[root, weights_path])
        )
        mine = ctx.shard(listed)

        def work() -> tuple[list[SequenceTiming], list[str], float]:
            model, _ = load_model(weights_path)
            start = time.perf_counter()
            timings, notes = segment_ytvos_videos(
                mine, model, results_dir / "Annotations", settings, progress
            )
            return timings, notes, time.perf_counter() - start

        outcomes = gather_outcomes(ctx, work)
        if not ctx.is_main:
            report.is_main = False
            return report
        order = {name: i for i, name in enumerate(report.videos)}
        timings = sorted((t for ts, _, _ in outcomes for t in ts), key=lambda t: order[t.sequence])
        report.timing = RunTiming(timings, max(w for _, _, w in outcomes), processes=ctx.world)
        report.warnings = [w for _, ws, _ in outcomes for w in ws]
        report.files.append(write_timing_csv(report.timing, results_dir, split))
        report.submission = zip_submission(listed, results_dir)
        report.files.append(report.submission)
        return report
    finally:
        shutdown(ctx)
