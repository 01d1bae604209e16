"""Result 10: DDIM (Song, Meng & Ermon 2021, arXiv:2010.02502) is exactly an Euler step of the
probability-flow ODE written in x_bar = x / sqrt(abar) and sigma_bar = sqrt((1 - abar) / abar);
with eta > 0 it keeps the marginals only if its noise term is added."""

from __future__ import annotations

import math

import sympy as sp
import torch

from unigm import samplers
from unigm.schedules import alpha_bar_vp_linear, sigma_bar, t_of_alpha_bar_vp_linear
from unigm.tensors import as_time, per_example

from .core import Outcome, all_of, check, gaussian_expectation, misstatement, sympy_all, sympy_equal, with_library, within
from .toys import ExactDDPM, eight_gaussians

a_t, a_s = sp.symbols("alphabar_t alphabar_s", positive=True)  # 0 < abar_t < abar_s < 1 (s < t: less noise)
x, eps, x0, z = sp.symbols("x epsilon x_0 z", real=True)
u_, w_ = sp.symbols("u w", positive=True)
ORDERED = {a_s: 1 / (1 + u_), a_t: 1 / (1 + u_ + w_)}  # a parametrisation with 0 < abar_t < abar_s < 1


def ddim_update(sigma):
    x0_hat = (x - sp.sqrt(1 - a_t) * eps) / sp.sqrt(a_t)
    return sp.sqrt(a_s) * x0_hat + sp.sqrt(1 - a_s - sigma**2) * eps


def sigma_eta(eta):
    return eta * sp.sqrt((1 - a_s) / (1 - a_t)) * sp.sqrt(1 - a_t / a_s)


def _ordered_simplify(e):
    return sp.simplify(sp.radsimp(sp.simplify(e.subs(ORDERED))))


@check(
    "10.1 DDIM step = Euler step",
    10,
    "sympy",
    "eta = 0: x_s/sqrt(abar_s) = x_t/sqrt(abar_t) + (sigma_bar_s - sigma_bar_t) eps, an Euler step in (x_bar, "
    "sigma_bar)",
)
def ddim_is_euler():
    sigma_bar_ = lambda a: sp.sqrt((1 - a) / a)  # noqa: E731
    euler = x / sp.sqrt(a_t) + (sigma_bar_(a_s) - sigma_bar_(a_t)) * eps
    return sympy_equal(ddim_update(0) / sp.sqrt(a_s), euler, simplify=_ordered_simplify)


@check(
    "10.2 PF-ODE in (x_bar, sigma_bar)",
    10,
    "sympy",
    "dx/dt = -beta/2 (x - eps/sqrt(1-abar)) with abar' = -beta abar becomes d x_bar / d sigma_bar = eps",
)
def pf_ode_in_scaled_variables():
    t = sp.Symbol("t", real=True)
    A = sp.Function("alphabar")(t)
    beta = -sp.diff(A, t) / A
    dx_dt = -beta / 2 * (x - eps / sp.sqrt(1 - A))
    dxbar_dt = dx_dt / sp.sqrt(A) + x * sp.diff(1 / sp.sqrt(A), t)
    dsigmabar_dt = sp.diff(sp.sqrt((1 - A) / A), t)
    slope = sp.Symbol("alphabar'", real=True)

    def in_range(e):  # abar(t) = 1/(1 + u) in (0, 1), abar'(t) a free symbol
        return sp.simplify(e.subs(sp.Derivative(A, t), slope).subs(A, 1 / (1 + u_)))

    return sympy_equal(dxbar_dt / dsigmabar_dt, eps, simplify=in_range)


@check(
    "10.3 every eta in [0, 1] keeps the marginals",
    10,
    "sympy",
    "with x_t = sqrt(abar_t) x_0 + sqrt(1-abar_t) eps and the true eps: x_s = DDIM + sigma z has mean sqrt(abar_s) "
    "x_0 and variance 1 - abar_s; without sigma z the variance is 1 - abar_s - sigma^2, which is "
    "(1 - abar_s)(1 - eta^2 r) with 0 <= r <= 1 and r -> 1 as abar_s -> 1: >= 0 at every step iff eta <= 1; "
    "samplers.ddim_step refuses eta > 1",
)
def ddim_marginals():
    sigma = sp.Symbol("sigma", positive=True)
    xt = sp.sqrt(a_t) * x0 + sp.sqrt(1 - a_t) * eps
    x_s = ddim_update(sigma).subs(x, xt) + sigma * z
    centred = sp.expand(x_s - sp.sqrt(a_s) * x0)
    mean = gaussian_expectation(centred, {eps: 1, z: 1})
    variance = gaussian_expectation(centred**2, {eps: 1, z: 1})
    without_noise = gaussian_expectation(sp.expand(centred - sigma * z) ** 2, {eps: 1})
    marginals = sympy_equal(
        sp.Matrix([mean, variance, without_noise]),
        sp.Matrix([0, 1 - a_s, 1 - a_s - sigma**2]),
        simplify=lambda e: e.applyfunc(sp.simplify),
    )
    eta = sp.Symbol("eta", positive=True)
    r = (1 - a_t / a_s) / (1 - a_t)  # the share of 1 - abar_s that sigma(eta = 1)^2 takes
    remaining = sp.factor(1 - a_s - sigma_eta(eta) ** 2)
    step = sympy_all(
        [
            marginals,
            sympy_equal(remaining, (1 - a_s) * (1 - eta**2 * r)),
            sympy_equal(1 - r, a_t * (1 - a_s) / (a_s * (1 - a_t))),  # >= 0 for 0 < a_t <= a_s <= 1
            sympy_equal(sp.limit(r, a_s, 1), 1),  # the last steps: any eta > 1 makes the variance negative
        ],
        "mean and variance kept; 1 - abar_s - sigma^2 = (1 - abar_s)(1 - eta^2 r) >= 0 for eta <= 1, r -> 1 at abar_s = 1",
    )
    try:
        samplers.ddim_step(lambda y, t: y, torch.zeros(2, 2), 0.5, 0.4, alpha_bar_vp_linear, eta=1.5)
        refused = Outcome(False, "ddim_step accepted eta = 1.5")
    except ValueError as error:
        refused = Outcome(True, f"ddim_step(eta = 1.5) raises ValueError: {error}")
    return with_library(Outcome(step.passed, step.detail, lhs=marginals.lhs, rhs=marginals.rhs), refused)


@check(
    "10.4 eta = 1 is DDPM",
    10,
    "sympy",
    "sigma(eta=1)^2 is DDPM's posterior variance, and the eta = 1 mean is DDPM's (x - beta "
    "eps/sqrt(1-abar_t))/sqrt(alpha), alpha = abar_t/abar_s",
)
def eta_one_is_ddpm():
    alpha = a_t / a_s
    beta = 1 - alpha
    ddpm_mean = (x - beta / sp.sqrt(1 - a_t) * eps) / sp.sqrt(alpha)
    posterior_variance = beta * (1 - a_s) / (1 - a_t)
    return sympy_equal(
        sp.Matrix([sigma_eta(1) ** 2, ddim_update(sigma_eta(1))]),
        sp.Matrix([posterior_variance, ddpm_mean]),
        simplify=lambda e: e.applyfunc(_ordered_simplify),
    )


@check(
    "10.5 library ddim = Euler in (x_bar, sigma_bar)",
    10,
    "numeric",
    "samplers.ddim (eta = 0) and samplers.euler_step on d x_bar/d sigma_bar = eps over the matching sigma_bar grid "
    "agree to 1e-10",
)
def library_ddim_is_euler():
    model = ExactDDPM(eight_gaussians("vp"))
    x1 = torch.randn(256, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    steps = 20
    ddim_samples = samplers.ddim(model.predict_eps, x1, steps, alpha_bar_vp_linear)
    times = samplers.time_grid(steps, 1.0, 0.0)
    sigmas = sigma_bar(alpha_bar_vp_linear(times))

    def eps_in_sigma_bar(x_bar, sigma):  # d x_bar / d sigma_bar = eps(x, t(sigma_bar))
        a = 1 / (1 + sigma**2)
        t = t_of_alpha_bar_vp_linear(a)
        return model.predict_eps(x_bar * per_example(a, x_bar).sqrt(), t)

    x_bar = x1 / alpha_bar_vp_linear(times[0]).sqrt()
    for s0, s1 in zip(sigmas[:-1], sigmas[1:]):
        x_bar = samplers.euler_step(eps_in_sigma_bar, x_bar, s0, s1)
    return within(
        (x_bar - ddim_samples).abs().max().item(), 0.0, 1e-10, "max |Euler in (x_bar, sigma_bar) - samplers.ddim|"
    )


def ancestral_step(eps_fn, x, t, s, alpha_bar, z):
    """Ho et al. 2020, Alg. 2, between any two times s < t: with alpha = abar_t / abar_s, beta = 1 - alpha,
    x_s = (x_t - beta / sqrt(1 - abar_t) eps) / sqrt(alpha) + sigma z, sigma^2 = beta (1 - abar_s) / (1 - abar_t)."""
    a_t, a_s = alpha_bar(t), alpha_bar(s)
    alpha = a_t / a_s
    beta = 1 - alpha
    mean = (x - beta / (1 - a_t).sqrt() * eps_fn(x, torch.full((len(x),), t.item(), dtype=x.dtype))) / alpha.sqrt()
    return mean + (beta * (1 - a_s) / (1 - a_t)).sqrt() * z if s > 0 else mean


@check(
    "10.6 library ddim(eta=1) = DDPM ancestral sampling",
    10,
    "numeric",
    "with the same noise, samplers.ddim with eta = 1 (which DDPM.sample calls) reproduces Ho et al.'s ancestral "
    "chain, written out step by step",
)
def library_ddim_eta_one_is_ddpm():
    model = ExactDDPM(eight_gaussians("vp"))
    steps, g = 25, torch.Generator().manual_seed(0)
    x1 = torch.randn(256, 2, generator=g, dtype=torch.float64)
    ddim_samples = samplers.ddim(model.predict_eps, x1, steps, model.alpha_bar, eta=1.0, generator=g)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 2, generator=g, dtype=torch.float64)
    ts = samplers.time_grid(steps)
    for t, s in zip(ts[:-1], ts[1:]):
        z = torch.randn(256, 2, generator=g, dtype=torch.float64) if s > 0 else None
        x = ancestral_step(model.predict_eps, x, t, s, model.alpha_bar, z)
    sampled = model.sample(256, steps=steps, generator=torch.Generator().manual_seed(0))
    return all_of([
        within((ddim_samples - x).abs().max().item(), 0.0, 1e-10, "max |ddim(eta=1) - ancestral chain|"),
        within((sampled - x).abs().max().item(), 0.0, 1e-10, "max |DDPM.sample - ancestral chain|"),
    ])


def ddim_step_missing_noise(eps_fn, x_, t, s, alpha_bar, eta):
    """The WRONG variant: the eps coefficient shrunk to sqrt(1 - abar_s - sigma^2), sigma z forgotten."""
    a_t_, a_s_ = alpha_bar(t).item(), alpha_bar(s).item()
    predicted = eps_fn(x_, as_time(t, x_))
    sigma = eta * math.sqrt((1 - a_s_) / (1 - a_t_) * (1 - a_t_ / a_s_))
    return (
        math.sqrt(a_s_) * (x_ - math.sqrt(1 - a_t_) * predicted) / math.sqrt(a_t_)
        + math.sqrt(max(1 - a_s_ - sigma**2, 0)) * predicted
    )


@check(
    "10.7 DDIM with eta > 0 needs its noise",
    10,
    "misstatement",
    "one eta = 1 step from t = 0.8 to s = 0.3 with the true noise: without sigma z the spread around sqrt(abar_s) "
    "x_0 is 1 - abar_s - sigma^2; the library's ddim_step gives 1 - abar_s",
)
def misstatement_missing_noise():
    n, g = 100_000, torch.Generator().manual_seed(0)
    x0_batch = 1.0 + 0.5 * torch.randn(n, 1, generator=g, dtype=torch.float64)
    noise = torch.randn(n, 1, generator=g, dtype=torch.float64)
    t, s = torch.tensor(0.8, dtype=torch.float64), torch.tensor(0.3, dtype=torch.float64)
    a_t_, a_s_ = alpha_bar_vp_linear(t), alpha_bar_vp_linear(s)
    xt = a_t_.sqrt() * x0_batch + (1 - a_t_).sqrt() * noise

    def true_noise(x_, time):  # the oracle predictor: the noise that is really in x_t
        return noise

    sigma2 = ((1 - a_s_) / (1 - a_t_) * (1 - a_t_ / a_s_)).item()
    residual_wrong = (
        ddim_step_missing_noise(true_noise, xt, t, s, alpha_bar_vp_linear, eta=1.0) - a_s_.sqrt() * x0_batch
    )
    residual_right = (
        samplers.ddim_step(true_noise, xt, t, s, alpha_bar_vp_linear, eta=1.0, generator=g) - a_s_.sqrt() * x0_batch
    )
    target = (1 - a_s_).item()
    tolerance = 4 * target * math.sqrt(2 / n)  # 4 standard errors of a variance estimate
    wrong = within(
        residual_wrong.var().item(),
        target,
        tolerance,
        f"variance without sigma z (sigma^2 = {sigma2:.3f}) vs 1 - abar_s",
    )
    right = all_of(
        [
            within(
                residual_right.var().item(), target, tolerance, "variance with the library's ddim_step vs 1 - abar_s"
            ),
            within(residual_right.mean().item(), 0.0, 4 * math.sqrt(target / n), "mean of x_s - sqrt(abar_s) x_0"),
        ]
    )
    return misstatement(wrong, right)
