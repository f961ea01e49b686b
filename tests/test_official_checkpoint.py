"""Loading the authors' A-GAME checkpoint layout: every key placed, shapes checked, clean errors."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from typer.testing import CliRunner

from vos_cli.cli import app
from vos_cli.errors import VosError
from vos_cli.model.factory import load_model

HEAD_SHAPES = {
    "appmod.cov_reg": (4, 1, 512, 1, 1),
    "appmod.conv_in.weight": (512, 2048, 1, 1),
    "appmod.conv_in.bias": (512,),
    "dynmod.layers.layer00.conv.weight": (512, 4100, 1, 1),
    "dynmod.layers.layer00.conv.bias": (512,),
    "dynmod.layers.layer01.conv0.weight": (512, 512, 3, 3),
    "dynmod.layers.layer01.conv0.bias": (512,),
    "dynmod.layers.layer01.conv1.weight": (512, 512, 3, 3),
    "dynmod.layers.layer01.conv1.bias": (512,),
    "dynmod.layers.layer01.conv2.weight": (512, 512, 3, 3),
    "dynmod.layers.layer01.conv2.bias": (512,),
    "dynmod.layers.layer02.conv.weight": (512, 1536, 3, 3),
    "dynmod.layers.layer02.conv.bias": (512,),
    "fusmod.layers.layer00.conv.weight": (512, 516, 3, 3),
    "fusmod.layers.layer00.conv.bias": (512,),
    "fusmod.layers.layer01.conv.weight": (128, 512, 3, 3),
    "fusmod.layers.layer01.conv.bias": (128,),
    "fusmod.predictor.layer00.conv.weight": (2, 128, 1, 1),
    "fusmod.predictor.layer00.conv.bias": (2,),
    "segmod.project_s8.conv.weight": (128, 512, 1, 1),
    "segmod.project_s8.conv.bias": (128,),
    "segmod.blend_s8.conv.weight": (128, 256, 3, 3),
    "segmod.blend_s8.conv.bias": (128,),
    "segmod.project_s4.conv.weight": (128, 256, 1, 1),
    "segmod.project_s4.conv.bias": (128,),
    "segmod.blend_s4.conv.weight": (128, 256, 3, 3),
    "segmod.blend_s4.conv.bias": (128,),
    "segmod.predictor.conv.weight": (2, 128, 3, 3),
    "segmod.predictor.conv.bias": (2,),
}


@functools.lru_cache(maxsize=1)
def resnet_state() -> dict[str, torch.Tensor]:
    return torchvision.models.resnet101().state_dict()


def authors_net() -> dict[str, torch.Tensor]:
    """A state dict in the authors' layout, random values, documented keys and shapes."""
    g = torch.Generator().manual_seed(0)
    net = {f"trackseg.backbone.{k}": v.clone() for k, v in resnet_state().items()}
    for key, shape in HEAD_SHAPES.items():
        net[f"trackseg.{key}"] = torch.randn(shape, generator=g) * 0.01
    # Distinct, recognisable values per covariance-regulariser component.
    net["trackseg.appmod.cov_reg"] = torch.arange(4.0).view(4, 1, 1, 1, 1).expand(4, 1, 512, 1, 1)
    return net


@pytest.fixture(scope="module")
def official_file(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    net = authors_net()
    path = tmp_path_factory.mktemp("official") / "agame_beta_best.pth.tar"
    torch.save({"net": net, "epoch": 42}, path)
    return path, net


@pytest.fixture(scope="module")
def loaded(official_file):
    path, net = official_file
    model, meta = load_model(path)
    return model, meta, net


def test_every_tensor_lands_in_place(loaded):
    model, meta, net = loaded
    ours = model.state_dict()
    assert model.config.backbone == "resnet101"
    assert model.config.appearance_dim == 512 and model.config.coarse_kernel == 1
    torch.testing.assert_close(
        ours["backbone.body.layer4.0.conv2.weight"], net["trackseg.backbone.layer4.0.conv2.weight"]
    )
    torch.testing.assert_close(
        ours["backbone.body.layer1.0.bn1.running_var"],
        net["trackseg.backbone.layer1.0.bn1.running_var"],
    )
    torch.testing.assert_close(
        ours["propagation.pyramid.2.weight"], net["trackseg.dynmod.layers.layer01.conv2.weight"]
    )
    torch.testing.assert_close(
        ours["upsampler.blend_s4.bias"], net["trackseg.segmod.blend_s4.conv.bias"]
    )
    # Component order kept: background, foreground, background-hard, foreground-hard.
    for k in range(4):
        assert (ours["appearance.cov_reg"][k] == k).all()
    assert meta["epoch"] == 42


def test_propagation_input_split_matches_concatenated_conv(loaded):
    """Our per-part application of the 4100-channel conv equals the authors' conv on the concat."""
    model, _, net = loaded
    g = torch.Generator().manual_seed(1)
    cur, first = torch.randn(1, 2048, 3, 4, generator=g), torch.randn(1, 2048, 3, 4, generator=g)
    prev, init = torch.rand(1, 2, 3, 4, generator=g), torch.rand(1, 2, 3, 4, generator=g)
    weight = net["trackseg.dynmod.layers.layer00.conv.weight"]
    bias = net["trackseg.dynmod.layers.layer00.conv.bias"]
    expected = F.relu(F.conv2d(torch.cat([cur, first, prev, init], 1), weight, bias))
    prop = model.propagation
    got = F.relu(
        prop.encode_current(cur)
        + prop.encode_first(first)
        + F.conv2d(torch.cat([prev, init], 1), prop.conv_in.weight[:, 4096:])
        + prop.conv_in.bias.view(1, -1, 1, 1)
    )
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_convert_and_info_through_the_cli(official_file, tmp_path):
    path, _ = official_file
    runner = CliRunner()
    target = tmp_path / "agame-r101.pt"
    result = runner.invoke(app, ["weights", "convert", str(path), str(target)])
    assert result.exit_code == 0, result.output
    info = runner.invoke(app, ["weights", "info", str(target)])
    assert info.exit_code == 0, info.output
    assert "resnet101" in info.output and "authors" in info.output
    assert "network size: the video's resolution" in info.output
    again = runner.invoke(app, ["weights", "convert", str(path), str(target)])
    assert again.exit_code == 2 and "error:" in again.output
    sized = tmp_path / "sized.pt"
    args = ["--inference-size", "480", "--small-object-size", "720"]
    result = runner.invoke(app, ["weights", "convert", str(target), str(sized), *args])
    assert result.exit_code == 0, result.output
    info = runner.invoke(app, ["weights", "info", str(sized)])
    assert "network size: 480p (720p for videos with a small object)" in info.output


@pytest.mark.parametrize("damage", ["missing", "extra", "shape", "not_tensor", "no_net"])
def test_malformed_checkpoints_are_clean_errors(damage, tmp_path):
    net = {k: torch.zeros(v) for k, v in HEAD_SHAPES.items()}
    net = {f"trackseg.{k}": v for k, v in net.items()}
    net.update({f"trackseg.backbone.{k}": v for k, v in resnet_state().items()})
    data: dict = {"net": net}
    if damage == "missing":
        del net["trackseg.segmod.blend_s8.conv.weight"]
    elif damage == "extra":
        net["trackseg.segmod.refiner.conv.weight"] = torch.zeros(1)
    elif damage == "shape":
        net["trackseg.fusmod.layers.layer00.conv.weight"] = torch.zeros(512, 515, 3, 3)
    elif damage == "not_tensor":
        net["trackseg.appmod.conv_in.bias"] = [0.0]
    elif damage == "no_net":
        data = {"model": net}
    path = tmp_path / "bad.pth.tar"
    torch.save(data, path)
    with pytest.raises(VosError) as err:
        load_model(path)
    message = str(err.value)
    assert "\n" not in message
    if damage in ("missing", "extra", "shape"):
        assert (
            "blend_s8" in message
            or "refiner" in message
            or "conv0" in message
            or "layer00" in message
        )
