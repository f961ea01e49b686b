"""Softmax aggregation: hand-computed values, a float64 reference of the authors' form, and
its defining properties."""

import math

import pytest
import torch

from vos_cli.model.aggregation import (
    LOG_ODDS_LIMIT,
    aggregate,
    aggregate_log,
    margins,
    mean_probability_log_odds,
)


def reference(log_odds: torch.Tensor, single: bool = False) -> torch.Tensor:
    """The authors' form in float64: two-class softmax per object, background = min of the
    not-object channels, odds = clamp(p) / clamp(not p), each class's share of the summed odds."""
    m = log_odds.double()
    if m.shape[0] == 1 and not single:
        return torch.stack([torch.sigmoid(-m[0]), torch.sigmoid(m[0])])
    eps = 1e-7
    p_obj, p_not = torch.sigmoid(m), torch.sigmoid(-m)  # the softmax's own two channels
    background = p_not.amin(0, keepdim=True)
    yes = torch.cat([1 - background, p_obj]).clamp(eps, 1 - eps)  # float64: 1 - b keeps 1e-16
    no = torch.cat([background, p_not]).clamp(eps, 1 - eps)
    odds = torch.cat([no[:1] / yes[:1], yes[1:] / no[1:]])
    return odds / odds.sum(0, keepdim=True)


# Per pixel, the objects' log-odds: near-certain, conflicting, beyond the clamp, mixed signs.
HARD_PIXELS = {
    2: [
        [12.0, -3.0],
        [13.5, 13.0],
        [15.0, 14.0],
        [16.0, 16.1],
        [20.0, 20.0],
        [25.0, -25.0],
        [11.0, 11.0],
        [-14.0, -15.0],
        [9.7, 10.3],
        [0.0, 0.0],
    ],
    3: [
        [12.0, 11.5, -2.0],
        [14.0, 14.0, 14.0],
        [16.5, 13.0, 12.0],
        [-18.0, -17.0, -16.5],
        [10.0, 0.0, 10.0],
        [30.0, 29.0, -30.0],
    ],
}


@pytest.mark.parametrize("objects", [2, 3])
def test_matches_float64_reference_on_hard_pixels(objects):
    m = torch.tensor(HARD_PIXELS[objects], dtype=torch.float32).T[:, :, None]  # (O, P, 1)
    out = aggregate(m)
    assert out.dtype == torch.float32
    assert (out.double() - reference(m)).abs().max().item() <= 1e-6


@pytest.mark.parametrize("objects", [1, 2, 3, 5])
def test_matches_float64_reference_on_random_logits(objects):
    g = torch.Generator().manual_seed(objects)
    m = (torch.rand(objects, 64, 64, generator=g) - 0.5) * 50  # log-odds in [-25, 25]
    for single in (False, True):
        err = (aggregate(m, single=single).double() - reference(m, single=single)).abs().max()
        assert err.item() <= 1e-6
        log_err = (aggregate_log(m, single=single).exp().double() - reference(m, single)).abs()
        assert log_err.max().item() <= 1e-6


def test_single_object_is_identity_unless_asked():
    m = torch.randn(1, 5, 7) * 4
    out = aggregate(m)
    torch.testing.assert_close(out[1], torch.sigmoid(m[0]))
    torch.testing.assert_close(out[0], torch.sigmoid(-m[0]))
    # The authors' multi-object setting: background log-odds -m, so the object gets sigmoid(2m).
    sharp = aggregate(m, single=True)
    torch.testing.assert_close(
        sharp[1], torch.sigmoid(2 * m[0].clamp(-LOG_ODDS_LIMIT, LOG_ODDS_LIMIT))
    )


def test_probabilities_sum_to_one():
    m = torch.randn(4, 6, 9) * 10
    out = aggregate(m)
    assert out.shape == (5, 6, 9)
    torch.testing.assert_close(out.sum(0), torch.ones(6, 9))
    assert (out >= 0).all()


def test_hand_computed_two_objects():
    # p1 = 0.8, p2 = 0.5: background = min(0.2, 0.5) = 0.2.
    # odds: bg 0.25, obj1 4, obj2 1 -> sum 5.25.
    m = torch.tensor([math.log(4.0), 0.0]).view(2, 1, 1)
    out = aggregate(m).view(-1)
    expected = torch.tensor([0.25, 4.0, 1.0]) / 5.25
    torch.testing.assert_close(out, expected)


def test_clamp_is_the_authors_odds_limit():
    # Their clamp of p to 1 - 1e-7 caps the odds at (1 - 1e-7) / 1e-7, i.e. about 1e7.
    assert math.exp(LOG_ODDS_LIMIT) == pytest.approx(1e7, rel=1e-6)
    m = torch.tensor([40.0, -40.0]).view(2, 1, 1)  # both beyond the clamp
    out = aggregate(m).view(-1).double()
    odds = torch.tensor(
        [1e-7 / (1 - 1e-7), (1 - 1e-7) / 1e-7, 1e-7 / (1 - 1e-7)], dtype=torch.float64
    )
    torch.testing.assert_close(out, odds / odds.sum(), atol=1e-9, rtol=1e-6)


def test_margins_are_the_two_class_log_odds():
    logits = torch.randn(3, 2, 4, 4)
    p = torch.softmax(logits.double(), dim=1)
    torch.testing.assert_close(margins(logits).double(), (p[:, 1] / p[:, 0]).log())


def test_mean_of_views_is_exact():
    # Two views near certainty: mean probability 1 - 5e-7 cannot be written as float32 1 - p.
    m = torch.tensor([[15.0, -3.0, 0.5], [14.0, 16.0, -0.5]])  # (V=2, P=3)
    p = torch.sigmoid(m.double()).mean(0)
    want = torch.log(p) - torch.log(torch.sigmoid(-m.double()).mean(0))
    torch.testing.assert_close(mean_probability_log_odds(m).double(), want, atol=1e-5, rtol=1e-6)


def test_training_unroll_uses_the_same_aggregation():
    """The unroll's per-snippet class log-probabilities: one object as its own softmax, several
    aggregated exactly as the tracker does (float64 reference), with finite gradients."""
    from vos_cli.train.unroll import SnippetUnroller

    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(4, 2, 6, 5, generator=g) * 12).requires_grad_(True)
    out = SnippetUnroller._class_log_probs(logits, torch.tensor([0, 1, 1, 1]), [1, 3])
    torch.testing.assert_close(out[0], torch.log_softmax(logits[0], dim=0))
    exact = reference(margins(logits[1:].detach())).log()
    assert (out[1].double() - exact).abs().max().item() <= 1e-5
    out[1].exp()[1:].sum().backward()
    assert torch.isfinite(logits.grad).all()
