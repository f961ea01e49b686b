"""The two CPU training speed-ups: fp32 depthwise backward under bf16 autocast, and glibc
keeping freed memory. Both must leave the maths unchanged (or more precise)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from vos_cli.model.efficientnet_lite import Conv2dSame


def _depthwise(seed: int = 0) -> Conv2dSame:
    torch.manual_seed(seed)
    return Conv2dSame(8, 8, 5, dilation=2, groups=8)


def test_trainable_depthwise_conv_runs_in_fp32_and_matches_float64():
    conv = _depthwise()
    x = torch.randn(2, 8, 9, 11, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
    assert y.dtype == torch.float32
    y.square().sum().backward()

    ref = _depthwise().double()
    x64 = x.detach().double().requires_grad_()
    ref(x64).square().sum().backward()
    # fp32 agreement (bf16 would be off by about 1e-2 relative).
    assert torch.allclose(x.grad.double(), x64.grad, rtol=1e-5, atol=1e-5)
    assert torch.allclose(conv.weight.grad.double(), ref.weight.grad, rtol=1e-5, atol=1e-4)


def test_frozen_inference_and_dense_convs_keep_bf16():
    conv = _depthwise()
    x = torch.randn(1, 8, 9, 11)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with torch.no_grad():
            assert conv(x).dtype == torch.bfloat16  # inference
        conv.weight.requires_grad_(False)
        assert conv(x).dtype == torch.bfloat16  # frozen block, no gradient flows
        dense = Conv2dSame(8, 4, 3)
        assert dense(x).dtype == torch.bfloat16  # only depthwise backward is slow in bf16


def test_strided_depthwise_conv_keeps_tf_same_padding_in_fp32_path():
    torch.manual_seed(0)
    conv = Conv2dSame(4, 4, 3, stride=2, groups=4)
    x = torch.randn(1, 4, 7, 10, requires_grad=True)
    expected = conv(x)  # fp32 reference: no autocast
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
    assert y.shape == (1, 4, 4, 5)
    assert torch.allclose(y, expected, atol=1e-6)


_FAULTS_OF_REALLOCATION = """
import ctypes, ctypes.util, resource, sys
from vos_cli.inference.runtime import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
size = 200 * 2**20  # far above glibc's largest mmap threshold (32 MB)
block = libc.malloc(size); ctypes.memset(block, 1, size); libc.free(block)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
block = libc.malloc(size); ctypes.memset(block, 1, size)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="glibc allocator tuning is Linux-only"
)
def test_keep_freed_memory_stops_page_faults_on_reallocation():
    def faults(mode: str) -> int:
        out = subprocess.run(
            [sys.executable, "-c", _FAULTS_OF_REALLOCATION, mode],
            capture_output=True,
            text=True,
            check=True,
        )
        return int(out.stdout.strip())

    kept = faults("keep")
    assert kept < 1_000  # reused pages: no faults
    default = faults("default")
    if default < 10_000:
        pytest.skip("transparent huge pages hide the page faults of the default allocator")
    assert default > 40_000  # 200 MB in 4 KB pages, faulted in again


# --- the dilated stage run on the phases of its dilation ---------------------------------------


def test_space_to_batch_round_trip_and_filler_mask():
    from vos_cli.model.efficientnet_lite import batch_to_space, space_to_batch

    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float64).reshape(2, 3, 5, 7)
    phases, split = space_to_batch(x, 2)
    assert phases.shape == (8, 3, 3, 4)
    # phase (row 1, col 0) of frame 0 holds rows 1, 3 (and a filler row) and columns 0, 2, 4, 6
    assert torch.equal(phases[2 * 2 + 0, 0, :2], x[0, 0, 1::2, 0::2])
    assert split.real is not None and split.real.shape == (8, 1, 3, 4)
    # 5 x 7 real cells per frame, 3 x 4 x 4 cells in its phases
    assert split.real.sum().item() == 2 * 5 * 7
    assert torch.equal(batch_to_space(phases, split), x)
    even, split = space_to_batch(x[:, :, :4, :6], 2)
    assert split.real is None and torch.equal(batch_to_space(even, split), x[:, :, :4, :6])


def _dilated_conv_on_phases(h: int, w: int, kernel: int) -> None:
    from vos_cli.model.efficientnet_lite import MBConvBlock, batch_to_space, space_to_batch

    torch.manual_seed(0)
    block = MBConvBlock(8, 8, kernel, 1, 6, dilation=2).double().eval()
    for bn in (block._bn0, block._bn1, block._bn2):  # BatchNorms that do something
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.bias.data.uniform_(-1, 1)
    x = torch.randn(2, 8, h, w, dtype=torch.float64, requires_grad=True)
    reference = block(x)  # the dilated convolution itself
    weight_grad = torch.autograd.grad(reference.square().sum(), block._depthwise_conv.weight)[0]

    phases, split = space_to_batch(x, 2)
    out = block(phases, split)
    out = block(out, split)  # a second block: filler cells must not leak in
    twice = block(block(x))
    assert torch.allclose(batch_to_space(out, split), twice, atol=1e-12)
    single = batch_to_space(block(space_to_batch(x, 2)[0], split), split)
    assert torch.allclose(single, reference, atol=1e-12)
    grad = torch.autograd.grad(single.square().sum(), block._depthwise_conv.weight)[0]
    assert torch.allclose(grad, weight_grad, atol=1e-10)


@pytest.mark.parametrize(("h", "w", "kernel"), [(15, 27, 5), (8, 14, 3), (9, 6, 5), (1, 3, 3)])
def test_block_on_phases_equals_the_dilated_block(h, w, kernel):
    _dilated_conv_on_phases(h, w, kernel)


def test_lite_backbone_features_identical_with_and_without_the_phase_split(monkeypatch):
    from vos_cli.model import backbones
    from vos_cli.model.backbones import LiteBackbone

    calls = []
    split = backbones.space_to_batch
    monkeypatch.setattr(
        backbones, "space_to_batch", lambda *a: calls.append(1) or split(*a), raising=True
    )

    torch.manual_seed(0)
    backbone = LiteBackbone("lite0", train_from="blocks.11").double().eval()
    for module in backbone.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_var.uniform_(0.5, 2)
    x = torch.rand(1, 3, 240, 432, dtype=torch.float64)  # 15 x 27 at stride 16: filler cells
    backbone.split_phases = False
    expected = backbone(x)
    backbone.split_phases = True
    for got, want in zip(backbone(x), expected, strict=True):
        assert got.shape == want.shape
        assert torch.allclose(got, want, rtol=1e-10, atol=1e-12 * want.abs().max().item())
    assert len(calls) == 1  # trained blocks: split
    with torch.no_grad():  # inference keeps the dilated convolutions
        backbone(x)
    assert len(calls) == 1
