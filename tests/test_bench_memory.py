"""`vos bench memory`: streamed clip generation and encoding, child-process peaks, the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vos_cli.bench.clip import first_frame_mask, generate_clip, iter_clip
from vos_cli.bench.encode import encode_mp4
from vos_cli.bench.memory import (
    MemoryReport,
    MemoryRow,
    _run_child,
    memory_table,
    parse_lengths,
    run_memory_bench,
)
from vos_cli.cli import app
from vos_cli.errors import VosError
from vos_cli.io.video import open_frames

runner = CliRunner()


def test_iter_clip_yields_the_frames_of_generate_clip() -> None:
    frames, mask = generate_clip(4, 48, 64, 3, seed=2)
    streamed = iter_clip(4, 48, 64, 3, seed=2)
    assert not isinstance(streamed, list)
    assert all(np.array_equal(a, b) for a, b in zip(frames, streamed, strict=True))
    np.testing.assert_array_equal(first_frame_mask(48, 64, 3, seed=2), mask)
    with pytest.raises(VosError, match="frame"):
        iter_clip(0, 48, 64, 1)  # checked at the call, not at the first next()
    with pytest.raises(VosError, match="16x16"):
        first_frame_mask(8, 64, 1)


def test_encode_mp4_takes_a_generator(tmp_path: Path) -> None:
    path = encode_mp4(iter_clip(7, 48, 64, 1), tmp_path / "clip.mp4")
    with open_frames(path) as src:
        decoded = list(src)
    assert len(decoded) == 7 and decoded[0].shape == (48, 64, 3)
    with pytest.raises(VosError, match="no frames"):
        encode_mp4(iter([]), tmp_path / "empty.mp4")


def test_memory_bench_runs_vos_segment_per_length() -> None:
    report = run_memory_bench(lengths=(3, 6), height=64, width=96)
    assert [r.frames for r in report.rows] == [3, 6]
    for row in report.rows:
        # the segment process imports torch: far above the few MB of the reaper around it
        assert row.peak_rss_mb > 100 and row.seconds > 0 and row.fps > 0
    assert report.rows[0].ratio == 1.0
    assert report.rows[1].ratio == pytest.approx(
        report.rows[1].peak_rss_mb / report.rows[0].peak_rss_mb
    )
    data = json.loads(json.dumps(report.to_dict()))
    assert data["passed"] == report.passed and [r["frames"] for r in data["rows"]] == [3, 6]
    assert memory_table(report).row_count == 2


def test_peak_is_the_childs_own_not_this_processes(tmp_path: Path) -> None:
    """``exec`` carries the spawner's peak into ``ru_maxrss``; the reaper keeps it out."""
    ballast = np.ones(300 * 1024 * 1024 // 8)  # this process now peaks 300 MB higher
    code, seconds, peak = _run_child([sys.executable, "-c", "pass"], tmp_path / "err.txt")
    del ballast
    assert code == 0 and seconds > 0
    assert 1 < peak < 100, peak
    code, _, peak = _run_child(
        [sys.executable, "-c", "import sys; b = bytearray(200 * 2**20); sys.exit(3)"],
        tmp_path / "err.txt",
    )
    assert code == 3 and 200 < peak < 300, peak


def test_failing_child_raises_its_last_stderr_line(tmp_path: Path) -> None:
    with pytest.raises(VosError, match=r"exit code 2\): error: .*nope\.pt") as info:
        run_memory_bench(lengths=(2,), height=64, width=96, weights=tmp_path / "nope.pt")
    assert "\n" not in str(info.value)


def test_passed_allows_five_percent_growth() -> None:
    report = MemoryReport(64, 96, 1, None, None, "auto", "auto", False)
    report.rows = [MemoryRow(100, 1.0, 1000.0, 1.0), MemoryRow(10_000, 9.0, 1049.0, 1.049)]
    assert report.passed and report.verdict().startswith("PASSED")
    assert "at 10000 frames is x1.049 that at 100 frames" in report.verdict()
    report.rows[1] = MemoryRow(10_000, 9.0, 990.0, 0.99)  # less memory on the long video
    assert report.passed and "at 10000 frames is x0.990" in report.verdict()
    report.rows.append(MemoryRow(20_000, 18.0, 1100.0, 1.1))
    assert not report.passed and "FAILED" in report.verdict() and "20000" in report.verdict()


def test_bad_memory_options() -> None:
    assert parse_lengths("100, 10000,") == [100, 10000]
    for text in ("", "x", "0", "-5"):
        with pytest.raises(VosError, match="--lengths"):
            parse_lengths(text)
    with pytest.raises(VosError, match="--objects"):
        run_memory_bench(lengths=(3,), objects=0)
    with pytest.raises(VosError, match="--size"):
        run_memory_bench(lengths=(3,), size=8)
    for args in (
        ["--frames", "3"],
        ["--objects", "1,2"],
        ["--root", "x"],
        ["--warmup", "1"],
        ["--flip"],
    ):
        r = runner.invoke(app, ["bench", "memory", *args])
        assert r.exit_code == 2 and args[0] in r.output, r.output
    for dataset, option in (("speed", "--lengths=3"), ("davis16", "--overlay")):
        r = runner.invoke(app, ["bench", dataset, option])
        assert r.exit_code == 2 and option.split("=")[0] in r.output, r.output


def test_memory_via_cli(tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    args = ["bench", "memory", "--lengths", "3,5", "--height", "64", "--width", "96"]
    r = runner.invoke(app, [*args, "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "Peak RSS MB" in r.output and ("PASSED" in r.output or "FAILED" in r.output)
    data = json.loads(out.read_text())
    assert [row["frames"] for row in data["rows"]] == [3, 5]
