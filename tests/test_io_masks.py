"""Mask reading/writing (DAVIS palette PNGs), nearest resizing and the MaskWriter."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vos_cli.errors import VosError
from vos_cli.io.masks import (
    DAVIS_PALETTE,
    MaskWriter,
    mask_filename,
    object_ids,
    read_mask,
    resize_nearest,
    write_mask,
)


def labels_with_gaps() -> np.ndarray:
    lm = np.zeros((30, 40), np.uint8)
    lm[2:10, 3:12] = 3
    lm[15:25, 20:35] = 7
    lm[0, :] = 255  # void border, as in DAVIS
    return lm


def test_palette_is_davis() -> None:
    assert DAVIS_PALETTE.shape == (256, 3) and DAVIS_PALETTE.dtype == np.uint8
    assert DAVIS_PALETTE[:9].tolist() == [
        [0, 0, 0],
        [128, 0, 0],
        [0, 128, 0],
        [128, 128, 0],
        [0, 0, 128],
        [128, 0, 128],
        [0, 128, 128],
        [128, 128, 128],
        [64, 0, 0],
    ]
    assert DAVIS_PALETTE[255].tolist() == [224, 224, 192]
    assert len({tuple(c) for c in DAVIS_PALETTE.tolist()}) == 256  # every id its own colour


def test_palette_roundtrip_with_gaps(tmp_path: Path) -> None:
    lm = labels_with_gaps()
    write_mask(tmp_path / "m.png", lm)
    with Image.open(tmp_path / "m.png") as img:
        assert img.mode == "P"
        pal = np.array(img.getpalette()[: 256 * 3], np.uint8).reshape(-1, 3)
        assert (pal == DAVIS_PALETTE).all()
    back = read_mask(tmp_path / "m.png")
    assert back.dtype == np.uint8 and back.shape == lm.shape
    assert (back == lm).all()
    assert set(np.unique(back).tolist()) == {0, 3, 7, 255}
    assert object_ids(back) == [3, 7]
    assert [p.name for p in tmp_path.iterdir()] == ["m.png"]  # no temp file left behind


def test_write_overwrites_atomically(tmp_path: Path) -> None:
    target = tmp_path / "m.png"
    write_mask(target, np.ones((4, 4), np.uint8))
    write_mask(target, np.full((4, 4), 2, np.int64))  # other int dtypes are accepted
    assert (read_mask(target) == 2).all()
    assert [p.name for p in tmp_path.iterdir()] == ["m.png"]


def test_write_rejects_bad_arrays(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_mask(tmp_path / "m.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError):
        write_mask(tmp_path / "m.png", np.full((4, 4), 300))


def test_write_into_missing_folder_is_vos_error(tmp_path: Path) -> None:
    with pytest.raises(VosError, match="Cannot write mask"):
        write_mask(tmp_path / "nope" / "m.png", np.zeros((4, 4), np.uint8))


def test_grayscale_0_255_is_object_1(tmp_path: Path) -> None:
    arr = np.zeros((20, 20), np.uint8)
    arr[5:10, 5:10] = 255
    Image.fromarray(arr).save(tmp_path / "g.png")
    m = read_mask(tmp_path / "g.png")
    assert m.dtype == np.uint8 and set(np.unique(m).tolist()) == {0, 1}
    assert (m == (arr > 0)).all()


def test_binary_0_1_and_1bit_masks(tmp_path: Path) -> None:
    arr = np.zeros((20, 20), np.uint8)
    arr[3:7, 3:7] = 1  # numpy bool saved as 0/1: invisible, but still an object
    Image.fromarray(arr).save(tmp_path / "b.png")
    Image.fromarray(arr.astype(bool)).save(tmp_path / "bits.png")  # mode "1"
    for name in ("b.png", "bits.png"):
        m = read_mask(tmp_path / name)
        assert (m == arr).all(), name


def test_rgb_mask_is_object_1(tmp_path: Path) -> None:
    arr = np.zeros((20, 20, 3), np.uint8)
    arr[2:6, 2:6] = (255, 0, 0)
    arr[10:12, 10:12] = (1, 0, 0)  # very dark, would round to 0 through grayscale
    Image.fromarray(arr).save(tmp_path / "rgb.png")
    m = read_mask(tmp_path / "rgb.png")
    assert (m == arr.any(axis=-1)).all()


def test_rgba_transparent_background(tmp_path: Path) -> None:
    arr = np.full((20, 20, 4), 255, np.uint8)
    arr[..., 3] = 0  # white but fully transparent: background
    arr[4:8, 4:8, 3] = 255
    Image.fromarray(arr).save(tmp_path / "rgba.png")
    m = read_mask(tmp_path / "rgba.png")
    assert m.sum() == 16 and (m[4:8, 4:8] == 1).all()


def test_jpeg_mask_ignores_compression_noise(tmp_path: Path) -> None:
    arr = np.zeros((32, 32), np.uint8)
    arr[8:24, 8:24] = 255
    Image.fromarray(arr).save(tmp_path / "m.jpg", quality=50)
    m = read_mask(tmp_path / "m.jpg")
    assert abs(int(m.sum()) - 256) <= 16


def test_text_file_as_mask(tmp_path: Path) -> None:
    p = tmp_path / "mask.png"
    p.write_text("definitely not a png")
    with pytest.raises(VosError, match="not an image"):
        read_mask(p)


def test_missing_mask(tmp_path: Path) -> None:
    with pytest.raises(VosError, match="not found"):
        read_mask(tmp_path / "nope.png")
    with pytest.raises(VosError, match="not a file"):
        read_mask(tmp_path)


def test_require_object(tmp_path: Path) -> None:
    write_mask(tmp_path / "empty.png", np.zeros((8, 8), np.uint8))
    assert read_mask(tmp_path / "empty.png").max() == 0  # fine without the flag
    with pytest.raises(VosError, match="no object"):
        read_mask(tmp_path / "empty.png", require_object=True)
    write_mask(tmp_path / "void.png", np.full((8, 8), 255, np.uint8))
    with pytest.raises(VosError, match="no object"):
        read_mask(tmp_path / "void.png", require_object=True)
    write_mask(tmp_path / "one.png", np.eye(8, dtype=np.uint8) * 4)
    assert object_ids(read_mask(tmp_path / "one.png", require_object=True)) == [4]


def test_resize_nearest_shapes_and_ids() -> None:
    lm = labels_with_gaps()  # (30, 40)
    up = resize_nearest(lm, (80, 60))
    assert up.shape == (60, 80) and up.dtype == np.uint8
    assert (up[::2, ::2] == lm).all()  # exact 2x: every pixel becomes a 2x2 block
    down = resize_nearest(lm, (17, 13))
    assert down.shape == (13, 17)
    assert set(np.unique(down).tolist()) <= {0, 3, 7, 255}  # never a blended id
    same = resize_nearest(lm, (40, 30))
    assert (same == lm).all() and same is not lm


@pytest.mark.parametrize("size", [(17, 13), (123, 77), (40, 30), (7, 90)])
def test_resize_nearest_matches_torch_nearest_exact(size: tuple[int, int]) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    lm = rng.integers(0, 6, (30, 40), dtype=np.uint8)
    ours = resize_nearest(lm, size)
    t = torch.from_numpy(lm)[None, None].float()
    theirs = torch.nn.functional.interpolate(t, size=size[::-1], mode="nearest-exact")
    assert (ours == theirs[0, 0].to(torch.uint8).numpy()).all()


def test_mask_writer(tmp_path: Path) -> None:
    out = tmp_path / "masks"
    lm = labels_with_gaps()
    with MaskWriter(out, maxsize=2) as writer:
        for i in range(6):
            buf = lm.copy()
            writer.write(i, buf)
            buf[:] = 0  # the writer copied the array: reusing buffers is safe
    assert writer.written == 6
    assert sorted(p.name for p in out.iterdir()) == [mask_filename(i) for i in range(6)]
    assert mask_filename(3) == "00003.png"
    assert all((read_mask(out / mask_filename(i)) == lm).all() for i in range(6))


def test_mask_writer_flushes_on_exception(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), MaskWriter(tmp_path / "m") as writer:
        for i in range(5):
            writer.write(i, np.full((8, 8), i, np.uint8))
        raise KeyboardInterrupt
    names = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert names == [mask_filename(i) for i in range(5)]


def test_mask_writer_reraises_worker_error(tmp_path: Path) -> None:
    out = tmp_path / "m"
    writer = MaskWriter(out)
    shutil.rmtree(out)  # the folder vanishes under the writer
    writer.write(0, np.zeros((8, 8), np.uint8))
    with pytest.raises(VosError, match="Cannot write mask"):
        writer.close()
    with pytest.raises(ValueError):
        writer.write(1, np.zeros((8, 8), np.uint8))
