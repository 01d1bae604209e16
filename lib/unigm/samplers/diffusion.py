"""DDIM (Song, Meng & Ermon 2021, arXiv:2010.02502) for an eps-predictor eps(x, t) and a schedule
alpha_bar(t) (e.g. unigm.schedules.alpha_bar_vp_linear). eta = 0 is deterministic; eta = 1 is
exactly DDPM's ancestral sampler (Ho et al. 2020, Alg. 2), which is how unigm.diffusion.DDPM samples.
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
    t, s = torch.as_tensor(t, dtype=torch.float64), torch.as_tensor(s, dtype=torch.float64)
    a_t, a_s = alpha_bar(t).item(), alpha_bar(s).item()
    predicted = eps(x, as_time(t, x))
    x0_hat = (x - math.sqrt(1 - a_t) * predicted) / math.sqrt(a_t)
    sigma = eta * math.sqrt((1 - a_s) / (1 - a_t) * (1 - a_t / a_s))
    x_s = math.sqrt(a_s) * x0_hat + math.sqrt(max(1 - a_s - sigma**2, 0.0)) * predicted
    if sigma > 0:
        x_s = x_s + sigma * randn_like(x, generator)
    return x_s


@torch.no_grad()
def ddim(eps: Field, x: torch.Tensor, steps: int, alpha_bar: Callable[[torch.Tensor], torch.Tensor],
         eta: float = 0.0, t_start: float = 1.0, t_end: float = 0.0, generator: torch.Generator | None = None,
         trajectory: list | None = None) -> torch.Tensor:
    """DDIM sampling on `steps` equal intervals from t_start down to t_end. NFE = steps.
    Needs alpha_bar(t_start) > 0 (stop short of t = 1 with the cosine schedule)."""
    ts = time_grid(steps, t_start, t_end)
    record(trajectory, x)
    for t0, t1 in zip(ts[:-1], ts[1:]):
        x = ddim_step(eps, x, t0, t1, alpha_bar, eta, generator)
        record(trajectory, x)
    return x
