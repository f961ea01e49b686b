"""Weight averaging of checkpoints: hand-computed means, and refusals of mixed networks."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import TINY
from vos_cli.cli import app
from vos_cli.errors import VosError
from vos_cli.model.config import ModelConfig
from vos_cli.model.factory import build_model, read_weights_file, save_weights
from vos_cli.model.weights_average import average_state_dicts, average_weights

runner = CliRunner()


def test_means_by_hand():
    states = [
        {"w": torch.tensor([1.0, 2.0]), "h": torch.tensor([1.0, 2.0]).half(), "n": torch.tensor(7)},
        {"w": torch.tensor([3.0, 6.0]), "h": torch.tensor([2.0, 2.0]).half(), "n": torch.tensor(7)},
        {"w": torch.tensor([2.0, 1.0]), "h": torch.tensor([3.0, 2.0]).half(), "n": torch.tensor(7)},
    ]
    mean = average_state_dicts(states)
    assert torch.equal(mean["w"], torch.tensor([2.0, 3.0]))
    assert mean["h"].dtype == torch.float16 and torch.equal(
        mean["h"].float(), torch.tensor([2.0, 2.0])
    )
    assert mean["n"] == 7


@pytest.mark.parametrize(
    ("second", "message"),
    [
        ({"w": torch.zeros(3), "n": torch.tensor(7)}, "different shapes"),
        ({"w": torch.zeros(2), "n": torch.tensor(8)}, "integer tensor 'n' differs"),
        ({"w": torch.zeros(2)}, "other tensors"),
    ],
)
def test_mismatched_tensors_are_refused(second, message):
    first = {"w": torch.zeros(2), "n": torch.tensor(7)}
    with pytest.raises(VosError, match=message):
        average_state_dicts([first, second])


def _saved(tmp_path, name, seed, **config):
    torch.manual_seed(seed)
    model = build_model(ModelConfig(**{**TINY, **config}), backbone_weights=None)
    path = tmp_path / name
    save_weights(model, path, include_backbone=True, meta={"step": seed, "val": {"jf": 0.5}})
    return path


def test_average_of_two_models_through_the_cli(tmp_path):
    a = _saved(tmp_path, "a.pt", 0)
    b = _saved(tmp_path, "b.pt", 1, inference_size=360)  # a test-time setting may differ
    out = tmp_path / "mean.pt"
    result = runner.invoke(app, ["weights", "average", str(a), str(b), "--out", str(out)])
    assert result.exit_code == 0, result.output
    mean = read_weights_file(out)
    sa, sb = read_weights_file(a)["state_dict"], read_weights_file(b)["state_dict"]
    key = "appearance.conv_in.weight"
    assert not torch.equal(sa[key], sb[key])
    expected = ((sa[key].double() + sb[key].double()) / 2).float()
    torch.testing.assert_close(mean["state_dict"][key], expected, rtol=0, atol=1e-7)
    assert mean["meta"]["averaged_from"] == "a.pt, b.pt"
    assert "val" not in mean["meta"] and "step" not in mean["meta"]
    again = runner.invoke(app, ["weights", "average", str(a), str(b), "--out", str(out)])
    assert again.exit_code == 2 and "already exists" in again.output


def test_different_networks_are_refused(tmp_path):
    a = _saved(tmp_path, "a.pt", 0)
    wide = _saved(tmp_path, "wide.pt", 0, fusion_dim=16)
    with pytest.raises(VosError, match="different network"):
        average_weights([a, wide], tmp_path / "mean.pt")
    result = runner.invoke(app, ["weights", "average", str(a), "--out", str(tmp_path / "m.pt")])
    assert result.exit_code == 2 and "at least two" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "mean.pt").exists()
