"""Oracles for the Gaussian path object: every conversion among eps, x0, v, score and velocity
is checked by a round trip, by autograd derivatives of the path, or against the exact
Gaussian-mixture marginals (unigm.densities.GaussianMixtureOnPath)."""
import pytest
import torch

from unigm import data
from unigm.densities import GaussianMixtureOnPath
from unigm.diffusion import DDPM
from unigm.flows import FlowMatching
from unigm.paths import linear_path, vp_path

F64 = torch.float64
PATHS = {"linear": linear_path(), "vp": vp_path()}


def _batch(seed=0, n=64):
    g = torch.Generator().manual_seed(seed)
    x0, eps = torch.randn(n, 2, generator=g, dtype=F64), torch.randn(n, 2, generator=g, dtype=F64)
    t = 0.05 + 0.9 * torch.rand(n, generator=g, dtype=F64)
    return x0, eps, t


@pytest.mark.parametrize("name", PATHS)
def test_predictions_convert_into_each_other_exactly(name):
    path = PATHS[name]
    x0, eps, t = _batch()
    x = path.sample(x0, eps, t)
    torch.testing.assert_close(path.x0_from_eps(x, eps, t), x0)
    torch.testing.assert_close(path.eps_from_x0(x, x0, t), eps)
    torch.testing.assert_close(path.eps_from_score(path.score_from_eps(eps, t), t), eps)
    x0_back, eps_back = path.x0_eps_from_v(x, path.v_from_x0_eps(x0, eps, t), t)
    torch.testing.assert_close(x0_back, x0)
    torch.testing.assert_close(eps_back, eps)
    u = path.velocity_from_eps(x, eps, t)
    torch.testing.assert_close(path.eps_from_velocity(x, u, t), eps)
    torch.testing.assert_close(u, path.velocity(path.x0_from_eps(x, eps, t), eps, t))  # u = alpha' x0 + sigma' eps


@pytest.mark.parametrize("name", PATHS)
def test_derivatives_are_the_derivatives_of_the_schedules(name):
    path = PATHS[name]
    x0, eps, t = _batch(1)
    t = t.clone().requires_grad_(True)
    for value, derivative in (("alpha", "d_alpha"), ("sigma", "d_sigma")):
        (grad,) = torch.autograd.grad(getattr(path, value)(t).sum(), t)
        torch.testing.assert_close(getattr(path, derivative)(t.detach()), grad)
    (grad,) = torch.autograd.grad(path.sigma(t).pow(2).sum(), t)
    torch.testing.assert_close(path.d_sigma_squared(t.detach()), grad)
    # the conditional velocity is d x_t / dt along one (x0, eps) pair
    (dx_dt,) = torch.autograd.grad(path.sample(x0, eps, t).sum(), t)
    torch.testing.assert_close(path.velocity(x0, eps, t.detach()).sum(1), dx_dt)


@pytest.mark.parametrize("name", PATHS)
def test_score_conversions_give_the_exact_marginal_velocity_of_a_mixture(name):
    """With the exact score of a Gaussian mixture carried along the path, velocity_from_score and
    velocity_from_eps(eps_from_score(.)) both equal the mixture's exact velocity, and x0_from_eps
    of the implied noise is Tweedie's posterior mean."""
    path = PATHS[name]
    mixture = GaussianMixtureOnPath.from_toy(data.toy("eight_gaussians"), path)
    t = torch.tensor(0.4, dtype=F64)
    x = mixture.sample(500, t, torch.Generator().manual_seed(2))
    score = mixture.score(x, t)
    exact = mixture.velocity(x, t)
    torch.testing.assert_close(path.velocity_from_score(score, x, t), exact)
    eps = path.eps_from_score(score, t)
    torch.testing.assert_close(path.velocity_from_eps(x, eps, t), exact)
    torch.testing.assert_close(path.x0_from_eps(x, eps, t), mixture.posterior_mean(x, t))


def test_vp_path_is_unit_norm_and_v_rotates_x0_and_eps():
    path = PATHS["vp"]
    t = torch.linspace(0.01, 0.99, 50, dtype=F64)
    torch.testing.assert_close(path.alpha(t) ** 2 + path.sigma(t) ** 2, torch.ones_like(t))
    x0, eps, t = _batch(3)
    v = path.v_from_x0_eps(x0, eps, t)
    x = path.sample(x0, eps, t)
    torch.testing.assert_close(x.pow(2) + v.pow(2), x0.pow(2) + eps.pow(2))  # a rotation keeps the norm


def test_models_use_the_path_the_paper_writes():
    x0, eps, t = (z.float() for z in _batch(4))
    ddpm, fm = DDPM((2,)), FlowMatching((2,))
    alpha_bar = ddpm.alpha_bar(t)[:, None]
    torch.testing.assert_close(ddpm.noise(x0, eps, t), alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps)
    torch.testing.assert_close(ddpm.score(x0, t), -ddpm.predict_eps(x0, t) / (1 - alpha_bar).sqrt())
    xt, target = fm.path(x0, eps, t)
    torch.testing.assert_close(xt, (1 - t[:, None]) * x0 + t[:, None] * eps)
    torch.testing.assert_close(target, eps - x0)
