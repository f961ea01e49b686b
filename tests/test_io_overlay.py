"""Overlay rendering and the H.264 OverlayWriter (atomic, valid when interrupted)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from tests.conftest import start_in_own_session
from vos_cli.errors import VosError
from vos_cli.io.masks import DAVIS_PALETTE, read_mask
from vos_cli.io.overlay import OverlayWriter, render_overlay

W, H = 64, 48


def frame_and_mask(i: int, w: int = W, h: int = H) -> tuple[np.ndarray, np.ndarray]:
    frame = np.full((h, w, 3), 100, np.uint8)
    labels = np.zeros((h, w), np.uint8)
    labels[10:30, 5 + i : 25 + i] = 1
    labels[20:40, 35:55] = 3
    return frame, labels


def decode(path: Path) -> tuple[dict, list[np.ndarray]]:
    gen = imageio_ffmpeg.read_frames(str(path))
    meta = next(gen)
    w, h = meta["size"]
    frames = [np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in gen]
    return meta, frames


def test_render_overlay_colours_and_outline() -> None:
    frame, labels = frame_and_mask(0)
    labels[0, 0] = 255  # void: untouched
    out = render_overlay(frame, labels, alpha=0.5, outline_px=2)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert (frame == 100).all()  # input not modified
    assert (out[labels == 0] == 100).all() and (out[0, 0] == 100).all()
    # interior: half frame, half palette colour
    want = (100 * 128 + DAVIS_PALETTE[1].astype(int) * 128) >> 8
    assert (out[20, 15] == want).all()
    # outline: opaque palette colour, inside the object, 2 px wide
    assert (out[10, 15] == DAVIS_PALETTE[1]).all() and (out[11, 15] == DAVIS_PALETTE[1]).all()
    assert (out[12, 15] == want).all()
    assert (out[20, 45] == DAVIS_PALETTE[3]).all()  # object 3 has its own colour


def test_render_overlay_without_objects_is_a_copy() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    out = render_overlay(frame, np.zeros((H, W), np.uint8))
    assert (out == frame).all() and out is not frame


def test_overlay_writer_roundtrip(tmp_path: Path) -> None:
    target = tmp_path / "overlay.mp4"
    with OverlayWriter(target, fps=12.5, width=W, height=H) as writer:
        for i in range(10):
            writer.write(*frame_and_mask(i))
    assert writer.frames_written == 10
    assert [p.name for p in tmp_path.iterdir()] == ["overlay.mp4"]
    meta, frames = decode(target)
    assert meta["codec"] == "h264"
    assert tuple(meta["size"]) == (W, H)
    assert meta["fps"] == pytest.approx(12.5)
    assert len(frames) == 10
    expected = render_overlay(*frame_and_mask(9))
    assert np.abs(frames[-1].astype(int) - expected.astype(int)).mean() < 8


def test_overlay_odd_size_is_padded_to_even(tmp_path: Path) -> None:
    target = tmp_path / "odd.mp4"
    with OverlayWriter(target, fps=10, width=W - 1, height=H - 1) as writer:
        for i in range(3):
            writer.write(*frame_and_mask(i, W - 1, H - 1))
    meta, frames = decode(target)
    assert tuple(meta["size"]) == (W, H) and len(frames) == 3


def test_overlay_interrupted_keeps_valid_shorter_file(tmp_path: Path) -> None:
    target = tmp_path / "overlay.mp4"
    with pytest.raises(RuntimeError, match="model failed"), OverlayWriter(target, 10, W, H) as w:
        for i in range(20):
            if i == 6:
                raise RuntimeError("model failed")
            w.write(*frame_and_mask(i))
    assert [p.name for p in tmp_path.iterdir()] == ["overlay.mp4"]  # no temp files
    _, frames = decode(target)
    assert len(frames) == 6


def test_overlay_keyboard_interrupt_keeps_valid_file(tmp_path: Path) -> None:
    target = tmp_path / "overlay.mp4"
    target.write_bytes(b"old overlay from an earlier run (--force)")
    with pytest.raises(KeyboardInterrupt), OverlayWriter(target, 10, W, H) as w:
        for i in range(4):
            w.write(*frame_and_mask(i))
        raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["overlay.mp4"]
    _, frames = decode(target)
    assert len(frames) == 4


class _SlowOverlay(OverlayWriter):
    def _render(self, frame: np.ndarray, labels: np.ndarray) -> np.ndarray:
        time.sleep(0.2)  # a slow encoder: the flush at the end takes seconds
        return super()._render(frame, labels)


@pytest.mark.skipif(os.name != "posix", reason="SIGINT to this process")
def test_second_ctrl_c_while_flushing_drops_queued_frames_keeps_valid_file(tmp_path: Path) -> None:
    target = tmp_path / "overlay.mp4"
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt), _SlowOverlay(target, 10, W, H, maxsize=20) as w:
        for i in range(20):
            w.write(*frame_and_mask(i))
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
        raise KeyboardInterrupt  # the first Ctrl-C; the timer's is the second, mid-flush
    assert time.monotonic() - start < 3  # not the 4 s of rendering every queued frame
    assert [p.name for p in tmp_path.iterdir()] == ["overlay.mp4"]
    _, frames = decode(target)
    assert 1 <= len(frames) < 20


def test_overlay_interrupted_before_any_frame_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "overlay.mp4"
    with pytest.raises(KeyboardInterrupt), OverlayWriter(target, 10, W, H):
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_overlay_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(VosError, match="must end with"):
        OverlayWriter(tmp_path / "overlay.txt", 10, W, H)
    with pytest.raises(VosError, match="Cannot write overlay"):
        OverlayWriter(tmp_path / "missing" / "overlay.mp4", 10, W, H)
    with OverlayWriter(tmp_path / "o.mp4", 10, W, H) as w:
        with pytest.raises(ValueError):
            w.write(np.zeros((H, W + 2, 3), np.uint8), np.zeros((H, W + 2), np.uint8))
        w.write(*frame_and_mask(0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.mp4"]


_PIPELINE = """
import sys, time
import numpy as np
from vos_cli.io.masks import MaskWriter
from vos_cli.io.overlay import OverlayWriter
from vos_cli.io.video import Prefetcher, open_frames

video, overlay, masks = sys.argv[1:4]
src = open_frames(video)
try:
    with Prefetcher(src) as frames, MaskWriter(masks) as mw, OverlayWriter(
        overlay, src.fps, src.width, src.height
    ) as ow:
        for i, frame in enumerate(frames):
            labels = (frame[..., 0] > 128).astype(np.uint8)
            ow.write(frame, labels)
            mw.write(i, labels)
            if i == 5:
                print("ready", flush=True)
            time.sleep(0.02)  # "the network"
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
finally:
    src.close()
"""


@pytest.mark.skipif(os.name != "posix", reason="SIGINT to a process group")
def test_ctrl_c_in_a_real_pipeline(tmp_path: Path) -> None:
    """SIGINT to the whole process group, as a terminal's Ctrl-C does: stops promptly,
    the overlay is a valid shorter video, every mask written is a readable PNG."""
    video = tmp_path / "in.mp4"
    gen = imageio_ffmpeg.write_frames(
        str(video), (W, H), fps=25, macro_block_size=1, ffmpeg_log_level="error"
    )
    gen.send(None)
    for i in range(300):
        gen.send(np.ascontiguousarray(frame_and_mask(i % 30)[0] + np.uint8(i % 100)))
    gen.close()
    overlay, masks = tmp_path / "overlay.mp4", tmp_path / "masks"
    proc = start_in_own_session(["-c", _PIPELINE, str(video), str(overlay), str(masks)])
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in out
    _, frames = decode(overlay)
    assert 6 <= len(frames) < 300
    names = sorted(p.name for p in masks.iterdir())
    assert len(names) >= 6 and all(not n.startswith(".") for n in names)
    for name in names:
        assert read_mask(masks / name).shape == (H, W)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "masks", "overlay.mp4"]


@pytest.mark.parametrize("n", [2, 50])
def test_overlay_encoder_failure_is_vos_error(tmp_path: Path, n: int) -> None:
    # an unknown x264 preset makes ffmpeg exit at once (like a full disk would mid-way);
    # with 2 frames the pipe never fills, so only the empty output shows the failure
    writer = OverlayWriter(tmp_path / "o.mp4", 10, W, H, preset="no-such-preset")
    with pytest.raises(VosError, match="Cannot write overlay") as info:
        for i in range(n):
            writer.write(*frame_and_mask(i % 10))
        writer.close()
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []  # temp file removed, no broken target
