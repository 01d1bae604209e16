"""Result 2 (the probability-flow ODE and the SDE share their marginals: Fokker-Planck) and
result 7 (Wasserstein gradient flows: Ornstein-Uhlenbeck, Langevin and the JKO step).

Forward SDE dx = f(x, t) dt + g(t) dW; its marginals obey the Fokker-Planck equation
    d p / d t = -div(f p) + g^2 / 2 lap p,
and a velocity field v moves a density by the continuity equation d p / d t = -div(v p)."""

from __future__ import annotations

import math

import numpy as np
import sympy as sp
import torch
from scipy.optimize import minimize

from unigm import samplers
from unigm.metrics import mmd_permutation_test
from unigm.schedules import alpha_bar_vp_linear, beta_vp_linear
from unigm.tensors import per_example

from .core import all_of, at_least, at_most, check, misstatement, sympy_all, sympy_equal, within
from .toys import eight_gaussians

X, Y, T = sp.symbols("x y t", real=True)


def divergence(vector, variables):
    return sum(sp.diff(component, v) for component, v in zip(vector, variables))


def gradient(scalar, variables):
    return [sp.diff(scalar, v) for v in variables]


def laplacian(scalar, variables):
    return sum(sp.diff(scalar, v, 2) for v in variables)


def _field(variables):
    """A generic density p, drift f and diffusion g(t) in len(variables) dimensions."""
    p = sp.Function("p")(*variables, T)
    f = [sp.Function(f"f_{i + 1}")(*variables, T) for i in range(len(variables))]
    return p, f, sp.Function("g")(T)


def _continuity_equals_fokker_planck(variables):
    p, f, g = _field(variables)
    score = gradient(sp.log(p), variables)
    velocity = [fi - g**2 / 2 * si for fi, si in zip(f, score)]
    continuity = -divergence([vi * p for vi in velocity], variables)
    fokker_planck = -divergence([fi * p for fi in f], variables) + g**2 / 2 * laplacian(p, variables)
    return sympy_equal(continuity, fokker_planck, simplify=lambda e: sp.simplify(sp.expand(e)))


# -- result 2 -----------------------------------------------------------------------------------
@check("2.1 p grad log p = grad p", 2, "sympy", "p grad log p = grad p for any positive density (2D)")
def p_times_score():
    p = sp.Function("p")(X, Y)
    lhs = sp.Matrix([sp.Mul(p, sp.Derivative(sp.log(p), v), evaluate=False) for v in (X, Y)])
    return sympy_equal(lhs, sp.Matrix(gradient(p, (X, Y))), simplify=lambda e: sp.simplify(e.doit()))


@check(
    "2.2 PF-ODE continuity = Fokker-Planck (1D)",
    2,
    "sympy",
    "-d/dx[(f - g^2/2 d log p/dx) p] = -d/dx(f p) + g^2/2 d^2p/dx^2 for any p, f, g",
)
def pf_ode_fokker_planck_1d():
    return _continuity_equals_fokker_planck((X,))


@check(
    "2.3 PF-ODE continuity = Fokker-Planck (2D)",
    2,
    "sympy",
    "-div((f - g^2/2 grad log p) p) = -div(f p) + g^2/2 lap p in 2D, for any p, f, g",
)
def pf_ode_fokker_planck_2d():
    return _continuity_equals_fokker_planck((X, Y))


@check(
    "2.4 reverse SDE keeps the marginals",
    2,
    "sympy",
    "in reversed time s = 1 - t, the SDE with drift -(f - g^2 grad log p) and diffusion g has d p/ds = -dp/dt (2D)",
)
def reverse_sde_marginals():
    variables = (X, Y)
    p, f, g = _field(variables)
    score = gradient(sp.log(p), variables)
    reverse_drift = [-(fi - g**2 * si) for fi, si in zip(f, score)]  # drift in the reversed time s
    fokker_planck_reverse = -divergence([bi * p for bi in reverse_drift], variables) + g**2 / 2 * laplacian(
        p, variables
    )
    forward = -divergence([fi * p for fi in f], variables) + g**2 / 2 * laplacian(p, variables)
    return sympy_equal(fokker_planck_reverse, -forward, simplify=lambda e: sp.simplify(sp.expand(e)))


@check(
    "2.5 the VP kernel solves Fokker-Planck",
    2,
    "sympy",
    "N(sqrt(abar) m, abar v + 1 - abar) with abar' = -beta abar solves dp/dt = d/dx(beta x p / 2) + beta/2 d^2p/dx^2",
)
def vp_kernel_solves_fokker_planck():
    m, v = sp.Symbol("m", real=True), sp.Symbol("v", positive=True)
    A = sp.Function("alphabar")(T)
    beta = -sp.diff(A, T) / A  # alpha_bar' = -beta alpha_bar
    mean, variance = sp.sqrt(A) * m, A * v + 1 - A
    p = sp.exp(-((X - mean) ** 2) / (2 * variance)) / sp.sqrt(2 * sp.pi * variance)
    lhs = sp.diff(p, T) / p
    rhs = (sp.diff(beta * X * p / 2, X) + beta / 2 * sp.diff(p, X, 2)) / p
    return sympy_equal(lhs, rhs, simplify=lambda e: sp.simplify(sp.expand(sp.simplify(e))))


def _reverse_processes(n: int = 1000, seed: int = 0):
    """Particles at t = 0 from the library's reverse-SDE Euler-Maruyama and PF-ODE Heun sampler,
    exact samples, and a deliberately wrong sampler (the SDE drift without its noise)."""
    mixture = eight_gaussians("vp")
    g = torch.Generator().manual_seed(seed)
    score = mixture.score
    sde = samplers.euler_maruyama(
        *samplers.reverse_sde_vp(score, beta_vp_linear), mixture.sample(n, 1.0, g), steps=500, generator=g
    )
    ode = samplers.heun(samplers.probability_flow_vp(score, beta_vp_linear), mixture.sample(n, 1.0, g), steps=200)
    drift_only, _ = samplers.reverse_sde_vp(score, beta_vp_linear)
    wrong = samplers.heun(drift_only, mixture.sample(n, 1.0, g), steps=100)
    exact = mixture.sample(n, 0.0, g)
    return dict(sde=sde, ode=ode, exact=exact, wrong=wrong, mixture=mixture)


@check(
    "2.6 SDE and PF-ODE particles agree",
    2,
    "numeric",
    "library reverse-SDE (Euler-Maruyama) and PF-ODE (Heun) particles pass MMD two-sample tests against each other "
    "and exact samples; a wrong sampler is rejected",
)
def sde_and_ode_particles_agree():
    r = _reverse_processes()
    parts, values = [], {}
    for a, b in [("sde", "ode"), ("sde", "exact"), ("ode", "exact")]:
        _, p = mmd_permutation_test(r[a], r[b])
        values[f"p({a} vs {b})"] = p
        parts.append(at_least(p, 0.01, f"MMD p-value {a} vs {b}"))
    _, p_wrong = mmd_permutation_test(r["wrong"], r["exact"])
    values["p(wrong vs exact)"] = p_wrong
    parts.append(at_most(p_wrong, 0.01, "MMD p-value drift-without-noise vs exact"))
    exact_nll = -r["mixture"].log_prob(r["exact"])
    for name in ("sde", "ode"):
        nll = -r["mixture"].log_prob(r[name])
        standard_error = math.sqrt((nll.var() + exact_nll.var()).item() / len(nll))
        values[f"-E log p_data ({name})"] = nll.mean().item()
        parts.append(
            within(
                nll.mean().item(),
                exact_nll.mean().item(),
                4 * standard_error,
                f"-E_{name} log p_data vs -E_data log p_data (4 s.e.)",
            )
        )
    return all_of(parts, values)


# -- result 7: Wasserstein gradient flows -------------------------------------------------------
@check("7.1 first variation of KL", 7, "sympy", "d/de KL(p + e h || pi) at e = 0 has integrand h (log(p/pi) + 1)")
def first_variation_of_kl():
    p, h, pi = sp.symbols("p h pi", positive=True)
    e = sp.Symbol("e", real=True)
    integrand = (p + e * h) * sp.log((p + e * h) / pi)
    return sympy_equal(
        sp.diff(integrand, e).subs(e, 0),
        h * (sp.log(p / pi) + 1),
        simplify=lambda z: sp.simplify(sp.expand_log(z, force=True)),
    )


@check(
    "7.2 OU = W2 gradient flow of KL(p||N(0,I))",
    7,
    "sympy",
    "the VP forward Fokker-Planck beta/2 (div(x p) + lap p) equals beta/2 div(p grad log(p / N(0, I))) (2D)",
)
def ornstein_uhlenbeck_is_gradient_flow():
    variables = (X, Y)
    p, beta = sp.Function("p")(X, Y, T), sp.Function("beta")(T)
    fokker_planck = -divergence([-beta / 2 * X * p, -beta / 2 * Y * p], variables) + beta / 2 * laplacian(p, variables)
    log_standard_normal = -(X**2 + Y**2) / 2 - sp.log(2 * sp.pi)
    first_variation = sp.log(p) - log_standard_normal + 1
    gradient_flow = beta / 2 * divergence([p * d for d in gradient(first_variation, variables)], variables)
    return sympy_equal(fokker_planck, gradient_flow, simplify=lambda e: sp.simplify(sp.expand(e)))


@check(
    "7.3 Langevin = W2 gradient flow of KL(p||pi)",
    7,
    "sympy",
    "dx = grad log pi dt + sqrt(2) dW has Fokker-Planck div(p grad log(p/pi)) for any pi = exp(-U) (2D)",
)
def langevin_is_gradient_flow():
    variables = (X, Y)
    p, U = sp.Function("p")(X, Y, T), sp.Function("U")(X, Y)
    log_pi = -U
    fokker_planck = -divergence([p * d for d in gradient(log_pi, variables)], variables) + laplacian(p, variables)
    gradient_flow = divergence([p * d for d in gradient(sp.log(p) - log_pi, variables)], variables)
    return sympy_equal(fokker_planck, gradient_flow, simplify=lambda e: sp.simplify(sp.expand(e)))


tau, m_k, s_k = sp.Symbol("tau", positive=True), sp.Symbol("m_k", real=True), sp.Symbol("s_k", positive=True)
m_, s_ = sp.Symbol("m", real=True), sp.Symbol("s", positive=True)


def jko_objective(m, s, mk, sk, step):
    """W2^2(N(m, s^2), N(m_k, s_k^2)) / (2 tau) + KL(N(m, s^2) || N(0, 1)), in 1D."""
    w2_squared = (m - mk) ** 2 + (s - sk) ** 2
    kl = (s**2 + m**2 - 1) / 2 - sp.log(s) if isinstance(s, sp.Basic) else (s**2 + m**2 - 1) / 2 - math.log(s)
    return w2_squared / (2 * step) + kl


def jko_minimiser():
    """The stationary point of the Gaussian JKO objective, solved by hand and checked below."""
    return m_k / (1 + tau), (s_k + sp.sqrt(s_k**2 + 4 * tau * (1 + tau))) / (2 * (1 + tau))


@check(
    "7.4 JKO step for Gaussians",
    7,
    "sympy",
    "m = m_k/(1+tau), s = (s_k + sqrt(s_k^2 + 4 tau (1+tau)))/(2(1+tau)) zero the gradient of W2^2/(2 tau) + "
    "KL(.||N(0,1))",
)
def jko_step_for_gaussians():
    objective = jko_objective(m_, s_, m_k, s_k, tau)
    m_star, s_star = jko_minimiser()
    grads = [sp.diff(objective, v).subs({m_: m_star, s_: s_star}) for v in (m_, s_)]
    return sympy_all(
        [
            sympy_equal(sp.Derivative(objective, m_), 0, simplify=lambda e: sp.simplify(grads[0])),
            sympy_equal(sp.Derivative(objective, s_), 0, simplify=lambda e: sp.simplify(sp.radsimp(grads[1]))),
        ],
        "both partial derivatives vanish at the stated (m, s)",
    )


@check(
    "7.5 JKO is a first-order OU step",
    7,
    "sympy",
    "the JKO minimiser agrees with the exact OU flow m e^-tau, sqrt(1 + (s^2 - 1) e^-2tau) up to O(tau^2)",
)
def jko_matches_ou_to_first_order():
    m_star, s_star = jko_minimiser()
    exact_m, exact_s = m_k * sp.exp(-tau), sp.sqrt(1 + (s_k**2 - 1) * sp.exp(-2 * tau))
    return sympy_all(
        [
            sympy_equal(sp.series(m_star, tau, 0, 2).removeO(), sp.series(exact_m, tau, 0, 2).removeO()),
            sympy_equal(sp.series(s_star, tau, 0, 2).removeO(), sp.series(exact_s, tau, 0, 2).removeO()),
        ],
        "first-order Taylor coefficients in tau agree",
    )


def _jko_iterates(m0: float, s0: float, steps: int, t_end: float):
    """JKO steps for KL(.||N(0,1)) on the VP clock: tau_k = (log abar(t_k) - log abar(t_k+1)) / 2,
    each minimised numerically (scipy, no closed form used). Returns (m, s) at t_end."""
    ts = torch.linspace(0.0, t_end, steps + 1, dtype=torch.float64)
    log_alpha_bar = torch.log(alpha_bar_vp_linear(ts)).numpy()
    m, s = m0, s0
    for k in range(steps):
        step = 0.5 * (log_alpha_bar[k] - log_alpha_bar[k + 1])
        result = minimize(
            lambda z: jko_objective(z[0], math.exp(z[1]), m, s, step),
            np.array([m, math.log(s)]),
            method="BFGS",
            options={"gtol": 1e-10},
        )
        m, s = float(result.x[0]), math.exp(float(result.x[1]))
    return m, s


@check(
    "7.6 JKO steps = the library's VP forward SDE",
    7,
    "numeric",
    "JKO iterates of KL(.||N(0,1)) (numerically minimised) track the library's Euler-Maruyama VP forward process and "
    "converge at rate O(tau)",
)
def jko_tracks_the_forward_process():
    m0, s0, t_end = 2.0, 0.5, 0.5
    g = torch.Generator().manual_seed(0)
    x = m0 + s0 * torch.randn(50_000, 1, generator=g, dtype=torch.float64)
    particles = samplers.euler_maruyama(
        samplers.vp_drift(beta_vp_linear),
        lambda t: beta_vp_linear(t).sqrt(),
        x,
        steps=200,
        t_start=0.0,
        t_end=t_end,
        generator=g,
    )
    a = alpha_bar_vp_linear(torch.tensor(t_end, dtype=torch.float64)).item()
    exact_m, exact_s = math.sqrt(a) * m0, math.sqrt(a * s0**2 + 1 - a)
    errors = []
    for steps in (25, 50, 100):
        m, s = _jko_iterates(m0, s0, steps, t_end)
        errors.append(abs(m - exact_m) + abs(s - exact_s))
    m_closed, s_closed = (float(v.subs({m_k: m0, s_k: s0, tau: 0.1})) for v in jko_minimiser())
    m_num, s_num = _jko_iterates_single(m0, s0, 0.1)
    ratios = [errors[0] / errors[1], errors[1] / errors[2]]
    parts = [
        within(m_num, m_closed, 1e-6, "numerical JKO minimiser m vs closed form"),
        within(s_num, s_closed, 1e-6, "numerical JKO minimiser s vs closed form"),
        within(particles.mean().item(), m, 0.02, "particle mean vs JKO (100 steps)"),
        within(particles.std().item(), s, 0.02, "particle std vs JKO (100 steps)"),
        within(particles.mean().item(), exact_m, 0.02, "particle mean vs exact kernel"),
        within(ratios[0], 2.0, 0.3, "JKO error ratio 25 -> 50 steps (first order: 2)"),
        within(ratios[1], 2.0, 0.3, "JKO error ratio 50 -> 100 steps (first order: 2)"),
    ]
    return all_of(parts, {"jko_errors": errors})


def _jko_iterates_single(m0, s0, step):
    result = minimize(
        lambda z: jko_objective(z[0], math.exp(z[1]), m0, s0, step),
        np.array([m0, math.log(s0)]),
        method="BFGS",
        options={"gtol": 1e-12},
    )
    return float(result.x[0]), math.exp(float(result.x[1]))


@check(
    "7.7 a DDPM step is not JKO of KL(p||p_data)",
    7,
    "misstatement",
    "reverse-diffusion marginals are the forward marginals p_t, not the W2 gradient flow of KL(p||p_data) (Langevin "
    "toward p_data)",
)
def misstatement_ddpm_is_jko():
    mu, s0 = 2.0, 0.5  # p_data = N(2, 0.25)
    n, g = 20_000, torch.Generator().manual_seed(0)

    def score_t(x, t):  # exact score of p_t = N(sqrt(abar) mu, abar s0^2 + 1 - abar)
        a = per_example(alpha_bar_vp_linear(t), x)
        return -(x - a.sqrt() * mu) / (a * s0**2 + 1 - a)

    a1 = alpha_bar_vp_linear(torch.tensor(1.0, dtype=torch.float64)).item()
    start_mean, start_var = math.sqrt(a1) * mu, a1 * s0**2 + 1 - a1
    start = start_mean + math.sqrt(start_var) * torch.randn(n, 1, generator=g, dtype=torch.float64)

    def variance_at_half_mean(trajectory):
        means = torch.stack([x.mean() for x in trajectory])
        i = int((means - (start_mean + mu) / 2).abs().argmin())
        return means[i].item(), trajectory[i].var().item()

    def gradient_flow_variance(mean):  # Langevin toward p_data: (m - mu) and (var - s0^2) decay as e^-tau, e^-2tau
        rho = (mean - mu) / (start_mean - mu)
        return s0**2 + (start_var - s0**2) * rho**2

    def diffusion_variance(mean):  # forward marginal with sqrt(abar) = mean / mu
        a = (mean / mu) ** 2
        return a * s0**2 + 1 - a

    reverse = []
    samplers.euler_maruyama(
        *samplers.reverse_sde_vp(score_t, beta_vp_linear), start, steps=1000, generator=g, trajectory=reverse
    )
    langevin = []
    samplers.langevin(
        lambda x, t: -(x - mu) / s0**2, start, steps=400, step_size=0.001, generator=g, trajectory=langevin
    )
    mean_r, var_r = variance_at_half_mean(reverse)
    mean_l, var_l = variance_at_half_mean(langevin)
    wrong = within(
        var_r,
        gradient_flow_variance(mean_r),
        0.03,
        "reverse SDE variance at half-way mean vs W2 gradient flow of KL(p||p_data)",
    )
    right = all_of(
        [
            within(var_r, diffusion_variance(mean_r), 0.03, "reverse SDE variance vs forward marginal p_t"),
            within(var_l, gradient_flow_variance(mean_l), 0.03, "Langevin toward p_data vs its gradient flow"),
        ]
    )
    return misstatement(wrong, right)
