"""`vos train --plot`: a log's curves to a PNG (matplotlib, an optional extra)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from vos_cli.cli import app

runner = CliRunner()


def _log(path: Path) -> Path:
    records = [{"type": "train", "step": s, "loss": 1.0 / s, "fine": 0.8 / s} for s in range(1, 30)]
    records += [{"type": "val", "step": s, "jf": 0.5, "j": 0.55, "f": 0.45} for s in (10, 20)]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    log = _log(tmp_path / "log.jsonl")
    r = runner.invoke(app, ["train", "--plot", str(log)])
    assert r.exit_code == 0, r.output
    with Image.open(tmp_path / "log.png") as png:
        assert png.size[0] > 400 and png.size[1] > 400


def test_plot_without_matplotlib_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails as if not installed
    r = runner.invoke(app, ["train", "--plot", str(_log(tmp_path / "log.jsonl"))])
    assert r.exit_code == 2
    assert "pip install" in r.output and "[plot]" in r.output and "Traceback" not in r.output


def test_plot_of_a_file_that_is_not_a_log(tmp_path: Path) -> None:
    bad = tmp_path / "log.jsonl"
    bad.write_text("not json\n")
    r = runner.invoke(app, ["train", "--plot", str(bad)])
    assert r.exit_code == 2 and "JSON" in r.output
