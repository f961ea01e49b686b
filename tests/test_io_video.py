"""Frame sources (video files, frame folders) and the background Prefetcher."""

from __future__ import annotations

import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from vos_cli.errors import VosError
from vos_cli.io.video import (
    FolderFrameSource,
    Prefetcher,
    TruncatedVideoWarning,
    VideoFileSource,
    natural_sort_key,
    open_frames,
)

W, H = 64, 48


def moving_square(i: int) -> np.ndarray:
    """A white square moving right on a dark-blue background."""
    frame = np.zeros((H, W, 3), np.uint8)
    frame[..., 2] = 60
    x = 4 + 3 * i
    frame[16:32, x : x + 16] = 255
    return frame


def write_video(
    path: Path, frames: list[np.ndarray], fps: float = 10.0, faststart: bool = False
) -> Path:
    h, w = frames[0].shape[:2]
    gen = imageio_ffmpeg.write_frames(
        str(path),
        (w, h),
        fps=fps,
        macro_block_size=1,
        quality=8,
        ffmpeg_log_level="error",
        output_params=["-movflags", "+faststart"] if faststart else None,
    )
    gen.send(None)
    for f in frames:
        gen.send(np.ascontiguousarray(f))
    gen.close()
    return path


@pytest.fixture(scope="module")
def square_video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    frames = [moving_square(i) for i in range(12)]
    path = write_video(tmp_path_factory.mktemp("vid") / "squares.mp4", frames, fps=10)
    return path, frames


# -- video files -----------------------------------------------------------------------


def test_video_roundtrip(square_video: tuple[Path, list[np.ndarray]]) -> None:
    path, originals = square_video
    with open_frames(path) as src:
        assert isinstance(src, VideoFileSource)
        assert (src.width, src.height) == (W, H)
        assert src.fps == pytest.approx(10.0)
        assert src.num_frames == 12
        frames = list(src)
    assert len(frames) == 12
    assert src.frames_read == 12 and not src.truncated
    for got, want in zip(frames, originals, strict=True):
        assert got.shape == (H, W, 3) and got.dtype == np.uint8
        assert got.flags.writeable
        assert np.abs(got.astype(int) - want.astype(int)).mean() < 6
    # the square moved: decoded content follows the source, not just "some frames"
    assert frames[0][24, 10].min() > 200 and frames[-1][24, 10].max() < 100


def test_video_can_be_iterated_twice(square_video: tuple[Path, list[np.ndarray]]) -> None:
    path, _ = square_video
    with open_frames(str(path)) as src:
        assert sum(1 for _ in src) == 12
        assert sum(1 for _ in src) == 12


def test_video_close_mid_iteration(square_video: tuple[Path, list[np.ndarray]]) -> None:
    path, _ = square_video
    src = open_frames(path)
    it = iter(src)
    next(it)
    src.close()
    assert list(it) == []  # stops quietly, no truncation warning
    assert not src.truncated


def test_missing_path() -> None:
    with pytest.raises(VosError, match="not found"):
        open_frames("/nonexistent/video.mp4")


@pytest.mark.parametrize("name", ["notes.txt", "notes.mp4"])
def test_text_file_is_not_a_video(tmp_path: Path, name: str) -> None:
    p = tmp_path / name
    p.write_text("this is not a video\n" * 20)
    with pytest.raises(VosError, match="as a video") as info:
        open_frames(p)
    assert "\n" not in str(info.value)


def test_random_bytes_are_not_a_video(tmp_path: Path) -> None:
    p = tmp_path / "noise.mp4"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(VosError, match="as a video"):
        open_frames(p)


def _noise_video(path: Path, n: int, faststart: bool) -> Path:
    # noise does not compress, so the frame data (not the header) dominates the file
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(n)]
    return write_video(path, frames, fps=10, faststart=faststart)


def test_truncated_video_yields_decodable_frames(tmp_path: Path) -> None:
    full = _noise_video(tmp_path / "full.mp4", 30, faststart=True)
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])

    src = open_frames(cut)
    assert src.num_frames == 30  # the header still promises the full length
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frames = list(src)
    assert 0 < len(frames) < 27
    assert src.truncated and src.frames_read == len(frames)
    msgs = [w for w in caught if issubclass(w.category, TruncatedVideoWarning)]
    assert len(msgs) == 1
    assert "truncated" in str(msgs[0].message) and "\n" not in str(msgs[0].message)


def test_truncated_mp4_without_index_is_an_error(tmp_path: Path) -> None:
    # ffmpeg writes the MP4 index (moov) at the end by default: cutting it loses everything
    full = _noise_video(tmp_path / "full.mp4", 10, faststart=False)
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VosError, match="incomplete"):
        open_frames(cut)


def test_prefetched_truncated_video_warns(tmp_path: Path) -> None:
    full = _noise_video(tmp_path / "full.mp4", 30, faststart=True)
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    src = open_frames(cut)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Prefetcher(src) as frames:
            n = sum(1 for _ in frames)
    assert src.truncated and n == src.frames_read
    assert any(issubclass(w.category, TruncatedVideoWarning) for w in caught)


# -- frame folders ---------------------------------------------------------------------


def _write_frames(folder: Path, names: list[str], size: tuple[int, int] = (W, H)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        arr = np.full((size[1], size[0], 3), i * 10, np.uint8)
        Image.fromarray(arr).save(folder / name)


def test_folder_of_png_frames(tmp_path: Path) -> None:
    names = [f"{i:05d}.png" for i in range(5)]
    _write_frames(tmp_path / "f", names)
    (tmp_path / "f" / "notes.txt").write_text("ignored")
    (tmp_path / "f" / "._00000.png").write_bytes(b"macOS resource fork, ignored")
    with open_frames(tmp_path / "f", folder_fps=30) as src:
        assert isinstance(src, FolderFrameSource)
        assert (src.width, src.height, src.num_frames, src.fps) == (W, H, 5, 30.0)
        frames = list(src)
    assert [int(f[0, 0, 0]) for f in frames] == [0, 10, 20, 30, 40]
    assert all(f.shape == (H, W, 3) and f.dtype == np.uint8 for f in frames)
    assert all(f.flags.writeable for f in frames)


def test_folder_natural_order(tmp_path: Path) -> None:
    names = ["frame1.jpg", "frame2.JPG", "frame10.jpeg"]
    _write_frames(tmp_path / "f", names)
    src = open_frames(tmp_path / "f")
    assert [p.name for p in src.files] == names
    values = [int(f[..., 0].mean().round()) for f in src]
    assert values == [0, 10, 20]  # JPEG is lossy, but flat colours survive


def test_natural_sort_key() -> None:
    names = ["b10.png", "a2.png", "b9.png", "00011.png", "00002.png", "a10.png"]
    assert sorted(names, key=natural_sort_key) == [
        "00002.png",
        "00011.png",
        "a2.png",
        "a10.png",
        "b9.png",
        "b10.png",
    ]


def test_folder_grayscale_frames_become_rgb(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    Image.fromarray(np.full((H, W), 77, np.uint8)).save(folder / "0.png")
    frame = next(iter(open_frames(folder)))
    assert frame.shape == (H, W, 3) and (frame == 77).all()


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(VosError, match="No .* frames"):
        open_frames(tmp_path / "empty")
    (tmp_path / "empty" / "readme.txt").write_text("not a frame")
    with pytest.raises(VosError, match="No .* frames"):
        open_frames(tmp_path / "empty")


def test_folder_with_different_sizes(tmp_path: Path) -> None:
    _write_frames(tmp_path / "f", ["00000.png", "00001.png"])
    _write_frames(tmp_path / "f2", ["00002.png"], size=(W + 2, H))
    (tmp_path / "f2" / "00002.png").rename(tmp_path / "f" / "00002.png")
    with pytest.raises(VosError, match="differ in size") as info:
        open_frames(tmp_path / "f")
    assert "00002.png" in str(info.value) and "\n" not in str(info.value)


def test_folder_with_broken_image(tmp_path: Path) -> None:
    _write_frames(tmp_path / "f", ["00000.png"])
    (tmp_path / "f" / "00001.png").write_text("not really a png")
    with pytest.raises(VosError, match="00001.png"):
        open_frames(tmp_path / "f")


# -- Prefetcher ------------------------------------------------------------------------


def test_prefetcher_order_and_end() -> None:
    with Prefetcher(range(100), maxsize=4) as items:
        assert list(items) == list(range(100))
        assert list(items) == []  # exhausted, stays exhausted


def test_prefetcher_propagates_errors() -> None:
    def gen() -> Iterator[int]:
        yield 1
        yield 2
        raise VosError("boom at 3")

    got = []
    with Prefetcher(gen()) as items, pytest.raises(VosError, match="boom at 3"):
        for x in items:
            got.append(x)
    assert got == [1, 2]


def test_prefetcher_close_stops_endless_source() -> None:
    closed = threading.Event()
    produced = 0

    def endless() -> Iterator[int]:
        nonlocal produced
        try:
            while True:
                produced += 1
                time.sleep(0.001)
                yield produced
        finally:
            closed.set()  # e.g. where the ffmpeg subprocess gets terminated

    start = time.monotonic()
    pf = Prefetcher(endless(), maxsize=4)
    assert next(pf) == 1
    pf.close()
    assert closed.wait(2.0)
    assert time.monotonic() - start < 2.0
    assert produced <= 4 + 3  # bounded read-ahead, not a runaway producer
    with pytest.raises(StopIteration):
        next(pf)


def test_prefetcher_consumer_exception_stops_worker() -> None:
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            i = 0
            while True:
                i += 1
                yield i
        finally:
            closed.set()

    with pytest.raises(KeyboardInterrupt), Prefetcher(endless()) as items:
        for x in items:
            if x == 3:
                raise KeyboardInterrupt  # as if Ctrl-C arrived in the consumer
    assert closed.wait(2.0)


def test_length_hint(square_video: tuple[Path, list[np.ndarray]]) -> None:
    import operator

    path, _ = square_video
    with open_frames(path) as src:
        assert operator.length_hint(src) == 12
        assert src  # truthiness never depends on the (estimated) length


def test_protocol_like_file_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, square_video: tuple[Path, list]
) -> None:
    path, _ = square_video
    (tmp_path / "concat:clip.mp4").write_bytes(path.read_bytes())
    monkeypatch.chdir(tmp_path)
    with open_frames("concat:clip.mp4") as src:  # relative: ffmpeg would see a protocol
        assert sum(1 for _ in src) == 12


def test_audio_only_file_is_not_a_video(tmp_path: Path) -> None:
    wav = tmp_path / "sound.wav"
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    subprocess.run(
        [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "sine=d=0.2", str(wav)], check=True
    )
    with pytest.raises(VosError, match="no video stream"):
        open_frames(wav)
