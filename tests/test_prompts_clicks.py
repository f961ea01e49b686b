"""The click simulation against hand-computed cases, and the click maps."""

from __future__ import annotations

import numpy as np
import torch

from vos_cli.prompts.clicks import click_maps, distance_inside, first_click, next_click
from vos_cli.prompts.types import Point


def square(size: int, y0: int, x0: int, side: int) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[y0 : y0 + side, x0 : x0 + side] = True
    return mask


def test_distance_inside_a_full_array_counts_its_edge_as_boundary():
    d = distance_inside(np.ones((5, 5), bool))
    idx = np.arange(5)
    x, y = np.meshgrid(idx, idx)
    expected = np.minimum.reduce([x + 1, 5 - x, y + 1, 5 - y])
    np.testing.assert_allclose(d, expected)


def test_distance_inside_is_euclidean():
    mask = np.ones((7, 7), bool)
    mask[3, 3] = False
    d = distance_inside(mask)
    assert d[3, 3] == 0
    assert d[3, 4] == 1 and d[2, 3] == 1
    np.testing.assert_allclose(d[2, 2], np.sqrt(2), rtol=1e-6)
    np.testing.assert_allclose(d[1, 1], 2.0)  # the array's edge is 2 away, the hole 2*sqrt(2)
    assert not distance_inside(np.zeros((3, 4), bool)).any()


def test_first_click_is_the_centre():
    assert first_click(square(12, 2, 3, 5)) == Point(5, 4, True)
    assert first_click(np.zeros((4, 4), bool)) is None


def test_first_click_on_a_large_object_is_near_its_centre():
    mask = np.zeros((700, 700), bool)
    mask[50:651, 40:641] = True  # 601 x 601: sampled on a coarser grid
    click = first_click(mask)
    assert click is not None and mask[int(click.y), int(click.x)]
    assert abs(click.x - 340) <= 3 and abs(click.y - 350) <= 3


def test_next_click_positive_on_the_missed_part():
    target = square(12, 2, 2, 5)
    assert next_click(target, np.zeros_like(target)) == Point(4, 4, True)


def test_next_click_negative_on_the_wrong_part():
    target = square(20, 2, 2, 5)
    predicted = target | square(20, 12, 12, 5)
    assert next_click(target, predicted) == Point(14, 14, False)


def test_next_click_takes_the_larger_error_region():
    target = square(30, 2, 2, 3) | square(30, 20, 20, 2)  # a 3x3 object part and a 2x2 one
    predicted = square(30, 10, 10, 7)  # a wrong 7x7 area: its centre is the farthest inside
    assert next_click(target, predicted) == Point(13, 13, False)
    target = square(30, 2, 2, 9)
    assert next_click(target, square(30, 20, 20, 3)) == Point(6, 6, True)


def test_equal_regions_go_to_the_positive_click():
    target = square(20, 2, 2, 3)
    predicted = square(20, 12, 12, 3)
    assert next_click(target, predicted) == Point(3, 3, True)


def test_nothing_wrong_ignored_or_not_clickable():
    target = square(20, 2, 2, 5)
    assert next_click(target, target) is None
    extra = square(20, 12, 12, 5)
    assert next_click(target, target | extra, ignore=extra) is None
    assert next_click(target, target | extra, negatives=False) is None


def test_click_maps():
    maps = click_maps([Point(9, 19), Point(0, 0, False)], (0, 10, 40, 50), 40, sigma=2.0)
    assert maps.shape == (2, 40, 40)
    # the click at pixel (9, 19) is at crop pixel (9, 9): its centre is the maximum, 1
    assert torch.argmax(maps[0]).item() == 9 * 40 + 9
    np.testing.assert_allclose(maps[0, 9, 9].item(), 1.0, atol=1e-6)
    assert maps[1].max() < 1e-3  # the negative click lies 10 rows above the crop
    assert not click_maps([], (0, 0, 10, 10), 8, 2.0).any()
