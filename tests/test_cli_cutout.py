"""`vos segment --cutout/--matte/--objects/--feather`: what is written, decoded again with the same
ffmpeg, against the PNG masks of the same run and the input's pixels."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.conftest import (
    decode_video,
    first_mask,
    iou,
    moving_shapes_frames,
    start_in_own_session,
    write_video,
)
from vos_cli.cli import app
from vos_cli.io.masks import read_mask, write_mask

runner = CliRunner()
FRAMES = 12


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def masks_of(folder: Path) -> list[np.ndarray]:
    return [read_mask(p) for p in sorted(folder.glob("*.png"))]


@pytest.fixture()
def mask_png(tmp_path: Path) -> Path:
    path = tmp_path / "first.png"
    write_mask(path, first_mask())
    return path


@pytest.fixture()
def segment(tmp_path, shapes_video, mask_png, tiny_model_path):
    """Run `vos segment` on the shapes clip with the tiny model, masks into tmp/masks."""

    def go(*args: object, video: Path = shapes_video):
        common = ["--weights", tiny_model_path, "--device", "cpu", "--precision", "fp32"]
        return run("segment", video, "--mask", mask_png, *common, *args)

    return go


# alpha: exact for PNG and ProRes (lossless alpha), IoU of alpha >= 128 for VP9; colour: the
# input's within the codec's error where opaque, black where transparent (means over the pixels)
@pytest.mark.parametrize(
    ("name", "min_iou", "colour_error", "black_error"),
    [("cut", 1.0, 0, 0), ("cut.mov", 1.0, 1, 1), ("cut.webm", 0.98, 8, 3)],
)
def test_cutout_and_matte_agree_with_the_masks(
    tmp_path, segment, name, min_iou, colour_error, black_error
) -> None:
    cut, matte, out = tmp_path / name, tmp_path / "matte.mp4", tmp_path / "masks"
    result = segment("--out", out, "--cutout", cut, "--matte", matte)
    assert result.exit_code == 0, result.output
    assert str(cut) in result.output and str(matte) in result.output
    masks = masks_of(out)
    assert len(masks) == FRAMES
    _, inputs = decode_video(tmp_path / "shapes.mp4")
    if cut.suffix:
        meta, cutouts = decode_video(cut, rgba=True)
        assert meta["fps"] == pytest.approx(10.0)
    else:
        names = sorted(p.name for p in cut.iterdir())
        assert names == [f"{i:05d}.png" for i in range(FRAMES)]  # the masks' names
        cutouts = [np.asarray(Image.open(cut / n)) for n in names]
    assert len(cutouts) == FRAMES
    for labels, rgba, frame in zip(masks, cutouts, inputs, strict=True):
        assert rgba.shape == (64, 96, 4)
        alpha = rgba[..., 3]
        if min_iou == 1.0:
            np.testing.assert_array_equal(alpha, np.where(labels > 0, 255, 0))
        else:
            assert iou(alpha >= 128, labels > 0) >= min_iou
        # colour: the input's where opaque (codec error only), black where transparent
        opaque = (alpha == 255) & (labels > 0)
        diff = np.abs(rgba[..., :3].astype(int) - frame.astype(int))[opaque]
        assert diff.size == 0 or diff.mean() <= colour_error
        assert rgba[..., :3][alpha == 0].mean() <= black_error
    meta, mattes = decode_video(matte)
    assert meta["codec"] == "h264" and meta["fps"] == pytest.approx(10.0)
    assert len(mattes) == FRAMES and mattes[0].shape == (64, 96, 3)
    for labels, picture in zip(masks, mattes, strict=True):
        assert iou(picture[..., 0] >= 128, labels > 0) >= 0.95
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_objects_selects_what_the_cutout_and_matte_show(tmp_path, segment) -> None:
    cut, matte, out = tmp_path / "cut", tmp_path / "matte.mp4", tmp_path / "masks"
    result = segment("--out", out, "--cutout", cut, "--matte", matte, "--objects", "4")
    assert result.exit_code == 0, result.output
    masks = masks_of(out)
    assert any((m == 1).any() for m in masks)  # the masks keep every object
    _, mattes = decode_video(matte)
    for labels, name, picture in zip(masks, sorted(cut.iterdir()), mattes, strict=True):
        alpha = np.asarray(Image.open(name))[..., 3]
        np.testing.assert_array_equal(alpha, np.where(labels == 4, 255, 0))
        assert iou(picture[..., 0] >= 128, labels == 4) >= 0.95


def test_feather_softens_only_the_edges(tmp_path, segment) -> None:
    cut, out = tmp_path / "cut", tmp_path / "masks"
    result = segment("--out", out, "--cutout", cut, "--feather", "2")
    assert result.exit_code == 0, result.output
    labels = masks_of(out)[0]
    alpha = np.asarray(Image.open(cut / "00000.png"))[..., 3]
    assert ((alpha > 0) & (alpha < 255)).sum() > 0
    assert (alpha[25:35, 15:25] == 255).all()  # inside the square, away from its edges
    assert alpha[:5, :5].max() == 0 and iou(alpha >= 128, labels > 0) >= 0.9


def test_frame_rate_and_count_follow_the_input(tmp_path, segment) -> None:
    video = write_video(tmp_path / "ntsc.mp4", moving_shapes_frames(7), fps=24000 / 1001)
    matte, out = tmp_path / "matte.mp4", tmp_path / "masks"
    result = segment("--out", out, "--matte", matte, "--cutout", tmp_path / "c.mov", video=video)
    assert result.exit_code == 0, result.output
    for path in (matte, tmp_path / "c.mov"):
        meta, frames = decode_video(path)
        assert len(frames) == len(masks_of(out)) == 7
        assert meta["fps"] == pytest.approx(23.98)  # ffmpeg prints 24000/1001 so
        assert meta["duration"] == pytest.approx(7 * 1001 / 24000, abs=0.01)


def test_variable_frame_rate_outputs_stay_in_step(tmp_path, segment) -> None:
    """Frames 0-5 shown 0.3 s each, then 6-11 0.1 s each: ffmpeg decodes at a constant 10/s."""
    vfr = tmp_path / "vfr.mp4"
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(tmp_path / "shapes.mp4")]
    cmd += ["-vf", "setpts='if(lt(N,6),3*N,12+N)/(10*TB)'", "-fps_mode", "vfr", str(vfr)]
    subprocess.run(cmd, check=True)
    matte, out = tmp_path / "matte.mp4", tmp_path / "masks"
    result = segment("--out", out, "--matte", matte, video=vfr)
    assert result.exit_code == 0, result.output
    assert "variable frame rate" in " ".join(result.output.split())
    meta, frames = decode_video(matte)
    count = len(masks_of(out))
    assert count == len(frames) >= 23  # 18 frames of 0.1 s for the slow part, 6 for the fast
    assert meta["fps"] == pytest.approx(10.0)  # in step: not the 5 frames/s average
    assert meta["duration"] == pytest.approx(count / 10, abs=0.05)


@pytest.mark.parametrize(
    "case",
    ["mp4_cutout", "no_suffix_matte", "unknown_object", "objects_alone", "bad_objects", "exists"]
    + ["unwritable", "same_path", "negative_feather"],
)
def test_bad_input_is_one_line_error(tmp_path, segment, case) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a folder\n")
    existing = tmp_path / "mine.webm"
    existing.write_bytes(b"user data")
    args = {
        "mp4_cutout": ["--cutout", tmp_path / "c.mp4"],
        "no_suffix_matte": ["--matte", tmp_path / "matte"],
        "unknown_object": ["--cutout", tmp_path / "c.webm", "--objects", "1,2"],
        "objects_alone": ["--out", tmp_path / "m", "--objects", "1"],
        "bad_objects": ["--matte", tmp_path / "m.mp4", "--objects", "one"],
        "exists": ["--cutout", existing],
        "unwritable": ["--matte", text / "m.mp4"],
        "same_path": ["--overlay", tmp_path / "o.mp4", "--matte", tmp_path / "o.mp4"],
        "negative_feather": ["--cutout", tmp_path / "c", "--feather", "-1"],
    }[case]
    result = segment(*args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert existing.read_bytes() == b"user data"
    assert not list(tmp_path.glob(".*"))  # no temp file left behind


@pytest.mark.skipif(os.name != "posix", reason="SIGINT to a process group")
def test_ctrl_c_leaves_valid_shorter_cutout_and_matte(tmp_path, mask_png, tiny_model_path) -> None:
    """SIGINT to the whole process group, as a terminal's Ctrl-C: exit 130, every video valid."""
    frames = moving_shapes_frames(20)
    video = write_video(tmp_path / "long.mp4", [frames[i % 20] for i in range(2000)])
    cut, matte, out = tmp_path / "cut.mov", tmp_path / "matte.mp4", tmp_path / "masks"
    args = ["segment", video, "--mask", mask_png, "--weights", tiny_model_path, "--device", "cpu"]
    args += ["--out", out, "--cutout", cut, "--matte", matte]
    proc = start_in_own_session(["-m", "vos_cli", *map(str, args)])
    try:
        deadline = time.monotonic() + 120
        while len(list(out.glob("*.png"))) < 5 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted after" in stdout
    masks = len(list(out.glob("*.png")))
    counts = [len(decode_video(path)[1]) for path in (cut, matte)]
    assert all(5 <= n < 2000 and abs(n - masks) <= 1 for n in counts), (counts, masks)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files
