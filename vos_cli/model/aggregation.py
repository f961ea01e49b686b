"""Softmax aggregation of per-object predictions into one label distribution.

The authors' variant of RGMP's aggregation: the background probability is the minimum over
objects of each object's not-object probability, every class gets odds p / (1 - p) with p
clamped to [1e-7, 1 - 1e-7], and each class's aggregated probability is its share of the summed
odds.

Everything here works on log-odds, which is what the network predicts: an object's two-class
softmax has log-odds ``m = logit_object - logit_not_object`` exactly. The background's
not-object probability, min_k sigmoid(-m_k), has log-odds -max_k m_k, and clamping p to
[eps, 1 - eps] is clamping the log-odds to [-L, L] with L = log((1 - eps) / eps). The
aggregated probabilities are then a softmax over the clamped log-odds. Forming odds as
p / (1 - p) from a float32 sigmoid instead loses every digit of 1 - p once p is within ~1e-5 of
one (up to 0.14 probability error on two objects), and caps the odds at 8.4e6, not 1e7.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

EPS = 1e-7
LOG_ODDS_LIMIT = math.log((1.0 - EPS) / EPS)
"""The authors' clamp of probabilities to [EPS, 1 - EPS], as a bound on log-odds (~16.118)."""


def margins(logits: Tensor) -> Tensor:
    """(N, 2, H, W) two-class logits (not-object, object) -> (N, H, W) object log-odds, float32."""
    return logits[:, 1].float() - logits[:, 0].float()


def mean_probability_log_odds(view_log_odds: Tensor) -> Tensor:
    """(V, ...) log-odds of V views -> log-odds of their mean probability, without rounding.

    log(mean sigmoid(m)) - log(mean sigmoid(-m)), each a log-sum-exp of log-sigmoids, so no
    probability near one is ever subtracted from one.
    """
    positive = torch.logsumexp(F.logsigmoid(view_log_odds), dim=0)
    negative = torch.logsumexp(F.logsigmoid(-view_log_odds), dim=0)
    return positive - negative


def class_log_odds(log_odds: Tensor) -> Tensor:
    """(O, H, W) object log-odds -> (O + 1, H, W) clamped log-odds of background and objects."""
    background = -log_odds.amax(dim=0, keepdim=True)
    return torch.cat([background, log_odds]).clamp(-LOG_ODDS_LIMIT, LOG_ODDS_LIMIT)


def aggregate_log(log_odds: Tensor, single: bool = False) -> Tensor:
    """(O, H, W) object log-odds -> (O + 1, H, W) log-probabilities over background and objects.

    One object passes through as its own two-class distribution unless ``single`` is set, which
    aggregates it as the authors do in their DAVIS 2017 / YouTube-VOS setting (the background's
    log-odds are then -m, so the object's probability becomes sigmoid(2m): sharper).
    """
    if log_odds.shape[0] == 1 and not single:
        return torch.stack([F.logsigmoid(-log_odds[0]), F.logsigmoid(log_odds[0])])
    return torch.log_softmax(class_log_odds(log_odds), dim=0)


def aggregate(log_odds: Tensor, single: bool = False) -> Tensor:
    """(O, H, W) object log-odds -> (O + 1, H, W) class probabilities (channel 0 background).

    Channels sum to one at every pixel. See :func:`aggregate_log` for ``single``.
    """
    if log_odds.shape[0] == 1 and not single:
        return torch.stack([torch.sigmoid(-log_odds[0]), torch.sigmoid(log_odds[0])])
    return torch.softmax(class_log_odds(log_odds), dim=0)
