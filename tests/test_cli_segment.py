"""`vos segment` end to end through the CLI on a real encoded video, and every bad input."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import first_mask, moving_shapes_frames
from vos_cli.cli import app
from vos_cli.io.masks import read_mask, write_mask

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture()
def mask_png(tmp_path: Path) -> Path:
    path = tmp_path / "first.png"
    write_mask(path, first_mask())
    return path


def test_segment_video_to_masks_and_overlay(tmp_path, shapes_video, mask_png, tiny_model_path):
    out = tmp_path / "masks"
    overlay = tmp_path / "overlay.mp4"
    result = run(
        "segment",
        shapes_video,
        "--mask",
        mask_png,
        "--out",
        out,
        "--overlay",
        overlay,
        "--weights",
        tiny_model_path,
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    assert "segmented 12 frames, 2 object(s) [1,4]" in result.output
    assert "network at 64p" in result.output  # the clip is smaller than the model's size
    pngs = sorted(out.glob("*.png"))
    assert [p.name for p in pngs] == [f"{i:05d}.png" for i in range(12)]
    first = read_mask(pngs[0])
    assert first.shape == (64, 96)
    np.testing.assert_array_equal(first, first_mask())  # ids kept, gap and all
    for p in pngs:
        assert set(np.unique(read_mask(p)).tolist()) <= {0, 1, 4}
    frames = list(iio.imiter(overlay))
    assert len(frames) == 12 and frames[0].shape == (64, 96, 3)


def test_segment_with_the_flip_ensemble(tmp_path, shapes_video, mask_png, tiny_model_path):
    out = tmp_path / "masks"
    args = ["--out", out, "--weights", tiny_model_path, "--device", "cpu", "--flip"]
    result = run("segment", shapes_video, "--mask", mask_png, *args)
    assert result.exit_code == 0, result.output
    assert "segmented 12 frames, 2 object(s) [1,4]" in result.output
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 12
    np.testing.assert_array_equal(read_mask(pngs[0]), first_mask())


def test_default_out_dir_next_to_input_and_refusal(
    tmp_path, shapes_video, mask_png, tiny_model_path
):
    result = run("segment", shapes_video, "--mask", mask_png, "--weights", tiny_model_path)
    assert result.exit_code == 0, result.output
    default = shapes_video.parent / "shapes_masks"
    assert len(list(default.glob("*.png"))) == 12
    before = (default / "00003.png").read_bytes()
    again = run("segment", shapes_video, "--mask", mask_png, "--weights", tiny_model_path)
    assert again.exit_code == 2 and "error:" in again.output and "Traceback" not in again.output
    assert (default / "00003.png").read_bytes() == before
    forced = run(
        "segment", shapes_video, "--mask", mask_png, "--weights", tiny_model_path, "--force"
    )
    assert forced.exit_code == 0, forced.output


def test_frame_folder_and_mask_at_later_frame(tmp_path, tiny_model_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(moving_shapes_frames(6)):
        iio.imwrite(folder / f"f{i}.png", frame)
    square = np.where(first_mask() == 1, 1, 0).astype(np.uint8)
    write_mask(tmp_path / "m0.png", square)
    later = np.zeros((64, 96), np.uint8)
    later[40:60, 40:60] = 2
    write_mask(tmp_path / "m3.png", later)
    out = tmp_path / "out"
    result = run(
        "segment",
        folder,
        "--mask",
        tmp_path / "m0.png",
        "--mask",
        f"3:{tmp_path / 'm3.png'}",
        "--out",
        out,
        "--weights",
        tiny_model_path,
    )
    assert result.exit_code == 0, result.output
    assert (read_mask(out / "00003.png")[40:60, 40:60] == 2).all()
    assert 2 not in read_mask(out / "00002.png")


def test_mask_of_other_size_is_resized_with_a_note(tmp_path, shapes_video, tiny_model_path):
    big = np.kron(first_mask(), np.ones((2, 2), np.uint8))
    write_mask(tmp_path / "big.png", big)
    result = run(
        "segment",
        shapes_video,
        "--mask",
        tmp_path / "big.png",
        "--out",
        tmp_path / "o",
        "--weights",
        tiny_model_path,
    )
    assert result.exit_code == 0, result.output
    assert "resized" in result.output


@pytest.mark.parametrize(
    "case",
    [
        "missing_video",
        "text_video",
        "text_mask",
        "empty_mask",
        "missing_weights",
        "text_weights",
        "cuda",
        "existing_overlay",
        "unwritable_out",
        "no_mask",
    ],
)
def test_bad_input_is_one_line_error(case, tmp_path, shapes_video, mask_png, tiny_model_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a video\n")
    video, mask, weights = shapes_video, mask_png, tiny_model_path
    extra: list = []
    if case == "missing_video":
        video = tmp_path / "nope.mp4"
    elif case == "text_video":
        video = text
    elif case == "text_mask":
        mask = text
    elif case == "empty_mask":
        mask = tmp_path / "empty.png"
        write_mask(mask, np.zeros((64, 96), np.uint8))
    elif case == "missing_weights":
        weights = tmp_path / "missing.pt"
    elif case == "text_weights":
        weights = text
    elif case == "cuda":
        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
        extra = ["--device", "cuda"]
    elif case == "existing_overlay":
        existing = tmp_path / "mine.mp4"
        existing.write_bytes(b"user data")
        extra = ["--overlay", existing]
    elif case == "unwritable_out":
        extra = ["--out", text / "sub"]
    args = ["segment", video, "--weights", weights, *extra]
    if case != "no_mask":
        args += ["--mask", mask]
    result = run(*args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    if case == "existing_overlay":
        assert (tmp_path / "mine.mp4").read_bytes() == b"user data"
