"""Small shared pieces of the speed and memory benchmarks: count lists, rates, JSON output."""

from __future__ import annotations

import json
from pathlib import Path

from vos_cli.errors import VosError, WriteError


def parse_counts(text: str, option: str, example: str, low: int, high: int | None) -> list[int]:
    """``"1,3,5"`` -> [1, 3, 5] for ``option``; each count in [low, high] (None: no limit)."""
    counts: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            n = int(part)
        except ValueError:
            raise VosError(
                f"{option} takes counts like {example}; {part!r} is not a number"
            ) from None
        if n < low or (high is not None and n > high):
            limit = f"from {low} to {high}" if high is not None else f"of {low} or more"
            raise VosError(f"{option}: {n} is not a count {limit}")
        counts.append(n)
    if not counts:
        raise VosError(f"{option} names no count (e.g. {option} {example})")
    return counts


def per_second(count: int, seconds: float) -> float:
    """A rate that reads as missing (nan) rather than infinite when nothing was timed."""
    return count / seconds if seconds > 0 else float("nan")


def write_json(data: dict, path: Path) -> Path:
    """A benchmark's numbers as indented JSON (``--json``), its folder created if need be."""
    path = Path(path).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise WriteError(f"Cannot write {path}: {exc.strerror or exc}") from None
    return path
