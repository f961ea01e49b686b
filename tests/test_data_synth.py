"""SynthVOS from tiny generated YOLO-segmentation and salient-object folders."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from vos_cli.data.synth import MotionConfig, SynthVOS
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


def _one_object(tmp_path: Path, motion, frames: int = 4, **options) -> SynthVOS:
    _make_yolo(tmp_path, n=1)
    instances, backgrounds = load_synth_source(tmp_path)
    return SynthVOS(
        instances, backgrounds, frames, SIZE, augment=False, motion=motion, max_pasted=1, **options
    )


def _alpha_in_frame(ds: SynthVOS, layer) -> torch.Tensor:
    """A rendered layer's alpha placed in full frames, so windows of any size compare."""
    full = torch.zeros(ds.num_frames, *ds.size)
    h, w = layer.window.shape[-2:]
    full[:, layer.y0 : layer.y0 + h, layer.x0 : layer.x0 + w] = layer.window[:, 3]
    return full


def test_motion_blur_smears_alpha_and_keeps_its_mass(tmp_path: Path):
    """Blur averages renders over the exposure: the alpha's sum per frame is kept (the object
    stays in the frame), and more of it is partial (a smear) than in the sharp render."""
    fast = MotionConfig(extent=(0.3, 0.3), speed=0.15, acceleration=0.0, angular_speed=0.0,
                        zoom_speed=0.0, initial_rotation=0.0)  # fmt: skip
    sharp = _one_object(tmp_path / "a", fast)
    blurred = _one_object(tmp_path / "b", fast, motion_blur=1.0)
    cut = sharp._cutout(0)
    for seed in range(6):
        # Same draws up to the blur's own; start the object mid-frame so it stays in view.
        a = _alpha_in_frame(
            sharp, sharp._render(cut, np.random.default_rng(seed), through=(1, 32.0, 24.0))
        )
        b = _alpha_in_frame(blurred, blurred._render(cut, np.random.default_rng(seed), through=(1, 32.0, 24.0)))  # fmt: skip
        torch.testing.assert_close(b[1].sum(), a[1].sum(), rtol=0.03, atol=0)
        partial = lambda x: ((x[1] > 0.05) & (x[1] < 0.95)).sum()  # noqa: E731
        assert partial(b) > 1.5 * partial(a)


def test_elastic_warp_grows_from_nothing_in_frame_zero(tmp_path: Path):
    """Frame 0 is the object as given (the model's reference); later frames bend it more and more,
    while its area stays about the same (a smooth warp does not tear or erase it)."""
    still = MotionConfig(extent=(0.4, 0.4), speed=0.0, acceleration=0.0, angular_speed=0.0,
                         zoom_speed=0.0, initial_rotation=0.0)  # fmt: skip
    plain = _one_object(tmp_path / "a", still)
    bent = _one_object(tmp_path / "b", still, elastic=0.15)
    cut = plain._cutout(0)
    for seed in range(4):
        a = _alpha_in_frame(plain, plain._render(cut, np.random.default_rng(seed)))
        b = _alpha_in_frame(bent, bent._render(cut, np.random.default_rng(seed)))
        torch.testing.assert_close(b[0], a[0])
        changed = [float((b[k] - a[k]).abs().sum()) for k in range(4)]
        assert changed[1] < changed[3] and changed[3] > 0.1 * float(a[3].sum())
        torch.testing.assert_close(b[3].sum(), a[3].sum(), rtol=0.3, atol=0)


def test_occluder_crosses_in_front_of_the_target(tmp_path: Path):
    """Same draws with and without the occluder up to its own: the target loses pixels only (it
    is never relabelled elsewhere), keeps frame 0, and is covered in some later frame."""
    quick = MotionConfig(speed=0.06)  # objects cross a 64-pixel frame within the snippet
    without = _one_object(tmp_path / "a", quick, 8, seed=4, samples_per_epoch=12)
    with_occ = _one_object(tmp_path / "b", quick, 8, seed=4, samples_per_epoch=12,
                           occluder_prob=1.0)  # fmt: skip
    covered = 0
    for i in range(12):
        a, b = without[i]["labels"] == 1, with_occ[i]["labels"] == 1
        assert not (b & ~a).any()
        assert b[0].sum() >= with_occ.min_area * SIZE[0] * SIZE[1]
        covered += int((b.flatten(1).sum(1) < a.flatten(1).sum(1)).any())
    assert covered >= 9  # 12 of 12 at this seed; 0 without the occluder
    with pytest.raises(VosError, match="elastic"):
        _one_object(tmp_path / "c", MotionConfig(), elastic=0.9)
