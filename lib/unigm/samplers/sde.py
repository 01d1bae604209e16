"""Stochastic samplers and the score-SDE builders (Song et al. 2021, arXiv:2011.13456).

Forward SDE dx = f(x, t) dt + g(t) dW on t in [0, 1]:
    reverse SDE (eq. 6):           dx = [f - g^2 score] dt + g dW_bar, run from t = 1 to 0
    probability-flow ODE (eq. 13): dx/dt = f - g^2 score / 2
The builders return fields in the course's time (t = 1 noise -> t = 0 data), ready for
euler_maruyama(drift, diffusion, x, steps), predictor_corrector(drift, diffusion, score, x, steps)
and euler/heun/rk4(velocity, x, steps).
`score`, `drift`: callables (x (B, *E), t (B,)) -> (B, *E); `g_squared`, `beta`: t (B,) -> (B,).
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..tensors import as_time, per_example, randn_like
from .ode import Field, record, time_grid

TimeFunction = Callable[[torch.Tensor], torch.Tensor]


def euler_maruyama_step(drift: Field, diffusion: TimeFunction, x: torch.Tensor, t0, t1,
                        generator: torch.Generator | None = None, noise: bool = True) -> torch.Tensor:
    """x <- x + drift(x, t0) dt + diffusion(t0) sqrt(|dt|) z, dt = t1 - t0 (negative when running
    backwards; the Brownian increment still has variance |dt|). noise=False takes the mean step only
    (z is still drawn, so the generator advances the same way). One evaluation."""
    dt = (t1 - t0).item()
    t = as_time(t0, x)
    z = randn_like(x, generator)
    mean = x + drift(x, t) * dt
    return mean + per_example(diffusion(t), x) * math.sqrt(abs(dt)) * z if noise else mean


@torch.no_grad()
def euler_maruyama(drift: Field, diffusion: TimeFunction, x: torch.Tensor, steps: int, t_start: float = 1.0,
                   t_end: float = 0.0, generator: torch.Generator | None = None,
                   trajectory: list | None = None, *, denoise: bool = False) -> torch.Tensor:
    """Euler-Maruyama for dx = drift(x, t) dt + diffusion(t) dW, run from t_start to t_end.

    Running backwards (t_end < t_start) the Brownian increment still has variance |dt|:
    x <- x + drift * dt + diffusion(t) * sqrt(|dt|) * z. denoise=True adds no noise in the last
    step (the "noise removal" of Song et al. 2021, App. G). NFE = steps."""
    ts = time_grid(steps, t_start, t_end)
    record(trajectory, x)
    for i, (t0, t1) in enumerate(zip(ts[:-1], ts[1:])):
        x = euler_maruyama_step(drift, diffusion, x, t0, t1, generator, noise=not (denoise and i == steps - 1))
        record(trajectory, x)
    return x


@torch.no_grad()
def langevin(score: Field, x: torch.Tensor, steps: int, step_size: float, t: float = 0.0,
             generator: torch.Generator | None = None, trajectory: list | None = None) -> torch.Tensor:
    """Unadjusted Langevin dynamics toward p_t: x <- x + eps * score(x, t) + sqrt(2 eps) z.

    It discretises dx = grad log p dt + sqrt(2) dW, whose stationary law is p (Roberts & Tweedie
    1996); the bias of the discretisation shrinks with the step size."""
    if step_size <= 0:
        raise ValueError(f"step_size must be positive, got {step_size}")
    tt = as_time(torch.tensor(t, dtype=torch.float64), x)
    record(trajectory, x)
    for _ in range(steps):
        z = randn_like(x, generator)
        x = x + step_size * score(x, tt) + math.sqrt(2 * step_size) * z
        record(trajectory, x)
    return x


def langevin_snr_step(score: Field, x: torch.Tensor, t: torch.Tensor, snr: float, alpha=1.0,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """One Langevin corrector step at time t whose size is set by a signal-to-noise ratio r
    (Song et al. 2021, App. G, Alg. 4 (VE) and 5 (VP)):
        eps = 2 alpha (r ||z|| / ||score||)^2,   x <- x + eps score(x, t) + sqrt(2 eps) z,
    with the norms of z and the score averaged over the batch, as in the authors' code; alpha is
    1 (VE) or 1 - beta_i of the discretised VP chain, a float or a (B,) tensor. One evaluation."""
    s = score(x, t)
    z = randn_like(x, generator)
    noise_norm = z.reshape(x.shape[0], -1).norm(dim=1).mean()
    score_norm = s.reshape(x.shape[0], -1).norm(dim=1).mean()
    eps = 2 * per_example(alpha, x) * (snr * noise_norm / score_norm) ** 2
    return x + eps * s + (2 * eps).sqrt() * z


@torch.no_grad()
def predictor_corrector(drift: Field, diffusion: TimeFunction, score: Field, x: torch.Tensor, steps: int,
                        snr: float = 0.16, corrector_steps: int = 1, alpha: TimeFunction | None = None,
                        t_start: float = 1.0, t_end: float = 0.0, generator: torch.Generator | None = None,
                        trajectory: list | None = None, denoise: bool = True) -> torch.Tensor:
    """Predictor-corrector sampling (Song et al. 2021, Alg. 1): on each of `steps` intervals,
    `corrector_steps` Langevin steps toward p_t (langevin_snr_step, alpha(t) its alpha_i, default 1)
    then one Euler-Maruyama step of the reverse SDE (drift, diffusion) from t to the next time, the
    order of the authors' code. denoise: no noise in the last predictor step (App. G).
    NFE = steps (1 + corrector_steps) when the drift calls the score once."""
    if not isinstance(corrector_steps, int) or corrector_steps < 0:
        raise ValueError(f"corrector_steps must be a non-negative int, got {corrector_steps!r}")
    if snr <= 0:
        raise ValueError(f"snr must be positive, got {snr}")
    ts = time_grid(steps, t_start, t_end)
    record(trajectory, x)
    for i, (t0, t1) in enumerate(zip(ts[:-1], ts[1:])):
        t = as_time(t0, x)
        for _ in range(corrector_steps):
            x = langevin_snr_step(score, x, t, snr, 1.0 if alpha is None else alpha(t), generator)
        x = euler_maruyama_step(drift, diffusion, x, t0, t1, generator, noise=not (denoise and i == steps - 1))
        record(trajectory, x)
    return x


def reverse_sde(score: Field, drift: Field, g_squared: TimeFunction):
    """(drift, diffusion) of the reverse-time SDE dx = [f(x, t) - g(t)^2 score(x, t)] dt + g(t) dW_bar,
    for euler_maruyama integrating from t = 1 down to t = 0."""

    def reverse_drift(x, t):
        return drift(x, t) - per_example(g_squared(t), x) * score(x, t)

    def diffusion(t):
        return g_squared(t).sqrt()

    return reverse_drift, diffusion


def probability_flow(score: Field, drift: Field, g_squared: TimeFunction) -> Field:
    """The probability-flow ODE velocity f(x, t) - g(t)^2 score(x, t) / 2: the same marginals p_t as
    the SDE, deterministically."""

    def velocity(x, t):
        return drift(x, t) - 0.5 * per_example(g_squared(t), x) * score(x, t)

    return velocity


def vp_drift(beta: TimeFunction) -> Field:
    """f(x, t) = -beta(t) x / 2 of the VP SDE dx = -beta x / 2 dt + sqrt(beta) dW (Song et al. 2021, eq. 11)."""
    return lambda x, t: -0.5 * per_example(beta(t), x) * x


def reverse_sde_vp(score: Field, beta: TimeFunction):
    """VP reverse SDE: drift -beta (x / 2 + score), diffusion sqrt(beta). E.g.
    euler_maruyama(*reverse_sde_vp(score, beta_vp_linear), x1, steps)."""
    return reverse_sde(score, vp_drift(beta), beta)


def probability_flow_vp(score: Field, beta: TimeFunction) -> Field:
    """VP probability-flow ODE: dx/dt = -beta(t) (x + score(x, t)) / 2."""
    return probability_flow(score, vp_drift(beta), beta)


def _no_drift(x, t):
    return torch.zeros_like(x)


def reverse_sde_ve(score: Field, g_squared: TimeFunction):
    """VE reverse SDE (f = 0, g^2 = d sigma^2 / dt): drift -g^2 score, diffusion g."""
    return reverse_sde(score, _no_drift, g_squared)


def probability_flow_ve(score: Field, g_squared: TimeFunction) -> Field:
    """VE probability-flow ODE: dx/dt = -g(t)^2 score(x, t) / 2."""
    return probability_flow(score, _no_drift, g_squared)
