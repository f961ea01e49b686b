"""DAVIS J/F metrics: hand-computed cases, a reference re-statement and end-to-end scoring."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tools.davis_reference_eval import f_measure
from tools.davis_reference_eval import seg2bmap as _ref_bmap_vectorised  # the toolkit's own form
from vos_cli.bench.metrics.driver import evaluate_frame, evaluate_results, evaluate_sequence
from vos_cli.bench.metrics.measures import (
    boundary_f,
    boundary_radius,
    dilate_disk,
    jaccard,
    object_measures,
    seg_to_boundary,
)
from vos_cli.bench.metrics.report import results_table, write_results_csv
from vos_cli.bench.metrics.stats import BenchResult, ObjectScore, db_statistics
from vos_cli.bench.tracking import default_results_dir
from vos_cli.data.davis import load_davis
from vos_cli.errors import VosError


def box(shape: tuple[int, int], y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


# ----------------------------------------------------------------------------- J


def test_jaccard_hand_cases() -> None:
    empty = np.zeros((10, 10), bool)
    full = np.ones((10, 10), bool)
    assert jaccard(empty, empty) == 1.0  # nothing to find, nothing found
    assert jaccard(full, empty) == 0.0
    assert jaccard(empty, full) == 0.0
    one = box((10, 10), 4, 5, 4, 5)
    assert jaccard(one, one) == 1.0
    assert jaccard(one, box((10, 10), 4, 5, 5, 6)) == 0.0
    # 2x2 inside 2x3: 4 / 6
    assert jaccard(box((10, 10), 2, 4, 2, 4), box((10, 10), 2, 4, 2, 5)) == pytest.approx(4 / 6)


def test_jaccard_void_excluded() -> None:
    gt = box((10, 10), 2, 6, 2, 6)  # 16 px
    pred = box((10, 10), 2, 6, 2, 8)  # 24 px, 8 of them in columns 6-7
    void = box((10, 10), 0, 10, 6, 10)
    assert jaccard(gt, pred) == pytest.approx(16 / 24)
    assert jaccard(gt, pred, void) == 1.0
    # all pixels void -> empty union -> 1
    assert jaccard(gt, pred, np.ones((10, 10), bool)) == 1.0


# ----------------------------------------------------------------------------- F


def test_seg_to_boundary_is_offset_towards_origin() -> None:
    seg = box((5, 5), 1, 3, 1, 3)
    expected = np.array(
        [
            [1, 1, 1, 0, 0],
            [1, 0, 1, 0, 0],
            [1, 1, 1, 0, 0],
            [0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0],
        ],
        dtype=bool,
    )
    np.testing.assert_array_equal(seg_to_boundary(seg), expected)
    # A mask covering the whole image has no boundary at all (toolkit quirk, kept on purpose).
    assert not seg_to_boundary(np.ones((6, 7), bool)).any()
    # An object touching the bottom-right image border gets no boundary along the border.
    edge = box((4, 4), 2, 4, 2, 4)
    np.testing.assert_array_equal(
        seg_to_boundary(edge),
        np.array([[0, 0, 0, 0], [0, 1, 1, 1], [0, 1, 0, 0], [0, 1, 0, 0]], dtype=bool),
    )


def test_boundary_radius() -> None:
    assert boundary_radius((480, 854)) == 8  # ceil(0.008 * 979.6)
    assert boundary_radius((10, 10)) == 1
    assert boundary_radius((10, 10), 3) == 3


def test_boundary_f_empty_cases() -> None:
    empty = np.zeros((10, 10), bool)
    full = np.ones((10, 10), bool)
    sq = box((10, 10), 2, 6, 2, 6)
    assert boundary_f(empty, empty) == 1.0  # P = R = 1
    assert boundary_f(sq, empty) == 0.0  # no prediction: P = 1, R = 0
    assert boundary_f(empty, sq) == 0.0  # nothing to find: P = 0, R = 1
    # A full-frame mask has no boundary pixels, so against an empty one both are "empty".
    assert boundary_f(full, empty) == 1.0
    assert boundary_f(sq, sq) == 1.0


def test_boundary_f_square_shift_by_hand() -> None:
    """4x4 square shifted right by 2 in a 10x10 image; tolerance ceil(0.008*14.1) = 1 px.

    Each boundary is the 16-pixel perimeter of a 5x5 ring (rows 1-5; cols 1-5 for the ground
    truth, 3-7 for the prediction). Within a 1-px cross of the other ring: top and bottom rows
    4 pixels each, plus the two side pixels next to those rows -> 10 of 16 both ways.
    """
    gt = box((10, 10), 2, 6, 2, 6)
    pred = box((10, 10), 2, 6, 4, 8)
    assert np.count_nonzero(seg_to_boundary(gt)) == 16
    assert boundary_f(gt, pred) == pytest.approx(10 / 16)
    assert jaccard(gt, pred) == pytest.approx(8 / 24)
    # A 2-pixel tolerance covers the whole shift.
    assert boundary_f(gt, pred, bound_th=2) == 1.0


def test_boundary_f_one_pixel_objects() -> None:
    gt = box((10, 10), 4, 5, 4, 5)  # boundary: the 2x2 block rows 3-4, cols 3-4
    assert boundary_f(gt, gt) == 1.0
    # two columns right: only the 2 left boundary pixels of each lie within 1 px of the other
    assert boundary_f(gt, box((10, 10), 4, 5, 6, 7)) == pytest.approx(0.5)
    assert boundary_f(gt, box((10, 10), 4, 5, 8, 9)) == 0.0


def test_boundary_f_void_zeroed_in_both_masks() -> None:
    gt = box((10, 10), 2, 6, 2, 6)
    pred = box((10, 10), 2, 6, 2, 8)
    void = box((10, 10), 0, 10, 6, 10)
    assert boundary_f(gt, pred) < 1.0
    assert boundary_f(gt, pred, void) == 1.0


# ----------------------------------------------------------------------------- statistics


def test_db_statistics_hand_computed() -> None:
    # n = 10: bin edges round(linspace(1, 10, 5)) - 1 = [0, 2, 5, 7, 9]
    v = [1, 1, 1, 0.9, 0.8, 0.6, 0.4, 0.3, 0.2, 0.1]
    mean, recall, decay = db_statistics(v)
    assert mean == pytest.approx(0.63)
    assert recall == pytest.approx(0.6)  # 6 frames strictly above 0.5
    assert decay == pytest.approx(1.0 - 0.2)  # v[0:3] vs v[7:10] (array_split would say 0.85)

    # n = 5: edges [0, 1, 2, 3, 4] -> v[0:2] vs v[3:5]; 0.5 is not > 0.5
    assert db_statistics([1, 0.5, 0.5, 0.2, 0.0]) == pytest.approx((0.44, 0.2, 0.75 - 0.1))
    # n = 3: edges [0, 1, 1, 2, 2] -> v[0:2] vs v[2:3]
    assert db_statistics([0.9, 0.6, 0.3]) == pytest.approx((0.6, 2 / 3, 0.75 - 0.3))
    assert db_statistics([0.7]) == pytest.approx((0.7, 1.0, 0.0))
    assert all(math.isnan(x) for x in db_statistics([]))


# ----------------------------------------------------------------------------- reference check
# A literal re-statement of the toolkit's definitions (davis2017/metrics.py f_measure with
# skimage.morphology.disk + cv2.dilate, db_eval_iou, utils.db_statistics), written the slow,
# obvious way, to check the fast implementation on random masks.


def _ref_disk(r: int) -> np.ndarray:
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return (yy**2 + xx**2) <= r**2


def _ref_dilate(b: np.ndarray, r: int) -> np.ndarray:
    h, w = b.shape
    padded = np.zeros((h + 2 * r, w + 2 * r), bool)
    padded[r : r + h, r : r + w] = b
    out = np.zeros_like(b)
    for dy, dx in zip(*np.nonzero(_ref_disk(r)), strict=True):
        out |= padded[dy : dy + h, dx : dx + w]
    return out


def _ref_bmap(seg: np.ndarray) -> np.ndarray:
    h, w = seg.shape
    b = np.zeros_like(seg)
    for y in range(h):
        for x in range(w):
            e = seg[y, x + 1] if x + 1 < w else False
            s = seg[y + 1, x] if y + 1 < h else False
            se = seg[y + 1, x + 1] if (x + 1 < w and y + 1 < h) else False
            if y == h - 1 and x == w - 1:
                b[y, x] = False
            elif x == w - 1:
                b[y, x] = seg[y, x] != s
            elif y == h - 1:
                b[y, x] = seg[y, x] != e
            else:
                b[y, x] = seg[y, x] != e or seg[y, x] != s or seg[y, x] != se
    return b


def _ref_f(
    fg: np.ndarray,
    gt: np.ndarray,
    void: np.ndarray,
    th: float = 0.008,
    bmap: Callable[[np.ndarray], np.ndarray] = _ref_bmap,
) -> float:
    """The toolkit's f_measure (void zeroed in both masks, as it does) with the slow dilation."""
    dilate = lambda b, r: _ref_dilate(b.astype(bool), int(r))  # noqa: E731
    return float(f_measure(fg & ~void, gt & ~void, th, dilate=dilate, boundary=bmap))


def _ref_j(gt: np.ndarray, fg: np.ndarray, void: np.ndarray) -> float:
    union = ((gt | fg) & ~void).sum()
    return 1.0 if union == 0 else ((gt & fg) & ~void).sum() / union


def _ref_stats(v: np.ndarray) -> tuple[float, float, float]:
    ids = (np.round(np.linspace(1, len(v), 5) + 1e-10) - 1).astype(np.uint8)
    bins = [v[ids[i] : ids[i + 1] + 1] for i in range(4)]
    return np.nanmean(v), np.nanmean(v > 0.5), np.nanmean(bins[0]) - np.nanmean(bins[3])


def _blobs(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    m = np.zeros(shape, bool)
    for _ in range(rng.integers(0, 4)):
        y, x = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        m[y : y + rng.integers(1, 20), x : x + rng.integers(1, 20)] = True
    return m ^ (rng.random(shape) < 0.02)  # speckle for odd boundaries


def test_matches_reference_restatement_on_random_masks() -> None:
    rng = np.random.default_rng(0)
    for trial in range(30):
        shape = (int(rng.integers(5, 50)), int(rng.integers(5, 150)))  # 1-3 words a row
        gt, fg = _blobs(rng, shape), _blobs(rng, shape)
        void = (rng.random(shape) < 0.05) if trial % 2 else np.zeros(shape, bool)
        th = 0.008 if trial % 3 else 0.05  # radius 1..4
        assert boundary_f(gt, fg, void, th) == pytest.approx(_ref_f(fg, gt, void, th), abs=1e-12)
        assert jaccard(gt, fg, void) == pytest.approx(_ref_j(gt, fg, void), abs=1e-12)
        np.testing.assert_array_equal(seg_to_boundary(fg), _ref_bmap(fg))
        np.testing.assert_array_equal(_ref_bmap_vectorised(fg), _ref_bmap(fg))
        r = int(rng.integers(0, 9))
        np.testing.assert_array_equal(dilate_disk(fg, r), _ref_dilate(fg, r))
    for h, w in [(1, 1), (1, 7), (6, 1), (2, 3), (3, 2)]:  # radius larger than the image
        m = rng.random((h, w)) < 0.3
        for r in (0, 1, 2, 5):
            np.testing.assert_array_equal(dilate_disk(m, r), _ref_dilate(m, r))
        np.testing.assert_array_equal(seg_to_boundary(m), _ref_bmap(m))
    for n in range(1, 120):
        v = rng.random(n)
        assert db_statistics(v) == pytest.approx(_ref_stats(v), abs=1e-12)


def _line(shape: tuple[int, int], y0: int, x0: int, dy: int, dx: int, n: int) -> np.ndarray:
    """A one-pixel-wide line of ``n`` steps (dy, dx) from (y0, x0), clipped to the image."""
    m = np.zeros(shape, bool)
    for i in range(n):
        y, x = y0 + i * dy, x0 + i * dx
        if 0 <= y < shape[0] and 0 <= x < shape[1]:
            m[y, x] = True
    return m


def _tolerance_cases(shape: tuple[int, int], r: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Mask pairs whose boundaries sit on and just past the disk of radius ``r``."""
    h, w = shape
    cy, cx = h // 2, w // 2
    dot = box(shape, cy, cy + 1, cx, cx + 1)
    cases = [
        ("dot vs itself", dot, dot),
        ("dot vs nothing", dot, np.zeros(shape, bool)),
        ("full vs dot", np.ones(shape, bool), dot),
        ("checkerboard", (np.indices(shape).sum(0) % 2) == 0, dot),
        ("horizontal vs vertical line", _line(shape, cy, 2, 0, 1, w), _line(shape, 1, cx, 1, 0, h)),
        (
            "diagonal vs anti-diagonal",
            _line(shape, 0, 0, 1, 1, h),
            _line(shape, 0, w - 1, 1, -1, h),
        ),
        ("line r apart", _line(shape, cy, 0, 0, 1, w), _line(shape, cy + r, 0, 0, 1, w)),
        ("line r+1 apart", _line(shape, cy, 0, 0, 1, w), _line(shape, cy + r + 1, 0, 0, 1, w)),
    ]
    # single pixels at every offset around the disk's rim: inside, on it and just outside
    for dy in range(-r - 1, r + 2):
        for dx in range(-r - 1, r + 2):
            if abs(dy * dy + dx * dx - r * r) <= 2 * r:
                cases.append((f"dot offset {dy},{dx}", dot, np.roll(dot, (dy, dx), (0, 1))))
    # objects touching each border and corner (seg2bmap treats bottom/right specially)
    for y0, y1 in ((0, 3), (h - 3, h), (cy - 2, cy + 2)):
        for x0, x1 in ((0, 4), (w - 4, w), (cx - 2, cx + 2)):
            edge = box(shape, y0, y1, x0, x1)
            shifted = np.roll(edge, (r // 2 + 1, -r), (0, 1))
            cases.append((f"box {y0}:{y1},{x0}:{x1}", edge, shifted))
            cases.append((f"line {y0},{x0}", _line(shape, y0, x0, 0, 1, w), edge))
    return cases


@pytest.mark.parametrize(
    ("shape", "r"),
    [((21, 33), 1), ((24, 30), 3), ((40, 36), 8), ((9, 64), 2), ((20, 130), 3), ((5, 129), 9)],
)
def test_boundary_tolerance_cases_match_reference(shape: tuple[int, int], r: int) -> None:
    """Thin lines, single pixels and border objects: the fast path against the definitions
    (the toolkit's vectorised seg2bmap, itself checked against the pixel loop above)."""
    void = np.zeros(shape, bool)
    for name, gt, pred in _tolerance_cases(shape, r):
        expected = _ref_f(pred, gt, void, th=r, bmap=_ref_bmap_vectorised)
        assert boundary_f(gt, pred, bound_th=r) == pytest.approx(expected, abs=1e-12), name
        j, f = object_measures(gt, pred, r)
        assert (j, f) == pytest.approx((_ref_j(gt, pred, void), expected), abs=1e-12), name
        for m in (gt, pred):
            b = _ref_bmap_vectorised(m)
            np.testing.assert_array_equal(seg_to_boundary(m), b)
            np.testing.assert_array_equal(dilate_disk(b, r), _ref_dilate(b, r))
    for radius in range(0, 12):
        dots = _line(shape, 0, 0, 3, 5, 20) | _line(shape, shape[0] - 1, 0, -2, 3, 20)
        np.testing.assert_array_equal(dilate_disk(dots, radius), _ref_dilate(dots, radius))


def test_dilation_at_word_edges_matches_reference() -> None:
    """Maps are packed 64 pixels to a word: a lone pixel in the last columns of widths around
    64 and 128 (where the row dilation runs into the end of the last word) and at the first."""
    for w in (63, 64, 65, 128):
        for x in (w - 1, w - 2, w - 4, 0):
            m = np.zeros((25, w), bool)  # tall enough for every row of the disk
            m[12, x] = True
            for radius in range(0, 13):
                np.testing.assert_array_equal(dilate_disk(m, radius), _ref_dilate(m, radius))


@pytest.mark.parametrize(("x0", "x1"), [(64, 70), (60, 64), (63, 65), (128, 192), (1, 63)])
def test_objects_ending_at_word_edges_match_reference(x0: int, x1: int) -> None:
    """J and F are computed in a box of whole 64-pixel words: objects whose first or last
    column is a word's first or last one (the box must still hold the boundary beside it)."""
    shape, void = (12, 200), np.zeros((12, 200), bool)
    gt = box(shape, 3, 8, x0, x1)
    for pred in (box(shape, 6, 11, x0, x1), box(shape, 3, 8, x0 + 3, x1 + 3), gt):
        expected = _ref_f(pred, gt, void, th=1, bmap=_ref_bmap_vectorised)
        j, f = object_measures(gt, pred, 1)
        assert (j, f) == pytest.approx((_ref_j(gt, pred, void), expected), abs=1e-12)


def test_davis_sized_frame_matches_reference() -> None:
    """A 480x854 frame (radius 8) with two objects, one touching the border, and void."""
    rng = np.random.default_rng(1)
    shape = (480, 854)
    gt = np.zeros(shape, np.uint8)
    yy, xx = np.indices(shape)
    gt[((yy - 200) / 120) ** 2 + ((xx - 300) / 200) ** 2 <= 1] = 1
    gt[300:, 700:] = 2
    gt[100, 500:800] = 2  # a thin line
    gt[:, 840:] = 255
    pred = np.roll(gt, (4, -9), (0, 1))
    pred[pred == 255] = 0
    pred[rng.random(shape) < 0.001] = 1
    for exclude_void in (False, True):
        j, f = evaluate_frame(gt, pred, 2, exclude_void=exclude_void)
        void = gt == 255 if exclude_void else np.zeros(shape, bool)
        for k in (1, 2):
            gt_k, pred_k = gt == k, pred == k
            assert j[k - 1] == pytest.approx(_ref_j(gt_k, pred_k, void), abs=1e-12)
            expected = _ref_f(pred_k, gt_k, void, bmap=_ref_bmap_vectorised)
            assert f[k - 1] == pytest.approx(expected, abs=1e-12)


# ----------------------------------------------------------------------------- sequences


def test_evaluate_sequence_multi_object_and_missing_object() -> None:
    t, shape = 4, (10, 12)
    gt = np.zeros((t, *shape), np.uint8)
    gt[:, 1:4, 1:4] = 1
    gt[:, 6:9, 6:10] = 2
    pred = gt.copy()
    pred[pred == 2] = 0  # object 2 never predicted: an empty mask, not an error
    scores = evaluate_sequence(gt, pred, 2, name="cows")
    assert scores.j.shape == scores.f.shape == (2, t - 2)  # first and last frame not scored
    np.testing.assert_allclose(scores.j, [[1, 1], [0, 0]])
    np.testing.assert_allclose(scores.f, [[1, 1], [0, 0]])
    rows = scores.object_scores()
    assert [r.name for r in rows] == ["cows_1", "cows_2"]
    assert rows[1].j_mean == 0 and rows[1].f_recall == 0


def test_evaluate_sequence_rejects_ids_beyond_object_count() -> None:
    gt = np.zeros((3, 5, 5), np.uint8)
    gt[:, 1:3, 1:3] = 1
    pred = gt.copy()
    pred[1, 4, 4] = 2
    with pytest.raises(VosError, match="'cows'.*id 2"):
        evaluate_sequence(gt, pred, 1, name="cows")
    # DAVIS 2016: any non-zero predicted id is the object
    scores = evaluate_sequence(gt, pred * 3, 1, name="cows", binary=True)
    assert scores.j[0, 0] == pytest.approx(4 / 5)


def test_evaluate_sequence_void_modes() -> None:
    gt = np.zeros((3, 10, 10), np.uint8)
    gt[:, 2:6, 2:6] = 1
    gt[:, :, 6:] = 255
    pred = np.zeros_like(gt)
    pred[:, 2:6, 2:8] = 1
    # toolkit behaviour: void ends up as background
    assert evaluate_sequence(gt, pred, 1).j[0, 0] == pytest.approx(16 / 24)
    both = evaluate_sequence(gt, pred, 1, exclude_void=True)
    assert both.j[0, 0] == 1.0 and both.f[0, 0] == 1.0


# ----------------------------------------------------------------------------- end to end

_PAL = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [0] * (3 * 252)


def _png(path: Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(ids.astype(np.uint8))
    img.putpalette(_PAL)
    img.save(path)


def _write_dataset(root: Path, results: Path) -> None:
    """Two sequences of 5 frames, 12x16 (F tolerance 1 px), with hand-known scores.

    alpha (3 objects): object 1 perfect; object 2 lost in frame 3 (J = F = [1, 1, 0]);
    object 3 leaves after frame 0 and is hallucinated in frame 2 (J = F = [1, 0, 1]).
    beta (1 object): a 4x4 square predicted 2 px to the right (J = 1/3, F = 10/16 per frame).
    """
    shape = (12, 16)
    for i in range(5):
        g = np.zeros(shape, np.uint8)
        g[0:3, 0:4] = 1
        g[5:9, 8:12] = 2
        if i == 0:
            g[10:12, 0:3] = 3
        p = g.copy()
        if i == 3:
            p[p == 2] = 0
        if i == 2:
            p[10:12, 13:16] = 3
        for name, ids in (("gt", g), ("res", p)):
            base = root / "Annotations" / "480p" if name == "gt" else results
            _png(base / "alpha" / f"{i:05d}.png", ids)
        gb = np.zeros(shape, np.uint8)
        gb[2:6, 2:6] = 1
        pb = np.zeros(shape, np.uint8)
        pb[2:6, 4:8] = 1
        _png(root / "Annotations" / "480p" / "beta" / f"{i:05d}.png", gb)
        _png(results / "beta" / f"{i:05d}.png", pb)
        for seq in ("alpha", "beta"):
            frame = root / "JPEGImages" / "480p" / seq / f"{i:05d}.jpg"
            frame.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (16, 12)).save(frame)
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("alpha\nbeta\n")


def test_evaluate_results_end_to_end(tmp_path: Path) -> None:
    root, results = tmp_path / "davis", tmp_path / "results"
    _write_dataset(root, results)
    seqs = load_davis(root, "val", "2017")

    result = evaluate_results(seqs, results, processes=2)
    serial = evaluate_results(seqs, results, processes=1)
    assert result == serial

    by_name = {o.name: o for o in result.objects}
    assert list(by_name) == ["alpha_1", "alpha_2", "alpha_3", "beta_1"]
    a2, a3, b1 = by_name["alpha_2"], by_name["alpha_3"], by_name["beta_1"]
    assert (a2.j_mean, a2.j_recall, a2.j_decay) == pytest.approx((2 / 3, 2 / 3, 1.0))
    assert (a3.f_mean, a3.f_recall, a3.f_decay) == pytest.approx((2 / 3, 2 / 3, -0.5))
    assert (b1.j_mean, b1.j_recall, b1.f_mean, b1.f_recall) == pytest.approx((1 / 3, 0, 10 / 16, 1))

    g = result.global_metrics()
    f_mean = (1 + 2 / 3 + 2 / 3 + 10 / 16) / 4
    expected = {
        "J&F-Mean": (2 / 3 + f_mean) / 2,
        "J-Mean": 2 / 3,
        "J-Recall": 7 / 12,
        "J-Decay": 0.125,
        "F-Mean": f_mean,
        "F-Recall": 10 / 12,
        "F-Decay": 0.125,
    }
    assert g == pytest.approx(expected)

    gpath, spath = write_results_csv(result, tmp_path / "out", "val")
    assert gpath.name == "global_results-val.csv"
    assert gpath.read_text() == (
        "J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay\n"
        "0.703,0.667,0.583,0.125,0.740,0.833,0.125\n"
    )
    assert spath.read_text() == (
        "Sequence,J-Mean,F-Mean\n"
        "alpha_1,1.000,1.000\n"
        "alpha_2,0.667,0.667\n"
        "alpha_3,0.667,0.667\n"
        "beta_1,0.333,0.625\n"
    )
    assert sorted(p.name for p in gpath.parent.iterdir()) == [
        "global_results-val.csv",
        "per-sequence_results-val.csv",
    ]  # no temp files left behind


def test_results_table_renders() -> None:
    from rich.console import Console

    result = BenchResult([ObjectScore("cows", 1, 0.5, 0.5, 0.1, 0.7, 0.9, 0.0)])
    console = Console(width=120, record=True)
    console.print(results_table(result, "val"))
    text = console.export_text()
    assert "J&F-Mean" in text and "0.600" in text and "cows_1" in text


def test_davis2016_binary_end_to_end(tmp_path: Path) -> None:
    root, results = tmp_path / "davis", tmp_path / "res"
    for i in range(3):
        ann = np.zeros((8, 8), np.uint8)
        ann[2:5, 2:5] = 255  # 2016: 255 is the object
        Image.fromarray(ann).save(_mk(root / "Annotations" / "480p" / "bear" / f"{i:05d}.png"))
        Image.new("RGB", (8, 8)).save(_mk(root / "JPEGImages" / "480p" / "bear" / f"{i:05d}.jpg"))
        Image.fromarray(ann).save(_mk(results / "bear" / f"{i:05d}.png"))  # 0/255 results too
    (root / "ImageSets" / "480p").mkdir(parents=True)
    (root / "ImageSets" / "480p" / "val.txt").write_text(
        "".join(
            f"/JPEGImages/480p/bear/{i:05d}.jpg /Annotations/480p/bear/{i:05d}.png\n"
            for i in range(3)
        )
    )
    result = evaluate_results(load_davis(root, "val", "2016"), results, processes=1)
    assert result.global_metrics()["J&F-Mean"] == 1.0


def _mk(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


# ----------------------------------------------------------------------------- bad input


def test_results_missing_sequence_frames_and_ids(tmp_path: Path) -> None:
    root, results = tmp_path / "davis", tmp_path / "results"
    _write_dataset(root, results)
    seqs = load_davis(root, "val", "2017")

    with pytest.raises(VosError, match="does not exist"):
        evaluate_results(seqs, tmp_path / "nothing")

    (results / "alpha" / "00002.png").unlink()
    (results / "beta" / "00001.png").unlink()
    (results / "beta" / "00004.png").unlink()  # last frame is not scored: not required
    with pytest.raises(VosError) as err:
        evaluate_results(seqs, results)
    assert "alpha/00002.png" in str(err.value) and "beta/00001.png" in str(err.value)
    assert "00004" not in str(err.value)

    for f in (results / "beta").iterdir():
        f.unlink()
    (results / "beta").rmdir()
    with pytest.raises(VosError, match="sequence folders: beta"):
        evaluate_results(seqs, results)

    _write_dataset(tmp_path / "d2", tmp_path / "r2")
    bad = np.zeros((12, 16), np.uint8)
    bad[0, 0] = 4  # alpha has 3 objects
    _png(tmp_path / "r2" / "alpha" / "00003.png", bad)
    with pytest.raises(VosError, match=r"'alpha'.*id 4.*3 object"):
        evaluate_results(load_davis(tmp_path / "d2", "val", "2017"), tmp_path / "r2")


def test_results_wrong_size(tmp_path: Path) -> None:
    root, results = tmp_path / "davis", tmp_path / "results"
    _write_dataset(root, results)
    _png(results / "beta" / "00002.png", np.zeros((6, 8), np.uint8))
    with pytest.raises(VosError, match=r"00002\.png is 8x6"):
        evaluate_results(load_davis(root, "val", "2017"), results, processes=1)


def test_split_list_file_names_csvs_by_stem(tmp_path: Path) -> None:
    """``--split my/list.txt`` (a list file of one's own) writes ``global_results-list.csv``."""
    result = BenchResult([ObjectScore("cows", 1, 0.5, 0.5, 0.1, 0.7, 0.9, 0.0)])
    gpath, spath = write_results_csv(result, tmp_path, str(tmp_path / "lists" / "mine.txt"))
    assert (gpath.name, spath.name) == ("global_results-mine.csv", "per-sequence_results-mine.csv")
    assert default_results_dir("davis16", "/x/mine.txt") == Path("results/davis16-mine")


def test_eval_only_does_without_torch(tmp_path: Path) -> None:
    """Scoring imports no torch: importing it took longer than scoring DAVIS 2016 train+val."""
    root, results = tmp_path / "davis", tmp_path / "results"
    _write_dataset(root, results)
    code = (
        "import sys\n"
        "from vos_cli.bench.davis import run_davis_bench\n"
        f"report = run_davis_bench({str(root)!r}, dataset='davis17', split='val', "
        f"results_dir={str(results)!r}, eval_only=True, processes=1)\n"
        "assert report.result is not None\n"
        "print('torch' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
