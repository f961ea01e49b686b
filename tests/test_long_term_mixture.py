"""Frame 0's mixture kept beside the running one."""

from __future__ import annotations

import numpy as np
import torch

from tests.conftest import TINY, first_mask, moving_shapes_frames
from vos_cli.inference.tracker import Tracker
from vos_cli.model.agame import ObjectState, two_channel
from vos_cli.model.config import ModelConfig
from vos_cli.model.factory import build_model


def _frame(model, seed: int) -> tuple:
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(1, 3, 64, 96, generator=g)
    return model.encode_frame(images)


def test_first_frame_mixture_is_kept_while_the_running_one_moves():
    torch.manual_seed(0)
    model = build_model(ModelConfig(**TINY, first_frame_mixture=True), backbone_weights=None)
    model.eval()
    assert model.fusion.conv0.in_channels == 2 * 4 + TINY["propagation_dim"]
    owner = torch.zeros(1, dtype=torch.long)
    mask = two_channel(torch.from_numpy(first_mask() == 1).float().view(1, 1, 64, 96))
    with torch.no_grad():
        frame0 = _frame(model, 0)
        state = model.init_objects(frame0, owner, mask)
        start_mean = state.first_mixture.mean.clone()
        torch.testing.assert_close(state.first_mixture.mean, state.mixture.mean)
        frame1 = _frame(model, 1)
        pred = model.predict(frame1, state, owner)
        soft = torch.softmax(pred.coarse_logits, dim=1)
        state = model.update(frame1, state, owner, soft)
    torch.testing.assert_close(state.first_mixture.mean, start_mean)
    moved = (state.mixture.mean - start_mean).abs().max() / start_mean.abs().max()
    assert moved > 1e-3  # the running mixture learned from frame 1
    # Selecting and joining objects carries the kept mixture along.
    both = ObjectState.cat([state, state])
    assert both.first_mixture.mean.shape[0] == 2
    torch.testing.assert_close(both.index(torch.tensor([1])).first_mixture.mean, start_mean)


def test_tracker_runs_a_model_with_both_mixtures():
    torch.manual_seed(0)
    config = ModelConfig(**TINY, first_frame_mixture=True)
    model = build_model(config, backbone_weights=None).eval()
    tracker = Tracker(model, device="cpu", precision="fp32")
    frames = moving_shapes_frames(4)
    tracker.add_mask(0, first_mask())
    np.testing.assert_array_equal(tracker.step(frames[0]), first_mask())
    for frame in frames[1:]:
        out = tracker.step(frame)
        assert out.shape == (64, 96) and set(np.unique(out).tolist()) <= {0, 1, 4}
