"""`vos --version` prints the package version, installed or not."""

from __future__ import annotations

from importlib import metadata

from typer.testing import CliRunner

import vos_cli
from vos_cli import cli

runner = CliRunner()


def test_version_prints_the_installed_version():
    result = runner.invoke(cli.app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"vos {metadata.version('vos-cli')}\n"


def test_version_falls_back_to_the_source_tree(monkeypatch):
    def not_installed(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    result = runner.invoke(cli.app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"vos {vos_cli.__version__}\n"


def test_commands_still_work_after_the_global_option():
    result = runner.invoke(cli.app, ["segment", "--help"])
    assert result.exit_code == 0 and "--mask" in result.output
