"""The previous fine mask as an upsampler input: pooling, zero start, feedback and training."""

from __future__ import annotations

import numpy as np
import torch

from tests.conftest import (
    TINY,
    first_mask,
    frame_tensors,
    moving_shapes_frames,
    three_frame_fine_logits,
    track_both_ways,
)
from vos_cli.model.agame import two_channel
from vos_cli.model.config import ModelConfig
from vos_cli.model.factory import build_model, load_extended, save_weights
from vos_cli.model.mask_prior import pool_prior
from vos_cli.model.weights_info import describe_weights
from vos_cli.train.unroll import SnippetUnroller


def _tiny(use_mask_prior: bool, seed: int = 0):
    torch.manual_seed(seed)
    config = ModelConfig(**TINY, use_mask_prior=use_mask_prior)
    return build_model(config, backbone_weights=None)


def test_pool_prior_by_hand():
    prob = torch.zeros(1, 1, 8, 8)
    prob[0, 0, :4, :4] = 1.0  # one whole stride-4 cell
    prob[0, 0, 4:6, 4:8] = 0.5  # half of another, at one half
    pooled = pool_prior(prob)
    assert pooled.shape == (1, 1, 2, 2)
    assert pooled[0, 0].tolist() == [[1.0, 0.0], [0.0, 0.25]]


def test_extended_model_starts_as_the_trained_one():
    plain = _tiny(False).eval()
    extended = _tiny(True, seed=1).eval()
    load_extended(extended, plain.state_dict(), source="plain")
    frames = moving_shapes_frames(3)
    mask = torch.from_numpy(first_mask() == 1).float()[None, None]
    base = three_frame_fine_logits(plain, frames, mask)
    torch.testing.assert_close(three_frame_fine_logits(extended, frames, mask), base)
    with torch.no_grad():  # once the prior has weight, it changes the output
        extended.mask_prior.to_s4.weight.normal_(0, 0.5)
    assert not torch.allclose(three_frame_fine_logits(extended, frames, mask), base)


def test_state_carries_the_pooled_fine_mask():
    model = _tiny(True).eval()
    frames = frame_tensors(moving_shapes_frames(2))
    owner = torch.zeros(1, dtype=torch.long)
    mask = torch.from_numpy(first_mask() == 1).float()[None, None]
    with torch.no_grad():
        frame0 = model.encode_frame(frames[0])
        state = model.init_objects(frame0, owner, two_channel(mask))
        torch.testing.assert_close(state.prev_fine, torch.nn.functional.avg_pool2d(mask, 4))
        new = torch.rand(1, 1, 64, 96)
        updated = model.update(frame0, state, owner, state.prev_mask, new)
        torch.testing.assert_close(updated.prev_fine, torch.nn.functional.avg_pool2d(new, 4))
        kept = model.update(frame0, updated, owner, state.prev_mask)  # no fine mask: unchanged
        assert kept.prev_fine is updated.prev_fine


def test_training_reaches_the_prior():
    """The unrolled loss feeds the fine prediction forward, so the prior's weights learn."""
    model = _tiny(True).train()
    frames = moving_shapes_frames(3)
    images = torch.stack([torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in frames])
    labels = torch.from_numpy(np.stack([first_mask() == 1] * 3)).long()
    out = SnippetUnroller(model)(images[None], labels[None], torch.tensor([1]))
    out.loss.backward()
    for conv in (model.mask_prior.to_s8, model.mask_prior.to_s4):
        assert conv.weight.grad.abs().sum() > 0


def test_tracker_with_prior_flip_is_mirror_symmetric():
    model = _tiny(True).eval()
    with torch.no_grad():
        model.mask_prior.to_s4.weight.normal_(0, 0.5)
        model.mask_prior.to_s8.weight.normal_(0, 0.5)
    outputs, trackers = track_both_ways(model, moving_shapes_frames(4), {0: first_mask()})
    for tracker in trackers:
        assert tracker.state.prev_fine.shape == (2, 1, 16, 24)
    for plain, mirrored in zip(*outputs, strict=True):
        assert (plain == mirrored).mean() > 0.999


def test_weights_info_names_the_prior(tmp_path):
    path = tmp_path / "prior.pt"
    save_weights(_tiny(True), path, include_backbone=True)
    assert any("previous fine mask prior" in line for line in describe_weights(path))
    assert ModelConfig.from_dict(ModelConfig(use_mask_prior=True).to_dict()).use_mask_prior
