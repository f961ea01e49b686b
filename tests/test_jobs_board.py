"""The board ranks share jobs through: claims, frame counts, results, the plan (in-process)."""

from __future__ import annotations

import pytest
import torch.distributed as dist

from vos_cli.errors import VosError
from vos_cli.jobs.board import Board, StoreBoard, connect_board


def _two_ranks() -> tuple[StoreBoard, StoreBoard]:
    store = dist.HashStore()
    return StoreBoard(store, 0, 2, 0, 2), StoreBoard(store, 1, 2, 1, 2)


def test_ranks_claim_each_job_once_in_order_as_they_free_up():
    a, b = _two_ranks()
    claims = [a.claim(), b.claim(), b.claim(), a.claim(), b.claim()]
    assert claims == [0, 1, 2, 3, 4]
    assert [a.claimant(i) for i in range(5)] == [0, 1, 1, 0, 1]
    assert a.claimant(5) is None


def test_results_frames_and_finished_ranks_reach_rank_0():
    a, b = _two_ranks()
    b.post({"index": 1})
    a.post({"index": 0})
    b.add_frames(30)
    a.add_frames(12)
    assert a.results(0) == [{"index": 1}, {"index": 0}]
    assert a.results(1) == [{"index": 0}]
    assert a.frames() == 42
    b.rank_done()
    assert a.ranks_done() == 1
    a.rank_done()
    assert b.ranks_done() == 2


def test_the_plan_goes_from_rank_0_to_the_others():
    a, b = _two_ranks()
    a.publish_plan(["job"])
    assert b.fetch_plan() == ["job"]


def test_alone_the_board_is_in_memory(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    board = connect_board()
    assert type(board) is Board and board.is_main and board.world == 1
    assert [board.claim(), board.claim()] == [0, 1]
    board.post({"index": 0})
    assert board.results(0) == [{"index": 0}]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(VosError, match="torchrun"):
        connect_board()
