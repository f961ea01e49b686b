"""Sharding a benchmark across processes started by ``torchrun`` (torch.distributed).

Each rank segments the sequences ``i`` with ``i % world == rank``; rank 0 then scores the shared
results folder and writes the CSVs. Every collective here is reached by every rank even when one
of them failed, so a user error on one rank is reported by all of them instead of leaving the
others blocked in a barrier until the timeout.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from vos_cli.errors import VosError

if TYPE_CHECKING:
    import torch

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world`` (1 and 0 without torchrun)."""

    rank: int = 0
    world: int = 1
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's share: items ``i`` with ``i % world == rank`` (round robin, so ranks
        get similar mixes of long and short sequences from a sorted list)."""
        return [item for i, item in enumerate(items) if i % self.world == self.rank]


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise VosError(f"environment variable {name}={value!r} is not a whole number") from None


def world_size_from_env() -> int:
    """``WORLD_SIZE`` as set by torchrun; 1 when unset."""
    return _env_int("WORLD_SIZE", 1)


def init_distributed(device: torch.device | None) -> DistContext:
    """Join the process group when started by torchrun with more than one process.

    Backend: nccl for CUDA, gloo on the CPU and for ``device`` None (scoring only, which
    without torchrun does not even import torch). On CUDA each rank takes GPU ``LOCAL_RANK``,
    so ``--nproc_per_node N`` spreads over N GPUs. A group that already exists is reused (and
    then left for its creator to destroy).
    """
    world = world_size_from_env()
    if world <= 1:
        return DistContext()
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        raise VosError(f"WORLD_SIZE={world} but this torch build has no torch.distributed")
    if dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), initialized_here=False)
    missing = [v for v in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v)]
    if missing:
        raise VosError(
            f"WORLD_SIZE={world} but {', '.join(missing)} is not set; start with "
            "torchrun --nproc_per_node N vos bench ..."
        )
    backend = "gloo"
    if device is not None and device.type == "cuda":
        local_rank = _env_int("LOCAL_RANK", 0)
        if local_rank >= torch.cuda.device_count():
            raise VosError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPU(s) are visible"
            )
        torch.cuda.set_device(local_rank)
        backend = "nccl"
    dist.init_process_group(backend=backend)
    return DistContext(dist.get_rank(), dist.get_world_size(), initialized_here=True)


def shutdown(ctx: DistContext) -> None:
    """Destroy the process group if this module created it."""
    if ctx.initialized_here:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def all_gather(ctx: DistContext, obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order, on every rank (just ``[obj]`` without torchrun)."""
    if not ctx.active:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * ctx.world
    dist.all_gather_object(out, obj)
    return out


def barrier(ctx: DistContext) -> None:
    if ctx.active:
        import torch.distributed as dist

        dist.barrier()


def run_on_main(ctx: DistContext, func: Callable[[], R]) -> R | None:
    """Run ``func`` on rank 0 only; its VosError is raised on every rank.

    Used for steps that must happen once before the others go on (checking and creating the
    results folder): the other ranks wait for the outcome instead of racing rank 0.
    """
    result: R | None = None
    error: tuple[str, int] | None = None
    if ctx.is_main:
        try:
            result = func()
        except VosError as exc:
            error = (str(exc), exc.exit_code)
    if ctx.active:
        import torch.distributed as dist

        box: list[Any] = [error]
        dist.broadcast_object_list(box, src=0)
        error = box[0]
    if error is not None:
        raise _error(*error)
    return result


def _error(message: str, exit_code: int) -> VosError:
    """A VosError rebuilt on another rank: the message and exit code travel, not the class."""
    error = VosError(message)
    error.exit_code = exit_code
    return error


def gather_outcomes(ctx: DistContext, func: Callable[[], R]) -> list[R]:
    """Run ``func`` on every rank and collect the results on all of them, in rank order.

    A VosError on any rank is re-raised on every rank (naming the rank), after the collective,
    so no rank is left waiting for one that gave up.
    """
    value: R | None = None
    error: tuple[str, int] | None = None
    try:
        value = func()
    except VosError as exc:
        if not ctx.active:
            raise
        error = (str(exc), exc.exit_code)
    outcomes = all_gather(ctx, (value, error))
    failures = [(rank, err) for rank, (_, err) in enumerate(outcomes) if err is not None]
    if failures:
        rank, (message, exit_code) = failures[0]
        raise _error(f"rank {rank}: {message}" if ctx.active else message, exit_code)
    return [v for v, _ in outcomes]
