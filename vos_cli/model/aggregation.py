"""Softmax aggregation of per-object predictions into one label distribution.

The authors' variant of RGMP's aggregation: the background probability is the minimum over
objects of each object's not-object probability, every class gets odds p / (1 - p), and each
class's aggregated probability is its share of the summed odds. A single object is passed through
unchanged (aggregation would only sharpen it).
"""

from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-7


def aggregate(object_probs: Tensor) -> Tensor:
    """(O, H, W) per-object foreground probabilities -> (O + 1, H, W) class probabilities.

    Channel 0 is the background, channel i the i-th object; channels sum to one at every pixel.
    """
    if object_probs.shape[0] == 1:
        p = object_probs
        return torch.cat([1.0 - p, p], dim=0)
    background = (1.0 - object_probs).amin(dim=0, keepdim=True)
    probs = torch.cat([background, object_probs], dim=0).clamp(EPS, 1.0 - EPS)
    odds = probs / (1.0 - probs)
    return odds / odds.sum(dim=0, keepdim=True)


def aggregate_log(object_log_probs: Tensor) -> Tensor:
    """Log of :func:`aggregate` from per-object log-probabilities (for training losses)."""
    return aggregate(object_log_probs.exp()).clamp_min(EPS).log()
