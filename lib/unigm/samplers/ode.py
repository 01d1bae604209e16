"""ODE solvers for dx/dt = f(x, t), with f any callable (x (B, *E), t (B,)) -> (B, *E).

By the course's time convention samplers run from t_start = 1 (noise) to t_end = 0 (data)
unless told otherwise; swap the bounds to integrate forwards. If `trajectory` is a list, every
state (the start included) is appended to it.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..tensors import as_time

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def time_grid(steps: int, t_start: float = 1.0, t_end: float = 0.0) -> torch.Tensor:
    """steps + 1 equally spaced times from t_start to t_end (float64 for exact endpoints)."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    return torch.linspace(t_start, t_end, steps + 1, dtype=torch.float64)


def record(trajectory: list | None, x: torch.Tensor) -> None:
    if trajectory is not None:
        trajectory.append(x.detach().clone())


def euler_step(f: Field, x, t0, t1):
    """x(t1) ~ x + h f(x, t0), h = t1 - t0. One evaluation."""
    return x + (t1 - t0).item() * f(x, as_time(t0, x))


def heun_step(f: Field, x, t0, t1):
    """Explicit trapezoid (Karras et al. 2022, Alg. 1 without the noise). Two evaluations."""
    h = (t1 - t0).item()
    k1 = f(x, as_time(t0, x))
    k2 = f(x + h * k1, as_time(t1, x))
    return x + 0.5 * h * (k1 + k2)


def rk4_step(f: Field, x, t0, t1):
    """Classical fourth-order Runge-Kutta. Four evaluations."""
    h = (t1 - t0).item()
    tm = as_time((t0 + t1) / 2, x)
    k1 = f(x, as_time(t0, x))
    k2 = f(x + 0.5 * h * k1, tm)
    k3 = f(x + 0.5 * h * k2, tm)
    k4 = f(x + h * k3, as_time(t1, x))
    return x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def integrate(step, f: Field, x: torch.Tensor, steps: int, t_start: float = 1.0, t_end: float = 0.0,
              trajectory: list | None = None) -> torch.Tensor:
    """Solve dx/dt = f(x, t) from t_start to t_end with `steps` equal steps of a one-step method.

    Differentiable when f is (discretise-then-optimise training of a CNF); the samplers below
    wrap it in no_grad."""
    ts = time_grid(steps, t_start, t_end)
    record(trajectory, x)
    for t0, t1 in zip(ts[:-1], ts[1:]):
        x = step(f, x, t0, t1)
        record(trajectory, x)
    return x


@torch.no_grad()
def euler(f: Field, x, steps: int, t_start=1.0, t_end=0.0, trajectory=None):
    """Explicit Euler for dx/dt = f(x, t). NFE = steps."""
    return integrate(euler_step, f, x, steps, t_start, t_end, trajectory)


@torch.no_grad()
def heun(f: Field, x, steps: int, t_start=1.0, t_end=0.0, trajectory=None):
    """Heun's second-order method. NFE = 2 steps."""
    return integrate(heun_step, f, x, steps, t_start, t_end, trajectory)


@torch.no_grad()
def rk4(f: Field, x, steps: int, t_start=1.0, t_end=0.0, trajectory=None):
    """Classical fourth-order Runge-Kutta. NFE = 4 steps."""
    return integrate(rk4_step, f, x, steps, t_start, t_end, trajectory)
