"""Snippet sampling: format, object selection, determinism, mixing, DAVIS compatibility."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from vos_cli.data.snippets import (
    MixedDataset,
    VideoSnippetDataset,
    temporal_indices,
)
from vos_cli.errors import VosError

SIZE = (32, 48)


@dataclass
class FakeVideo:
    """In-memory video: ``num`` squares moving right, object k absent before ``appear[k]``."""

    name: str
    length: int = 12
    num: int = 3
    appear: tuple[int, ...] = ()
    h: int = 56
    w: int = 64

    def __len__(self) -> int:
        return self.length

    def _label(self, i: int) -> np.ndarray:
        label = np.zeros((self.h, self.w), dtype=np.uint8)
        for k in range(1, self.num + 1):
            if self.appear and i < self.appear[k - 1]:
                continue
            y, x = 4 + 11 * (k - 1), (2 + i * 2 + 7 * k) % (self.w - 10)
            label[y : y + 9, x : x + 9] = k
        label[-2:, :] = 255
        return label

    def read_frame(self, i: int) -> np.ndarray:
        lab = self._label(i)
        frame = np.zeros((self.h, self.w, 3), dtype=np.uint8)
        frame[..., 0] = lab * 60
        frame[..., 1] = i * 10
        return frame

    def read_annotation(self, i: int) -> np.ndarray:
        return self._label(i)

    def num_objects(self) -> int:
        return self.num


def _check_format(s, t=5, size=SIZE):
    assert set(s) == {"images", "labels", "num_objects", "source"}
    assert s["images"].shape == (t, 3, *size) and s["images"].dtype == torch.float32
    assert s["labels"].shape == (t, *size) and s["labels"].dtype == torch.int64
    assert float(s["images"].min()) >= 0.0 and float(s["images"].max()) <= 1.0
    num = s["num_objects"]
    assert isinstance(num, int) and num >= 1
    values = set(s["labels"].unique().tolist())
    assert values <= set(range(num + 1)) | {255}
    first = set(s["labels"][0].unique().tolist())
    assert set(range(1, num + 1)) <= first, "every object is visible in frame 0"
    assert isinstance(s["source"], str)


def test_temporal_indices_fit_and_reflect():
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = temporal_indices(20, 8, rng, max_stride=3)
        assert idx.min() >= 0 and idx.max() < 20
        assert len(set(np.diff(idx).tolist())) == 1 and np.diff(idx)[0] >= 1
    idx = temporal_indices(3, 8, rng)
    assert idx.min() >= 0 and idx.max() <= 2
    assert np.all(np.abs(np.diff(idx)) == 1), "short videos play forth and back"
    assert np.all(temporal_indices(1, 4, rng) == 0)


@pytest.mark.parametrize("augment", [True, False])
def test_single_mode_one_object(augment):
    ds = VideoSnippetDataset(
        [FakeVideo("a"), FakeVideo("b", length=3)],
        5,
        SIZE,
        "single",
        augment=augment,
        seed=1,
        samples_per_epoch=6,
        name="fake",
    )
    assert len(ds) == 6
    for i in range(len(ds)):
        s = ds[i]
        _check_format(s)
        assert s["num_objects"] == 1
        assert 1 in s["labels"][0]
        assert s["source"].startswith("fake/")


def test_multi_mode_ids_compacted():
    ds = VideoSnippetDataset(
        [FakeVideo("a", num=4)],
        5,
        SIZE,
        "multi",
        max_objects=2,
        augment=False,
        seed=3,
        samples_per_epoch=5,
    )
    for i in range(5):
        s = ds[i]
        _check_format(s)
        assert s["num_objects"] == 2
        assert set(s["labels"].unique().tolist()) <= {0, 1, 2, 255}


def test_objects_absent_in_first_frame_are_not_chosen():
    video = FakeVideo("late", length=10, num=2, appear=(0, 8))
    ds = VideoSnippetDataset(
        [video], 4, SIZE, "multi", max_objects=3, augment=False, seed=0, samples_per_epoch=10
    )
    for i in range(10):
        s = ds[i]
        _check_format(s, t=4)
        assert s["num_objects"] == 1  # object 2 appears later: background, never a target
        assert set(s["labels"].unique().tolist()) <= {0, 1, 255}


def test_empty_videos_raise_after_bounded_retries():
    ds = VideoSnippetDataset(
        [FakeVideo("empty", num=0)], 4, SIZE, max_retries=3, samples_per_epoch=1
    )
    with pytest.raises(VosError):
        ds[0]


def test_determinism_by_seed_epoch_index():
    videos = [FakeVideo("a"), FakeVideo("b")]
    a = VideoSnippetDataset(videos, 5, SIZE, "multi", 3, seed=7, samples_per_epoch=4)
    b = VideoSnippetDataset(videos, 5, SIZE, "multi", 3, seed=7, samples_per_epoch=4)
    b.set_epoch(2)
    b[1]  # unrelated draws must not influence other samples
    for i in (0, 3):
        x, y = a.sample(2, i), b.sample(2, i)
        assert torch.equal(x["images"], y["images"]) and torch.equal(x["labels"], y["labels"])
    a.set_epoch(2)
    assert torch.equal(a[3]["images"], b.sample(2, 3)["images"])
    assert not torch.equal(a.sample(0, 3)["images"], a.sample(1, 3)["images"])
    c = VideoSnippetDataset(videos, 5, SIZE, "multi", 3, seed=8, samples_per_epoch=4)
    assert not torch.equal(c.sample(2, 3)["images"], a.sample(2, 3)["images"])


def test_default_collate_and_loader():
    ds = VideoSnippetDataset([FakeVideo("a")], 5, SIZE, seed=0, samples_per_epoch=4)
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch["images"].shape == (2, 5, 3, *SIZE)
    assert batch["labels"].shape == (2, 5, *SIZE)
    assert batch["num_objects"].tolist() == [1, 1]
    assert len(batch["source"]) == 2


def test_mixed_dataset_weights_and_determinism():
    a = VideoSnippetDataset([FakeVideo("a")], 5, SIZE, seed=0, name="A", samples_per_epoch=3)
    b = VideoSnippetDataset([FakeVideo("b")], 5, SIZE, seed=1, name="B", samples_per_epoch=3)
    only_a = MixedDataset([a, b], [1.0, 0.0], samples_per_epoch=6, seed=0)
    assert all(only_a[i]["source"].startswith("A/") for i in range(6))
    mixed = MixedDataset([a, b], [0.5, 0.5], samples_per_epoch=30, seed=0)
    mixed.set_epoch(1)
    assert a.epoch == b.epoch == 1
    sources = [mixed.sample(1, i)["source"][0] for i in range(30)]
    assert {"A", "B"} == set(sources)
    assert sources == [mixed.sample(1, i)["source"][0] for i in range(30)]
    x, y = mixed[5], MixedDataset([a, b], [0.5, 0.5], 30, seed=0).sample(1, 5)
    assert torch.equal(x["labels"], y["labels"])
    other = VideoSnippetDataset([FakeVideo("c")], 6, SIZE, samples_per_epoch=1)
    with pytest.raises(VosError):
        MixedDataset([a, other], [1, 1], 4)


def test_davis_sequences_fit(tmp_path: Path):
    from vos_cli.data.davis import DavisSequence

    frames, annos = [], []
    for i in range(4):
        fp, ap = tmp_path / f"{i:05d}.jpg", tmp_path / f"{i:05d}.png"
        Image.fromarray(np.full((40, 64, 3), 40 * i, np.uint8)).save(fp)
        mask = np.zeros((40, 64), np.uint8)
        mask[10:30, 5 + i : 25 + i] = 255  # DAVIS 2016: 255 is the object
        Image.fromarray(mask).save(ap)
        frames.append(fp)
        annos.append(ap)
    seq = DavisSequence("toy", frames, annos, binary_annotations=True)
    ds = VideoSnippetDataset([seq], 3, SIZE, seed=0, samples_per_epoch=2, name="davis")
    s = ds[0]
    _check_format(s, t=3)
    assert s["source"] == "davis/toy"
    partial = DavisSequence("test", frames, annos[:1], binary_annotations=True)
    with pytest.raises(VosError):
        VideoSnippetDataset([partial], 3, SIZE)
