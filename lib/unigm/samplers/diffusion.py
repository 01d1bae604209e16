"""DDIM (Song, Meng & Ermon 2021, arXiv:2010.02502) for an eps-predictor eps(x, t) and a schedule
alpha_bar(t) (e.g. unigm.schedules.alpha_bar_vp_linear). eta = 0 is deterministic; eta = 1 is
exactly DDPM's ancestral sampler (Ho et al. 2020, Alg. 2), which is how unigm.diffusion.DDPM samples.

Fewer steps than training: `respaced_times(T, steps)` picks a subsequence of the training grid i / T,
and a DDIM step between two of its times (non-adjacent on the grid) with eta = 1 is the DDPM
posterior q(x_s | x_t, x0_hat) with beta = 1 - alpha_bar(t) / alpha_bar(s) (Nichol & Dhariwal 2021,
arXiv:2102.09672, Sec. 4; lecture 02, check 10.4): respaced ancestral sampling.

DPM-Solver-2 (Lu et al. 2022, arXiv:2206.00927) integrates the same probability-flow ODE to second order
in lambda = log(alpha / sigma), with two evaluations per step; DDIM is its first-order sibling (DPM-Solver-1).
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..tensors import as_time, randn_like
from .ode import Field, record, time_grid


def ddim_step(eps: Field, x: torch.Tensor, t, s, alpha_bar: Callable[[torch.Tensor], torch.Tensor],
              eta: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """One DDIM update from time t to s < t (eq. 12):
        x0_hat = (x - sqrt(1 - a_t) eps) / sqrt(a_t)
        x_s    = sqrt(a_s) x0_hat + sqrt(1 - a_s - sigma^2) eps + sigma z,   z ~ N(0, I),
        sigma  = eta sqrt((1 - a_s) / (1 - a_t)) sqrt(1 - a_t / a_s)         (eq. 16),
    with a = alpha_bar. Noise is drawn only when sigma > 0."""
    check_eta(eta)
    t, s = torch.as_tensor(t, dtype=torch.float64), torch.as_tensor(s, dtype=torch.float64)
    a_t, a_s = alpha_bar(t).item(), alpha_bar(s).item()
    predicted = eps(x, as_time(t, x))
    x0_hat = (x - math.sqrt(1 - a_t) * predicted) / math.sqrt(a_t)
    sigma = eta * math.sqrt((1 - a_s) / (1 - a_t) * (1 - a_t / a_s))
    # 1 - a_s - sigma^2 = (1 - a_s)(1 - eta^2 (1 - a_t/a_s)/(1 - a_t)) >= 0 for eta in [0, 1] (check_eta): max() only
    # absorbs rounding; for eta > 1 it would silently clamp, which is why check_eta refuses eta > 1
    x_s = math.sqrt(a_s) * x0_hat + math.sqrt(max(1 - a_s - sigma**2, 0.0)) * predicted
    if sigma > 0:
        x_s = x_s + sigma * randn_like(x, generator)
    return x_s


def check_eta(eta) -> None:
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be in [0, 1] (0: deterministic DDIM, 1: DDPM's ancestral noise), got {eta!r}")


def respaced_times(num_steps: int, steps: int) -> torch.Tensor:
    """steps + 1 times from 1 down to 0 on a T-step training grid i / T (T = num_steps), as evenly spaced
    as the grid allows: i_k = round(T - k T / steps) (Nichol & Dhariwal 2021, Sec. 4). When steps
    divides T this is exactly time_grid(steps); steps = T is the whole grid."""
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= num_steps:
        raise ValueError(f"steps must be an int in [1, {num_steps}] (the model was trained on {num_steps} "
                         f"steps; a respaced chain takes a subsequence of them), got {steps!r}")
    if num_steps % steps == 0:  # already on the grid: keep time_grid's floats (DDPM.sample is unchanged by this)
        return time_grid(steps)
    return torch.round(torch.linspace(num_steps, 0, steps + 1, dtype=torch.float64)) / num_steps


@torch.no_grad()
def ddim(eps: Field, x: torch.Tensor, steps: int | None, alpha_bar: Callable[[torch.Tensor], torch.Tensor],
         eta: float = 0.0, t_start: float = 1.0, t_end: float = 0.0, generator: torch.Generator | None = None,
         trajectory: list | None = None, times: torch.Tensor | None = None) -> torch.Tensor:
    """DDIM sampling on `steps` equal intervals from t_start down to t_end, or on the decreasing `times`
    given instead (e.g. respaced_times(T, steps); then steps is None or len(times) - 1). NFE = steps.
    Needs alpha_bar(t_start) > 0 (stop short of t = 1 with the cosine schedule)."""
    check_eta(eta)
    ts = time_grid(steps, t_start, t_end) if times is None else _check_times(times, steps)
    record(trajectory, x)
    for t0, t1 in zip(ts[:-1], ts[1:]):
        x = ddim_step(eps, x, t0, t1, alpha_bar, eta, generator)
        record(trajectory, x)
    return x


def _check_times(times, steps) -> torch.Tensor:
    times = torch.as_tensor(times, dtype=torch.float64)
    if times.dim() != 1 or len(times) < 2 or not bool((times[1:] < times[:-1]).all()):
        raise ValueError("times must be a 1-D sequence of at least two strictly decreasing times")
    if steps is not None and steps != len(times) - 1:
        raise ValueError(f"steps = {steps} but {len(times)} times make {len(times) - 1} steps")
    return times


# -- DPM-Solver-2 (Lu, Zhou, Bao, Chen, Li & Zhu 2022, arXiv:2206.00927) --------------------------
def lambda_of_t(t, alpha_bar: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """lambda_t = log(alpha_t / sigma_t) = (log alpha_bar - log(1 - alpha_bar)) / 2, half the log-SNR
    (Lu et al. 2022, Sec. 3.1), elementwise in float64: +inf where alpha_bar = 1 (t = 0), -inf where it is 0."""
    a = alpha_bar(torch.as_tensor(t, dtype=torch.float64))
    return 0.5 * (torch.log(a) - torch.log1p(-a))


def t_of_lambda(lam, alpha_bar: Callable[[torch.Tensor], torch.Tensor], t_low, t_high) -> torch.Tensor:
    """The inverse t_lambda: the t in [t_low, t_high] with lambda_of_t(t) = lam, elementwise, by bisection on
    lambda_of_t, which decreases in t for any decreasing alpha_bar (Lu et al. invert their schedules in
    closed form). Brackets are halved until none shrinks in float64, so t is exact to about 1e-16."""
    lam = torch.as_tensor(lam, dtype=torch.float64)
    low, high, lam = torch.broadcast_tensors(torch.as_tensor(t_low, dtype=torch.float64),
                                             torch.as_tensor(t_high, dtype=torch.float64), lam)
    if not bool(((lambda_of_t(high, alpha_bar) <= lam) & (lam <= lambda_of_t(low, alpha_bar))).all()):
        raise ValueError("every lambda must lie in [lambda(t_high), lambda(t_low)] to be inverted on [t_low, t_high]")
    while True:
        mid = 0.5 * (low + high)
        if bool(((mid == low) | (mid == high)).all()):
            return mid
        data_side = lambda_of_t(mid, alpha_bar) > lam  # the root lies above mid
        low, high = torch.where(data_side, mid, low), torch.where(data_side, high, mid)


def dpm_solver2_step(eps: Field, x: torch.Tensor, t, s, alpha_bar: Callable[[torch.Tensor], torch.Tensor],
                     r: float = 0.5) -> torch.Tensor:
    """One DPM-Solver-2 update from time t to s < t. In lambda the PF-ODE's solution is exactly
        x_s = (alpha_s / alpha_t) x_t - alpha_s int_{lambda_t}^{lambda_s} e^{-lambda} eps dlambda   (eq. 3.4);
    taking eps linear in lambda, its slope from one extra evaluation at t_r, gives, with
    h = lambda_s - lambda_t > 0 and e_t = eps(x, t),
        t_r = t_lambda(lambda_t + r h)
        u   = (alpha_r / alpha_t) x - sigma_r (e^{r h} - 1) e_t
        x_s = (alpha_s / alpha_t) x - sigma_s (e^h - 1) [e_t + (eps(u, t_r) - e_t) / (2 r)].
    r = 1/2 is Algorithm 1 (x_s = ... - sigma_s (e^h - 1) eps(u, t_r)); the appendix allows any r in (0, 1].
    Two evaluations, local error O(h^3): a second-order method."""
    _check_r(r)
    times = torch.tensor([float(t), float(s)], dtype=torch.float64)
    lambda_t, lambda_s = _lambdas(times, alpha_bar)
    t_r = t_of_lambda(lambda_t + r * (lambda_s - lambda_t), alpha_bar, times[1], times[0])
    return _dpm_solver2_update(eps, x, times[0], t_r, times[1], alpha_bar, r)


def _dpm_solver2_update(eps: Field, x: torch.Tensor, t, t_r, s, alpha_bar, r: float) -> torch.Tensor:
    """dpm_solver2_step's formula once t_r is known (dpm_solver2 inverts lambda for all steps at once)."""
    times = torch.stack([torch.as_tensor(time, dtype=torch.float64) for time in (t, t_r, s)])
    a = alpha_bar(times).tolist()
    alpha_t, alpha_r, alpha_s = (math.sqrt(value) for value in a)
    sigma_r, sigma_s = math.sqrt(1 - a[1]), math.sqrt(1 - a[2])
    lambda_t, lambda_r, lambda_s = lambda_of_t(times, alpha_bar).tolist()
    e_t = eps(x, as_time(times[0], x))
    u = alpha_r / alpha_t * x - sigma_r * math.expm1(lambda_r - lambda_t) * e_t
    e_r = eps(u, as_time(times[1], x))
    return alpha_s / alpha_t * x - sigma_s * math.expm1(lambda_s - lambda_t) * (e_t + (e_r - e_t) / (2 * r))


def _check_r(r) -> None:
    if not 0.0 < r <= 1.0:
        raise ValueError(f"r must be in (0, 1] (where the intermediate point sits in lambda), got {r!r}")


def _lambdas(times: torch.Tensor, alpha_bar) -> torch.Tensor:
    """lambda at decreasing times, checked finite and increasing."""
    lambdas = lambda_of_t(times, alpha_bar)
    if not bool(torch.isfinite(lambdas).all()):
        raise ValueError("DPM-Solver needs 0 < alpha_bar < 1 at every time (finite lambda): start where alpha_bar > 0 "
                         "and stop short of t = 0, where alpha_bar = 1 (Lu et al. stop at t = 1e-3 or 1e-4)")
    if not bool((lambdas[1:] > lambdas[:-1]).all()):
        raise ValueError("lambda must increase from step to step: decreasing times and alpha_bar decreasing in t")
    return lambdas


@torch.no_grad()
def dpm_solver2(eps: Field, x: torch.Tensor, steps: int | None, alpha_bar: Callable[[torch.Tensor], torch.Tensor],
                t_start: float = 1.0, t_end: float = 1e-3, trajectory: list | None = None,
                times: torch.Tensor | None = None, r: float = 0.5) -> torch.Tensor:
    """DPM-Solver-2 (Lu et al. 2022, Algorithm 1) for an eps-predictor on `steps` equal intervals in t from
    t_start down to t_end, or on the decreasing `times` given instead (steps None or len(times) - 1).
    Equal steps in t as in ddim, so that the two compare on one grid; Lu et al. prefer equal steps in
    lambda for small images: pass times = t_of_lambda(equally spaced lambdas, ...). NFE = 2 steps.
    t_end defaults to 1e-3, not 0, because lambda = +inf where alpha_bar = 1; needs alpha_bar(t_start) > 0."""
    _check_r(r)
    ts = time_grid(steps, t_start, t_end) if times is None else _check_times(times, steps)
    lambdas = _lambdas(ts, alpha_bar)
    t_mid = t_of_lambda(lambdas[:-1] + r * (lambdas[1:] - lambdas[:-1]), alpha_bar, ts[1:], ts[:-1])  # (steps,)
    record(trajectory, x)
    for t0, t_r, t1 in zip(ts[:-1], t_mid, ts[1:]):
        x = _dpm_solver2_update(eps, x, t0, t_r, t1, alpha_bar, r)
        record(trajectory, x)
    return x
