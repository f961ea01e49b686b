"""The generative appearance module against a plain float64 NumPy statement of eqs 3-8."""

import numpy as np
import pytest
import torch

from vos_cli.errors import VosError
from vos_cli.model.appearance import GaussianAppearance, MixtureParams
from vos_cli.model.config import ModelConfig


def softplus(v: np.ndarray) -> np.ndarray:
    return np.log1p(np.exp(v))


def reference_fit(x: np.ndarray, mask: np.ndarray, reg: np.ndarray) -> tuple[np.ndarray, ...]:
    """One object: x (D, P), mask (2, P), reg (K, D) pre-softplus. Loops, no tricks."""
    d, p = x.shape

    def moments(alpha: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        means, variances = [], []
        for k in range(alpha.shape[0]):
            denom = alpha[k].sum() + 1.0
            mu = (alpha[k][None, :] * x).sum(axis=1) / denom
            var = softplus(r[k]) + (alpha[k][None, :] * (x - mu[:, None]) ** 2).sum(axis=1) / denom
            means.append(mu)
            variances.append(var)
        return np.stack(means), np.stack(variances)

    mu_b, var_b = moments(mask, reg[:2])
    scores = reference_scores(x, mu_b, var_b)
    post = np.exp(scores - scores.max(axis=0))
    post /= post.sum(axis=0)
    hard = np.maximum(post - mask, 0.0)
    mu_h, var_h = moments(hard, reg[2:])
    return np.concatenate([mu_b, mu_h]), np.concatenate([var_b, var_h])


def reference_scores(x: np.ndarray, mu: np.ndarray, var: np.ndarray) -> np.ndarray:
    out = np.zeros((mu.shape[0], x.shape[1]))
    for k in range(mu.shape[0]):
        for pos in range(x.shape[1]):
            diff = x[:, pos] - mu[k]
            out[k, pos] = -0.5 * (np.log(var[k]).sum() + (diff * diff / var[k]).sum())
    return out


def make_inputs(seed: int = 0, n: int = 2, d: int = 6, h: int = 5, w: int = 4):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, h, w, generator=g, dtype=torch.float64) * 2.0 + 0.5
    fg = torch.rand(n, 1, h, w, generator=g, dtype=torch.float64)
    mask = torch.cat([1 - fg, fg], dim=1)
    return x, mask


def make_module(d: int = 6, k: int = 4) -> GaussianAppearance:
    module = GaussianAppearance(in_channels=3, dim=d, num_components=k).double()
    with torch.no_grad():
        module.cov_reg.copy_(torch.linspace(-3, 1, k * d, dtype=torch.float64).view(k, d))
    return module


def test_fit_and_scores_match_float64_reference():
    x, mask = make_inputs()
    module = make_module()
    with torch.no_grad():
        params = module.fit(x, mask)
        scores = module.scores(x, params)
    reg = module.cov_reg.detach().numpy().reshape(4, -1)
    for i in range(x.shape[0]):
        xi = x[i].reshape(x.shape[1], -1).numpy()
        mi = mask[i].reshape(2, -1).numpy()
        mu, var = reference_fit(xi, mi, reg)
        np.testing.assert_allclose(params.mean[i].numpy(), mu, rtol=0, atol=1e-6)
        np.testing.assert_allclose(params.var[i].numpy(), var, rtol=0, atol=1e-6)
        ref_scores = reference_scores(xi, mu, var)
        np.testing.assert_allclose(scores[i].reshape(4, -1).numpy(), ref_scores, atol=1e-6)


def test_update_blends_with_rate():
    x, mask = make_inputs(seed=1)
    x2, mask2 = make_inputs(seed=2)
    module = make_module()
    with torch.no_grad():
        first = module.fit(x, mask)
        second = module.fit(x2, mask2)
        updated = module.update(x2, mask2, first, rate=0.1)
    np.testing.assert_allclose(updated.mean, 0.9 * first.mean + 0.1 * second.mean, atol=1e-12)
    np.testing.assert_allclose(updated.var, 0.9 * first.var + 0.1 * second.var, atol=1e-12)


def test_hand_computed_one_dimensional_case():
    # One channel, positions [0, 2, 4], object at the last two: alpha_fg = [0, 1, 1].
    module = GaussianAppearance(in_channels=1, dim=1, num_components=2).double()
    with torch.no_grad():
        module.cov_reg.fill_(0.0)  # softplus(0) = log 2
    x = torch.tensor([0.0, 2.0, 4.0], dtype=torch.float64).view(1, 1, 1, 3)
    fg = torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64).view(1, 1, 1, 3)
    params = module.fit(x, torch.cat([1 - fg, fg], dim=1))
    # foreground: mean = (2 + 4) / (2 + 1) = 2; var = log2 + ((2-2)^2 + (4-2)^2) / 3 = log2 + 4/3
    assert abs(params.mean[0, 1, 0].item() - 2.0) < 1e-12
    assert abs(params.var[0, 1, 0].item() - (np.log(2) + 4 / 3)) < 1e-12
    # background: mean = 0 / 2 = 0; var = log2 + 0
    assert abs(params.mean[0, 0, 0].item()) < 1e-12
    assert abs(params.var[0, 0, 0].item() - np.log(2)) < 1e-12
    scores = module.scores(x, params)
    var = np.log(2) + 4 / 3
    expected = -0.5 * (np.log(var) + (4.0 - 2.0) ** 2 / var)
    assert abs(scores[0, 1, 0, 2].item() - expected) < 1e-12


def test_gradcheck_through_fit_update_and_scores():
    x, mask = make_inputs(seed=3, n=1, d=3, h=3, w=3)
    x.requires_grad_(True)
    mask.requires_grad_(True)
    module = make_module(d=3)

    def pipeline(x_in: torch.Tensor, mask_in: torch.Tensor) -> torch.Tensor:
        params = module.fit(x_in, mask_in)
        params = module.update(x_in * 1.1, mask_in.flip(-1), params, rate=0.1)
        return module.scores(x_in, params)

    assert torch.autograd.gradcheck(pipeline, (x, mask), eps=1e-6)


def test_gradient_reaches_regulariser_and_projection():
    module = GaussianAppearance(in_channels=3, dim=4).double()
    feats = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    fg = (torch.rand(1, 1, 4, 4, dtype=torch.float64) > 0.5).double()
    x = module.project(feats)
    params = module.fit(x, torch.cat([1 - fg, fg], 1))
    module.scores(x, params).sum().backward()
    assert module.cov_reg.grad is not None and module.cov_reg.grad.abs().sum() > 0
    assert module.conv_in.weight.grad.abs().sum() > 0


def test_params_concatenate_per_object():
    a = MixtureParams(torch.zeros(1, 4, 3), torch.ones(1, 4, 3))
    b = MixtureParams(torch.ones(2, 4, 3), torch.ones(2, 4, 3))
    both = MixtureParams.cat([a, b])
    assert both.mean.shape == (3, 4, 3)
    assert both.index(torch.tensor([1])).mean.sum() == 12


@pytest.mark.parametrize(("init", "bound"), [("kaiming", (6 / 320) ** 0.5), ("pytorch", 320**-0.5)])
def test_appearance_projection_initialisation(init, bound):
    """Kaiming-uniform (the authors') or nn.Conv2d's own bounds, 2.45x apart (fan-in 320)."""
    torch.manual_seed(0)
    module = GaussianAppearance(320, 64, init=init)
    weight = module.conv_in.weight
    assert weight.abs().max() <= bound and weight.abs().max() > 0.99 * bound
    assert (module.conv_in.bias.abs().max() == 0) == (init == "kaiming")


def test_unknown_appearance_init_is_refused():
    with pytest.raises(VosError, match="appearance_init"):
        ModelConfig(appearance_init="xavier")
