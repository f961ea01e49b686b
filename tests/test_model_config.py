"""Weights files written before the removed experiments still load; ones that need them don't."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from vos_cli.cli import app
from vos_cli.errors import VosError
from vos_cli.model.config import ModelConfig
from vos_cli.model.factory import load_model

runner = CliRunner()
LEGACY_OFF = {"use_matching": False, "matching_dim": 64, "use_mask_prior": False}


def _with_config(source: Path, target: Path, **extra: object) -> Path:
    data = torch.load(source, weights_only=True)
    data["config"] = {**data["config"], **extra}
    torch.save(data, target)
    return target


def test_legacy_keys_that_are_off_are_dropped() -> None:
    config = ModelConfig.from_dict({**ModelConfig().to_dict(), **LEGACY_OFF})
    assert config == ModelConfig()
    assert not set(LEGACY_OFF) & set(config.to_dict())


@pytest.mark.parametrize(
    ("key", "what"), [("use_matching", "feature matching"), ("use_mask_prior", "mask prior")]
)
def test_a_removed_feature_that_is_on_is_refused(key: str, what: str) -> None:
    with pytest.raises(VosError, match=f"{what}.*77fe63f"):
        ModelConfig.from_dict({**ModelConfig().to_dict(), key: True})


def test_old_weights_file_loads_and_new_one_is_refused(
    tmp_path: Path, tiny_model_path: Path
) -> None:
    old = _with_config(tiny_model_path, tmp_path / "old.pt", **LEGACY_OFF)
    model, _ = load_model(old, backbone_weights=None)
    reference, _ = load_model(tiny_model_path, backbone_weights=None)
    assert model.config == reference.config
    needs = _with_config(tiny_model_path, tmp_path / "match.pt", use_matching=True)
    r = runner.invoke(app, ["weights", "info", str(needs)])
    assert r.exit_code == 2 and "77fe63f" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1
