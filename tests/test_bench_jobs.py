"""`vos bench jobs`: the throughput of `vos segment --jobs` per process layout (tiny input)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vos_cli.bench.jobs import Layout, layout_command, parse_layouts
from vos_cli.cli import app
from vos_cli.errors import VosError


def test_layouts_parse_and_bad_ones_are_refused():
    assert parse_layouts("1x2, 2X1") == [Layout(1, 2), Layout(2, 1)]
    for bad in ("2", "0x1", "1x", "ax2", ","):
        with pytest.raises(VosError, match="--layouts"):
            parse_layouts(bad)


def test_more_than_one_process_goes_through_torchrun(tmp_path: Path):
    alone = layout_command(Layout(1, 2), tmp_path / "j.csv", ["--device", "cpu"])
    assert alone[1:] == [
        "-m", "vos_cli", "segment", "--jobs", str(tmp_path / "j.csv"), "--threads", "2",
        "--device", "cpu",
    ]  # fmt: skip
    shared = layout_command(Layout(2, 1), tmp_path / "j.csv", [])
    assert shared[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    assert shared[-2:] == ["--threads", "1"]


@pytest.mark.slow
def test_bench_jobs_times_each_layout_on_tiny_clips(tmp_path: Path, tiny_model_path: Path):
    out = tmp_path / "jobs.json"
    result = CliRunner().invoke(
        app,
        [
            "bench", "jobs", "--clips", "3", "--frames", "3", "--height", "32", "--width", "48",
            "--layouts", "1x1,2x1", "--weights", str(tiny_model_path), "--precision", "fp32",
            "--work", str(tmp_path / "work"), "--json", str(out),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "throughput" in result.output and "2x1" in result.output
    data = json.loads(out.read_text())
    assert [r["layout"] for r in data["results"]] == ["1x1", "2x1"]
    for row in data["results"]:
        assert row["frames"] == 9 and row["clips"] == 3 and row["fps"] > 0
        assert row["busy_fps"] > row["fps"]  # start-up and model loading left out
    for label in ("1x1", "2x1"):  # each layout wrote every clip's masks in its own folder
        for i in range(3):
            assert len(list((tmp_path / f"work/run-{label}/out/clip{i}").glob("*.png"))) == 3
