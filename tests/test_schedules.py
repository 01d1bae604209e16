"""Oracles for the schedules, paths, samplers and causal convolutions added for lecture 02:
closed forms, autograd derivatives, torch.distributions, round trips."""

import functools
import math

import pytest
import torch

from unigm import samplers
from unigm.autoregressive import CausalConv1d, DilatedCausalStack
from unigm.densities import GaussianMixtureOnPath
from unigm.paths import GaussianPath, linear_path, linear_to_vp, vp_path, vp_to_linear
from unigm.schedules import (
    alpha_bar_cosine,
    alpha_bar_of_linear_path,
    alpha_bar_vp_linear,
    beta_vp_linear,
    g_squared_ve,
    linear_time_of_alpha_bar,
    sigma_bar,
    sigma_ve,
    snr,
    t_of_alpha_bar_vp_linear,
)

F64 = torch.float64


# -- schedules ------------------------------------------------------------------------------------
def test_cosine_schedule_matches_its_formula_and_boundaries():
    s = 0.008
    for t in (0.0, 0.25, 0.5, 0.9, 1.0):
        expected = math.cos((t + s) / (1 + s) * math.pi / 2) ** 2 / math.cos(s / (1 + s) * math.pi / 2) ** 2
        assert alpha_bar_cosine(torch.tensor(t, dtype=F64)).item() == pytest.approx(expected, abs=1e-15)
    assert alpha_bar_cosine(torch.tensor(0.0, dtype=F64)).item() == 1.0
    assert alpha_bar_cosine(torch.tensor(1.0, dtype=F64)).item() == pytest.approx(0.0, abs=1e-30)
    values = alpha_bar_cosine(torch.linspace(0, 1, 101, dtype=F64))
    assert (values[1:] < values[:-1]).all()


def test_inverse_of_the_vp_schedule_is_a_round_trip():
    t = torch.linspace(0, 1, 21, dtype=F64)
    torch.testing.assert_close(t_of_alpha_bar_vp_linear(alpha_bar_vp_linear(t)), t, atol=1e-12, rtol=0)
    torch.testing.assert_close(
        t_of_alpha_bar_vp_linear(alpha_bar_vp_linear(t, 0.5, 5.0), 0.5, 5.0), t, atol=1e-12, rtol=0
    )


def test_ve_sigma_and_g_squared_is_the_derivative_of_sigma_squared():
    assert sigma_ve(torch.tensor(0.0)).item() == pytest.approx(0.01)
    assert sigma_ve(torch.tensor(1.0)).item() == pytest.approx(50.0)
    t = torch.tensor([0.1, 0.5, 0.9], dtype=F64, requires_grad=True)
    (derivative,) = torch.autograd.grad(sigma_ve(t).pow(2).sum(), t)
    torch.testing.assert_close(g_squared_ve(t.detach()), derivative, rtol=1e-12, atol=0)


def test_snr_and_sigma_bar():
    a = torch.tensor([0.1, 0.5, 0.99], dtype=F64)
    torch.testing.assert_close(snr(a), a / (1 - a))
    torch.testing.assert_close(sigma_bar(a), snr(a).rsqrt())


# -- paths ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", [linear_path(), vp_path(), vp_path(0.5, 5.0)], ids=lambda p: p.name)
def test_path_derivatives_match_autograd(path):
    t = torch.tensor([0.05, 0.3, 0.7, 0.95], dtype=F64, requires_grad=True)
    (d_alpha,) = torch.autograd.grad(path.alpha(t).sum(), t)
    (d_sigma_squared,) = torch.autograd.grad(path.sigma(t).pow(2).sum(), t)
    torch.testing.assert_close(path.d_alpha(t.detach()), d_alpha, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(path.d_sigma_squared(t.detach()), d_sigma_squared, rtol=1e-10, atol=1e-12)


def test_path_asserts_its_boundary_values():
    with pytest.raises(AssertionError, match="alpha\\(0\\) must be 1"):
        GaussianPath(
            "bad",
            alpha=lambda t: 0.5 + 0 * t,
            sigma=lambda t: t,
            d_alpha=lambda t: 0 * t,
            d_sigma=lambda t: 1 + 0 * t,
            d_sigma_squared=lambda t: 2 * t,
        )


def test_linear_and_vp_maps_are_round_trips_and_match_snr():
    t = torch.linspace(0.01, 0.99, 50, dtype=F64)
    a = alpha_bar_of_linear_path(t)
    torch.testing.assert_close(linear_time_of_alpha_bar(a), t, atol=1e-12, rtol=0)
    torch.testing.assert_close(snr(a), linear_path().snr(t), rtol=1e-10, atol=0)
    x = torch.randn(50, 3, dtype=F64)
    torch.testing.assert_close(vp_to_linear(linear_to_vp(x, t[:, None]), a[:, None]), x, atol=1e-12, rtol=0)


def mixture(path):
    return GaussianMixtureOnPath(
        torch.tensor([[2.0, 0.0], [-1.0, 1.0], [0.0, -1.5]]),
        0.3,
        path,
        weights=torch.tensor([0.5, 0.3, 0.2], dtype=F64),
    )


@pytest.mark.parametrize("t", [0.0, 0.3, 0.8])
def test_mixture_marginal_log_prob_matches_torch_distributions(t):
    m = mixture(vp_path())
    path = m.path
    tt = torch.tensor(t, dtype=F64)
    std = (path.alpha(tt) ** 2 * 0.3**2 + path.sigma(tt) ** 2).sqrt()
    reference = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(torch.tensor([0.5, 0.3, 0.2], dtype=F64)),
        torch.distributions.Independent(torch.distributions.Normal(path.alpha(tt) * m.means, std), 1),
    )
    x = torch.randn(100, 2, dtype=F64) * 2
    torch.testing.assert_close(m.log_prob(x, t), reference.log_prob(x), rtol=1e-12, atol=1e-12)


def test_mixture_score_is_the_gradient_of_log_prob_and_velocity_matches_the_score_formula():
    for path in (linear_path(), vp_path()):
        m = mixture(path)
        x = torch.randn(64, 2, dtype=F64, requires_grad=True)
        t = torch.rand(64, dtype=F64) * 0.9 + 0.05
        (grad,) = torch.autograd.grad(m.log_prob(x, t).sum(), x)
        torch.testing.assert_close(m.score(x.detach(), t), grad, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(
            m.velocity(x.detach(), t), path.velocity_from_score(grad, x.detach(), t), rtol=1e-9, atol=1e-10
        )


def test_mixture_velocity_is_finite_at_both_ends_of_the_linear_path():
    m = mixture(linear_path())
    x = torch.randn(10, 2, dtype=F64)
    mean = (torch.tensor([0.5, 0.3, 0.2], dtype=F64)[:, None] * m.means).sum(0)
    # t = 1: x_1 is independent of x_0, so u = E[eps - x_0 | x_1] = x - E[x_0]
    torch.testing.assert_close(m.velocity(x, 1.0), x - mean)
    assert torch.isfinite(m.velocity(x, 0.0)).all()


def test_mixture_posterior_mean_is_tweedie():
    m = mixture(vp_path())
    x, t = torch.randn(64, 2, dtype=F64), torch.full((64,), 0.4, dtype=F64)
    alpha, sigma = m.path.alpha(t)[:, None], m.path.sigma(t)[:, None]
    torch.testing.assert_close(m.posterior_mean(x, t), (x + sigma**2 * m.score(x, t)) / alpha, rtol=1e-10, atol=1e-12)


def test_mixture_samples_have_the_marginal_moments():
    m = mixture(linear_path())
    x = m.sample(200_000, 0.6, torch.Generator().manual_seed(0))
    weights = torch.tensor([0.5, 0.3, 0.2], dtype=F64)
    mean = 0.4 * (weights[:, None] * m.means).sum(0)
    torch.testing.assert_close(x.mean(0), mean, atol=0.01, rtol=0)


# -- samplers -------------------------------------------------------------------------------------
def test_ddim_with_the_exact_predictor_of_a_point_mass_lands_on_it():
    """Data = delta at c: E[eps | x_t] = (x_t - sqrt(abar) c) / sqrt(1 - abar), so x0_hat = c at
    every step and DDIM (eta = 0) returns c exactly for any number of steps."""
    c = torch.tensor([1.5, -0.5], dtype=F64)

    def eps(x, t):
        a = alpha_bar_vp_linear(t)[:, None]
        return (x - a.sqrt() * c) / (1 - a).sqrt()

    x1 = torch.randn(10, 2, dtype=F64)
    for steps in (1, 3, 20):
        torch.testing.assert_close(
            samplers.ddim(eps, x1, steps, alpha_bar_vp_linear), c.expand(10, 2), atol=1e-10, rtol=0
        )


def test_ddim_samples_a_gaussian_and_records_its_trajectory():
    m, s = 1.0, 0.5

    def eps(x, t):
        a = alpha_bar_vp_linear(t)[:, None]
        return (1 - a).sqrt() * (x - a.sqrt() * m) / (a * s**2 + 1 - a)

    x1 = torch.randn(50_000, 1, generator=torch.Generator().manual_seed(0), dtype=F64)
    trajectory = []
    x0 = samplers.ddim(eps, x1, 200, alpha_bar_vp_linear, trajectory=trajectory)
    assert len(trajectory) == 201
    assert x0.mean().item() == pytest.approx(m, abs=0.01) and x0.std().item() == pytest.approx(s, abs=0.01)
    # cosine schedule: stop short of t = 1 where alpha_bar = 0
    noisy = samplers.ddim(
        lambda x, t: torch.zeros_like(x), torch.ones(3, 1, dtype=F64), 5, alpha_bar_cosine, t_start=0.99
    )
    assert torch.isfinite(noisy).all()


def test_ddim_step_is_deterministic_at_eta_zero_and_reproducible_with_a_generator():
    eps = lambda x, t: 0.3 * x  # noqa: E731
    x = torch.randn(5, 2, dtype=F64)
    t, s = torch.tensor(0.7, dtype=F64), torch.tensor(0.4, dtype=F64)
    assert torch.equal(
        samplers.ddim_step(eps, x, t, s, alpha_bar_vp_linear), samplers.ddim_step(eps, x, t, s, alpha_bar_vp_linear)
    )
    a = samplers.ddim_step(eps, x, t, s, alpha_bar_vp_linear, eta=0.5, generator=torch.Generator().manual_seed(3))
    b = samplers.ddim_step(eps, x, t, s, alpha_bar_vp_linear, eta=0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, samplers.ddim_step(eps, x, t, s, alpha_bar_vp_linear))


def test_vp_builders_are_the_formulas_of_song_et_al():
    score = lambda x, t: -x / (1 + t[:, None])  # noqa: E731
    x, t = torch.randn(8, 2, dtype=F64), torch.rand(8, dtype=F64)
    beta = beta_vp_linear(t)[:, None]
    drift, diffusion = samplers.reverse_sde_vp(score, beta_vp_linear)
    torch.testing.assert_close(drift(x, t), -beta * (x / 2 + score(x, t)))
    torch.testing.assert_close(diffusion(t), beta_vp_linear(t).sqrt())
    torch.testing.assert_close(samplers.probability_flow_vp(score, beta_vp_linear)(x, t), -beta / 2 * (x + score(x, t)))


@pytest.mark.parametrize("method", ["ode", "sde"])
def test_ve_samplers_carry_the_noised_gaussian_back(method):
    """Data N(0, s^2) under the VE SDE has p_t = N(0, s^2 + sigma(t)^2 - sigma(0)^2): its exact score
    in the VE reverse SDE / probability-flow ODE must bring p_1 back to N(0, s^2)."""
    s, sigma_max = 0.5, 5.0
    sigma = functools.partial(sigma_ve, sigma_max=sigma_max)
    g_squared = functools.partial(g_squared_ve, sigma_max=sigma_max)

    def variance(t):
        return s**2 + sigma(t) ** 2 - sigma(torch.zeros_like(t)) ** 2

    def score(x, t):
        return -x / variance(t)[:, None]

    g = torch.Generator().manual_seed(0)
    x1 = variance(torch.tensor(1.0, dtype=F64)).sqrt() * torch.randn(20_000, 1, generator=g, dtype=F64)
    if method == "ode":
        x0 = samplers.rk4(samplers.probability_flow_ve(score, g_squared), x1, steps=200)
    else:
        x0 = samplers.euler_maruyama(*samplers.reverse_sde_ve(score, g_squared), x1, steps=1000, generator=g)
    assert x0.std().item() == pytest.approx(s, rel=0.02)


# -- causal convolutions ----------------------------------------------------------------------------
def test_causal_conv_output_ignores_the_future():
    torch.manual_seed(0)
    conv = CausalConv1d(2, 3, kernel_size=3, dilation=2)
    x = torch.randn(1, 2, 20)
    future = x.clone()
    future[..., 12:] = torch.randn(1, 2, 8)
    y, y_future = conv(x), conv(future)
    assert y.shape == (1, 3, 20)
    torch.testing.assert_close(y[..., :12], y_future[..., :12])
    assert not torch.allclose(y[..., 12:], y_future[..., 12:])


@pytest.mark.parametrize("kernel_size, layers", [(2, 1), (2, 10), (3, 4), (4, 3)])
def test_dilated_stack_sees_exactly_its_receptive_field(kernel_size, layers):
    """The gradient of the last output w.r.t. the inputs is nonzero on exactly the last R positions."""
    torch.manual_seed(0)
    stack = DilatedCausalStack(kernel_size, layers, channels=2).double()
    assert stack.receptive_field == 1 + (kernel_size - 1) * (2**layers - 1)
    length = stack.receptive_field + 30
    x = torch.randn(1, 2, length, dtype=F64, requires_grad=True)
    (grad,) = torch.autograd.grad(stack(x)[0, :, -1].sum(), x)
    seen = torch.nonzero(grad.abs().sum(1)[0] > 0).flatten()
    assert seen[0].item() == length - stack.receptive_field and seen[-1].item() == length - 1
    assert len(seen) == stack.receptive_field


def test_dilated_stack_rejects_bad_sizes():
    with pytest.raises(ValueError, match=">= 1"):
        DilatedCausalStack(2, 0)
