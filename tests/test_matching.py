"""Feature matching: the similarity maps against a brute-force reference, and its integration."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import (
    TINY,
    first_mask,
    moving_shapes_frames,
    three_frame_fine_logits,
    track_both_ways,
)
from vos_cli.errors import VosError
from vos_cli.inference.tracker import Tracker
from vos_cli.model.agame import two_channel
from vos_cli.model.config import ModelConfig
from vos_cli.model.factory import build_model, load_extended
from vos_cli.model.matching import NO_MATCH, best_match, reference_selection, window_mask


def brute_force_best_match(keys, ref_keys, ref_mask, radius=None):
    """Loops in float64: for each pixel and class, max cosine over that class's references."""
    n, d, h, w = keys.shape
    out = np.full((n, 2, h * w), NO_MATCH)
    k = keys.double().reshape(n, d, -1).numpy()
    r = ref_keys.double().numpy()
    m = ref_mask.double().numpy()
    for b in range(n):
        for cls in range(2):
            labels = m[b, cls]
            threshold = min(labels.max(), 0.5)
            refs = [j for j in range(labels.size) if labels[j] >= threshold and labels[j] > 0.01]
            for i in range(h * w):
                for j in refs:
                    far = max(abs(i // w - j // w), abs(i % w - j % w))
                    if radius is not None and far > radius:
                        continue
                    out[b, cls, i] = max(out[b, cls, i], float(k[b, :, i] @ r[b, :, j]))
    return out.reshape(n, 2, h, w)


def random_keys(n, d, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, h, w, generator=g), dim=1)


def test_best_match_equals_brute_force_with_and_without_window():
    h, w = 4, 5
    keys = random_keys(2, 6, h, w, 0)
    ref = random_keys(2, 6, h, w, 1).flatten(2)
    fg = torch.zeros(2, h * w)
    fg[0, [3, 4, 9]] = 1.0  # a few certain object pixels
    fg[1, 7] = 0.3  # a small object that pools to under 0.5 everywhere
    mask = torch.stack([1 - fg, fg], dim=1)
    got = best_match(keys, ref, mask)
    np.testing.assert_allclose(got.numpy(), brute_force_best_match(keys, ref, mask), atol=1e-6)
    allowed = window_mask(h, w, 1, keys.device)
    got = best_match(keys, ref, mask, allowed)
    want = brute_force_best_match(keys, ref, mask, radius=1)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-6)


def test_reference_selection_thresholds():
    fg = torch.tensor([[0.9, 0.6, 0.4, 0.0], [0.2, 0.3, 0.1, 0.0], [0.005, 0.0, 0.0, 0.0]])
    selected = reference_selection(torch.stack([1 - fg, fg], dim=1))[:, 1]
    assert selected.tolist() == [
        [True, True, False, False],  # labels of at least 0.5
        [False, True, False, False],  # none reaches 0.5: the largest
        [False, False, False, False],  # a lost object: nothing to match against
    ]


def test_lost_object_reports_no_match():
    keys = random_keys(1, 4, 3, 3, 2)
    mask = torch.stack([torch.ones(1, 9), torch.zeros(1, 9)], dim=1)
    got = best_match(keys, keys.flatten(2), mask)
    assert (got[:, 1] == NO_MATCH).all()
    assert torch.allclose(got[:, 0], torch.ones(1, 3, 3), atol=1e-6)  # each pixel matches itself


def test_window_mask_by_hand():
    allowed = window_mask(2, 3, 1, torch.device("cpu"))
    # pixel 0 (row 0, col 0) reaches cols 0-1 of both rows; pixel 2 (row 0, col 2) cols 1-2
    assert allowed[0].tolist() == [True, True, False, True, True, False]
    assert allowed[2].tolist() == [False, True, True, False, True, True]
    assert torch.equal(allowed, allowed.T)


def _tiny(use_matching: bool, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(ModelConfig(**TINY, use_matching=use_matching), backbone_weights=None)


def test_extended_model_starts_as_the_trained_one():
    """Loading a model without matching into one with it keeps the function (zero init)."""
    plain = _tiny(False).eval()
    extended = _tiny(True, seed=1).eval()
    load_extended(extended, plain.state_dict(), source="plain")
    frames = moving_shapes_frames(3)
    mask = torch.from_numpy(first_mask() == 1).float()[None, None]
    base = three_frame_fine_logits(plain, frames, mask)
    torch.testing.assert_close(three_frame_fine_logits(extended, frames, mask), base)
    with torch.no_grad():  # once the matching input has weight, it changes the output
        extended.matching.embed.weight.normal_(0, 0.5)
    assert not torch.allclose(three_frame_fine_logits(extended, frames, mask), base)


def test_load_extended_refuses_what_does_not_fit():
    extended = _tiny(True)
    state = _tiny(False).state_dict()
    with pytest.raises(VosError, match="missing key 'fusion.conv0.weight'"):
        load_extended(extended, {k: v for k, v in state.items() if k != "fusion.conv0.weight"}, "f")
    with pytest.raises(VosError, match="unexpected key 'extra'"):
        load_extended(extended, {**state, "extra": torch.zeros(1)}, "f")
    wider = build_model(ModelConfig(**{**TINY, "fusion_dim": 16}), backbone_weights=None)
    with pytest.raises(VosError, match="does not fit"):
        load_extended(extended, wider.state_dict(), "f")


def test_matching_keys_get_gradients():
    model = _tiny(True).train()
    with torch.no_grad():
        model.matching.embed.weight.normal_(0, 0.5)
    frames = moving_shapes_frames(2)
    images = torch.stack([torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in frames])
    owner = torch.zeros(1, dtype=torch.long)
    encoding = model.encode_frame(images)
    mask = torch.from_numpy(first_mask() == 1).float()[None, None]
    state = model.init_objects(encoding, owner, two_channel(mask))
    pred = model.predict(encoding, state, torch.ones(1, dtype=torch.long))
    pred.fine_logits[:, 1].mean().backward()
    assert model.matching.key.weight.grad.abs().sum() > 0


@pytest.fixture()
def matching_model():
    model = _tiny(True).eval()
    with torch.no_grad():
        model.matching.embed.weight.normal_(0, 0.5)
    return model


def test_tracker_with_matching_flip_is_mirror_symmetric(matching_model):
    outputs, trackers = track_both_ways(matching_model, moving_shapes_frames(4), {0: first_mask()})
    for tracker in trackers:
        state = tracker.state
        assert state.first_keys.shape == state.prev_keys.shape
        assert state.first_keys.shape[:2] == (2, matching_model.config.matching_dim)
    for plain, mirrored in zip(*outputs, strict=True):
        assert (plain == mirrored).mean() > 0.999


def test_tracker_with_matching_adds_a_later_object(matching_model):
    tracker = Tracker(matching_model, device="cpu", precision="fp32")
    frames = moving_shapes_frames(4)
    tracker.add_mask(0, np.where(first_mask() == 1, 1, 0).astype(np.uint8))
    later = np.zeros((64, 96), np.uint8)
    later[30:50, 60:80] = 7
    tracker.add_mask(2, later)
    for frame in frames:
        out = tracker.step(frame)
    assert tracker.object_ids == [1, 7]
    assert out.shape == (64, 96)
    assert tracker.state.prev_keys.shape[0] == 2


def test_config_round_trip_keeps_matching():
    config = replace(ModelConfig(), use_matching=True, matching_dim=32)
    assert ModelConfig.from_dict(config.to_dict()) == config


def test_extension_modules_get_their_own_learning_rate():
    from vos_cli.train.loop import parameter_groups

    model = _tiny(True)
    groups = parameter_groups(model, lr=1e-4, extension_scale=10.0)
    assert [g["lr"] for g in groups] == [1e-4, pytest.approx(1e-3)]
    matching = {id(p) for p in model.matching.parameters()}
    assert {id(p) for p in groups[1]["params"]} == matching
    assert not matching & {id(p) for p in groups[0]["params"]}
    assert len(parameter_groups(_tiny(False), 1e-4, 10.0)) == 1  # nothing to scale
