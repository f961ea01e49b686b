"""Shared fixtures: a tiny randomly initialised model and a small real video."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch

from vos_cli.model.config import ModelConfig
from vos_cli.model.factory import build_model, save_weights

# One thread: the tests' inputs are tiny, so intra-op threads gain nothing, and on a busy 2-core
# machine OpenMP workers spinning next to the decode and PNG threads slow the suite down many
# times. Child processes (vos run as a command, torchrun) inherit it through the environment.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

TINY = dict(appearance_dim=8, propagation_dim=8, fusion_dim=8, encoding_dim=8, upsample_dim=8)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lite0 A-GAME with random backbone and heads, saved whole (no ImageNet weights needed)."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(**TINY), backbone_weights=None)
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    save_weights(model, path, include_backbone=True, meta={"note": "random test model"})
    return path


def moving_shapes_frames(count: int, height: int = 64, width: int = 96) -> list[np.ndarray]:
    """Frames with a red square moving right and a green disc moving down, on grey."""
    frames = []
    yy, xx = np.mgrid[:height, :width]
    for t in range(count):
        frame = np.full((height, width, 3), 90, dtype=np.uint8)
        x0 = 10 + 3 * t
        frame[20:40, x0 : x0 + 20] = (220, 30, 30)
        cy = 15 + 2 * t
        frame[(yy - cy) ** 2 + (xx - 70) ** 2 <= 64] = (30, 200, 40)
        frames.append(frame)
    return frames


def first_mask(height: int = 64, width: int = 96) -> np.ndarray:
    """Ids 1 (square) and 4 (disc) for frame 0 of :func:`moving_shapes_frames` (a gap in ids)."""
    yy, xx = np.mgrid[:height, :width]
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[20:40, 10:30] = 1
    mask[(yy - 15) ** 2 + (xx - 70) ** 2 <= 64] = 4
    return mask


def mirrored(a: np.ndarray) -> np.ndarray:
    """An image or label map flipped left to right."""
    return np.ascontiguousarray(a[:, ::-1])


def track_both_ways(model, frames: list[np.ndarray], masks: dict[int, np.ndarray]):
    """Track with the flip ensemble the video as given and mirrored (masks mirrored too).

    Returns both runs' outputs in the video's own orientation (the mirrored run's flipped
    back) and both trackers, for tests that the ensemble is mirror-symmetric.
    """
    from vos_cli.inference.tracker import Tracker

    outputs, trackers = [], []
    for mirror in (False, True):
        view = mirrored if mirror else (lambda a: a)
        tracker = Tracker(model, device="cpu", precision="fp32", flip=True)
        for index, mask in masks.items():
            tracker.add_mask(index, view(mask))
        outputs.append([view(tracker.step(view(frame))) for frame in frames])
        trackers.append(tracker)
    return outputs, trackers


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    height, width = frames[0].shape[:2]
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (width, height),
        fps=fps,
        codec="libx264",
        pix_fmt_out="yuv420p",
        quality=8,
        macro_block_size=1,
    )
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    return path


def decode_video(path: Path, rgba: bool = False) -> tuple[dict, list[np.ndarray]]:
    """Every frame of ``path`` as RGB or RGBA; VP9 through libvpx, the decoder that keeps alpha."""
    vp9 = ["-c:v", "libvpx-vp9"] if path.suffix == ".webm" else []
    gen = imageio_ffmpeg.read_frames(
        str(path),
        pix_fmt="rgba" if rgba else "rgb24",
        bits_per_pixel=32 if rgba else 24,
        input_params=vp9,
    )
    meta = next(gen)
    w, h = meta["size"]
    return meta, [np.frombuffer(b, np.uint8).reshape(h, w, -1) for b in gen]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1 when both are empty)."""
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


@pytest.fixture()
def shapes_video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "shapes.mp4", moving_shapes_frames(12))


@pytest.fixture()
def aggregate_single_seen(monkeypatch) -> list[bool]:
    """The ``aggregate_single`` of every Tracker built while the test runs, in order."""
    import vos_cli.inference.tracker as tracker_module  # bench.tracking imports it where it runs

    seen: list[bool] = []

    class Spy(tracker_module.Tracker):
        def __init__(self, *args, aggregate_single: bool = False, **kwargs):
            seen.append(aggregate_single)
            super().__init__(*args, aggregate_single=aggregate_single, **kwargs)

    monkeypatch.setattr(tracker_module, "Tracker", Spy)
    return seen


def start_in_own_session(argv: list[str]) -> subprocess.Popen:
    """A child Python process with this checkout first on its path, in its own session so a
    test can send SIGINT to its whole group as a terminal's Ctrl-C would."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    return subprocess.Popen(
        [sys.executable, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
        # A run under nohup ignores SIGHUP, and children inherit that: the child gets the
        # default disposition a terminal session has, so the signal tests mean the same anywhere.
        preexec_fn=_default_hangup,
    )


def _default_hangup() -> None:
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.fixture(scope="session")
def tiny_maskmaker_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mask maker with a random backbone and a head that says "object" everywhere: its mask
    of a box is exactly the box's crop window (see vos_cli.prompts.predictor.crop_window)."""
    from vos_cli.prompts.model import MaskMakerConfig, MaskMakerNet, save_maskmaker

    torch.manual_seed(0)
    config = MaskMakerConfig(crop_size=64, dim16=8, dim8=8, dim4=8, dim2=8, prompt_dim=8)
    net = MaskMakerNet(config, backbone_weights=None)
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.fill_(6.0)
    path = tmp_path_factory.mktemp("maskmaker") / "tiny-maskmaker.pt"
    save_maskmaker(net, path, meta={"note": "random test mask maker"})
    return path
