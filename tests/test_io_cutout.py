"""The cut-out's alpha, the cut-out and matte writers and the output frame rate, on their own."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import decode_video, iou
from vos_cli.errors import VosError
from vos_cli.io.alpha import ObjectAlpha, box_blur
from vos_cli.io.cutout import CutoutWriter, cutout_is_folder
from vos_cli.io.frame_rate import exact_rate
from vos_cli.io.matte import MatteWriter

W, H = 63, 47  # odd: VP9, ProRes and PNG keep it, the H.264 matte pads it


def frame_and_mask(i: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured frame; object 1 a square moving right, 3 a disc, a void pixel."""
    yy, xx = np.mgrid[:H, :W]
    frame = np.stack([(xx * 4 + i) % 256, (yy * 5) % 256, np.full_like(xx, 90)], -1)
    labels = np.zeros((H, W), np.uint8)
    labels[8:28, 4 + i : 24 + i] = 1
    labels[(yy - 30) ** 2 + (xx - 45) ** 2 <= 100] = 3
    labels[0, 0] = 255
    return frame.astype(np.uint8), labels


def test_alpha_selects_ids_and_never_void() -> None:
    _, labels = frame_and_mask(0)
    np.testing.assert_array_equal(ObjectAlpha()(labels), np.where(labels % 255 > 0, 255, 0))
    np.testing.assert_array_equal(ObjectAlpha([3])(labels), np.where(labels == 3, 255, 0))
    with pytest.raises(ValueError):
        ObjectAlpha([255])


def test_feather_is_a_linear_ramp_centred_on_the_edge() -> None:
    labels = np.zeros((9, 20), np.uint8)
    labels[:, 10:] = 1
    alpha = ObjectAlpha(feather=2)(labels)
    # 2 * 2 + 1 = 5 pixels: 0 .. 255 in fifths, the middle one on the first object pixel
    np.testing.assert_array_equal(alpha[4, 6:14], [0, 0, 51, 102, 153, 204, 255, 255])
    assert (alpha == alpha[0]).all()  # edges repeat outward: no darkening at the frame border
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (12, 15), dtype=np.uint8)
    padded = np.pad(image.astype(float), 3, mode="edge")
    brute = [[padded[y : y + 7, x : x + 7].mean() for x in range(15)] for y in range(12)]
    np.testing.assert_array_equal(box_blur(image, 3), np.rint(brute).astype(np.uint8))


def test_exact_rate_reads_rounded_ntsc_rates() -> None:
    assert exact_rate(23.98) == Fraction(24000, 1001)
    assert exact_rate(29.97) == Fraction(30000, 1001)
    assert exact_rate(59.94) == Fraction(60000, 1001)
    assert exact_rate(25.0) == 25 and exact_rate(12.5) == Fraction(25, 2)


def test_cutout_suffixes() -> None:
    assert cutout_is_folder(Path("frames")) and not cutout_is_folder(Path("a.WEBM"))
    with pytest.raises(VosError, match="no alpha"):
        cutout_is_folder(Path("a.mp4"))


def read_cutout(path: Path) -> list[np.ndarray]:
    if path.suffix:
        return decode_video(path, rgba=True)[1]
    return [np.asarray(Image.open(p)) for p in sorted(path.iterdir())]


@pytest.mark.parametrize("name", ["cut.webm", "cut.mov", "cut"])
def test_cutout_writer_keeps_size_and_objects(tmp_path: Path, name: str) -> None:
    target = tmp_path / name
    if not target.suffix:
        target.mkdir()
    with CutoutWriter(target, 25, W, H, ObjectAlpha([1])) as writer:
        for i in range(8):
            writer.write(*frame_and_mask(i))
    cutouts = read_cutout(target)
    assert len(cutouts) == 8
    for i, rgba in enumerate(cutouts):
        frame, labels = frame_and_mask(i)
        assert rgba.shape == (H, W, 4)
        if target.suffix == ".webm":
            assert iou(rgba[..., 3] >= 128, labels == 1) >= 0.98
        else:
            np.testing.assert_array_equal(rgba[..., 3], np.where(labels == 1, 255, 0))
        inside = (labels == 1) & (rgba[..., 3] == 255)
        error = np.abs(rgba[..., :3].astype(int) - frame)[inside].mean()
        assert error <= {".webm": 8, ".mov": 1, "": 0}[target.suffix]


def test_matte_writer_pads_odd_sizes_like_the_overlay(tmp_path: Path) -> None:
    with MatteWriter(tmp_path / "m.mp4", 25, W, H, ObjectAlpha()) as writer:
        for i in range(5):
            writer.write(*frame_and_mask(i))
    meta, mattes = decode_video(tmp_path / "m.mp4")
    assert tuple(meta["size"]) == (W + 1, H + 1) and len(mattes) == 5
    _, labels = frame_and_mask(4)
    assert iou(mattes[4][:H, :W, 0] >= 128, labels % 255 > 0) >= 0.95


@pytest.mark.parametrize("name", ["cut.webm", "cut.mov", "cut"])
def test_interrupted_cutout_is_valid_and_shorter(tmp_path: Path, name: str) -> None:
    target = tmp_path / name
    if not target.suffix:
        target.mkdir()
    with pytest.raises(KeyboardInterrupt), CutoutWriter(target, 25, W, H, ObjectAlpha()) as w:
        for i in range(20):
            if i == 6:
                raise KeyboardInterrupt
            w.write(*frame_and_mask(i))
    assert len(read_cutout(target)) == 6
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temp files
    if not target.suffix:
        assert not [p for p in target.iterdir() if not p.name.endswith(".png")]
