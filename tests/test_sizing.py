"""The network size chosen per video from its first mask (vos_cli/inference/sizing.py)."""

from __future__ import annotations

import numpy as np
import pytest

from vos_cli.inference.sizing import size_for_first_mask, smallest_object_cells


def _mask(height: int, width: int, *areas: int) -> np.ndarray:
    """Objects 1, 2, ... as horizontal runs of ``areas`` pixels on separate rows."""
    mask = np.zeros((height, width), dtype=np.uint8)
    for i, area in enumerate(areas):
        rows, rest = divmod(area, width)
        top = 8 * i * (rows + 1)
        mask[top : top + rows] = i + 1
        mask[top + rows, :rest] = i + 1
    return mask


def test_smallest_object_cells_by_hand():
    # 480x854 at 240p is 240x427 = 102,480 pixels; an object of 4,099 of the 409,920 pixels
    # covers that share of them, in cells of 16x16 pixels.
    mask = _mask(480, 854, 20_000, 4_099)
    expected = 4_099 / 409_920 * (240 * 427) / 256
    assert smallest_object_cells(mask, 240) == pytest.approx(expected)
    assert smallest_object_cells(mask, None) == pytest.approx(4_099 / 256)  # native size
    ignored = mask.copy()
    ignored[-1] = 255  # the ignore label is no object
    assert smallest_object_cells(ignored, 240) == pytest.approx(expected)
    assert smallest_object_cells(np.zeros((4, 4), np.uint8), 240) == float("inf")


def test_small_objects_raise_the_size_and_large_ones_keep_it():
    # 12 cells at 240p on 480x854 are 12 * 256 * 409,920 / 102,480 = 12,288 pixels.
    small = _mask(480, 854, 12_287)
    large = _mask(480, 854, 12_289)
    assert size_for_first_mask(small, 240, 360) == 360
    assert size_for_first_mask(large, 240, 360) == 240
    assert size_for_first_mask(_mask(480, 854, 50_000, 12_287), 240, 360) == 360  # smallest
    assert size_for_first_mask(small, 240, 0) == 240  # the model names no switch
    assert size_for_first_mask(small, 0, 360) == 0  # already at the video's resolution
