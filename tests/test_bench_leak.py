"""Leak measures against hand-counted pixels, and through `vos bench davis16`'s library call."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from vos_cli.bench.leak import mean_leak, sequence_leak, write_leak_csv


def _frames(n: int, shape=(4, 6)) -> list[np.ndarray]:
    return [np.zeros(shape, np.uint8) for _ in range(n)]


def test_false_positive_area_missed_share_and_quarters_by_hand():
    gt, pred = _frames(4), _frames(4)
    for t in range(4):
        gt[t][0, 0:4] = 1  # a 4-pixel object in every frame
        pred[t][0, 0:4] = 1
    pred[2][1, 0:2] = 1  # frame 2: 2 pixels leaked
    pred[3][1, 0:6] = 1  # frame 3: 6 pixels leaked
    pred[3][0, 3] = 0  # ... and 1 object pixel missed
    gt[1][3, 5] = 255  # a void pixel, claimed: not counted
    pred[1][3, 5] = 1
    (score,) = sequence_leak(gt, pred, 1, "seq")
    assert score.name == "seq"
    assert score.fp_area == pytest.approx((2 + 6) / 16)
    assert score.missed == pytest.approx(1 / 16)
    # One frame a quarter: frame 0 is exact; frame 3 has J = 3 / (4 + 6) = 0.3.
    assert score.j_first == pytest.approx(1.0)
    assert score.j_last == pytest.approx(0.3)


def test_each_object_is_measured_and_named_like_the_per_sequence_csv(tmp_path):
    gt, pred = _frames(2), _frames(2)
    for t in range(2):
        gt[t][0, :2] = 1
        gt[t][2, :2] = 2
        pred[t][0, :2] = 1
        pred[t][2, :4] = 2  # object 2 claims 2 pixels too many
    scores = sequence_leak(gt, pred, 2, "two")
    assert [s.name for s in scores] == ["two_1", "two_2"]
    assert [s.fp_area for s in scores] == [0.0, 1.0]
    assert mean_leak(scores).fp_area == pytest.approx(0.5)
    path = write_leak_csv(scores, tmp_path / "leak.csv")
    rows = list(csv.reader(path.open()))
    assert rows[0][:2] == ["Sequence", "FP-Area"]
    assert rows[-1][:2] == ["mean", "0.500"]
