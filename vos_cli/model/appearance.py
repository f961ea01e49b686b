"""The generative appearance module (paper section 3.2, eqs 3-8, Algorithm 1).

A class-conditional mixture of diagonal Gaussians over projected deep features: component 0 is the
background, 1 the foreground, 2 and 3 model the hard examples the base components get wrong
(background and foreground respectively). Everything is closed form and differentiable, so the
feature projection in front of it is learned end to end.

Shapes used throughout: features ``x`` (N, D, h, w), soft assignments ``alpha`` (N, K, h, w),
means and variances (N, K, D), scores (N, K, h, w). N counts objects, not images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BACKGROUND, FOREGROUND, BACKGROUND_HARD, FOREGROUND_HARD = 0, 1, 2, 3


@dataclass
class MixtureParams:
    """Means and variances of the K diagonal Gaussians, one mixture per object."""

    mean: Tensor  # (N, K, D)
    var: Tensor  # (N, K, D)

    def index(self, idx: Tensor) -> MixtureParams:
        return MixtureParams(self.mean[idx], self.var[idx])

    @staticmethod
    def cat(parts: list[MixtureParams]) -> MixtureParams:
        """Stack mixtures of different objects (dimension N)."""
        return MixtureParams(torch.cat([p.mean for p in parts]), torch.cat([p.var for p in parts]))

    @staticmethod
    def cat_components(parts: list[MixtureParams]) -> MixtureParams:
        """Join base and hard-example components of the same objects (dimension K)."""
        return MixtureParams(
            torch.cat([p.mean for p in parts], dim=1), torch.cat([p.var for p in parts], dim=1)
        )


def weighted_moments(x: Tensor, alpha: Tensor, reg_var: Tensor) -> MixtureParams:
    """Eq. 3: soft-weighted mean and diagonal variance per component.

    The denominator is ``sum(alpha) + 1`` (the authors' "average" form): a component with no
    support shrinks to a zero mean instead of dividing by zero. ``reg_var`` (K, D) is the learned,
    already positive covariance regulariser.
    """
    n, d = x.shape[:2]
    k = alpha.shape[1]
    xf = x.reshape(n, d, -1)  # (N, D, P)
    af = alpha.reshape(n, k, -1)  # (N, K, P)
    denom = af.sum(-1, keepdim=True) + 1.0  # (N, K, 1)
    mean = torch.bmm(af, xf.transpose(1, 2)) / denom  # (N, K, D)
    # Centred before squaring (not expanded) so large feature magnitudes lose no precision.
    centred = xf.unsqueeze(1) - mean.unsqueeze(-1)  # (N, K, D, P)
    spread = torch.einsum("nkp,nkdp->nkd", af, centred * centred) / denom
    var = reg_var.unsqueeze(0) + spread
    return MixtureParams(mean, var)


def log_density_scores(x: Tensor, params: MixtureParams) -> Tensor:
    """Eq. 8: ``-1/2 * sum_c [log var_c + (x_c - mu_c)^2 / var_c]`` for every component.

    The quadratic form is expanded into matrix products so all components and positions are
    scored by three batched matmuls instead of materialising (N, K, D, P).
    """
    n, d, h, w = x.shape
    xf = x.reshape(n, d, -1)  # (N, D, P)
    inv = 1.0 / params.var  # (N, K, D)
    mu_inv = params.mean * inv
    quad = torch.bmm(inv, xf * xf) - 2.0 * torch.bmm(mu_inv, xf)  # (N, K, P)
    const = (params.mean * mu_inv).sum(-1) + params.var.log().sum(-1)  # (N, K)
    scores = -0.5 * (quad + const.unsqueeze(-1))
    return scores.reshape(n, -1, h, w)


class GaussianAppearance(nn.Module):
    """Fits, updates and evaluates the class-conditional mixture (Algorithm 1).

    ``conv_in`` projects backbone features to the space the Gaussians live in; ``cov_reg`` is the
    pre-softplus covariance regulariser, one value per component and channel, shaped (K, D); the
    authors store it as (K, 1, D, 1, 1), which the checkpoint converter reshapes (a 5-D parameter
    would also block ``channels_last`` conversion of the module).
    The mixture maths always runs in float32 (or float64 for checks), even under autocast: the
    log-determinants and squared distances lose too much in bf16.
    """

    def __init__(
        self,
        in_channels: int,
        dim: int,
        num_components: int = 4,
        reg_init: float = -2.0,
        init: str = "kaiming",
    ):
        super().__init__()
        self.num_components = num_components
        self.conv_in = nn.Conv2d(in_channels, dim, kernel_size=1)
        if init == "kaiming":  # as every head conv; otherwise nn.Conv2d's own initialisation
            nn.init.kaiming_uniform_(self.conv_in.weight, nonlinearity="relu")
            nn.init.zeros_(self.conv_in.bias)
        self.cov_reg = nn.Parameter(torch.full((num_components, dim), reg_init))

    def project(self, s16: Tensor) -> Tensor:
        """Backbone features -> mixture feature space (object independent).

        Computed in float32 even under autocast: bf16 keeps ~3 significant digits, too few for
        features whose squared distances are summed over hundreds of channels.
        """
        dtype = torch.float64 if s16.dtype == torch.float64 else torch.float32
        with torch.autocast(s16.device.type, enabled=False):
            weight, bias = self.conv_in.weight.to(dtype), self.conv_in.bias.to(dtype)
            return F.conv2d(s16.to(dtype), weight, bias)

    def reg_var(self, dtype: torch.dtype) -> Tensor:
        return F.softplus(self.cov_reg.to(dtype))

    @torch.autocast("cpu", enabled=False)
    @torch.autocast("cuda", enabled=False)
    def fit(self, x: Tensor, mask: Tensor) -> MixtureParams:
        """Closed-form fit on one frame from a soft two-channel mask (not-object, object).

        Base components come straight from the mask; the hard-example components are then fitted
        on the same frame to what the freshly fitted base components misclassify (eq. 6).
        """
        mask = mask.to(x.dtype)
        reg = self.reg_var(x.dtype)
        base = weighted_moments(x, mask, reg[:2])
        if self.num_components == 2:
            return base
        base_scores = log_density_scores(x, base)
        posterior = torch.softmax(base_scores, dim=1)
        hard_alpha = F.relu(posterior - mask)
        hard = weighted_moments(x, hard_alpha, reg[2:])
        return MixtureParams.cat_components([base, hard])

    @torch.autocast("cpu", enabled=False)
    @torch.autocast("cuda", enabled=False)
    def scores(self, x: Tensor, params: MixtureParams) -> Tensor:
        return log_density_scores(x, params)

    def update(self, x: Tensor, mask: Tensor, params: MixtureParams, rate: float) -> MixtureParams:
        """Eq. 4: blend the fit on this frame into the running parameters with rate lambda."""
        new = self.fit(x, mask)
        return MixtureParams(
            (1.0 - rate) * params.mean + rate * new.mean,
            (1.0 - rate) * params.var + rate * new.var,
        )
