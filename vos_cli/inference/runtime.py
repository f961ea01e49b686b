"""Choosing the device and numeric precision, and the thread settings that suit small CPUs."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import platform
import sys
from collections.abc import Iterator

import torch

from vos_cli.errors import VosError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when a GPU is visible; asking for CUDA without one is a user error."""
    if name not in DEVICES:
        raise VosError(f"unknown device {name!r} (choose one of {', '.join(DEVICES)})")
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise VosError("--device cuda was asked for, but no CUDA GPU is available")
        return torch.device("cuda")
    return torch.device("cpu")


def cpu_supports_bf16() -> bool:
    """True where bf16 matmuls run natively (AVX-512 BF16 or AMX); elsewhere bf16 is emulated."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # older torch
        return False


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """The autocast dtype (float32 means no autocast).

    auto: bf16 on a CPU with native bf16, bf16 on CUDA GPUs that support it (else fp16), fp32
    otherwise.
    """
    if name not in PRECISIONS:
        raise VosError(f"unknown precision {name!r} (choose one of {', '.join(PRECISIONS)})")
    if name == "fp32":
        return torch.float32
    if name == "bf16":
        return torch.bfloat16
    if name == "fp16":
        if device.type == "cpu":
            raise VosError("fp16 is only supported on CUDA; use bf16 or fp32 on the CPU")
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_supports_bf16() else torch.float32


def tune_for_device(device: torch.device) -> None:
    """Let cuDNN pick the fastest kernels on CUDA: a video's (or a training run's) input size is
    fixed, so the one-off search on the first frame pays for itself. Nothing to do on the CPU."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


# mallopt(3) parameters of glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the OS.

    A CPU training step allocates and frees gigabytes of activations. glibc serves blocks over
    32 MB with mmap and unmaps them on free, so every step page-faults all of them in again:
    about a third of a Lite0 training step on 2 cores (3.3 against 2.1 s, about 600,000 page
    faults a step). Served from a heap that is never trimmed, the process stays at its peak
    size instead, which a training run reaches in its first steps anyway. Returns whether the
    settings took (glibc on Linux only; elsewhere the allocator is left alone).
    """
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        no_mmap = libc.mallopt(_M_MMAP_MAX, 0)
        no_trim = libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(2**31 - 1))
    except (OSError, AttributeError):
        return False
    return bool(no_mmap and no_trim)


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    """Autocast to ``dtype`` on ``device``; a no-op for float32."""
    if dtype == torch.float32:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def compile_backbone(model: torch.nn.Module) -> None:
    """``torch.compile`` the backbone, most of a frame's cost; the heads stay eager.

    The heads' batch is the object count, which would recompile them for every count. Compiling
    takes about half a minute on 2 CPU cores (inductor needs a C++ compiler on CPU) and paid off
    for one object in ``vos bench speed --compile``, so it is opt-in.
    """
    try:
        model.backbone.compile()
    except Exception as exc:  # noqa: BLE001 - torch raises many types when compile is unsupported
        raise VosError(f"--compile failed: {exc.__class__.__name__}: {exc}") from None
