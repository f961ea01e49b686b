"""The jobs CSV: one row per video, its columns ``vos segment``'s per-video options.

Everything that can be checked without running the network is checked here, for every row,
before any work starts: a batch of hundreds of clips should not fail on row 200 after an hour
for a typo that was visible at the start. All problems are collected and raised together.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

from vos_cli.errors import VosError
from vos_cli.io.cutout import cutout_is_folder
from vos_cli.io.masks import object_ids, read_mask
from vos_cli.io.matte import check_matte_path
from vos_cli.io.overlay import OVERLAY_SUFFIXES
from vos_cli.segment import SegmentRequest, default_out_dir, parse_mask_option, parse_objects_option

#: Columns a jobs CSV may have, in the order the docs list them.
COLUMNS: tuple[str, ...] = (
    "source",
    "mask",
    "out",
    "overlay",
    "cutout",
    "matte",
    "objects",
    "feather",
    "size",
)
REQUIRED: tuple[str, ...] = ("source", "mask")
OUTPUT_COLUMNS: tuple[str, ...] = ("out", "overlay", "cutout", "matte")


class ManifestError(VosError):
    """The jobs CSV has problems; ``problems`` lists every one, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        super().__init__(
            f"{count} problem{'s' if count != 1 else ''} in the jobs file; nothing was run"
        )


@dataclass(frozen=True)
class JobDefaults:
    """The command line's options: they apply to every row, and fill its empty cells."""

    weights: Path | None = None
    device: str = "auto"
    precision: str = "auto"
    size: int | None = None
    objects: list[int] | None = None
    feather: int = 0
    flip: bool = False
    compile: bool = False


@dataclass(frozen=True)
class Job:
    """One row: where it is in the CSV and the request ``vos segment`` would build for it."""

    index: int
    """Position among the CSV's jobs, from 0 (also the order one process runs them in)."""
    line: int
    """Line of the CSV the row ends on, for messages and the report."""
    request: SegmentRequest

    @property
    def outputs(self) -> list[Path]:
        r = self.request
        return [p for p in (r.out_dir, r.overlay, r.cutout, r.matte) if p is not None]

    @property
    def output_columns(self) -> dict[str, Path]:
        r = self.request
        named = {"out": r.out_dir, "overlay": r.overlay, "cutout": r.cutout, "matte": r.matte}
        return {column: path for column, path in named.items() if path is not None}

    def folder_outputs(self) -> list[Path]:
        """Outputs that are folders of PNGs (the masks, a PNG cut-out)."""
        r = self.request
        folders = [r.out_dir] if r.out_dir is not None else []
        if r.cutout is not None and cutout_is_folder(r.cutout):
            folders.append(r.cutout)
        return folders


@dataclass(frozen=True)
class _RowPaths:
    """A row's paths as far as they parse, for the checks across rows (rows with other
    problems included, so that one pass lists everything)."""

    line: int
    outputs: dict[str, Path]
    folders: list[Path]
    inputs: list[Path]


def load_manifest(path: Path, defaults: JobDefaults) -> list[Job]:
    """The CSV's jobs; :class:`ManifestError` listing every problem found in it."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise VosError(
            f"jobs file not found: {path}" if not path.exists() else f"not a file: {path}"
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise VosError(f"{path} is not a UTF-8 text file (save the CSV as UTF-8)") from None
    except OSError as err:
        raise VosError(f"cannot read {path}: {err.strerror or err}") from None
    name = path.name
    base = Path(os.path.abspath(path)).parent
    problems: list[str] = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    jobs: list[Job] = []
    paths: list[_RowPaths] = []
    try:
        for cells in reader:
            line = reader.line_num
            if not any(c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
                continue
            if header is None:
                header = [c.strip().lower() for c in cells]
                header_problems = _check_header(header, name)
                if header_problems:
                    raise ManifestError(header_problems)
                continue
            if len(cells) > len(header):
                problems.append(
                    f"{name}:{line}: {len(cells)} cells but the header names {len(header)} "
                    "columns (quote cells that contain commas)"
                )
                continue
            row = dict(zip(header, (c.strip() for c in cells), strict=False))
            job, row_problems, row_paths = _parse_row(row, len(jobs), line, base, defaults)
            paths.append(row_paths)
            problems += [f"{name}:{line}: {p}" for p in row_problems]
            if job is not None:
                jobs.append(job)
    except csv.Error as err:
        problems.append(f"{name}:{reader.line_num}: not valid CSV: {err}")
    if header is None:
        raise ManifestError(
            [f"{name}: no header row (the first line names the columns: source,mask,...)"]
        )
    if not jobs and not problems:
        problems.append(f"{name}: no jobs (a row per video under the header)")
    problems += _check_paths(paths, name)
    if problems:
        raise ManifestError(problems)
    return jobs


def _check_header(header: list[str], name: str) -> list[str]:
    problems = []
    known = ", ".join(COLUMNS)
    for position, column in enumerate(header, 1):
        if not column:
            problems.append(f"{name}: column {position} of the header has no name")
        elif column not in COLUMNS:
            problems.append(f"{name}: unknown column {column!r} (the columns are: {known})")
    for column in sorted({c for c in header if c and header.count(c) > 1}):
        problems.append(f"{name}: column {column!r} appears twice in the header")
    for column in REQUIRED:
        if column not in header:
            problems.append(f"{name}: no {column!r} column (every job needs one)")
    return problems


def _resolve(cell: str, base: Path) -> Path:
    """A cell's path: ``~`` expanded, relative paths taken from the CSV's folder."""
    path = Path(cell).expanduser()
    return Path(os.path.normpath(path if path.is_absolute() else base / path))


def _parse_row(
    row: dict[str, str], index: int, line: int, base: Path, defaults: JobDefaults
) -> tuple[Job | None, list[str], _RowPaths]:
    problems: list[str] = []
    source = None
    if not row.get("source"):
        problems.append("no source")
    else:
        source = _resolve(row["source"], base)
        if not source.exists():
            problems.append(f"source not found: {source}")
    masks, known_ids = _parse_masks(row.get("mask", ""), base, problems)
    outputs: dict[str, Path | None] = {}
    for column in OUTPUT_COLUMNS:
        outputs[column] = _resolve(row[column], base) if row.get(column) else None
    _check_output_kinds(outputs, problems)
    objects = defaults.objects
    if row.get("objects"):
        try:
            objects = parse_objects_option(row["objects"].replace(";", ","))
        except VosError:
            problems.append(
                f'objects {row["objects"]!r} is not a list of ids 1..254 (write "1,3" or 1;3)'
            )
    feather = _whole_number(row, "feather", defaults.feather, problems)
    size = _whole_number(row, "size", defaults.size, problems)
    alpha = outputs["cutout"] is not None or outputs["matte"] is not None
    if not alpha:
        for column, value in (("objects", row.get("objects")), ("feather", row.get("feather"))):
            if value:
                problems.append(f"{column} applies to the cutout and the matte; give one of them")
    if alpha and objects and known_ids is not None:
        missing = [i for i in objects if i not in known_ids]
        if missing:
            have = ",".join(str(i) for i in sorted(known_ids))
            problems.append(f"objects: no mask has object {missing[0]} (the masks have {have})")
    if source is not None and all(p is None for p in outputs.values()):
        outputs["out"] = default_out_dir(source)
    given = {column: path for column, path in outputs.items() if path is not None}
    row_paths = _RowPaths(
        line=line,
        outputs=given,
        folders=[p for c, p in given.items() if c == "out" or (c == "cutout" and _is_folder(p))],
        inputs=[p for p in (source, *(path for _, path in masks)) if p is not None],
    )
    if problems or source is None:
        return None, problems, row_paths
    request = SegmentRequest(
        source=source,
        masks=masks,
        out_dir=outputs["out"],
        overlay=outputs["overlay"],
        cutout=outputs["cutout"],
        matte=outputs["matte"],
        weights=defaults.weights,
        device=defaults.device,
        precision=defaults.precision,
        size=size,
        flip=defaults.flip,
        compile=defaults.compile,
        objects=objects if alpha else None,
        feather=feather if alpha else 0,
    )
    return Job(index=index, line=line, request=request), [], row_paths


def _is_folder(cutout: Path) -> bool:
    try:
        return cutout_is_folder(cutout)
    except VosError:
        return False


def _parse_masks(
    cell: str, base: Path, problems: list[str]
) -> tuple[list[tuple[int, Path]], set[int] | None]:
    """``PATH`` or ``N:PATH``, several separated by ``;``; each read now, as the run will."""
    parts = [p.strip() for p in cell.split(";") if p.strip()]
    if not parts:
        problems.append("no mask (every job needs the mask of its first frame)")
        return [], None
    masks: list[tuple[int, Path]] = []
    known: set[int] | None = set()
    for part in parts:
        frame, path = parse_mask_option(part)
        path = _resolve(str(path), base)
        if any(frame == f for f, _ in masks):
            problems.append(f"two masks for frame {frame}")
            continue
        masks.append((frame, path))
        try:
            labels = read_mask(path, require_object=True)
        except VosError as err:
            problems.append(str(err))
            known = None
            continue
        if known is not None:
            known.update(object_ids(labels))
    return masks, known


def _check_output_kinds(outputs: dict[str, Path | None], problems: list[str]) -> None:
    overlay, cutout, matte = outputs["overlay"], outputs["cutout"], outputs["matte"]
    if overlay is not None and overlay.suffix.lower() not in OVERLAY_SUFFIXES:
        allowed = ", ".join(sorted(OVERLAY_SUFFIXES))
        problems.append(f"overlay must end with one of {allowed}: {overlay}")
    for path, check in ((cutout, cutout_is_folder), (matte, check_matte_path)):
        if path is None:
            continue
        try:
            check(path)
        except VosError as err:
            problems.append(str(err))


def _whole_number(row: dict[str, str], column: str, default, problems: list[str]):
    text = row.get(column, "")
    if not text:
        return default
    if not text.isdigit():
        problems.append(f"{column} must be a whole number of 0 or more, got {text!r}")
        return default
    return int(text)


def _check_paths(rows: list[_RowPaths], name: str) -> list[str]:
    """Outputs that two rows share, that sit inside another row's output folder, or that are
    (or hold) some row's input: each would overwrite work or data, so none may exist."""
    problems: list[str] = []
    owner: dict[Path, tuple[int, str]] = {}
    folders: dict[Path, tuple[int, str]] = {}
    for row in rows:
        for column, path in row.outputs.items():
            key = path.resolve(strict=False)
            if key in owner:
                line, other = owner[key]
                problems.append(f"{name}:{row.line}: {column} {path} is also line {line}'s {other}")
            else:
                owner[key] = (row.line, column)
            if path in row.folders:
                folders.setdefault(key, (row.line, column))
    for key, (line, column) in owner.items():
        for parent in key.parents:
            if parent in folders and folders[parent][0] != line:
                other_line, other = folders[parent]
                problems.append(
                    f"{name}:{line}: {column} {key} is inside line {other_line}'s {other} {parent}"
                )
                break
    inputs: dict[Path, int] = {}
    for row in rows:
        for path in row.inputs:
            inputs.setdefault(path.resolve(strict=False), row.line)
    for key, (line, column) in owner.items():
        if key in inputs:
            problems.append(
                f"{name}:{line}: {column} {key} is line {inputs[key]}'s input; choose another"
            )
    for key, in_line in inputs.items():
        for parent in key.parents:
            if parent in folders:
                line, column = folders[parent]
                problems.append(
                    f"{name}:{line}: {column} {parent} holds line {in_line}'s input {key}; "
                    "choose another"
                )
                break
    return problems
