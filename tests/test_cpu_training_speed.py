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
