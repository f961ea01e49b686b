"""The toolkit's result CSVs (``evaluation_method.py``'s format) and the same numbers as tables."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

from rich.console import Group
from rich.table import Table

from vos_cli.bench.metrics.stats import GLOBAL_COLUMNS, BenchResult
from vos_cli.errors import WriteError
from vos_cli.io.atomic import temp_beside

SEQUENCE_COLUMNS = ("Sequence", "J-Mean", "F-Mean")


def _fmt(value: float) -> str:
    """Toolkit CSV number format (pandas ``float_format="%.3f"``; NaN is an empty field)."""
    return "" if math.isnan(value) else f"{value:.3f}"


def split_label(split: str) -> str:
    """The name a split goes by in file names: a split list file of one's own by its stem."""
    return Path(split).stem if split.endswith(".txt") else split


def write_csv_atomic(path: Path, rows: list[list[str]]) -> None:
    """CSV rows with ``\n`` line ends (as the toolkit's pandas output), written atomically."""
    fd, tmp = temp_beside(path)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh, lineterminator="\n").writerows(rows)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_results_csv(result: BenchResult, out_dir: Path, split: str) -> tuple[Path, Path]:
    """Write ``global_results-<split>.csv`` and ``per-sequence_results-<split>.csv``.

    Same columns, row labels and 3-decimal format as the toolkit's ``evaluation_method.py``,
    so existing scripts that read its CSVs read ours. Each file is replaced atomically.
    """
    out_dir = Path(out_dir)
    label = split_label(split)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        global_path = out_dir / f"global_results-{label}.csv"
        seq_path = out_dir / f"per-sequence_results-{label}.csv"
        g = result.global_metrics()
        write_csv_atomic(global_path, [list(GLOBAL_COLUMNS), [_fmt(g[c]) for c in GLOBAL_COLUMNS]])
        rows = [list(SEQUENCE_COLUMNS)]
        rows += [[o.name, _fmt(o.j_mean), _fmt(o.f_mean)] for o in result.objects]
        write_csv_atomic(seq_path, rows)
    except OSError as exc:
        raise WriteError(f"Cannot write results CSVs to {out_dir}: {exc.strerror or exc}") from None
    return global_path, seq_path


def global_table(result: BenchResult, title: str = "Global results") -> Table:
    """One-row table of the global metrics."""
    table = Table(title=title)
    g = result.global_metrics()
    for col in GLOBAL_COLUMNS:
        table.add_column(col, justify="right")
    table.add_row(*(_fmt(g[c]) or "-" for c in GLOBAL_COLUMNS))
    return table


def per_sequence_table(result: BenchResult, title: str = "Per-sequence results") -> Table:
    """One row per object (``<sequence>_<id>``) with its J and F means."""
    table = Table(title=title)
    for col in SEQUENCE_COLUMNS:
        table.add_column(col, justify="left" if col == "Sequence" else "right")
    for o in result.objects:
        table.add_row(o.name, _fmt(o.j_mean) or "-", _fmt(o.f_mean) or "-")
    return table


def results_table(result: BenchResult, split: str | None = None) -> Group:
    """Global and per-sequence tables, ready for ``rich.console.Console.print``."""
    suffix = f" ({split_label(split)})" if split else ""
    return Group(
        global_table(result, f"Global results{suffix}"),
        per_sequence_table(result, f"Per-sequence results{suffix}"),
    )
