"""Oracles for stochastic interpolants (lecture 05; Albergo, Boffi & Vanden-Eijnden 2023, arXiv:2303.08797):
boundary conditions, derivatives against autograd, the VP integral against quadrature, the exact Gaussian drift
against a Monte Carlo regression, the ODE and backward SDE against the closed-form target law, the Sinkhorn coupling
against POT, and a short training on two moons."""
import math

import numpy as np
import ot
import pytest
import torch
from scipy.integrate import quad

from unigm import data, metrics
from unigm.frontier.interpolants import (FunctionSchedule, InterpolantConfig, Learnable, StochasticInterpolant,
                                         gaussian_fields, linear, make_schedule, ode_sample, path_straightness,
                                         sde_sample, sinkhorn_pairs, sinkhorn_plan, transport_cost, trigonometric, vp,
                                         with_gamma)
from unigm.schedules import beta_vp_linear
from unigm.train import fit


def _learnable_random(learn_gamma=True):
    schedule = Learnable(knots=16, learn_gamma=learn_gamma, gamma_init=0.3)
    with torch.no_grad():
        schedule.weights.copy_(torch.randn(16, generator=torch.Generator().manual_seed(0)))
    return schedule


def _instances():
    return {"linear": linear(), "trigonometric": trigonometric(), "vp": vp(), "linear+gamma": with_gamma(linear(), 0.5),
            "trigonometric+gamma": with_gamma(trigonometric(), 1.0), "learnable": _learnable_random()}


GAUSSIAN_SCHEDULES = ["linear", "trigonometric", "vp", "linear+gamma0.5"]


# -- schedules ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(_instances()))
def test_boundary_conditions_of_every_instance(name):
    schedule = _instances()[name]
    ends = torch.tensor([0.0, 1.0], dtype=torch.float64)
    tol = 1e-2 if name == "vp" else 1e-9
    with torch.no_grad():
        assert schedule.alpha(ends).tolist() == pytest.approx([1.0, 0.0], abs=tol)
        assert schedule.beta(ends).tolist() == pytest.approx([0.0, 1.0], abs=tol)
        assert schedule.gamma(ends).tolist() == pytest.approx([0.0, 0.0], abs=1e-9)
        assert (schedule.gamma(torch.linspace(0, 1, 51)) >= 0).all()
    schedule.check(tol=tol)


def test_vp_end_is_tiny_but_not_zero_and_check_needs_a_tolerance():
    a1 = vp().alpha(torch.tensor(1.0, dtype=torch.float64)).item()
    assert a1 == pytest.approx(math.exp(-(0.1 + 20.0) / 4), rel=1e-9)  # e^-5.025 ~ 0.0066
    with pytest.raises(ValueError, match="alpha_1 = 0"):
        vp().check()  # default tol 1e-6


def test_check_raises_naming_the_violated_condition():
    broken_alpha = FunctionSchedule("broken", lambda t: 1 - t / 2, lambda t: t,
                                    lambda t: -torch.ones_like(t) / 2, lambda t: torch.ones_like(t))
    with pytest.raises(ValueError, match="alpha_1 = 0"):
        broken_alpha.check()
    broken_beta = FunctionSchedule("broken", lambda t: 1 - t, lambda t: t + 0.1,
                                   lambda t: -torch.ones_like(t), lambda t: torch.ones_like(t))
    with pytest.raises(ValueError, match="beta_0 = 0"):
        broken_beta.check()
    with pytest.raises(ValueError, match="gamma"):
        with_gamma(linear(), -1.0)


def test_learnable_is_monotone_with_exact_ends():
    schedule = _learnable_random()
    t = torch.linspace(0, 1, 1001, dtype=torch.float64)
    with torch.no_grad():
        f = schedule.beta(t)
    assert f[0].item() == 0.0 and f[-1].item() == 1.0
    assert (f.diff() >= 0).all()
    assert Learnable(knots=8).beta(t).detach().allclose(t)  # initialised as the linear schedule


@pytest.mark.parametrize("name", list(_instances()))
def test_derivatives_match_autograd(name):
    schedule = _instances()[name]
    t = ((torch.arange(40, dtype=torch.float64) + 0.37) / 40.3).requires_grad_(True)  # off the knots of Learnable
    for symbol in ("alpha", "beta", "gamma"):
        value = getattr(schedule, symbol)(t)
        grad = torch.autograd.grad(value.sum(), t)[0] if value.requires_grad else torch.zeros_like(t)  # gamma = 0
        derivative = getattr(schedule, "d_" + symbol)(t.detach())
        assert torch.allclose(derivative, grad, atol=1e-8, rtol=1e-6), (name, symbol)


def test_vp_alpha_is_exp_of_half_the_integrated_beta_not_sqrt_one_minus_beta():
    schedule = vp()
    for t in (0.01, 0.2, 0.5, 0.9, 1.0):
        integral, _ = quad(lambda s: beta_vp_linear(s), 0, t)
        assert schedule.alpha(torch.tensor(t, dtype=torch.float64)).item() == pytest.approx(math.exp(-integral / 2),
                                                                                            rel=1e-9)
        assert schedule.beta(torch.tensor(t, dtype=torch.float64)).item() == pytest.approx(
            math.sqrt(1 - math.exp(-integral)), rel=1e-9)
    t = torch.linspace(0.005, 0.04, 8, dtype=torch.float64)  # where 1 - beta(t) > 0
    assert (schedule.alpha(t) - (1 - beta_vp_linear(t)).sqrt()).abs().min() > 0.04


# -- the exact Gaussian fields -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", GAUSSIAN_SCHEDULES)
def test_exact_gaussian_drift_is_the_least_squares_regression(name):
    """E[target | x_t] by a Monte Carlo linear regression of target on (1, x_t) (exact: jointly Gaussian)."""
    schedule, mean, std = make_schedule(name), torch.tensor([1.5, -0.5], dtype=torch.float64), 0.6
    velocity, score = gaussian_fields(schedule, mean, std)
    g = torch.Generator().manual_seed(0)
    n = 200_000
    for t_value in (0.25, 0.7):
        x0 = mean + std * torch.randn(n, 2, generator=g, dtype=torch.float64)
        x1, z = torch.randn(n, 2, generator=g, dtype=torch.float64), torch.randn(n, 2, generator=g, dtype=torch.float64)
        t = torch.full((n,), t_value, dtype=torch.float64)
        a, b, c, da, db, dc = schedule.coefficients(t, x0)
        xt, target = a * x0 + b * x1 + c * z, da * x0 + db * x1 + dc * z
        design = torch.cat([torch.ones(n, 1, dtype=torch.float64), xt], 1)
        coef = torch.linalg.lstsq(design, target).solution  # (3, 2)
        probe = torch.tensor([[0.0, 0.0], [1.0, -1.0], [2.0, 0.5]], dtype=torch.float64)
        fitted = torch.cat([torch.ones(3, 1, dtype=torch.float64), probe], 1) @ coef
        exact = velocity(probe, torch.full((3,), t_value, dtype=torch.float64))
        assert torch.allclose(fitted, exact, atol=0.03), (name, t_value, fitted, exact)
        noise = (b * x1 + c * z)  # sigma_t n; Tweedie: E[sigma n | x] = -sigma^2 score
        coef_n = torch.linalg.lstsq(design, noise).solution
        sigma2 = (b[0] ** 2 + c[0] ** 2).item()
        fitted_n = torch.cat([torch.ones(3, 1, dtype=torch.float64), probe], 1) @ coef_n
        assert torch.allclose(fitted_n, -sigma2 * score(probe, torch.full((3,), t_value, dtype=torch.float64)),
                              atol=0.03)


def _moments_ok(x, mean, std, tol):
    return (x.mean(0) - mean).abs().max() < tol and (x.std(0) - std).abs().max() < tol


@pytest.mark.parametrize("name", GAUSSIAN_SCHEDULES)
def test_ode_with_exact_drift_carries_noise_to_the_gaussian(name):
    mean, std = torch.tensor([1.5, -0.5]), 0.6
    velocity, _ = gaussian_fields(make_schedule(name), mean, std)
    x1 = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(1))
    x0 = ode_sample(velocity, x1, 200, "heun")
    assert _moments_ok(x0, mean, std, 0.03), (x0.mean(0), x0.std(0))


@pytest.mark.parametrize("name", ["linear", "vp", "linear+gamma0.5"])
def test_backward_sde_with_exact_score_carries_noise_to_the_gaussian(name):
    """b_B = b - eps s run backwards; the opposite sign (b + eps s) must miss, so the test can fail."""
    mean, std = torch.tensor([1.5, -0.5]), 0.6
    velocity, score = gaussian_fields(make_schedule(name), mean, std)
    x1 = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(2))
    x0 = sde_sample(velocity, score, x1, 400, eps=1.0, generator=torch.Generator().manual_seed(3))
    assert _moments_ok(x0, mean, std, 0.04), (x0.mean(0), x0.std(0))
    wrong = sde_sample(velocity, lambda x, t: -score(x, t), x1, 400, eps=1.0, generator=torch.Generator().manual_seed(3))
    assert not _moments_ok(wrong, mean, std, 0.1)


def test_sde_with_zero_eps_is_the_euler_ode_given_the_same_noise():
    torch.manual_seed(0)
    model = StochasticInterpolant((2,), InterpolantConfig(schedule="linear+gamma0.5", hidden=32, depth=2))
    x1 = torch.randn(64, 2, generator=torch.Generator().manual_seed(4))
    ode = ode_sample(model.velocity, x1, 10, "euler")
    sde = sde_sample(model.velocity, model.score, x1, 10, eps=lambda t: torch.zeros_like(t),
                     generator=torch.Generator().manual_seed(5))
    assert torch.allclose(ode, sde, atol=1e-6)
    sampled = model.sample(64, 10, eps=0.0, method="euler", generator=torch.Generator().manual_seed(4))
    assert torch.allclose(sampled, ode, atol=1e-6)
    assert not torch.allclose(model.sample(64, 10, eps=0.5, generator=torch.Generator().manual_seed(4)), ode, atol=1e-3)


def test_straightness_and_transport_cost_of_a_point_mass():
    """Data = a point m: b = x1 - m along each path (Euler never evaluates the field at t = 0), so paths are
    straight and E|x0 - x1|^2 = |m|^2 + 2."""
    mean = torch.tensor([1.0, 2.0])
    model = StochasticInterpolant((2,), InterpolantConfig(hidden=8, depth=1, learn_score=False))
    model.velocity, _ = gaussian_fields(linear(), mean, 0.5)  # a Gaussian: curved paths
    assert path_straightness(model, 2000, 16) > 1e-2
    model.velocity, _ = gaussian_fields(linear(), mean, 0.0)
    assert path_straightness(model, 2000, 16) < 1e-8
    n = 4000
    x1 = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
    expected = (mean - x1).pow(2).sum(1).mean().item()  # the same draw as transport_cost(seed=0)
    assert transport_cost(model, n, 16, seed=0, method="euler") == pytest.approx(expected, rel=1e-3)
    assert expected == pytest.approx(mean.pow(2).sum().item() + 2, rel=0.05)


# -- the Schrodinger-bridge coupling -----------------------------------------------------------------------
def test_sinkhorn_plan_matches_pot_and_has_uniform_marginals():
    g = torch.Generator().manual_seed(0)
    x0, x1 = data.toy("two_moons").sample(64, g), torch.randn(64, 2, generator=g)
    sigma = 0.5
    plan = sinkhorn_plan(x0, x1, sigma)
    w = np.full(64, 1 / 64)
    direct = ot.sinkhorn(w, w, ot.dist(x0.double().numpy(), x1.double().numpy()), reg=2 * sigma**2, stopThr=1e-10,
                         numItermax=10_000)
    assert np.allclose(plan, direct, atol=1e-8)
    assert np.allclose(plan.sum(1), w, atol=1e-9) and np.allclose(plan.sum(0), w, atol=1e-6)
    partner = sinkhorn_pairs(x0, x1, sigma, torch.Generator().manual_seed(1))
    assert all(any(torch.equal(p, q) for q in x1) for p in partner)  # partners are points of the noise batch


def test_sinkhorn_pairs_approach_the_exact_ot_matching_as_sigma_shrinks():
    g = torch.Generator().manual_seed(3)
    x0, x1 = torch.randn(6, 2, generator=g) * 2, torch.randn(6, 2, generator=g) * 2
    w = np.full(6, 1 / 6)
    permutation = ot.emd(w, w, ot.dist(x0.double().numpy(), x1.double().numpy())).argmax(1)
    exact = ot.emd(w, w, ot.dist(x0.double().numpy(), x1.double().numpy()))
    sharp = sinkhorn_plan(x0, x1, 0.05)  # reg = 0.005
    assert np.abs(sharp - exact).max() < 1e-3
    partner = sinkhorn_pairs(x0, x1, 0.05, torch.Generator().manual_seed(0))
    assert torch.equal(partner, x1[torch.as_tensor(permutation)])
    blurred = sinkhorn_plan(x0, x1, 10.0)  # large sigma: nearly the independent coupling
    assert np.abs(blurred - 1 / 36).max() < 0.005
    assert np.abs(sinkhorn_plan(x0, x1, 0.5) - exact).max() > 0.02  # in between: neither


def test_sinkhorn_model_trains_through_fit():
    model = StochasticInterpolant((2,), InterpolantConfig(coupling="sinkhorn", sigma=0.5, hidden=32, depth=2))
    history = fit(model, data.toy("two_moons"), steps=20, batch_size=128, lr=3e-3, progress=False)
    assert all(math.isfinite(v) for v in history.losses["loss"])
    with pytest.raises(ValueError, match="no schedule"):
        StochasticInterpolant((2,), InterpolantConfig(coupling="sinkhorn", schedule="vp"))


# -- the learnable schedule and training ------------------------------------------------------------------
def test_learnable_schedule_gets_the_reversed_gradient_of_the_maxmin_objective():
    """The net descends L(b) = E|b|^2 - 2 E[b . target]; the schedule ascends it (so minimises kinetic energy)."""
    torch.manual_seed(0)
    model = StochasticInterpolant((2,), InterpolantConfig(schedule=_learnable_random(), hidden=16, depth=1,
                                                          learn_score=False))
    x = data.toy("two_moons").sample(128, torch.Generator().manual_seed(0))
    loss = model.loss(x, generator=torch.Generator().manual_seed(1))
    loss.backward()
    got = [p.grad.clone() for p in model.schedule.parameters()]
    model.zero_grad()
    g = torch.Generator().manual_seed(1)  # the same draws, the objective written out
    x1 = torch.randn(128, 2, generator=g)
    t = torch.rand(128, generator=g)
    z = torch.randn(128, 2, generator=g)
    a, b, c, da, db, dc = model.schedule.coefficients(t, x)
    xt, target = a * x + b * x1 + c * z, da * x + db * x1 + dc * z
    v = model.velocity(xt, t)
    objective = (v.pow(2).sum(1) - 2 * (v * target).sum(1)).mean() / 2
    (-objective).backward()
    expected = [p.grad for p in model.schedule.parameters()]
    for a_, b_ in zip(got, expected):
        assert torch.allclose(a_, b_, atol=1e-6, rtol=1e-4)
    assert loss.item() == pytest.approx(((v - target).pow(2).sum(1).mean() / 2).item(), rel=1e-5)


GATE = 0.45  # measured: G = 0.67, 0.67, 0.63 for seeds 0, 1, 2 at 600 steps (Heun, 16 steps, 1000 points)


def test_short_training_on_two_moons_reaches_the_gate():
    dist = data.toy("two_moons")
    torch.manual_seed(0)
    model = StochasticInterpolant((2,), InterpolantConfig(schedule="linear", learn_score=False))
    fit(model, dist, steps=600, batch_size=256, lr=4e-3, ema_decay=0.99, seed=0, progress=False)
    ref = metrics.reference(dist, n=1000)
    samples = model.sample(1000, 16, generator=torch.Generator().manual_seed(0))
    assert metrics.sample_quality(samples, ref).gap_closed > GATE
