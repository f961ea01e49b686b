"""Faults lose nothing: each fault is really caused (a disk that fills, ffmpeg killed, signals,
kill -9, broken frames) and each test checks the exit code, the one-line message, and that every
file left at a final name decodes completely; --resume then finishes the run exactly."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from tests.conftest import first_mask, moving_shapes_frames, start_in_own_session, write_video
from tests.faults import (
    LINUX,
    DiskFull,
    check_final_files,
    ffmpeg_child,
    grow_filesystem,
    masks_equal,
    png_count,
    small_filesystem,
    wait_for_masks,
)
from vos_cli.cli import app
from vos_cli.errors import PartialRunError
from vos_cli.io.masks import write_mask
from vos_cli.resume import STATE_NAME, load_state
from vos_cli.segment import SegmentRequest, segment_video
from vos_cli.train.checkpoint import load_training_checkpoint

runner = CliRunner()
SHORT = 40  # frames of the clip run in this process
LONG = 160  # frames of the clip run as a command: long enough to be stopped part-way

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX signals and limits")
linux_only = pytest.mark.skipif(not LINUX, reason="finds files and children through /proc")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    frames = moving_shapes_frames(20)
    mask = folder / "first.png"
    write_mask(mask, first_mask())
    return {
        "short": write_video(folder / "short.mp4", [frames[i % 20] for i in range(SHORT)]),
        "long": write_video(folder / "long.mp4", [frames[i % 20] for i in range(LONG)]),
        "mask": mask,
    }


@pytest.fixture(scope="module")
def reference(clips, tiny_model_path, tmp_path_factory) -> dict[str, Path]:
    """The masks of uninterrupted runs, to compare resumed runs with."""
    out = {}
    for name in ("short", "long"):
        folder = tmp_path_factory.mktemp(f"reference-{name}")
        segment_video(request(clips, tiny_model_path, name, out_dir=folder / "masks"))
        out[name] = folder / "masks"
    return out


def request(clips, weights, clip: str = "short", **outputs) -> SegmentRequest:
    return SegmentRequest(
        clips[clip],
        [(0, clips["mask"])],
        weights=weights,
        device="cpu",
        precision="fp32",
        **outputs,
    )


def segment_args(clips, weights, clip: str, *outputs: object) -> list[str]:
    common = ["--weights", weights, "--device", "cpu", "--precision", "fp32"]
    return [str(a) for a in ["segment", clips[clip], "--mask", clips["mask"], *common, *outputs]]


def cli(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def error_line(output: str) -> str:
    """The output is exactly one line, ``error: ...``: no traceback, no ffmpeg chatter."""
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), output
    return lines[0]


def written(line: str) -> int:
    """The count in '... wrote 12 of about 300 masks ...'."""
    match = re.search(r"wrote ([\d,]+) of", line)
    assert match, line
    return int(match.group(1).replace(",", ""))


def resume_run(clips, weights, clip: str, out: Path, *outputs: object):
    result = cli(*segment_args(clips, weights, clip, "--out", out, *outputs, "--resume"))
    assert result.exit_code == 0, result.output
    return result


# -- writes that fail ----------------------------------------------------------------------


# sizes where the masks, the overlay or the cut-out meets the full disk first (the order of the
# writes varies from run to run; every size is too small for all outputs)
@pytest.mark.parametrize(
    ("size", "cutout"), [("48k", "c.webm"), ("180k", "c.webm"), ("188k", "c.webm"), ("160k", "c")]
)
def test_a_filesystem_that_fills(size, cutout, tmp_path, clips, tiny_model_path, reference):
    """A real small disk: whichever output meets the full disk first, the run fails with exit 1
    and one line naming it; every file at a final name is whole; after space is freed,
    --resume finishes with the masks of an uninterrupted run."""
    with small_filesystem(tmp_path / "disk", size) as disk:
        out = disk / "masks"
        videos = ["--overlay", disk / "o.mp4", "--matte", disk / "m.mp4"]
        videos += ["--cutout", disk / cutout]  # a video, or a folder of PNGs
        result = cli(*segment_args(clips, tiny_model_path, "short", "--out", out, *videos))
        assert result.exit_code == 1, result.output
        line = error_line(result.output)
        assert "No space left on device" in line
        assert written(line) == png_count(out) <= SHORT
        counts = check_final_files(disk)
        for name in ("o.mp4", "m.mp4", cutout):  # what is kept is whole, and shorter
            assert counts.get(name, 0) <= SHORT
        grow_filesystem(disk, "20m")
        resumed = resume_run(clips, tiny_model_path, "short", out, *videos)
        assert "resuming at frame" in resumed.output
        counts = check_final_files(disk)
        assert counts == {"masks": SHORT, "o.mp4": SHORT, "m.mp4": SHORT, cutout: SHORT}
        assert masks_equal(reference["short"], out)
        assert not (out / STATE_NAME).exists()  # a finished run leaves no state


@linux_only
def test_disk_full_at_byte_n(tmp_path, clips, tiny_model_path, reference, monkeypatch) -> None:
    """Writes fail with ENOSPC after 20,000 bytes (the last one in part): the masks before are
    whole, the count is reported, the state written before lets --resume finish exactly."""
    out = tmp_path / "masks"
    disk = DiskFull(monkeypatch, tmp_path, budget=20_000)
    result = cli(*segment_args(clips, tiny_model_path, "short", "--out", out))
    assert disk.failures >= 1
    assert result.exit_code == 1, result.output
    line = error_line(result.output)
    assert re.search(r"Cannot write (mask|resume state) .*: No space left on device", line)
    count = png_count(out)
    assert written(line) == count and 0 < count < SHORT
    assert f"of about {SHORT} masks" in line  # a video's frame count is ffmpeg's estimate
    assert check_final_files(tmp_path) == {"masks": count}
    state = load_state(out)
    assert state is not None and state["frame"] <= count
    monkeypatch.undo()  # space freed
    resume_run(clips, tiny_model_path, "short", out)
    assert png_count(out) == SHORT and masks_equal(reference["short"], out)


def test_the_failure_is_an_exception_with_the_count(tmp_path, clips, tiny_model_path, monkeypatch):
    """What a caller of segment_video catches: PartialRunError, exit code 1, masks on disk."""
    if not LINUX:
        pytest.skip("DiskFull finds file paths through /proc")
    DiskFull(monkeypatch, tmp_path, budget=15_000)
    with pytest.raises(PartialRunError) as info:
        segment_video(request(clips, tiny_model_path, out_dir=tmp_path / "m"))
    error = info.value
    assert error.exit_code == 1 and error.out_dir == tmp_path / "m"
    assert error.masks_written == png_count(tmp_path / "m") and error.frames_done >= 1
    assert "No space left on device" in str(error.cause)


@pytest.mark.slow  # a vos command in a subprocess
@posix_only
def test_encoder_over_the_file_size_limit(tmp_path, clips, tiny_model_path) -> None:
    """A file-size limit (RLIMIT_FSIZE) that the overlay outgrows: ffmpeg dies part-way, the run
    fails with exit 1 naming the overlay, no broken overlay is left, the masks are whole."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (32_000, 32_000))

    out, overlay = tmp_path / "out" / "masks", tmp_path / "out" / "o.mp4"
    args = segment_args(clips, tiny_model_path, "long", "--out", out, "--overlay", overlay)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run(
        [sys.executable, "-m", "vos_cli", *args],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=limit,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    line = error_line(done.stderr + done.stdout)
    assert f"Cannot write overlay {overlay}" in line
    assert "SIGXFSZ" in line or "File too large" in line
    assert not overlay.exists()
    assert check_final_files(tmp_path / "out") == {"masks": written(line)}


@pytest.mark.slow  # a vos command in a subprocess
@linux_only
@posix_only
def test_encoder_killed_mid_run(tmp_path, clips, tiny_model_path, reference) -> None:
    """ffmpeg encoding the overlay is killed: exit 1, the overlay never takes its name, the matte
    (whose encoder lived) is a valid shorter video, --resume then writes both whole."""
    out, overlay, matte = tmp_path / "masks", tmp_path / "o.mp4", tmp_path / "m.mp4"
    videos = ["--overlay", overlay, "--matte", matte]
    proc = start_in_own_session(
        ["-m", "vos_cli", *segment_args(clips, tiny_model_path, "long", "--out", out, *videos)]
    )
    try:
        wait_for_masks(proc, out, 5)
        os.kill(ffmpeg_child(proc.pid, ".o.mp4."), signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stderr
    line = error_line(stderr + stdout)
    assert f"Cannot write overlay {overlay}: the ffmpeg encoder was killed (SIGKILL)" in line
    assert not overlay.exists()
    counts = check_final_files(tmp_path)
    assert counts["masks"] == written(line) < LONG
    assert abs(counts["m.mp4"] - counts["masks"]) <= 1
    resume_run(clips, tiny_model_path, "long", out, *videos)
    assert check_final_files(tmp_path) == {"masks": LONG, "o.mp4": LONG, "m.mp4": LONG}
    assert masks_equal(reference["long"], out)


@pytest.mark.parametrize("disk", ["bytes", "filesystem"])
def test_checkpoint_on_a_full_disk_keeps_the_previous_one(disk, tmp_path, monkeypatch) -> None:
    """The step-4 checkpoint does not fit: exit 1 naming it, and last.pt still loads as step 2."""
    run_dir = tmp_path / "run"
    train = ["train", "--config", "smoke", "--no-progress", "--set"]
    assert cli(*train, "train.max_steps=2", "--out", run_dir).exit_code == 0
    last = run_dir / "checkpoints" / "last.pt"
    size = last.stat().st_size
    with contextlib.ExitStack() as stack:
        if disk == "bytes":
            if not LINUX:
                pytest.skip("DiskFull finds file paths through /proc")
            DiskFull(monkeypatch, run_dir, budget=size // 2)
        else:  # room for one checkpoint and a half: not for the next one's temp file
            small = stack.enter_context(
                small_filesystem(tmp_path / "disk", f"{size * 3 // 2 // 1024}k")
            )
            run_dir = shutil.copytree(run_dir, small / "run")
            last = run_dir / "checkpoints" / "last.pt"
        result = cli(*train, "train.max_steps=4", "--out", run_dir, "--resume", "last")
        assert result.exit_code == 1, result.output
        errors = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and "Traceback" not in result.output, result.output
        assert f"Cannot write checkpoint {last}: No space left on device at step 4" in errors[0]
        assert "still holds the previous checkpoint" in errors[0]
        assert load_training_checkpoint(last)["step"] == 2
        assert not [p for p in last.parent.iterdir() if p.name.startswith(".")]


@posix_only
def test_training_stops_on_sigterm_with_a_checkpoint(tmp_path) -> None:
    """SIGTERM mid-training (a job scheduler's stop): the step finishes, a checkpoint is saved,
    the result names the signal (the command exits 143), and the checkpoint resumes."""
    from vos_cli.data.shapes import MovingShapes
    from vos_cli.train.config import load_config
    from vos_cli.train.loop import Trainer

    class StoppedAtSample5(MovingShapes):
        def sample(self, epoch: int, index: int):
            if (epoch, index) == (0, 5):
                os.kill(os.getpid(), signal.SIGTERM)
            return super().sample(epoch, index)

    config = load_config("smoke", ["train.max_steps=6"])
    data = StoppedAtSample5(num_frames=4, size=(64, 96), seed=0, samples_per_epoch=8)
    result = Trainer(
        config, tmp_path, log=lambda m: None, progress=False, build_dataset=lambda cfg: data
    ).run()
    assert result.interrupted and result.stop_signal == signal.SIGTERM
    assert result.steps == 3  # samples 4 and 5 are step 3's batch
    assert load_training_checkpoint(tmp_path / "checkpoints" / "last.pt")["step"] == 3


@pytest.mark.slow  # a vos command in a subprocess
@posix_only
@pytest.mark.parametrize("whole_group", [False, True], ids=["process", "group"])
def test_vos_train_stopped_by_sigterm(tmp_path, whole_group: bool) -> None:
    """The command: exit 143 and a clear message; the checkpoint it saved on the way out loads.
    Also when the signal reaches the whole process group (``timeout``, a job scheduler), its
    data-loader worker included."""
    run_dir = tmp_path / "run"
    args = ["train", "--config", "smoke", "--out", run_dir, "--no-progress"]
    args += ["--set", "optim.epochs=1000", "--set", f"data.workers={int(whole_group)}"]
    proc = start_in_own_session(["-m", "vos_cli", *map(str, args)])
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "log.jsonl").is_file() or not (run_dir / "log.jsonl").read_text():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        (os.killpg if whole_group else os.kill)(proc.pid, signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr
    assert "training interrupted (checkpoint saved)" in stdout and "Traceback" not in stderr
    steps = load_training_checkpoint(run_dir / "checkpoints" / "last.pt")["step"]
    assert f"training interrupted (checkpoint saved): {steps} steps" in stdout


@linux_only
def test_bench_results_on_a_full_disk(tmp_path, tiny_model_path, monkeypatch) -> None:
    from tests.test_bench_davis import make_davis17

    root = make_davis17(tmp_path / "davis", {"cows": 3, "dogs": 2})
    results = tmp_path / "res"
    DiskFull(monkeypatch, results, budget=3_000)
    result = cli(
        "bench", "davis17", "--root", root, "--results", results, "--weights", tiny_model_path,
        "--device", "cpu", "--precision", "fp32", "--processes", "1",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    line = error_line(result.output)
    assert re.search(r"sequence \w+: Cannot write mask .*: No space left on device", line)
    assert check_final_files(results)  # the masks written are whole


# -- stops: signals, kill -9, a decoder that dies --------------------------------------------


def _stopped_run(tmp_path, clips, weights, stop, after: int = 5):
    """Run on the long clip with masks, overlay and matte; ``stop(proc)`` once ``after`` masks
    are on disk; returns (returncode, stdout, stderr)."""
    out = tmp_path / "masks"
    videos = ["--overlay", tmp_path / "o.mp4", "--matte", tmp_path / "m.mp4"]
    args = segment_args(clips, weights, "long", "--out", out, *videos)
    proc = start_in_own_session(["-m", "vos_cli", *args])
    try:
        wait_for_masks(proc, out, after)
        stop(proc)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, stdout, stderr, videos


@pytest.mark.slow  # a vos command in a subprocess
@posix_only
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_stop_signals_leave_valid_shorter_outputs(
    signum, tmp_path, clips, tiny_model_path, reference
) -> None:
    """SIGTERM (a job scheduler), SIGHUP (a closed terminal) and SIGINT, sent to vos alone:
    exit 128 + signal, a clear message, every output valid; --resume goes on from the exact
    frame where it stopped and ends with the masks of an uninterrupted run."""
    code, stdout, stderr, videos = _stopped_run(
        tmp_path, clips, tiny_model_path, lambda proc: os.kill(proc.pid, signum)
    )
    name = signal.Signals(signum).name
    assert code == 128 + signum, stderr
    assert f"stopped by {name}: every output is valid; --resume continues the run" in stderr
    assert "interrupted after" in stdout and "Traceback" not in stderr
    counts = check_final_files(tmp_path)
    masks = counts["masks"]
    assert 5 <= masks < LONG
    assert all(abs(counts[v] - masks) <= 1 for v in ("o.mp4", "m.mp4")), counts
    if signum != signal.SIGTERM:
        return
    resumed = resume_run(clips, tiny_model_path, "long", tmp_path / "masks", *videos)
    assert f"resuming at frame {masks}:" in resumed.output  # the state saved at the stop
    assert check_final_files(tmp_path) == {"masks": LONG, "o.mp4": LONG, "m.mp4": LONG}
    assert masks_equal(reference["long"], tmp_path / "masks")


@pytest.mark.slow  # a vos command in a subprocess
@linux_only
@posix_only
def test_kill_9_then_resume(tmp_path, clips, tiny_model_path, reference) -> None:
    """kill -9: no handler runs. Masks on disk are whole, the videos never took their names
    (hidden temp files only); --resume removes those, continues from the last saved state."""
    code, _, _, videos = _stopped_run(
        tmp_path, clips, tiny_model_path, lambda proc: os.kill(proc.pid, signal.SIGKILL), 30
    )
    assert code == -signal.SIGKILL
    assert not (tmp_path / "o.mp4").exists() and not (tmp_path / "m.mp4").exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers and all(".partial.mp4" in n for n in leftovers), leftovers
    masks = png_count(tmp_path / "masks")
    state = load_state(tmp_path / "masks")
    assert state is not None and 25 <= state["frame"] <= masks
    resumed = resume_run(clips, tiny_model_path, "long", tmp_path / "masks", *videos)
    assert f"resuming at frame {state['frame']}:" in resumed.output
    assert "temp file(s) of the stopped run removed" in resumed.output
    assert check_final_files(tmp_path) == {"masks": LONG, "o.mp4": LONG, "m.mp4": LONG}
    assert masks_equal(reference["long"], tmp_path / "masks")


@pytest.mark.slow  # a vos command in a subprocess
@linux_only
@posix_only
def test_decoder_killed_mid_run(tmp_path, clips, tiny_model_path, reference) -> None:
    """The decoding ffmpeg dies: an error naming the last decoded frame (not a silently short
    sequence), exit 1, one mask per decoded frame, and --resume finishes exactly."""
    code, stdout, stderr, videos = _stopped_run(
        tmp_path,
        clips,
        tiny_model_path,
        lambda proc: os.kill(ffmpeg_child(proc.pid, "image2pipe"), signal.SIGKILL),
    )
    assert code == 1, stderr
    line = error_line(stderr + stdout)
    match = re.search(
        r"past frame (\d+) \((\d+) frames decoded\): the ffmpeg decoder was killed", line
    )
    assert match and int(match.group(1)) + 1 == int(match.group(2)), line
    counts = check_final_files(tmp_path)
    assert counts["masks"] == written(line) == int(match.group(2))
    resume_run(clips, tiny_model_path, "long", tmp_path / "masks", *videos)
    assert masks_equal(reference["long"], tmp_path / "masks")


# -- broken frames -----------------------------------------------------------------------------


def _frame_folder(folder: Path, suffix: str) -> Path:
    folder.mkdir()
    for i, frame in enumerate(moving_shapes_frames(12)):
        Image.fromarray(frame).save(folder / f"{i:05d}{suffix}")
    return folder


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_a_frame_broken_mid_way(suffix, tmp_path, clips, tiny_model_path) -> None:
    """A frame whose header reads but whose pixels are cut off: exit 2 naming the frame, the
    masks of the frames before it whole and reported, no mask for it or after it."""
    frames = _frame_folder(tmp_path / "frames", suffix)
    broken = frames / f"00006{suffix}"
    data = broken.read_bytes()
    broken.write_bytes(data[: len(data) * 3 // 4])  # the header whole, the pixels cut
    out = tmp_path / "masks"
    common = ["--weights", tiny_model_path, "--device", "cpu", "--out", out]
    result = cli("segment", frames, "--mask", clips["mask"], *common)
    assert result.exit_code == 2, result.output
    line = error_line(result.output)
    assert f"Cannot read frame {broken}" in line and "wrote 6 of 12 masks" in line
    assert png_count(out) == 6 and not list(out.glob(".*.tmp"))


def test_a_frame_of_another_size_mid_way(tmp_path, clips, tiny_model_path) -> None:
    """Checked before any work: exit 2 naming the frame, nothing written."""
    frames = _frame_folder(tmp_path / "frames", ".png")
    Image.new("RGB", (48, 32)).save(frames / "00006.png")
    out = tmp_path / "masks"
    result = cli(
        "segment", frames, "--mask", clips["mask"], "--weights", tiny_model_path, "--out", out
    )
    assert result.exit_code == 2, result.output
    assert "00006.png is 48x32" in error_line(result.output)
    assert not out.exists()


# -- resume: exactness and refusals ------------------------------------------------------------


@pytest.mark.parametrize("flip", [False, True])
def test_tracker_snapshot_continues_exactly(flip, tiny_model_path) -> None:
    """A tracker restored from a snapshot (through torch.save) goes on bit for bit."""
    import io

    from vos_cli.inference.tracker import Tracker
    from vos_cli.model.factory import load_model

    model, _ = load_model(tiny_model_path)
    frames = moving_shapes_frames(14)
    later = np.zeros((64, 96), np.uint8)
    later[50:60, 40:56] = 7  # an object that starts after the snapshot

    def fresh() -> Tracker:
        tracker = Tracker(model, device="cpu", precision="fp32", flip=flip)
        tracker.add_mask(0, first_mask())
        tracker.add_mask(10, later)
        return tracker

    straight = fresh()
    expected = [straight.step(f) for f in frames]
    first = fresh()
    got = [first.step(f) for f in frames[:6]]
    buffer = io.BytesIO()
    torch.save(first.snapshot(), buffer)
    buffer.seek(0)
    second = Tracker(model, device="cpu", precision="fp32", flip=flip)
    second.restore(torch.load(buffer, weights_only=True))
    got += [second.step(f) for f in frames[6:]]
    assert second.object_ids == [1, 4, 7]
    assert all(np.array_equal(a, b) for a, b in zip(expected, got, strict=True))


def test_resume_refusals(tmp_path, clips, tiny_model_path) -> None:
    out = tmp_path / "masks"

    def stop_at_10(done: int, total: int | None) -> None:
        if done == 10:
            raise KeyboardInterrupt  # Ctrl-C, in this process

    summary = segment_video(request(clips, tiny_model_path, out_dir=out), progress=stop_at_10)
    assert summary.interrupted and png_count(out) == 10
    base = segment_args(clips, tiny_model_path, "short", "--out", out)
    again = cli(*base)  # without --resume: the unfinished run is not silently overwritten
    assert again.exit_code == 2 and "--resume" in error_line(again.output)
    other = cli(*base, "--resume", "--size", "32")
    assert other.exit_code == 2 and "another --size" in error_line(other.output)
    both = cli(*base, "--resume", "--force")
    assert both.exit_code == 2 and "give one of them" in error_line(both.output)
    (out / "00003.png").unlink()
    gone = cli(*base, "--resume")
    assert gone.exit_code == 2 and "00003.png of the interrupted run is missing" in gone.output
    fresh = cli(
        *segment_args(clips, tiny_model_path, "short", "--out", tmp_path / "new"), "--resume"
    )
    assert fresh.exit_code == 2 and "does not exist" in error_line(fresh.output)
