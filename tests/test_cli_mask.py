"""`vos mask` and `vos segment --box` end to end, with a tiny mask maker whose mask of a box is its
crop window (the box enlarged 1.4 times, see tests/conftest.py), and every bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.conftest import first_mask, moving_shapes_frames
from vos_cli.cli import app
from vos_cli.io.masks import read_mask, write_mask
from vos_cli.prompts.types import Box, ObjectPrompt, Point

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    path = tmp_path / "frame.png"
    Image.fromarray(moving_shapes_frames(1)[0]).save(path)  # 96 x 64
    return path


def window_mask(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    out = np.zeros((64, 96), bool)
    out[max(0, y0) : y1, max(0, x0) : x1] = True
    return out


def one_error_line(result) -> str:
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_mask_from_boxes(tmp_path, image, tiny_maskmaker_path):
    out = tmp_path / "m.png"
    result = run(
        "mask",
        image,
        "--box",
        "20,20,40,40",
        "--box",
        "60,5,80,25",
        "--out",
        out,
        "--weights",
        tiny_maskmaker_path,
    )
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "2 object(s)" in result.output
    labels = read_mask(out)
    with Image.open(out) as img:
        assert img.mode == "P" and img.size == (96, 64)
    # crops are a drawn box enlarged 1.3 times (the trained 1.4 x DRAWN_BOX_CONTEXT): box 1's
    # window is 17..43 on both axes, box 2's x 57..83, y 2..28; 1 wins where they meet
    one = window_mask(17, 17, 43, 43)
    two = window_mask(57, 2, 83, 28) & ~one
    np.testing.assert_array_equal(labels == 1, one)
    np.testing.assert_array_equal(labels == 2, two)
    preview = tmp_path / "m-preview.png"
    with Image.open(preview) as img:
        assert img.mode == "RGB" and img.size == (96, 64)
    again = run(
        "mask", image, "--box", "20,20,40,40", "--out", out, "--weights", tiny_maskmaker_path
    )
    assert again.exit_code == 2 and "already exists; use --force" in one_error_line(again)
    forced = run(
        "mask",
        image,
        "--box",
        "20,20,40,40",
        "--out",
        out,
        "--weights",
        tiny_maskmaker_path,
        "--force",
        "--no-preview",
    )
    assert forced.exit_code == 0, forced.output
    assert set(np.unique(read_mask(out))) == {0, 1}


def test_mask_from_a_video_frame_and_a_frame_folder(tmp_path, shapes_video, tiny_maskmaker_path):
    out = tmp_path / "m.png"
    result = run(
        "mask",
        shapes_video,
        "--frame",
        "3",
        "--point",
        "40,30",
        "--out",
        out,
        "--no-preview",
        "--weights",
        tiny_maskmaker_path,
    )
    assert result.exit_code == 0, result.output
    assert (read_mask(out) == 1).all()  # clicks alone: the whole frame is the crop
    late = run(
        "mask",
        shapes_video,
        "--frame",
        "50",
        "--box",
        "1,1,9,9",
        "--out",
        tmp_path / "x.png",
        "--weights",
        tiny_maskmaker_path,
    )
    assert late.exit_code == 2 and "has only 12 frames" in one_error_line(late)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(moving_shapes_frames(2)):
        Image.fromarray(frame).save(folder / f"{i:05d}.jpg")
    result = run(
        "mask",
        folder,
        "--box",
        "10,10,30,30",
        "--out",
        tmp_path / "f.png",
        "--weights",
        tiny_maskmaker_path,
    )
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--box", "20,20,100,40"], "--box 20,20,100,40 is outside the 96x64 frame"),
        (["--box", "-1,20,10,40"], "is outside the 96x64 frame"),
        (["--box", "40,20,20,40"], "need X0 < X1 and Y0 < Y1"),
        (["--box", "20,20,20,40"], "need X0 < X1 and Y0 < Y1"),
        (["--box", "1,2,3"], "--box takes X0,Y0,X1,Y1"),
        (["--box", "20,20,40,40", "--point", "96,10"], "--point 96,10 is outside the 96x64 frame"),
        (["--bg-point", "5,5"], "object 1 has only --bg-point clicks"),
        ([], "no object given"),
        (["--box", "20,20,40,40", "--point", "2:5,5"], "there is no object 2"),
        (["--box", "20,20,40,40", "--frame", "1"], "is one image"),
    ],
)
def test_mask_bad_input(tmp_path, image, tiny_maskmaker_path, args, message):
    result = run(
        "mask", image, *args, "--out", tmp_path / "m.png", "--weights", tiny_maskmaker_path
    )
    assert result.exit_code == 2
    assert message in one_error_line(result)
    assert not (tmp_path / "m.png").exists() and not (tmp_path / "m-preview.png").exists()


def test_mask_other_bad_input(tmp_path, image, tiny_maskmaker_path, tiny_model_path):
    result = run("mask", image, "--box", "1,1,9,9", "--out", tmp_path / "m.jpg")
    assert result.exit_code == 2 and "must be a .png" in one_error_line(result)
    result = run("mask", tmp_path / "nope.png", "--box", "1,1,9,9", "--out", tmp_path / "m.png")
    assert result.exit_code == 2 and "not found" in one_error_line(result)
    result = run(
        "mask", image, "--box", "1,1,9,9", "--out", tmp_path / "m.png", "--weights", tiny_model_path
    )
    assert result.exit_code == 2 and "not a mask maker weights file" in one_error_line(result)


def test_prompt_order_comes_from_the_command_line(tmp_path, image, monkeypatch):
    from vos_cli.prompts import predictor

    seen = []

    class Recorder:
        def set_image(self, rgb):
            self.shape = rgb.shape[:2]

        def predict(self, objects):
            seen.append(objects)
            return np.ones(self.shape, np.uint8)

    monkeypatch.setattr(predictor.MaskMaker, "load", classmethod(lambda cls, *a, **k: Recorder()))
    result = run(
        "mask",
        image,
        "--box",
        "0,0,10,10",
        "--point",
        "1,1",
        "--box",
        "20,20,30,30",
        "--bg-point=25,25",
        "--point",
        "1:2,2",
        "--out",
        tmp_path / "m.png",
    )
    assert result.exit_code == 0, result.output
    assert seen == [
        [
            ObjectPrompt(Box(0, 0, 10, 10), [Point(1, 1), Point(2, 2)]),
            ObjectPrompt(Box(20, 20, 30, 30), [Point(25, 25, False)]),
        ]
    ]


def test_no_shipped_mask_maker_is_a_clean_error(tmp_path, image, monkeypatch):
    from vos_cli.prompts import predictor

    monkeypatch.setattr(predictor, "DEFAULT_MASKMAKER_NAME", "no-such-model.pt")
    result = run("mask", image, "--box", "1,1,9,9", "--out", tmp_path / "m.png")
    assert result.exit_code == 2
    assert "no mask maker model is installed" in one_error_line(result)


def test_segment_from_a_box(tmp_path, shapes_video, tiny_model_path, tiny_maskmaker_path):
    out = tmp_path / "masks"
    result = run(
        "segment",
        shapes_video,
        "--box",
        "10,20,30,40",
        "--out",
        out,
        "--weights",
        tiny_model_path,
        "--mask-weights",
        tiny_maskmaker_path,
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    assert "segmented 12 frames, 1 object(s) [1]" in result.output
    assert len(list(out.glob("*.png"))) == 12


def test_segment_box_ids_follow_the_mask(
    tmp_path, shapes_video, tiny_model_path, tiny_maskmaker_path
):
    mask = tmp_path / "first.png"
    write_mask(mask, first_mask())  # ids 1 and 4
    out = tmp_path / "masks"
    result = run(
        "segment",
        shapes_video,
        "--mask",
        mask,
        "--box",
        "40,40,60,60",
        "--out",
        out,
        "--weights",
        tiny_model_path,
        "--mask-weights",
        tiny_maskmaker_path,
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    assert "3 object(s) [1,4,5]" in result.output


def test_segment_prompt_errors(tmp_path, shapes_video, tiny_model_path, tiny_maskmaker_path):
    result = run(
        "segment",
        shapes_video,
        "--box",
        "10,20,300,40",
        "--weights",
        tiny_model_path,
        "--mask-weights",
        tiny_maskmaker_path,
    )
    assert result.exit_code == 2 and "outside the 96x64 frame" in one_error_line(result)
    result = run("segment", shapes_video, "--weights", tiny_model_path)
    assert result.exit_code == 2 and "pass --mask PATH or --box" in one_error_line(result)
    result = run("segment", "--jobs", tmp_path / "jobs.csv", "--box", "1,1,5,5")
    assert result.exit_code == 2 and "not --jobs" in one_error_line(result)
    result = run("segment", shapes_video, "--mask-weights", tiny_maskmaker_path)
    assert result.exit_code == 2 and "--mask-weights goes with --box" in one_error_line(result)
