"""SynthVOS from tiny generated YOLO-segmentation and salient-object folders."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from vos_cli.data.synth import SynthVOS
from vos_cli.data.synth_sources import (
    load_salient_instances,
    load_synth_source,
    load_yolo_instances,
)
from vos_cli.errors import VosError

SIZE = (48, 64)
# Objects are red or blue, backgrounds green: labelled pixels must never look like background.
COLOURS = [(220, 30, 30), (30, 30, 220), (220, 30, 220)]


def _make_yolo(root: Path, n: int = 3) -> None:
    (root / "images" / "train2017").mkdir(parents=True)
    (root / "labels" / "train2017").mkdir(parents=True)
    for i in range(n):
        w, h = 80, 60
        img = Image.new("RGB", (w, h), (30, 200, 30))
        poly = [(0.2, 0.2), (0.6, 0.25), (0.55, 0.7), (0.25, 0.6)]
        ImageDraw.Draw(img).polygon([(x * w, y * h) for x, y in poly], fill=COLOURS[i % 3])
        img.save(root / "images" / "train2017" / f"{i:04d}.jpg", quality=95)
        lines = [f"{i} " + " ".join(f"{x:.4f} {y:.4f}" for x, y in poly)]
        lines.append("1 0.9 0.9 0.91 0.9 0.91 0.91")  # tiny: skipped
        (root / "labels" / "train2017" / f"{i:04d}.txt").write_text("\n".join(lines) + "\n")


def _make_salient(folder: Path, n: int = 3) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        img = np.zeros((50, 70, 3), np.uint8)
        img[:] = (30, 200, 30)
        mask = np.zeros((50, 70), np.uint8)
        mask[10:40, 15 + i : 45 + i] = 255
        img[mask > 0] = COLOURS[i % 3]
        Image.fromarray(img).save(folder / f"s{i}.jpg", quality=95)
        Image.fromarray(mask).save(folder / f"s{i}.png")


def _check(s, t: int) -> None:
    assert s["images"].shape == (t, 3, *SIZE) and s["images"].dtype == torch.float32
    assert s["labels"].shape == (t, *SIZE) and s["labels"].dtype == torch.int64
    assert float(s["images"].min()) >= 0 and float(s["images"].max()) <= 1
    num = s["num_objects"]
    assert num >= 1
    assert set(s["labels"].unique().tolist()) <= set(range(num + 1))
    assert set(range(1, num + 1)) <= set(s["labels"][0].unique().tolist())
    # Masks are aligned with the pasted pixels: labelled pixels are not background green.
    images, labels = s["images"], s["labels"]
    green = (images[:, 1] > images[:, 0] + 0.3) & (images[:, 1] > images[:, 2] + 0.3)
    assert green[labels > 0].float().mean() < 0.05


def test_yolo_instances_filter_tiny(tmp_path: Path):
    _make_yolo(tmp_path)
    instances = load_yolo_instances(tmp_path)
    assert len(instances) == 3
    assert all(inst.polygon is not None for inst in instances)
    with pytest.raises(VosError):
        load_yolo_instances(tmp_path / "missing")


@pytest.mark.parametrize("mode", ["single", "multi"])
def test_synth_from_yolo(tmp_path: Path, mode: str):
    _make_yolo(tmp_path)
    instances, backgrounds = load_synth_source(tmp_path)
    ds = SynthVOS(
        instances,
        backgrounds,
        4,
        SIZE,
        mode=mode,
        max_objects=3,
        augment=False,
        seed=0,
        samples_per_epoch=8,
    )
    for i in range(len(ds)):
        s = ds[i]
        _check(s, 4)
        if mode == "single":
            assert s["num_objects"] == 1
    # Objects move: labels differ between first and last frame somewhere in the epoch.
    assert any(not torch.equal(ds[i]["labels"][0], ds[i]["labels"][-1]) for i in range(4))


def test_synth_from_salient_folder(tmp_path: Path):
    _make_salient(tmp_path / "sal")
    instances, backgrounds = load_synth_source(tmp_path / "sal")
    assert len(instances) == len(load_salient_instances(tmp_path / "sal")) == 3
    assert instances[0].mask_path is not None and len(backgrounds) == 3
    ds = SynthVOS(instances, backgrounds, 3, SIZE, mode="multi", seed=1, samples_per_epoch=4)
    for i in range(4):
        _check(ds[i], 3)


def test_synth_determinism(tmp_path: Path):
    _make_yolo(tmp_path)
    instances, backgrounds = load_synth_source(tmp_path)
    a = SynthVOS(instances, backgrounds, 3, SIZE, seed=5, samples_per_epoch=4)
    b = SynthVOS(instances, backgrounds, 3, SIZE, seed=5, samples_per_epoch=4, cache_size=0)
    b.sample(0, 2)
    x, y = a.sample(1, 3), b.sample(1, 3)
    assert torch.equal(x["images"], y["images"]) and torch.equal(x["labels"], y["labels"])
    assert not torch.equal(a.sample(2, 3)["images"], x["images"])
    a.set_epoch(1)
    assert torch.equal(a[3]["labels"], x["labels"])


def test_twins_add_a_copy_of_one_object(tmp_path: Path):
    """With one source object and one paste, a twin is the only way to get a second object."""
    _make_yolo(tmp_path, n=1)
    instances, backgrounds = load_synth_source(tmp_path)

    def counts(twin_prob: float) -> list[int]:
        ds = SynthVOS(
            instances, backgrounds, 3, SIZE, max_pasted=1, seed=2, samples_per_epoch=8,
            twin_prob=twin_prob,
        )  # fmt: skip
        return [ds[i]["num_objects"] for i in range(8)]

    assert counts(0.0) == [1] * 8
    twins = counts(1.0)
    assert set(twins) <= {1, 2} and twins.count(2) >= 6  # a twin may hide behind the other
    with pytest.raises(VosError, match="twin_prob"):
        SynthVOS(instances, backgrounds, 3, SIZE, twin_prob=1.5)
