"""vos bench train: seconds per training step, on the smoke config's generated snippets."""

from __future__ import annotations

from typer.testing import CliRunner

from vos_cli.bench.train_speed import run_train_bench
from vos_cli.cli import app

runner = CliRunner()


def test_times_the_requested_steps_of_the_config():
    report = run_train_bench("smoke", ["data.batch_size=1"], steps=3, warmup=1)
    assert report.config == "smoke"
    assert (report.batch_size, report.frames, report.size) == (1, 4, (64, 96))
    assert report.device == "cpu" and report.dtype == "float32"
    assert len(report.step_seconds) == 3 and all(s > 0 for s in report.step_seconds)
    assert min(report.step_seconds) <= report.median <= max(report.step_seconds)
    assert report.to_dict()["median_seconds"] == report.median


def test_cli_prints_the_table_and_rejects_bad_counts():
    result = runner.invoke(app, ["bench", "train", "--config", "smoke", "--steps", "1"])
    assert result.exit_code == 0, result.output
    assert "Training speed" in result.output and "smoke" in result.output
    bad = runner.invoke(app, ["bench", "train", "--config", "smoke", "--steps", "0"])
    assert bad.exit_code == 2
    assert "--steps must be at least 1" in bad.output and "Traceback" not in bad.output
    missing = runner.invoke(app, ["bench", "train", "--config", "no-such-config"])
    assert missing.exit_code == 2 and "Traceback" not in missing.output
    other = runner.invoke(app, ["bench", "train", "--config", "maskmaker-lite0"])
    assert other.exit_code == 2 and "mask-maker config" in other.output
