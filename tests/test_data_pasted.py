"""Snippets pasting one video's objects over another's frames: compositing by hand, the dataset.

That a config source of kind `davis16-pasted` builds one is tested with the dreamed kind, in
test_data_dreamed.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from tests.test_data_snippets import SIZE, FakeVideo, _check_format
from vos_cli.data.pasted import PastedVideosDataset, paste_layer
from vos_cli.errors import VosError


@dataclass
class TintedVideo(FakeVideo):
    """A FakeVideo whose blue channel is one value for the whole video, to tell videos apart."""

    blue: int = 0

    def read_frame(self, i: int) -> np.ndarray:
        frame = super().read_frame(i)
        frame[..., 2] = self.blue
        return frame


def _layer(t: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    scene = torch.full((t, 3, 8, 8), 0.25)
    scene_labels = torch.zeros(t, 8, 8, dtype=torch.long)
    scene_labels[:, 0, :] = 255  # ignore row
    scene_labels[:, 6:, 6:] = 1  # the scene's own object
    layer = torch.full((t, 3, 8, 8), 0.75)
    layer_labels = torch.zeros(t, 8, 8, dtype=torch.long)
    layer_labels[:, 2:6, 2:6] = 1
    return scene, scene_labels, layer, layer_labels


def test_paste_at_full_scale_without_feather_is_a_hard_cut():
    scene, scene_labels, layer, layer_labels = _layer()
    images, labels = paste_layer(scene, scene_labels, layer, layer_labels, 1.0, (0, 0), 0)
    want = torch.full((2, 3, 8, 8), 0.25)
    want[:, :, 2:6, 2:6] = 0.75
    torch.testing.assert_close(images, want)
    want_labels = torch.zeros(2, 8, 8, dtype=torch.long)
    want_labels[:, 0, :] = 255
    want_labels[:, 2:6, 2:6] = 1  # the scene's object (bottom right) became background
    assert torch.equal(labels, want_labels)


def test_paste_at_half_scale_lands_at_the_offset():
    scene, scene_labels, layer, layer_labels = _layer()
    images, labels = paste_layer(scene, scene_labels, layer, layer_labels, 0.5, (4, 1), 0)
    # The 8x8 layer becomes 4x4 at rows 4-7, columns 1-4; its 4x4 object becomes 2x2 at (5, 2).
    want_labels = torch.zeros(2, 8, 8, dtype=torch.long)
    want_labels[:, 0, :] = 255
    want_labels[:, 5:7, 2:4] = 1
    assert torch.equal(labels, want_labels)
    torch.testing.assert_close(images[:, :, 5:7, 2:4], torch.full((2, 3, 2, 2), 0.75))
    torch.testing.assert_close(images[:, :, :4], torch.full((2, 3, 4, 8), 0.25))


def test_feathered_edge_blends_and_labels_follow_the_half_level():
    scene, scene_labels, layer, layer_labels = _layer(1)
    images, labels = paste_layer(scene, scene_labels, layer, layer_labels, 1.0, (0, 0), 1)
    # 3x3 box filter of the 4x4 square: 1 inside, 6/9 on an edge's middle, 4/9 at a corner.
    torch.testing.assert_close(images[0, 0, 3, 3], torch.tensor(0.75))
    torch.testing.assert_close(images[0, 0, 2, 3], torch.tensor(0.25 + 0.5 * 6 / 9))
    torch.testing.assert_close(images[0, 0, 2, 2], torch.tensor(0.25 + 0.5 * 4 / 9))
    torch.testing.assert_close(images[0, 0, 1, 3], torch.tensor(0.25 + 0.5 * 3 / 9))
    assert labels[0, 2, 3] == 1 and labels[0, 2, 2] == 0 and labels[0, 1, 3] == 0
    assert labels[0, 3, 3] == 1


def test_paste_refuses_an_offset_outside_the_frame():
    scene, scene_labels, layer, layer_labels = _layer()
    with pytest.raises(ValueError, match="outside"):
        paste_layer(scene, scene_labels, layer, layer_labels, 0.5, (5, 0))


def test_dataset_pastes_one_videos_object_over_another_video():
    blues = {"a": 40, "b": 120, "c": 200}
    videos = [TintedVideo(name, blue=b) for name, b in blues.items()]
    ds = PastedVideosDataset(videos, 5, SIZE, augment=False, scale_range=(1.0, 1.0), feather=0)
    pairs = set()
    for i in range(9):
        s = ds.sample(0, i)
        _check_format(s)
        assert s["num_objects"] == 1
        layer_name, scene_name = s["source"].split("/", 1)[1].split("+")
        assert layer_name != scene_name
        pairs.add((layer_name, scene_name))
        blue = s["images"][:, 2] * 255
        obj, bg = s["labels"] == 1, s["labels"] == 0
        torch.testing.assert_close(blue[obj], torch.full_like(blue[obj], blues[layer_name]))
        torch.testing.assert_close(blue[bg], torch.full_like(blue[bg], blues[scene_name]))
    assert len(pairs) >= 3, "many pairs of videos"


def test_dataset_is_deterministic_and_objects_keep_their_motion():
    videos = [FakeVideo("a", num=2), FakeVideo("b", num=1)]
    ds = PastedVideosDataset(videos, 5, SIZE, seed=4)
    again = PastedVideosDataset(videos, 5, SIZE, seed=4)
    first, second = ds.sample(1, 2), again.sample(1, 2)
    assert first["source"] == second["source"]
    assert torch.equal(first["images"], second["images"])
    assert torch.equal(first["labels"], second["labels"])
    moved = sum(
        int(not torch.equal(ds.sample(0, i)["labels"][0], ds.sample(0, i)["labels"][-1]))
        for i in range(6)
    )
    assert moved >= 5, "the pasted objects move as in their own video"


def test_dataset_refuses_a_single_video_and_bad_scales():
    with pytest.raises(VosError, match="two videos"):
        PastedVideosDataset([FakeVideo("a")], 4, SIZE)
    with pytest.raises(VosError, match="scale_range"):
        PastedVideosDataset([FakeVideo("a"), FakeVideo("b")], 4, SIZE, scale_range=(0.5, 1.5))
