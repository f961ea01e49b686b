"""Snippets dreamed from single frames of real videos: format, source frame, objects, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.test_data_snippets import SIZE, FakeVideo, _check_format
from tests.test_dreaming import STILL
from vos_cli.data.dreamed import DreamedFramesDataset
from vos_cli.data.dreaming import dilate
from vos_cli.data.pasted import PastedVideosDataset
from vos_cli.data.transforms import resize_snippet
from vos_cli.errors import VosError


def test_format_and_determinism():
    videos = [FakeVideo("a"), FakeVideo("b", num=2)]
    ds = DreamedFramesDataset(videos, 5, SIZE, mode="multi", max_objects=3, seed=1)
    for i in range(6):
        _check_format(ds.sample(0, i))
    again = DreamedFramesDataset(videos, 5, SIZE, mode="multi", max_objects=3, seed=1)
    first, second = ds.sample(2, 3), again.sample(2, 3)
    assert first["source"] == second["source"]
    assert torch.equal(first["images"], second["images"])
    assert torch.equal(first["labels"], second["labels"])
    other = ds.sample(2, 4)
    assert not torch.equal(first["images"], other["images"])


def test_still_dream_without_augmentation_repeats_the_named_frame():
    """With no motion and no augmentation every frame is the source frame, resized.

    Only the objects and the pixels beyond the in-painted margin around them (the dreamer's
    ``hole_margin`` of 3 pixels) keep the frame's values; the margin itself is filled.
    """
    video = FakeVideo("a", length=12, num=2)
    ds = DreamedFramesDataset(
        [video], 4, SIZE, mode="multi", max_objects=2, augment=False, motion=STILL
    )
    frames_seen = set()
    for i in range(5):
        s = ds.sample(0, i)
        frame = int(s["source"].rsplit("/", 1)[1])
        frames_seen.add(frame)
        images = torch.from_numpy(video.read_frame(frame)).permute(2, 0, 1)[None]
        labels = torch.from_numpy(video.read_annotation(frame))[None]
        want_images, want_labels = resize_snippet(images, labels, SIZE)
        objects = (want_labels[0] > 0) & (want_labels[0] != 255)
        kept = objects | ~dilate(objects, 3)
        assert kept.float().mean() > 0.5
        for t in range(4):
            torch.testing.assert_close(
                s["images"][t][:, kept], want_images[0][:, kept], atol=1e-5, rtol=0
            )
            assert torch.equal(s["labels"][t], want_labels[0].long())
    assert len(frames_seen) > 1, "frames are drawn from the whole video"


def test_single_mode_keeps_one_object_and_objects_move():
    ds = DreamedFramesDataset([FakeVideo("a", num=3)], 6, SIZE, mode="single", seed=3)
    moved = 0
    for i in range(8):
        s = ds.sample(0, i)
        assert s["num_objects"] == 1
        assert set(s["labels"].unique().tolist()) <= {0, 1, 255}
        moved += int(not torch.equal(s["labels"][0], s["labels"][-1]))
    assert moved >= 6, "dreamed objects move along their paths"


def test_videos_without_objects_are_refused():
    class Empty(FakeVideo):
        def _label(self, i: int) -> np.ndarray:
            return np.zeros((self.h, self.w), dtype=np.uint8)

    ds = DreamedFramesDataset([Empty("e")], 4, SIZE, max_retries=3)
    with pytest.raises(VosError, match="no frame with a visible object"):
        ds.sample(0, 0)
    with pytest.raises(VosError, match="num_frames >= 2"):
        DreamedFramesDataset([FakeVideo("a")], 1, SIZE)
    with pytest.raises(VosError, match="no videos"):
        DreamedFramesDataset([], 4, SIZE)


@pytest.mark.parametrize(
    "kind, dataset_class",
    [("davis16-dreamed", DreamedFramesDataset), ("davis16-pasted", PastedVideosDataset)],
)
def test_config_source_builds_a_dataset_of_its_kind(tmp_path, kind, dataset_class):
    from tests.test_bench_davis import make_davis16
    from vos_cli.train.config import load_config
    from vos_cli.train.datasets import build_training_dataset

    root = make_davis16(tmp_path / "davis", ["a", "b"])
    config = load_config("smoke", [f"data.sources=[{{kind='{kind}', root='{root}', split='val'}}]"])
    dataset = build_training_dataset(config)
    assert isinstance(dataset, dataset_class)
    sample = dataset[0]
    assert sample["images"].shape[0] == config.data.num_frames
    assert sample["source"].startswith(f"{kind}/")
