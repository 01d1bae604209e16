"""DDIM (Song, Meng & Ermon 2021, arXiv:2010.02502) for an eps-predictor eps(x, t) and a schedule
alpha_bar(t) (e.g. unigm.schedules.alpha_bar_vp_linear). eta = 0 is deterministic; eta = 1 is
exactly DDPM's ancestral sampler (Ho et al. 2020, Alg. 2), which is how unigm.diffusion.DDPM samples.

Fewer steps than training: `respaced_times(T, steps)` picks a subsequence of the training grid i / T,
and a DDIM step between two of its times (non-adjacent on the grid) with eta = 1 is the DDPM
posterior q(x_s | x_t, x0_hat) with beta = 1 - alpha_bar(t) / alpha_bar(s) (Nichol & Dhariwal 2021,
arXiv:2102.09672, Sec. 4; lecture 02, check 10.4): respaced ancestral sampling.
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
