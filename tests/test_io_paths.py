"""Output path checks: refusal without --force, never deleting, writability."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vos_cli.errors import VosError
from vos_cli.io.paths import prepare_output_dir, prepare_output_file


def test_output_dir_created(tmp_path: Path) -> None:
    out = prepare_output_dir(tmp_path / "a" / "b")
    assert out == tmp_path / "a" / "b" and out.is_dir()
    assert list(out.iterdir()) == []  # the write test leaves nothing behind


def test_output_dir_existing_empty_is_fine(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    assert prepare_output_dir(tmp_path / "out").is_dir()


def test_output_dir_non_empty_refused_unless_force(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    with pytest.raises(VosError, match="not empty.*--force") as info:
        prepare_output_dir(out)
    assert "\n" not in str(info.value)
    assert prepare_output_dir(out, force=True) == out
    assert (out / "keep.txt").read_text() == "user data"  # --force never deletes


def test_output_dir_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(VosError, match="not a folder"):
        prepare_output_dir(tmp_path / "f", force=True)


def test_output_dir_parent_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(VosError, match="Cannot create"):
        prepare_output_dir(tmp_path / "f" / "out")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_output_dir_unwritable_parent(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(VosError):
            prepare_output_dir(locked / "out")
        with pytest.raises(VosError, match="Cannot write"):
            prepare_output_dir(locked, force=True)
    finally:
        locked.chmod(0o700)


def test_output_dir_must_not_hold_inputs(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "00000.png").write_bytes(b"frame")
    with pytest.raises(VosError, match="input"):
        prepare_output_dir(frames, force=True, protect=[frames])
    with pytest.raises(VosError, match="input"):  # e.g. the given first-frame mask
        prepare_output_dir(frames, force=True, protect=[frames / "00000.png"])
    assert prepare_output_dir(tmp_path / "masks", protect=[frames]).is_dir()
    # inputs we would never overwrite (other names, subfolders) do not block the folder
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"video")
    assert prepare_output_dir(tmp_path, force=True, protect=[video, frames]) == tmp_path


def test_output_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "overlay.mp4"
    assert prepare_output_file(target) == target
    assert target.parent.is_dir() and not target.exists()  # parent made, file not
    assert list(target.parent.iterdir()) == []


def test_output_file_exists_refused_unless_force(tmp_path: Path) -> None:
    target = tmp_path / "overlay.mp4"
    target.write_bytes(b"old")
    with pytest.raises(VosError, match="already exists.*--force"):
        prepare_output_file(target)
    assert prepare_output_file(target, force=True) == target
    assert target.read_bytes() == b"old"  # only checked, not touched


def test_output_file_is_a_folder_or_input(tmp_path: Path) -> None:
    with pytest.raises(VosError, match="is a folder"):
        prepare_output_file(tmp_path, force=True)
    video = tmp_path / "video.mp4"
    video.write_bytes(b"input")
    with pytest.raises(VosError, match="also an input"):
        prepare_output_file(tmp_path / "." / "video.mp4", force=True, protect=[video])


def test_output_file_parent_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(VosError, match="Cannot create"):
        prepare_output_file(tmp_path / "f" / "overlay.mp4")
