"""Where processes meet: the plan, the next job to claim, frame counts and results.

Without torchrun this is a plain in-memory object. Under torchrun it is torch.distributed's
key-value store (the one torchrun's rendezvous serves), used without a process group: a rank
claims the next job with an atomic ``add`` on a counter when it is free, so a long video holds
up only the rank that has it, and no collective ever waits on a rank that is busy or dead.
Ranks need to reach only the store (the master's address and port), not each other.
"""

from __future__ import annotations

import json
import os
import pickle
import time
from datetime import timedelta
from typing import Any

from vos_cli.errors import VosError

_PLAN, _NEXT, _FRAMES, _SLOTS, _RANKS_DONE = "plan", "next", "frames", "slots", "ranks-done"


class Board:
    """One process's view; also the single-process board (rank 0 of 1)."""

    def __init__(self) -> None:
        self.rank = 0
        self.world = 1
        self.local_rank = 0
        self.local_world = 1
        self._plan: Any = None
        self._next = 0
        self._frames = 0
        self._results: list[dict[str, Any]] = []
        self._ranks_done = 0
        self._claims: dict[int, int] = {}

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def publish_plan(self, plan: Any) -> None:
        """Rank 0's plan for every rank (None: rank 0 found problems, nothing runs)."""
        self._plan = plan

    def fetch_plan(self) -> Any:
        return self._plan

    def claim(self) -> int:
        """The index of the next unclaimed job (past the end when none is left)."""
        self._next += 1
        self._claims[self._next - 1] = self.rank
        return self._next - 1

    def claimant(self, index: int) -> int | None:
        """The rank that claimed job ``index``; None if none did."""
        return self._claims.get(index)

    def add_frames(self, count: int) -> None:
        self._frames += count

    def frames(self) -> int:
        return self._frames

    def post(self, result: dict[str, Any]) -> None:
        """A finished job's result (JSON-able), for rank 0's report."""
        self._results.append(result)

    def results(self, start: int) -> list[dict[str, Any]]:
        """Results posted so far, from the ``start``-th on (in the order they were posted)."""
        return self._results[start:]

    def rank_done(self) -> None:
        """This rank claims no more jobs and has posted every result."""
        self._ranks_done += 1

    def ranks_done(self) -> int:
        return self._ranks_done

    def close(self) -> None:
        pass


class StoreBoard(Board):
    """The board in a torch.distributed store, shared by ``world`` ranks."""

    def __init__(self, store: Any, rank: int, world: int, local_rank: int, local_world: int):
        super().__init__()
        import torch.distributed as dist

        self.store = dist.PrefixStore("vos-jobs", store)
        self.rank, self.world = rank, world
        self.local_rank, self.local_world = local_rank, local_world

    def publish_plan(self, plan: Any) -> None:
        self.store.set(_PLAN, pickle.dumps(plan))

    def fetch_plan(self) -> Any:
        # a plain get would give up after the store's timeout; rank 0 may read a long CSV
        while not self.store.check([_PLAN]):
            time.sleep(0.1)
        return pickle.loads(self.store.get(_PLAN))

    def claim(self) -> int:
        index = int(self.store.add(_NEXT, 1)) - 1
        self.store.set(f"claim/{index}", str(self.rank))
        return index

    def claimant(self, index: int) -> int | None:
        key = f"claim/{index}"
        return int(self.store.get(key)) if self.store.check([key]) else None

    def add_frames(self, count: int) -> None:
        if count:
            self.store.add(_FRAMES, count)

    def frames(self) -> int:
        return int(self.store.add(_FRAMES, 0))

    def post(self, result: dict[str, Any]) -> None:
        slot = int(self.store.add(_SLOTS, 1)) - 1
        self.store.set(f"result/{slot}", json.dumps(result))

    def results(self, start: int) -> list[dict[str, Any]]:
        posted = int(self.store.add(_SLOTS, 0))
        found = []
        for slot in range(start, posted):
            key = f"result/{slot}"
            if not self.store.check([key]):  # slot taken, result not written yet
                break
            found.append(json.loads(self.store.get(key)))
        return found

    def rank_done(self) -> None:
        self.store.add(_RANKS_DONE, 1)

    def ranks_done(self) -> int:
        return int(self.store.add(_RANKS_DONE, 0))


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise VosError(f"environment variable {name}={value!r} is not a whole number") from None


def connect_board() -> Board:
    """This process's board: in memory alone, the rendezvous store under torchrun.

    torchrun sets ``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR``/``MASTER_PORT`` (the store) and
    ``LOCAL_RANK``/``LOCAL_WORLD_SIZE`` (this machine's share).
    """
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return Board()
    missing = [v for v in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v)]
    if missing:
        raise VosError(
            f"WORLD_SIZE={world} but {', '.join(missing)} is not set; start with "
            "torchrun --nproc_per_node N -m vos_cli segment --jobs JOBS.csv"
        )
    import torch.distributed as dist

    store, rank, world = next(dist.rendezvous("env://", timeout=timedelta(minutes=10)))
    local_world = _env_int("LOCAL_WORLD_SIZE", world)
    return StoreBoard(store, rank, world, _env_int("LOCAL_RANK", rank), local_world)
