"""Sharding `vos bench` over torch.distributed ranks (gloo, 2 CPU processes)."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import traceback
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vos_cli.bench.distributed import (
    DistContext,
    gather_outcomes,
    init_distributed,
    run_on_main,
)
from vos_cli.errors import VosError
from vos_cli.io.masks import DAVIS_PALETTE

H, W, T = 48, 64, 3
SEQS = {"aa": 2, "bb": 1, "cc": 1}


def test_shard_round_robin() -> None:
    items = list("abcde")
    assert DistContext(0, 2).shard(items) == ["a", "c", "e"]
    assert DistContext(1, 2).shard(items) == ["b", "d"]
    assert DistContext().shard(items) == items
    assert not DistContext().active and DistContext(0, 2).is_main


def test_single_process_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = init_distributed(torch.device("cpu"))
    assert ctx == DistContext()
    assert gather_outcomes(ctx, lambda: 3) == [3]
    assert run_on_main(ctx, lambda: "x") == "x"
    with pytest.raises(VosError, match="^boom$"):
        gather_outcomes(ctx, lambda: (_ for _ in ()).throw(VosError("boom")))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(VosError, match="torchrun"):
        init_distributed(torch.device("cpu"))


def _make_davis(root: Path, empty_first: str | None = None) -> None:
    for name, n_obj in SEQS.items():
        fdir, adir = root / "JPEGImages/480p" / name, root / "Annotations/480p" / name
        fdir.mkdir(parents=True)
        adir.mkdir(parents=True)
        for t in range(T):
            ids = np.zeros((H, W), np.uint8)
            for k in range(1, n_obj + 1):
                ids[4 + 20 * (k - 1) : 18 + 20 * (k - 1), 6 + 2 * t : 26 + 2 * t] = k
            if name == empty_first and t == 0:
                ids[:] = 0
            rgb = np.full((H, W, 3), 30, np.uint8)
            rgb[ids > 0] = (200, 60, 60)
            Image.fromarray(rgb).save(fdir / f"{t:05d}.jpg")
            img = Image.fromarray(ids, mode="P")
            img.putpalette(DAVIS_PALETTE.tobytes())
            img.save(adir / f"{t:05d}.png")
    (root / "ImageSets/2017").mkdir(parents=True)
    (root / "ImageSets/2017/val.txt").write_text("\n".join(SEQS) + "\n")


def _rank_main(rank: int, port: int, root: str, results: str, weights: str, out: str) -> None:
    """One torchrun-like rank: env:// rendezvous, then the library call the CLI makes."""
    import torch

    torch.set_num_threads(1)
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE="2",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    from vos_cli.bench.davis import run_davis_bench
    from vos_cli.bench.tracking import TrackerSettings

    record: dict = {}
    try:
        report = run_davis_bench(
            Path(root),
            results_dir=Path(results),
            weights=Path(weights),
            settings=TrackerSettings("cpu", "fp32"),
            processes=1,
        )
        record = {
            "is_main": report.is_main,
            "scored": None if report.result is None else len(report.result.objects),
            "timed": None
            if report.timing is None
            else [t.sequence for t in report.timing.sequences],
            "processes": None if report.timing is None else report.timing.processes,
        }
    except VosError as exc:
        record = {"error": str(exc)}
    except BaseException:
        record = {"crash": traceback.format_exc()}
    Path(out).write_text(json.dumps(record))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_two_ranks(tmp_path: Path, root: Path, weights: Path) -> list[dict]:
    ctx = multiprocessing.get_context("spawn")
    port = _free_port()
    outs = [tmp_path / f"rank{r}.json" for r in range(2)]
    procs = [
        ctx.Process(
            target=_rank_main,
            args=(r, port, str(root), str(tmp_path / "res"), str(weights), str(outs[r])),
        )
        for r in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        if p.is_alive():
            p.kill()
            pytest.fail("a rank hung")
    return [json.loads(o.read_text()) for o in outs]


@pytest.mark.slow
def test_two_ranks_shard_and_rank0_scores(tmp_path: Path, tiny_model_path: Path) -> None:
    root = tmp_path / "davis"
    _make_davis(root)
    main, other = _run_two_ranks(tmp_path, root, tiny_model_path)
    assert "crash" not in main and "crash" not in other, main.get("crash") or other.get("crash")
    assert main["is_main"] and not other["is_main"]
    assert main["scored"] == 4  # aa_1, aa_2, bb_1, cc_1
    assert main["timed"] == ["aa", "bb", "cc"] and main["processes"] == 2
    assert other["scored"] is None
    res = tmp_path / "res"
    for name in SEQS:
        assert sorted(p.name for p in (res / name).glob("*.png")) == [
            f"{t:05d}.png" for t in range(T)
        ]
    rows = (res / "per-sequence_results-val.csv").read_text().split()
    assert [r.split(",")[0] for r in rows[1:]] == ["aa_1", "aa_2", "bb_1", "cc_1"]
    assert len((res / "timing-val.csv").read_text().split()) == 4


@pytest.mark.slow
def test_an_error_on_one_rank_reaches_every_rank(tmp_path: Path, tiny_model_path: Path) -> None:
    root = tmp_path / "davis"
    _make_davis(root, empty_first="bb")  # bb is rank 1's sequence
    main, other = _run_two_ranks(tmp_path, root, tiny_model_path)
    for record in (main, other):
        assert "error" in record, record
        assert record["error"].startswith("rank 1: sequence bb:")
