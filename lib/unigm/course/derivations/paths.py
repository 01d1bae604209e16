"""Result 3: flow matching and diffusion are one model under a change of time and scale.

A Gaussian path is x_t = alpha_t x_0 + sigma_t eps. Linear (flow matching): alpha = 1 - t,
sigma = t. VP (DDPM): alpha = sqrt(abar), sigma = sqrt(1 - abar). Paths are compared through
their signal-to-noise ratio SNR = alpha^2 / sigma^2."""

from __future__ import annotations

import sympy as sp
import torch

from unigm import data, samplers
from unigm.flows import FlowMatching, OTFlowMatching
from unigm.paths import linear_path, linear_to_vp, vp_to_linear
from unigm.schedules import (alpha_bar_cosine, alpha_bar_of_linear_path, alpha_bar_vp_linear, beta_vp_linear,
                             linear_time_of_alpha_bar, snr)
from unigm.tensors import per_example

from .core import all_of, at_least, check, misstatement, sympy_equal, with_library, within
from .toys import eight_gaussians

t = sp.Symbol("t", positive=True)
s_ = sp.Symbol("s", positive=True)  # s stands for 1 - t (both positive inside (0, 1))
x0, eps, S = sp.symbols("x_0 epsilon S", real=True)  # S: the score of p_t at x


def matched_alpha_bar(one_minus_t, t_):
    return one_minus_t**2 / (one_minus_t**2 + t_**2)


@check(
    "3.1 matched SNR",
    3,
    "sympy",
    "abar = (1-t)^2/((1-t)^2+t^2) gives the VP path the SNR ((1-t)/t)^2 of the linear path",
)
def matched_snr():
    a = matched_alpha_bar(1 - t, t)
    return sympy_equal(a / (1 - a), ((1 - t) / t) ** 2)


@check(
    "3.2 scale map",
    3,
    "sympy",
    "x_VP / (sqrt(abar) + sqrt(1-abar)) = (1-t) x_0 + t eps at the matched abar; the library's vp_to_linear and "
    "linear_to_vp map samples of one path onto the other's",
)
def scale_map():
    a = matched_alpha_bar(s_, t)
    x_vp = sp.sqrt(a) * x0 + sp.sqrt(1 - a) * eps
    mapped = (x_vp / (sp.sqrt(a) + sp.sqrt(1 - a))).subs(s_, 1 - t)
    g = torch.Generator().manual_seed(0)
    x_0, noise = torch.randn(256, 2, generator=g, dtype=torch.float64), torch.randn(256, 2, generator=g, dtype=torch.float64)
    t_ = per_example(torch.rand(256, generator=g, dtype=torch.float64) * 0.98 + 0.01, x_0)
    a_ = alpha_bar_of_linear_path(t_)
    x_linear, x_vp_ = (1 - t_) * x_0 + t_ * noise, a_.sqrt() * x_0 + (1 - a_).sqrt() * noise
    gap = max((vp_to_linear(x_vp_, a_) - x_linear).abs().max().item(), (linear_to_vp(x_linear, t_) - x_vp_).abs().max().item())
    return with_library(sympy_equal(mapped, (1 - t) * x0 + t * eps),
                        within(gap, 0.0, 1e-12, "max |vp_to_linear(x_VP) - x_lin|, |linear_to_vp(x_lin) - x_VP|"))


@check("3.3 time map", 3, "sympy", "t = sqrt(1-abar)/(sqrt(abar)+sqrt(1-abar)) inverts the matched abar(t)")
def time_map():
    a = matched_alpha_bar(s_, t)
    return sympy_equal((sp.sqrt(1 - a) / (sp.sqrt(a) + sp.sqrt(1 - a))).subs(s_, 1 - t), t)


A, B = sp.Function("alpha")(t), sp.Function("sigma")(t)


def path_velocity(alpha, sigma):
    """alpha' E[x_0|x] + sigma' E[eps|x] with E[x_0|x] = (x + sigma^2 S)/alpha, E[eps|x] = -sigma S."""
    x = sp.Symbol("x", real=True)
    return x, sp.diff(alpha, t) * (x + sigma**2 * S) / alpha + sp.diff(sigma, t) * (-sigma * S)


@check(
    "3.4 velocity from the score",
    3,
    "sympy",
    "alpha' E[x_0|x] + sigma' E[eps|x] = (alpha'/alpha) x + (alpha' sigma^2/alpha - (sigma^2)'/2) score; "
    "GaussianPath.velocity_from_score gives it on the linear and VP paths (exact posterior means of a mixture)",
)
def velocity_from_score():
    x, u = path_velocity(A, B)
    stated = sp.diff(A, t) / A * x + (sp.diff(A, t) * B**2 / A - sp.diff(B**2, t) / 2) * S
    worst = 0.0
    for name in ("linear", "vp"):  # the left side with E[x_0|x] from the mixture's posteriors (no score in it)
        mixture, time = eight_gaussians(name), torch.tensor(0.4, dtype=torch.float64)
        path = mixture.path
        x_t = mixture.sample(500, time, torch.Generator().manual_seed(0))
        x0_mean = mixture.posterior_mean(x_t, time)
        eps_mean = (x_t - path.alpha(time) * x0_mean) / path.sigma(time)
        library = path.velocity_from_score(mixture.score(x_t, time), x_t, time)
        worst = max(worst, (library - path.velocity(x0_mean, eps_mean, time)).abs().max().item())
    return with_library(sympy_equal(u, stated), within(
        worst, 0.0, 1e-10, "max |velocity_from_score(score) - alpha' E[x_0|x] - sigma' E[eps|x]| (linear, VP)"))


@check(
    "3.5 VP velocity is Song's PF-ODE",
    3,
    "sympy",
    "for alpha = sqrt(abar), sigma = sqrt(1-abar), abar' = -beta abar: u = -beta (x + score)/2",
)
def vp_velocity_is_pf_ode():
    abar = sp.Function("alphabar")(t)
    beta = -sp.diff(abar, t) / abar
    x, u = path_velocity(sp.sqrt(abar), sp.sqrt(1 - abar))
    return sympy_equal(u, -beta / 2 * (x + S))


@check(
    "3.6 one ODE in (x/alpha, sigma/alpha)",
    3,
    "sympy",
    "for any Gaussian path, z = x/alpha obeys dz/dt = (d lambda/dt) (-lambda score_z) with lambda = sigma/alpha: the "
    "ODE depends on the path only through lambda",
)
def one_ode_in_scaled_variables():
    x, u = path_velocity(A, B)
    lam = B / A
    z_dot = sp.diff(x / A, t).subs(sp.Derivative(x, t), 0) + u / A  # d(x/alpha)/dt with dx/dt = u
    score_z = A * S  # p_z(z) = alpha p_x(alpha z): grad_z log p_z = alpha grad_x log p_x
    return sympy_equal(z_dot, sp.diff(lam, t) * (-lam * score_z))


@check(
    "3.7 FM loss = weighted eps loss",
    3,
    "sympy",
    "with v = (eps_theta - x_t)/(1-t): |v - (eps - x_0)|^2 = (1-t)^-2 |eps_theta - eps|^2 on the linear path",
)
def fm_loss_is_eps_loss():
    eps_theta = sp.Symbol("epsilon_theta", real=True)
    xt = (1 - t) * x0 + t * eps
    v = (eps_theta - xt) / (1 - t)
    return sympy_equal((v - (eps - x0)) ** 2, (eps_theta - eps) ** 2 / (1 - t) ** 2)


@check(
    "3.8 VP and linear trajectories coincide",
    3,
    "numeric",
    "the library's VP probability-flow ODE (RK4), mapped by x/(sqrt(abar)+sqrt(1-abar)) and t(abar), lands on the "
    "linear-path ODE trajectory at every step",
)
def trajectories_coincide():
    vp, lin = eight_gaussians("vp"), eight_gaussians("linear")
    steps, n = 200, 256
    vp_times = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    alpha_bars = alpha_bar_vp_linear(vp_times)
    lin_times = linear_time_of_alpha_bar(alpha_bars)  # matched times, non-uniform
    x_vp = vp.sample(n, 1.0, torch.Generator().manual_seed(0))
    x_lin = vp_to_linear(x_vp, alpha_bars[0])
    velocity_vp = samplers.probability_flow_vp(vp.score, beta_vp_linear)
    worst = 0.0
    for i in range(steps):
        x_vp = samplers.rk4_step(velocity_vp, x_vp, vp_times[i], vp_times[i + 1])
        x_lin = samplers.rk4_step(lin.velocity, x_lin, lin_times[i], lin_times[i + 1])
        worst = max(worst, (vp_to_linear(x_vp, alpha_bars[i + 1]) - x_lin).abs().max().item())
    # the linear ODE on its own uniform grid (the flow-matching sampler) reaches the same data points
    x_lin_uniform = samplers.rk4(
        lin.velocity,
        vp_to_linear(vp.sample(n, 1.0, torch.Generator().manual_seed(0)), alpha_bars[0]),
        steps=steps,
        t_start=lin_times[0].item(),
    )
    return all_of(
        [
            within(worst, 0.0, 1e-4, "max |mapped VP trajectory - linear trajectory| over all steps"),
            within(
                (x_lin_uniform - x_vp).abs().max().item(),
                0.0,
                1e-3,
                "max |endpoint of the uniform-grid linear ODE - VP endpoint|",
            ),
        ],
        {"max_error": worst},
    )


@check(
    "3.9 FlowMatching.loss = weighted eps loss",
    3,
    "numeric",
    "on one batch, the library's FlowMatching.loss equals mean (1-t)^-2 |eps_theta - eps|^2 with eps_theta = x_t + "
    "(1-t) v_theta",
)
def flow_matching_loss_is_eps_loss():
    torch.manual_seed(0)
    model = FlowMatching((2,)).double()
    x = data.toy("two_moons").sample(512, torch.Generator().manual_seed(0)).double()
    library = model.loss(x, generator=torch.Generator().manual_seed(1)).item()
    g = torch.Generator().manual_seed(1)  # the same stream as FlowMatching.loss's: noise first, then t
    noise = torch.randn(x.shape, generator=g, dtype=x.dtype)
    t_ = torch.rand(x.shape[0], generator=g, dtype=x.dtype)
    xt = linear_path().sample(x, noise, t_)
    with torch.no_grad():
        eps_theta = xt + per_example(1 - t_, xt) * model.velocity(xt, t_)
    weighted = ((eps_theta - noise) ** 2 / per_example(1 - t_, xt) ** 2).mean().item()
    return within(weighted, library, 1e-8 * library, "weighted eps loss vs FlowMatching.loss")


@check(
    "3.10 abar = (1-t)^2 is not the linear path",
    3,
    "misstatement",
    "abar = (1-t)^2 gives another SNR and other samples; the matched abar reproduces the linear path exactly",
)
def misstatement_alpha_bar_one_minus_t_squared():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 2, generator=g, dtype=torch.float64) + 1.5
    noise = torch.randn(1000, 2, generator=g, dtype=torch.float64)
    t_ = torch.rand(1000, generator=g, dtype=torch.float64) * 0.98 + 0.01
    linear = linear_path().sample(x, noise, t_)

    def mapped(alpha_bar):
        a = per_example(alpha_bar, x)
        return vp_to_linear(a.sqrt() * x + (1 - a).sqrt() * noise, a)

    def report(alpha_bar, what):
        gap = (mapped(alpha_bar) - linear).abs().max().item()
        snr_gap = (snr(alpha_bar) - linear_path().snr(t_)).abs().max().item()
        return all_of(
            [
                within(gap, 0.0, 1e-10, f"{what}: max |mapped VP sample - linear sample|"),
                within(snr_gap, 0.0, 1e-8, f"{what}: max |SNR_VP - SNR_linear|"),
            ]
        )

    return misstatement(
        report((1 - t_) ** 2, "abar = (1-t)^2"), report(alpha_bar_of_linear_path(t_), "abar = (1-t)^2/((1-t)^2+t^2)")
    )


@check(
    "3.15 the cosine schedule is the trigonometric path",
    3,
    "sympy",
    "with s = 0, abar = cos^2(pi t/2): alpha = cos, sigma = sin, matched linear time sin/(sin + cos); the library's "
    "alpha_bar_cosine is this path, time-shifted by s: abar_s(t) = abar_0((t+s)/(1+s)) / abar_0(s/(1+s))",
)
def cosine_schedule_is_trigonometric():
    a = sp.cos(sp.pi * t / 2) ** 2
    matched = sp.sqrt(1 - a) / (sp.sqrt(a) + sp.sqrt(1 - a))  # linear_time_of_alpha_bar (check 3.3)
    step = sympy_equal(matched.subs(t, 2 * t / sp.pi), sp.sin(t) / (sp.sin(t) + sp.cos(t)),
                       simplify=lambda e: sp.simplify(e.subs(t, sp.atan(sp.Symbol("r", positive=True)))))
    time, shift = torch.linspace(0, 1, 101, dtype=torch.float64), 0.008
    trig = torch.cos(torch.pi * time / 2) ** 2
    shifted = alpha_bar_cosine((time + shift) / (1 + shift), 0.0) / alpha_bar_cosine(torch.tensor(shift / (1 + shift), dtype=torch.float64), 0.0)
    inner = time[1:-1]  # t = 1 has abar = 0, where the time map is 1 by continuity
    lin_time = torch.tan(torch.pi * inner / 2) / (1 + torch.tan(torch.pi * inner / 2))
    return with_library(step, all_of([
        within((alpha_bar_cosine(time, 0.0) - trig).abs().max().item(), 0.0, 1e-12, "max |alpha_bar_cosine(t, 0) - cos^2|"),
        within((alpha_bar_cosine(time, shift) - shifted).abs().max().item(), 0.0, 1e-12, "max |abar_s(t) - time-shifted abar_0|"),
        within((linear_time_of_alpha_bar(alpha_bar_cosine(inner, 0.0)) - lin_time).abs().max().item(), 0.0, 1e-9,
               "max |linear_time_of_alpha_bar(abar) - tan/(1 + tan)|"),
    ]))


@check(
    "3.16 'every flow-matching path is a Gaussian path'",
    3,
    "misstatement",
    "the Gaussian-path results (3.1-3.8: one PF-ODE up to time and scale) need x_1 independent of x_0; minibatch-OT "
    "pairs (OTFlowMatching.coupling), like reflow pairs, are correlated with x_0, so x_t = (1-t) x_0 + t x_1 is not "
    "alpha_t x_0 + sigma_t eps with eps independent noise",
)
def misstatement_every_path_is_gaussian():
    x_0 = data.toy("two_moons").sample(512, torch.Generator().manual_seed(0)).double()
    centred = x_0 - x_0.mean(0)

    def cross_moment(model):  # E[(x_0 - m) . x_1]: 0 for independent noise, with its standard error
        products = (centred * model.coupling(x_0, torch.Generator().manual_seed(1))).sum(1)
        return products.mean().item(), products.std().item() / len(products) ** 0.5

    independent, independent_se = cross_moment(FlowMatching((2,)))
    ot_pairs, ot_se = cross_moment(OTFlowMatching((2,)))
    return misstatement(
        within(ot_pairs, 0.0, 4 * ot_se, "minibatch OT: E[(x_0 - m) . x_1] vs 0 (4 s.e.)"),
        all_of([
            within(independent, 0.0, 4 * independent_se, "independent coupling: E[(x_0 - m) . x_1] vs 0 (4 s.e.)"),
            at_least(ot_pairs / ot_se, 10.0, "minibatch OT: E[(x_0 - m) . x_1] in standard errors"),
        ]),
    )
