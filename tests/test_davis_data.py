"""DAVIS layout reading: split list formats, annotation conventions and user errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vos_cli.data.davis import load_davis
from vos_cli.errors import VosError

H, W = 6, 8


def _palette() -> list[int]:
    pal = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [0] * (3 * 251)
    return pal + [224, 224, 192]  # index 255 (void), as in DAVIS


def write_sequence(
    root: Path, name: str, annotations: list[np.ndarray], *, mode: str = "P", n_frames: int = 0
) -> None:
    """Frames (solid colours) and annotation PNGs; ``n_frames`` > len(annotations) leaves gaps."""
    n_frames = max(n_frames, len(annotations))
    frame_dir = root / "JPEGImages" / "480p" / name
    anno_dir = root / "Annotations" / "480p" / name
    frame_dir.mkdir(parents=True)
    anno_dir.mkdir(parents=True)
    for i in range(n_frames):
        rgb = np.full((H, W, 3), (10 * i, 100, 200), dtype=np.uint8)
        Image.fromarray(rgb).save(frame_dir / f"{i:05d}.jpg")
    for i, ids in enumerate(annotations):
        img = Image.fromarray(ids.astype(np.uint8))  # grayscale "L"
        if mode == "P":
            img.putpalette(_palette())  # same bytes, now palette indices
        img.save(anno_dir / f"{i:05d}.png")


def write_list(root: Path, rel: str, lines: list[str]) -> None:
    path = root / "ImageSets" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def _ids(*boxes: tuple[int, int, int, int, int]) -> np.ndarray:
    """An id map from (id, y0, y1, x0, x1) boxes, later boxes on top."""
    ids = np.zeros((H, W), dtype=np.uint8)
    for obj, y0, y1, x0, x1 in boxes:
        ids[y0:y1, x0:x1] = obj
    return ids


def test_davis2017_layout(tmp_path: Path) -> None:
    a0 = _ids((1, 0, 2, 0, 2), (3, 3, 5, 3, 6), (255, 5, 6, 0, 8))
    a1 = _ids((1, 0, 2, 1, 3), (2, 3, 5, 3, 6))
    write_sequence(tmp_path, "cows", [a0, a1])
    write_sequence(tmp_path, "dogs", [_ids((1, 1, 3, 1, 3))], n_frames=3)
    write_list(tmp_path, "2017/val.txt", ["dogs", "", "cows"])

    seqs = load_davis(tmp_path, "val", "2017")
    assert [s.name for s in seqs] == ["dogs", "cows"]  # split-list order
    dogs, cows = seqs
    assert [p.name for p in dogs.frame_paths] == ["00000.jpg", "00001.jpg", "00002.jpg"]
    assert [p.name for p in dogs.annotation_paths] == ["00000.png"]  # first frame only is fine
    assert not cows.binary_annotations

    frame = cows.read_frame(1)
    assert frame.shape == (H, W, 3) and frame.dtype == np.uint8

    with Image.open(cows.annotation_paths[0]) as img:
        assert img.mode == "P"
    got = cows.read_annotation(0)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, a0)  # palette indices, void 255 kept
    assert cows.num_objects() == 3  # max id of the first frame, void excluded (2 is absent)
    assert dogs.num_objects() == 1

    only = load_davis(tmp_path, "val", "2017", sequences=["cows"])
    assert [s.name for s in only] == ["cows"]


def test_davis2016_names_list_binary(tmp_path: Path) -> None:
    ann = _ids((255, 1, 4, 2, 6))  # DAVIS 2016: 255 is THE object, stored as grayscale
    write_sequence(tmp_path, "bear", [ann, ann, ann], mode="L")
    write_list(tmp_path, "2016/train.txt", ["bear"])

    (seq,) = load_davis(tmp_path, "train", "2016")
    assert seq.binary_annotations
    got = seq.read_annotation(2)
    np.testing.assert_array_equal(got, (ann == 255).astype(np.uint8))
    assert seq.num_objects() == 1


def test_davis2016_path_pair_list(tmp_path: Path) -> None:
    ann = _ids((255, 0, 3, 0, 3))
    write_sequence(tmp_path, "blackswan", [ann, ann], mode="L")
    write_sequence(tmp_path, "bmx-trees", [ann], mode="L")
    lines = [
        f"/JPEGImages/480p/{s}/{i:05d}.jpg /Annotations/480p/{s}/{i:05d}.png"
        for s, n in (("blackswan", 2), ("bmx-trees", 1))
        for i in range(n)
    ]
    write_list(tmp_path, "480p/val.txt", lines)

    seqs = load_davis(tmp_path, "val", "2016")
    assert [s.name for s in seqs] == ["blackswan", "bmx-trees"]
    assert set(np.unique(seqs[0].read_annotation(1))) == {0, 1}


def test_davis2016_list_in_2017_package(tmp_path: Path) -> None:
    # The 2017 package re-annotates 2016 sequences with several objects: for 2016, all are one.
    ann = _ids((1, 0, 2, 0, 2), (2, 3, 5, 3, 6))
    write_sequence(tmp_path, "bmx-trees", [ann, ann])
    write_list(tmp_path, "2016/val.txt", ["bmx-trees"])
    write_list(tmp_path, "2017/val.txt", ["bmx-trees"])

    (seq16,) = load_davis(tmp_path, "val", "2016")
    np.testing.assert_array_equal(seq16.read_annotation(0), (ann > 0).astype(np.uint8))
    assert seq16.num_objects() == 1
    (seq17,) = load_davis(tmp_path, "val", "2017")
    assert seq17.num_objects() == 2


def test_real_layout_split_names_are_accepted(tmp_path: Path) -> None:
    """Any split whose list exists works (our local data uses train/dev)."""
    write_sequence(tmp_path, "lucia", [_ids((255, 0, 2, 0, 2))], mode="L")
    write_list(tmp_path, "2016/dev.txt", ["lucia"])
    assert [s.name for s in load_davis(tmp_path, "dev", "2016")] == ["lucia"]


def test_missing_root(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(VosError, match=str(missing)):
        load_davis(missing, "val", "2017")


def test_missing_split_file_names_candidates(tmp_path: Path) -> None:
    (tmp_path / "ImageSets").mkdir()
    with pytest.raises(VosError) as err:
        load_davis(tmp_path, "test", "2016")
    msg = str(err.value)
    assert str(tmp_path / "ImageSets" / "2016" / "test.txt") in msg
    assert str(tmp_path / "ImageSets" / "480p" / "test.txt") in msg
    with pytest.raises(VosError, match=r"2017.test\.txt"):
        load_davis(tmp_path, "test", "2017")


def test_missing_sequence_folder(tmp_path: Path) -> None:
    write_sequence(tmp_path, "cows", [_ids((1, 0, 2, 0, 2))])
    write_list(tmp_path, "2017/val.txt", ["cows", "goat"])
    with pytest.raises(VosError, match=r"JPEGImages.480p.goat"):
        load_davis(tmp_path, "val", "2017")


def test_missing_annotation_folder(tmp_path: Path) -> None:
    write_sequence(tmp_path, "cows", [_ids((1, 0, 2, 0, 2))])
    write_list(tmp_path, "2017/val.txt", ["cows"])
    for png in (tmp_path / "Annotations" / "480p" / "cows").iterdir():
        png.unlink()
    (tmp_path / "Annotations" / "480p" / "cows").rmdir()
    with pytest.raises(VosError, match=r"Annotations.480p.cows"):
        load_davis(tmp_path, "val", "2017")


def test_unknown_sequences(tmp_path: Path) -> None:
    write_sequence(tmp_path, "cows", [_ids((1, 0, 2, 0, 2))])
    write_list(tmp_path, "2017/val.txt", ["cows"])
    with pytest.raises(VosError, match="goat, pig"):
        load_davis(tmp_path, "val", "2017", sequences=["cows", "goat", "pig"])


def test_bad_year(tmp_path: Path) -> None:
    with pytest.raises(VosError, match="2018"):
        load_davis(tmp_path, "val", "2018")  # type: ignore[arg-type]


def test_split_can_be_a_list_file_of_ones_own(tmp_path: Path) -> None:
    root = tmp_path / "davis"
    for name in ("bear", "boat", "bus"):
        write_sequence(root, name, [_ids((1, 1, 3, 1, 3))])
    listing = tmp_path / "held-out.txt"
    listing.write_text("bus\n\nbear\nbus\n")  # blank lines skipped, duplicates kept once
    assert [s.name for s in load_davis(root, str(listing), "2016")] == ["bus", "bear"]
    with pytest.raises(VosError, match="does not exist"):
        load_davis(root, str(tmp_path / "missing.txt"), "2016")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(VosError, match="names no sequences"):
        load_davis(root, str(tmp_path / "empty.txt"), "2016")
