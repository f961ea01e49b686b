"""Softmax aggregation: hand-computed values and its defining properties."""

import torch

from vos_cli.model.aggregation import aggregate, aggregate_log


def test_single_object_is_identity():
    p = torch.rand(1, 5, 7)
    out = aggregate(p)
    torch.testing.assert_close(out[1], p[0])
    torch.testing.assert_close(out[0], 1 - p[0])


def test_probabilities_sum_to_one():
    p = torch.rand(4, 6, 9)
    out = aggregate(p)
    assert out.shape == (5, 6, 9)
    torch.testing.assert_close(out.sum(0), torch.ones(6, 9))
    assert (out >= 0).all()


def test_hand_computed_two_objects():
    # p1 = 0.8, p2 = 0.5: background = min(0.2, 0.5) = 0.2.
    # odds: bg 0.25, obj1 4, obj2 1 -> sum 5.25.
    p = torch.tensor([0.8, 0.5]).view(2, 1, 1)
    out = aggregate(p).view(-1)
    expected = torch.tensor([0.25, 4.0, 1.0]) / 5.25
    torch.testing.assert_close(out, expected)


def test_log_version_matches():
    p = torch.rand(3, 4, 4).clamp(0.01, 0.99)
    torch.testing.assert_close(aggregate_log(p.log()).exp(), aggregate(p), atol=1e-6, rtol=1e-5)
