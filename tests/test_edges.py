"""The fast guided filter that snaps written mask edges to the frame's, against float64 truths."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import first_mask, moving_shapes_frames
from vos_cli.errors import VosError
from vos_cli.inference.edges import box_mean, guided_upsample, luma
from vos_cli.inference.tracker import Tracker
from vos_cli.model.config import ModelConfig
from vos_cli.model.factory import load_model


def _window_mean(x: np.ndarray, r: int) -> np.ndarray:
    """Literal clipped window mean of a 2-D float64 array."""
    h, w = x.shape
    out = np.empty_like(x)
    for i in range(h):
        for j in range(w):
            out[i, j] = x[max(i - r, 0) : i + r + 1, max(j - r, 0) : j + r + 1].mean()
    return out


def _fast_guided_reference(p, g_low, g_full, r, eps):
    """He and Sun's fast guided filter written out in float64 numpy, one channel."""
    mean_i, mean_p = _window_mean(g_low, r), _window_mean(p, r)
    cov = _window_mean(g_low * p, r) - mean_i * mean_p
    var = _window_mean(g_low * g_low, r) - mean_i**2
    a = cov / (var + eps)
    b = mean_p - a * mean_i
    a, b = _window_mean(a, r), _window_mean(b, r)
    size = g_full.shape
    up = [
        F.interpolate(torch.from_numpy(t)[None, None], size=size, mode="bilinear")[0, 0].numpy()
        for t in (a, b)
    ]
    return up[0] * g_full + up[1]


def test_box_mean_is_the_clipped_window_mean():
    x = np.random.default_rng(0).random((9, 13))
    for r in (1, 2, 4):
        got = box_mean(torch.from_numpy(x)[None, None], r)[0, 0].numpy()
        np.testing.assert_allclose(got, _window_mean(x, r), rtol=0, atol=1e-12)


def test_guided_upsample_matches_a_float64_reference():
    rng = np.random.default_rng(1)
    p = rng.random((12, 20))
    g_low, g_full = rng.random((12, 20)), rng.random((24, 40))
    got = guided_upsample(
        torch.from_numpy(p)[None].double(),
        torch.from_numpy(g_low)[None].double(),
        torch.from_numpy(g_full)[None].double(),
        radius=2,
        eps=1e-3,
    )
    want = _fast_guided_reference(p, g_low, g_full, 2, 1e-3)
    # the filter computes in float32: agreement to float32 rounding of values near 1
    np.testing.assert_allclose(got[0].double().numpy(), want, rtol=0, atol=2e-4)


def test_channels_that_sum_to_one_still_do():
    rng = np.random.default_rng(2)
    logits = torch.from_numpy(rng.normal(size=(3, 10, 16)))
    probs = logits.softmax(0)
    guide_low, guide_full = torch.rand(1, 10, 16), torch.rand(1, 30, 48)
    out = guided_upsample(probs, guide_low, guide_full, radius=3, eps=1e-3)
    assert out.shape == (3, 30, 48)
    np.testing.assert_allclose(out.sum(0).numpy(), 1.0, atol=1e-5)


def test_a_soft_edge_snaps_to_the_frames_edge():
    """The frame turns from dark to bright at column 20 of 40; the network's probability ramps
    from 0 to 1 across columns 12-27 (bilinear: its 0.5 crossing is at about column 20 +- 4).
    Refined, the object is exactly the bright side."""
    h, w = 16, 40
    frame = torch.zeros(1, h, w)
    frame[..., 20:] = 0.8
    ramp = torch.clamp((torch.arange(w, dtype=torch.float32) - 14.0) / 16.0, 0, 1)
    prob = ramp.expand(h, w)[None]  # 0.5 at column 22: two pixels off the edge
    low = F.interpolate(frame[None], size=(8, 20), mode="bilinear", antialias=True)[0]
    prob_low = F.interpolate(prob[None], size=(8, 20), mode="bilinear", antialias=True)[0]
    bilinear = F.interpolate(prob_low[None], size=(h, w), mode="bilinear")[0, 0] > 0.5
    refined = guided_upsample(prob_low, low, frame, radius=3, eps=1e-3)[0] > 0.5
    assert bilinear[:, :22].sum() < bilinear.shape[0] * 2  # bilinear: off by about 2 columns
    assert refined[:, 20:].all() and not refined[:, :20].any()


def test_luma_weights_sum_to_one():
    grey = torch.full((3, 4, 5), 0.25)
    torch.testing.assert_close(luma(grey), torch.full((1, 4, 5), 0.25))


def test_tracker_writes_snapped_masks_and_feeds_back_its_own(tiny_model_path):
    """The refined map is written; the recurrence (the tracker's saved state) is unchanged."""
    model, _ = load_model(tiny_model_path)
    frames = moving_shapes_frames(4)
    written, states = {}, {}
    for radius in (0, 2):
        model.config = replace(model.config, edge_radius=radius)
        tracker = Tracker(model, device="cpu", precision="fp32", size=32)
        tracker.add_mask(0, first_mask())
        written[radius] = [tracker.step(f) for f in frames]
        states[radius] = tracker.snapshot()["states"]
    for plain, refined in zip(written[0], written[2], strict=True):
        assert refined.shape == plain.shape == (64, 96)
        assert set(np.unique(refined).tolist()) <= {0, 1, 4}
    assert any(not np.array_equal(a, b) for a, b in zip(written[0], written[2], strict=True))
    for plain, refined in zip(states[0], states[2], strict=True):
        for key, tensor in plain.items():
            if tensor is not None:
                torch.testing.assert_close(refined[key], tensor, rtol=0, atol=0)


def test_negative_radius_is_refused():
    with pytest.raises(VosError, match="edge_radius"):
        ModelConfig(edge_radius=-1)
