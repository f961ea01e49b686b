"""The streaming tracker: ids, sizes, later objects, memory independent of length."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from tests.conftest import first_mask, moving_shapes_frames, track_both_ways
from vos_cli.errors import VosError
from vos_cli.inference.sizing import working_size
from vos_cli.inference.tracker import Tracker
from vos_cli.model.agame import two_channel
from vos_cli.model.factory import load_model


@pytest.fixture()
def model(tiny_model_path):
    m, _ = load_model(tiny_model_path)
    return m


def test_first_frame_returns_given_mask_and_ids_are_kept(model):
    tracker = Tracker(model, device="cpu", precision="fp32")
    frames = moving_shapes_frames(4)
    tracker.add_mask(0, first_mask())
    out0 = tracker.step(frames[0])
    np.testing.assert_array_equal(out0, first_mask())
    assert tracker.object_ids == [1, 4]
    for frame in frames[1:]:
        out = tracker.step(frame)
        assert out.shape == (64, 96) and out.dtype == np.uint8
        assert set(np.unique(out).tolist()) <= {0, 1, 4}


def test_odd_sizes_and_lower_working_resolution(model):
    frame = np.random.default_rng(0).integers(0, 255, (37, 51, 3), dtype=np.uint8)
    mask = np.zeros((37, 51), np.uint8)
    mask[5:20, 5:25] = 2
    for size in (None, 24):
        tracker = Tracker(model, device="cpu", precision="fp32", size=size)
        tracker.add_mask(0, mask)
        assert tracker.step(frame).shape == (37, 51)
        assert tracker.step(frame).shape == (37, 51)
    assert working_size(480, 854, 240) == (240, 427)
    assert working_size(100, 100, 240) == (100, 100)


def test_object_first_given_at_a_later_frame(model):
    tracker = Tracker(model, device="cpu", precision="fp32")
    frames = moving_shapes_frames(5)
    square_only = np.where(first_mask() == 1, 1, 0).astype(np.uint8)
    tracker.add_mask(0, square_only)
    later = np.zeros((64, 96), np.uint8)
    later[30:50, 60:80] = 7
    tracker.add_mask(2, later)
    assert set(np.unique(tracker.step(frames[0]))) <= {0, 1}
    tracker.step(frames[1])
    assert tracker.object_ids == [1]
    out2 = tracker.step(frames[2])
    assert tracker.object_ids == [1, 7]
    assert (out2[30:50, 60:80] == 7).all()  # the given mask wins where it names an object
    assert tracker.step(frames[3]).shape == (64, 96)


def test_flip_ensemble_is_mirror_symmetric(model):
    """Tracking the mirrored video with the flip ensemble gives the mirrored masks.

    The two views only swap places, so any view handled without flipping back (probabilities,
    feedback, a later object's first mask) would break the symmetry.
    """
    frames = moving_shapes_frames(5)
    later = np.zeros((64, 96), np.uint8)
    later[44:60, 40:58] = 2
    outputs, trackers = track_both_ways(model, frames, {0: first_mask(), 2: later})
    for tracker in trackers:
        assert tracker.object_ids == [1, 4, 2]
        assert len(tracker.states) == 2 and tracker.state is tracker.states[0]
    for plain, mirrored in zip(*outputs, strict=True):
        assert (plain == mirrored).mean() > 0.999


def test_flip_ensemble_differs_from_the_plain_tracker(model):
    frames = moving_shapes_frames(3)
    outputs = {}
    for flip in (False, True):
        tracker = Tracker(model, device="cpu", precision="fp32", flip=flip)
        tracker.add_mask(0, first_mask())
        tracker.step(frames[0])
        tracker.step(frames[1])
        outputs[flip] = tracker.state.prev_mask.clone()
    # the given frame's mask is certain; afterwards the mirrored view changes the feedback
    assert not torch.allclose(outputs[False], outputs[True])


def test_bf16_autocast_stays_close_to_fp32(model):
    """bf16 noise only: object probabilities of the network agree with fp32 closely."""
    frames = moving_shapes_frames(2)
    image0 = torch.from_numpy(frames[0]).permute(2, 0, 1)[None].float() / 255
    image1 = torch.from_numpy(frames[1]).permute(2, 0, 1)[None].float() / 255
    fg = torch.from_numpy(first_mask() == 1).float()[None, None]
    owner = torch.zeros(1, dtype=torch.long)
    probs = []
    for enabled in (False, True):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
            state = model.init_objects(model.encode_frame(image0), owner, two_channel(fg))
            pred = model.predict(model.encode_frame(image1), state, owner)
        probs.append(torch.softmax(pred.fine_logits.float(), 1)[:, 1])
    diff = (probs[0] - probs[1]).abs()
    assert diff.mean() < 0.02 and diff.max() < 0.15, (diff.mean(), diff.max())


def test_bad_inputs(model):
    tracker = Tracker(model, device="cpu", precision="fp32")
    with pytest.raises(VosError, match="no object"):
        tracker.add_mask(0, np.zeros((64, 96), np.uint8))
    tracker.add_mask(0, first_mask(32, 32))
    with pytest.raises(VosError, match="video is"):
        tracker.step(moving_shapes_frames(1)[0])
    if not torch.cuda.is_available():
        with pytest.raises(VosError, match="CUDA"):
            Tracker(model, device="cuda")


def test_state_does_not_grow_with_video_length(model):
    tracker = Tracker(model, device="cpu", precision="fp32")
    frames = moving_shapes_frames(3)
    tracker.add_mask(0, first_mask())

    def state_bytes() -> int:
        s = tracker.state
        tensors = [s.mixture.mean, s.mixture.var, s.first_encoding, s.first_mask, s.prev_mask]
        return sum(t.numel() * t.element_size() for t in tensors)

    tracker.step(frames[0])
    size_after_one = state_bytes()
    for i in range(30):
        tracker.step(frames[i % 3])
    assert state_bytes() == size_after_one
    assert not tracker.pending


def test_argmax_channels_matches_torch_argmax():
    from vos_cli.inference.tracker import argmax_channels

    probs = torch.rand(4, 33, 17)
    probs[:, 0, 0] = 0.5  # a tie keeps the lowest index, as torch.argmax does
    torch.testing.assert_close(argmax_channels(probs), probs.argmax(0))


def test_reset_starts_a_new_video_exactly_like_a_fresh_tracker(model):
    frames = moving_shapes_frames(4)
    reused = Tracker(model, device="cpu", precision="fp32")
    reused.add_mask(0, np.where(first_mask() == 4, 4, 0).astype(np.uint8))
    for frame in frames[::-1]:  # another video first: other objects, other frames
        reused.step(frame)
    reused.reset()
    assert reused.object_ids == [] and reused.frame_index == 0
    fresh = Tracker(model, device="cpu", precision="fp32")
    for tracker in (reused, fresh):
        tracker.add_mask(0, first_mask())
    for frame in frames:
        np.testing.assert_array_equal(reused.step(frame), fresh.step(frame))


def test_compile_applies_to_the_trackers_own_folded_copy(model, monkeypatch):
    # A deep copy drops a module's compiled forward, so compiling must happen after the copy.
    compiled = []
    monkeypatch.setattr("vos_cli.inference.tracker.compile_backbone", lambda m: compiled.append(m))
    tracker = Tracker(model, device="cpu", precision="fp32", compile=True)
    assert compiled == [tracker.model] and tracker.model is not model
    assert Tracker(model, device="cpu", precision="fp32").model is not None and len(compiled) == 1


@pytest.mark.slow
def test_compiled_backbone_gives_the_eager_masks(model):
    # Inductor generates C++ on CPU; skip where the machine has no compiler for it.
    import shutil

    if shutil.which("g++") is None and shutil.which("clang++") is None:
        pytest.skip("no C++ compiler for torch.compile on CPU")
    frames = moving_shapes_frames(3)
    outputs = []
    for compile in (False, True):
        tracker = Tracker(model, device="cpu", precision="fp32", compile=compile)
        tracker.add_mask(0, first_mask())
        outputs.append([tracker.step(frame) for frame in frames])
    for eager, compiled in zip(*outputs, strict=True):
        assert (eager != compiled).mean() < 0.001


def test_cudnn_autotuning_only_for_cuda(monkeypatch):
    from vos_cli.inference.runtime import tune_for_device

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    tune_for_device(torch.device("cpu"))
    assert torch.backends.cudnn.benchmark is False
    tune_for_device(torch.device("cuda"))  # only sets a flag: no GPU needed
    assert torch.backends.cudnn.benchmark is True


def spy_on_feedback(monkeypatch, record) -> None:
    """Call ``record`` with each frame's (objects, H, W) probabilities as the tracker feeds
    them back (the object channel of what it pools to stride 16)."""
    import vos_cli.inference.tracker as tracker_module

    pool = tracker_module.pool_to_stride16

    def spy(mask):
        record(mask[:, 1].detach().clone())
        return pool(mask)

    monkeypatch.setattr(tracker_module, "pool_to_stride16", spy)


def test_a_lone_object_is_aggregated_only_when_asked(model, monkeypatch):
    """``aggregate_single`` feeds back sigmoid(2m) for sigmoid(m), i.e. p^2 / (p^2 + (1-p)^2);
    the label map stays the same (both are above one half exactly where m > 0)."""
    frames = moving_shapes_frames(2)
    mask = (first_mask() == 1).astype(np.uint8)
    fed, labels = {}, {}
    for single in (False, True):
        tracker = Tracker(model, device="cpu", precision="fp32", aggregate_single=single)
        spy_on_feedback(monkeypatch, lambda probs, _single=single: fed.setdefault(_single, probs))
        tracker.add_mask(0, mask)
        labels[single] = [tracker.step(frame) for frame in frames]
    p = fed[False].double()
    torch.testing.assert_close(fed[True].double(), p**2 / (p**2 + (1 - p) ** 2), atol=1e-6, rtol=0)
    np.testing.assert_array_equal(labels[True][1], labels[False][1])


def test_two_objects_fed_back_equal_the_exact_aggregation(model, monkeypatch):
    """In a real two-object run with near-certain and conflicting pixels (the fine predictor's
    weights scaled up), what the tracker feeds back is the authors' aggregation computed in
    float64 from the same logits, to float32 rounding."""
    from tests.test_aggregation import reference
    from vos_cli.model.aggregation import margins

    with torch.no_grad():
        model.upsampler.predictor.weight.mul_(400.0)
        model.upsampler.predictor.bias.copy_(torch.tensor([0.0, 3.0]))
    tracker = Tracker(model, device="cpu", precision="fp32")
    logits, fed = [], []
    predict = tracker.model.predict

    def spy_predict(*args, **kwargs):
        out = predict(*args, **kwargs)
        logits.append(out.fine_logits.clone())
        return out

    tracker.model.predict = spy_predict
    spy_on_feedback(monkeypatch, fed.append)
    frames = moving_shapes_frames(2)
    tracker.add_mask(0, first_mask())
    for frame in frames:
        tracker.step(frame)
    m = margins(logits[0])
    assert float((m.abs() > 12).double().mean()) > 0.05  # near-certain pixels are there
    assert bool(((m[0] > 8) & (m[1] > 8)).any())  # and pixels both objects claim
    exact = reference(m)[1:]
    assert (fed[0].double() - exact).abs().max().item() <= 1e-6


def test_network_size_follows_the_smallest_object_of_the_first_mask(model):
    """A model naming a small-object size runs there for a video whose first mask has an object
    under 12 stride-16 cells at its own size; a size the caller gives is kept for every video."""
    model.config = replace(model.config, inference_size=128, small_object_size=192)
    frames = moving_shapes_frames(2, height=256, width=384)
    large = np.zeros((256, 384), np.uint8)
    large[40:200, 60:300] = 1  # 39% of the frame: 37.5 cells of the 128x192 grid's 96
    small = np.zeros((256, 384), np.uint8)
    small[20:40, 10:30] = 1  # 0.4 cells
    tracker = Tracker(model, device="cpu", precision="fp32")
    chosen = []
    for mask in (large, small, large):
        tracker.reset()
        tracker.add_mask(0, mask)
        outputs = [tracker.step(frame) for frame in frames]
        chosen.append(tracker.size)
        assert outputs[-1].shape == (256, 384)
    assert chosen == [128, 192, 128]
    fixed = Tracker(model, device="cpu", precision="fp32", size=160)
    fixed.add_mask(0, small)
    fixed.step(frames[0])
    assert fixed.size == 160
