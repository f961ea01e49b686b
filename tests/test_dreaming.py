"""Snippets dreamed from one annotated frame: hole filling, geometry, labels, determinism."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from vos_cli.data.dreaming import DreamMotion, FirstFrameDreamer, dilate, fill_holes
from vos_cli.data.transforms import IGNORE_LABEL
from vos_cli.errors import VosError

STILL = DreamMotion(
    offset=0.0,
    speed=0.0,
    acceleration=0.0,
    scale=0.0,
    zoom_speed=0.0,
    rotation=0.0,
    angular_speed=0.0,
    stretch_speed=0.0,
    camera_zoom=0.0,
    camera_speed=0.0,
    camera_zoom_speed=0.0,
)


def red_square_on_green(height: int = 48, width: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.zeros(3, height, width)
    image[1] = 0.8  # green background
    labels = torch.zeros(height, width, dtype=torch.long)
    labels[12:30, 20:40] = 1
    image[:, 12:30, 20:40] = torch.tensor([0.9, 0.1, 0.1]).view(3, 1, 1)
    return image, labels


def test_dilate_grows_a_pixel_into_a_square():
    mask = torch.zeros(7, 7, dtype=torch.bool)
    mask[3, 3] = True
    grown = dilate(mask, 1)
    expected = torch.zeros(7, 7, dtype=torch.bool)
    expected[2:5, 2:5] = True
    assert torch.equal(grown, expected)
    assert torch.equal(dilate(mask, 0), mask)


def test_fill_holes_keeps_known_pixels_and_fills_from_the_surroundings():
    image = torch.zeros(3, 32, 32)
    image[0, :, :16] = 1.0  # red left half, blue right half
    image[2, :, 16:] = 1.0
    hole = torch.zeros(32, 32, dtype=torch.bool)
    hole[10:20, 2:8] = True  # well inside the red half
    filled = fill_holes(image, hole)
    assert torch.equal(filled[:, ~hole], image[:, ~hole])
    inside = filled[:, hole]
    assert float(inside[0].min()) > 0.95 and float(inside[2].max()) < 0.05
    # A constant image is filled with that constant exactly.
    flat = torch.full((3, 20, 30), 0.25)
    assert torch.allclose(fill_holes(flat, hole[:20, :30]), flat, atol=1e-6)


def test_without_motion_every_frame_is_the_annotated_frame():
    image, labels = red_square_on_green()
    dreamer = FirstFrameDreamer(image, labels, num_frames=3, motion=STILL, augment=None)
    images, dreamed = dreamer.sample(np.random.default_rng(0))
    assert images.shape == (3, 3, 48, 64) and dreamed.shape == (3, 48, 64)
    for t in range(3):
        assert torch.equal(dreamed[t], labels)
        assert torch.allclose(images[t], image, atol=1e-5)


def test_ignored_pixels_stay_ignored_and_move_with_the_camera():
    image, labels = red_square_on_green()
    labels[:, :6] = IGNORE_LABEL  # an unlabelled strip at the left border
    still = FirstFrameDreamer(image, labels, num_frames=3, motion=STILL, augment=None)
    _, dreamed = still.sample(np.random.default_rng(0))
    for t in range(3):
        assert torch.equal(dreamed[t], labels)
    pan = dataclasses.replace(STILL, camera_speed=0.05)
    moving = FirstFrameDreamer(image, labels, num_frames=4, motion=pan, augment=None)
    _, dreamed = moving.sample(np.random.default_rng(3))
    ignored = (dreamed == IGNORE_LABEL).flatten(1).sum(1)
    assert int(ignored[0]) == 6 * 48  # the camera starts where the frame was annotated
    assert not torch.equal(dreamed[-1] == IGNORE_LABEL, dreamed[0] == IGNORE_LABEL)
    assert bool((ignored > 0).all())


def test_moving_labels_follow_the_moving_pixels():
    image, labels = red_square_on_green()
    dreamer = FirstFrameDreamer(image, labels, num_frames=6, augment=None)
    for seed in range(4):
        images, dreamed = dreamer.sample(np.random.default_rng(seed))
        red = images[:, 0] > images[:, 1]  # more of the square's colour than the ground's
        inside = dreamed == 1
        # Labelled pixels are the square's colour, and almost all of the square is labelled
        # (bilinear edges may blend a thin rim either way).
        assert float(red[inside].float().mean()) > 0.97
        assert float(inside[red].float().mean()) > 0.9
        assert int(inside[0].sum()) >= 0.3 * int((labels == 1).sum())
    first, _ = dreamer.sample(np.random.default_rng(1))
    moved = (dreamer.sample(np.random.default_rng(1))[1] != labels).any()
    assert bool(moved)  # the default motion does move things
    again, _ = dreamer.sample(np.random.default_rng(1))
    assert torch.equal(first, again)


def test_several_objects_keep_their_ids():
    image, labels = red_square_on_green()
    labels[36:44, 4:14] = 2
    image[:, 36:44, 4:14] = torch.tensor([0.1, 0.1, 0.9]).view(3, 1, 1)
    dreamer = FirstFrameDreamer(image, labels, num_frames=4, augment=None)
    images, dreamed = dreamer.sample(np.random.default_rng(3))
    assert set(torch.unique(dreamed[0]).tolist()) == {0, 1, 2}
    blue = images[:, 2] > 0.5
    assert float(blue[dreamed == 2].float().mean()) > 0.95


@pytest.mark.parametrize(
    "ids, message",
    [((0,), "no object"), ((0, 2), "1..O")],
)
def test_refuses_unusable_label_maps(ids, message):
    image, _ = red_square_on_green()
    labels = torch.zeros(48, 64, dtype=torch.long)
    for k, obj in enumerate(ids):
        labels[k * 10 : k * 10 + 5, :5] = obj
    with pytest.raises(VosError, match=message):
        FirstFrameDreamer(image, labels, num_frames=4)


def test_elastic_warp_starts_at_zero_and_bends_later_frames():
    image, labels = red_square_on_green()
    motion = dataclasses.replace(STILL, elastic=0.05)
    dreamer = FirstFrameDreamer(image, labels, num_frames=4, motion=motion, augment=None)
    images, dreamed = dreamer.sample(np.random.default_rng(0))
    assert torch.equal(dreamed[0], labels)  # no displacement in frame 0
    assert torch.allclose(images[0], image, atol=1e-5)
    assert not torch.equal(dreamed[3], labels)  # the square is bent by frame 3
    red = images[:, 0] > images[:, 1]
    assert float(red[dreamed == 1].float().mean()) > 0.97
