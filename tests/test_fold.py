"""Folding frozen BatchNorms changes nothing but speed."""

import torch

from vos_cli.model.backbones import build_backbone
from vos_cli.model.fold import fold_frozen_batchnorm


def _randomise_bn(module: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def test_folded_backbones_compute_the_same_features():
    for name, train_from in (("lite0", "blocks.14"), ("resnet101", "layer4")):
        torch.manual_seed(0)
        backbone = build_backbone(name, weights=None, train_from=train_from).eval().double()
        _randomise_bn(backbone)
        x = torch.rand(1, 3, 64, 96, dtype=torch.float64)
        with torch.no_grad():
            before = backbone(x)
            folded = fold_frozen_batchnorm(backbone)
            after = backbone(x)
        assert folded > 5
        # trainable stages keep their BatchNorms
        remaining = [m for m in backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert remaining and all(p.requires_grad for m in remaining for p in m.parameters())
        for a, b in zip(before, after, strict=True):
            # float64: folding is exact up to rounding, whatever the activations' scale
            assert ((a - b).abs().max() / a.abs().max()).item() < 1e-10
