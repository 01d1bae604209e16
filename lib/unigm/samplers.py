"""Samplers as plain functions of a callable: f(x, t) -> tensor shaped like x.

t is passed as a tensor of shape (B,). By the course's time convention samplers run from
t_start = 1 (noise) to t_end = 0 (data) unless told otherwise; the same functions integrate
forwards (0 -> 1) when the bounds are swapped. Because they only see a callable, they work
with an analytic score or velocity exactly as with a network.

If `trajectory` is a list, every state (the start included) is appended to it.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def time_grid(steps: int, t_start: float = 1.0, t_end: float = 0.0) -> torch.Tensor:
    """steps + 1 equally spaced times from t_start to t_end (float64 for exact endpoints)."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    return torch.linspace(t_start, t_end, steps + 1, dtype=torch.float64)


def _t(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return t.to(x.dtype).to(x.device).expand(x.shape[0])


def _record(trajectory, x):
    if trajectory is not None:
        trajectory.append(x.detach().clone())


def euler_step(f: Field, x, t0, t1):
    """x(t1) ~ x + h f(x, t0), h = t1 - t0. One evaluation."""
    return x + (t1 - t0).item() * f(x, _t(t0, x))


def heun_step(f: Field, x, t0, t1):
    """Explicit trapezoid (Karras et al. 2022, Alg. 1 without the noise). Two evaluations."""
    h = (t1 - t0).item()
    k1 = f(x, _t(t0, x))
    k2 = f(x + h * k1, _t(t1, x))
    return x + 0.5 * h * (k1 + k2)


def rk4_step(f: Field, x, t0, t1):
    """Classical fourth-order Runge-Kutta. Four evaluations."""
    h = (t1 - t0).item()
    tm = _t((t0 + t1) / 2, x)
    k1 = f(x, _t(t0, x))
    k2 = f(x + 0.5 * h * k1, tm)
    k3 = f(x + 0.5 * h * k2, tm)
    k4 = f(x + h * k3, _t(t1, x))
    return x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def integrate(step, f: Field, x: torch.Tensor, steps: int, t_start: float = 1.0, t_end: float = 0.0,
              trajectory: list | None = None) -> torch.Tensor:
    """Solve dx/dt = f(x, t) from t_start to t_end with `steps` equal steps of a one-step method.

    Differentiable when f is (discretise-then-optimise training of a CNF); the samplers below
    wrap it in no_grad."""
    ts = time_grid(steps, t_start, t_end)
    _record(trajectory, x)
    for t0, t1 in zip(ts[:-1], ts[1:]):
        x = step(f, x, t0, t1)
        _record(trajectory, x)
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


@torch.no_grad()
def euler_maruyama(drift: Field, diffusion: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                   steps: int, t_start: float = 1.0, t_end: float = 0.0,
                   generator: torch.Generator | None = None, trajectory: list | None = None) -> torch.Tensor:
    """Euler-Maruyama for dx = drift(x, t) dt + diffusion(t) dW, run from t_start to t_end.

    Running backwards (t_end < t_start) the Brownian increment still has variance |dt|:
    x <- x + drift * dt + diffusion(t) * sqrt(|dt|) * z. NFE = steps."""
    ts = time_grid(steps, t_start, t_end)
    _record(trajectory, x)
    for t0, t1 in zip(ts[:-1], ts[1:]):
        dt = (t1 - t0).item()
        t = _t(t0, x)
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        g = diffusion(t).reshape(-1, *([1] * (x.dim() - 1)))
        x = x + drift(x, t) * dt + g * math.sqrt(abs(dt)) * z
        _record(trajectory, x)
    return x


@torch.no_grad()
def langevin(score: Field, x: torch.Tensor, steps: int, step_size: float, t: float = 0.0,
             generator: torch.Generator | None = None, trajectory: list | None = None) -> torch.Tensor:
    """Unadjusted Langevin dynamics toward p_t: x <- x + eps * score(x, t) + sqrt(2 eps) z.

    It discretises dx = grad log p dt + sqrt(2) dW, whose stationary law is p (Roberts & Tweedie
    1996); the bias of the discretisation shrinks with the step size."""
    if step_size <= 0:
        raise ValueError(f"step_size must be positive, got {step_size}")
    tt = _t(torch.tensor(t, dtype=torch.float64), x)
    _record(trajectory, x)
    for _ in range(steps):
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        x = x + step_size * score(x, tt) + math.sqrt(2 * step_size) * z
        _record(trajectory, x)
    return x


class CountCalls:
    """Wrap a field to count its evaluations (the NFE a sampler really spent)."""

    def __init__(self, f: Field):
        self.f = f
        self.calls = 0

    def __call__(self, x, t):
        self.calls += 1
        return self.f(x, t)


# --------------------------------------------------------------------------------------------
# Likelihood through an ODE: the instantaneous change of variables (Chen et al. 2018, Thm. 1)
#   d log p(x_t) / dt = -div f(x_t, t)   =>   log p_0(x_0) = log p_1(x_1) + int_0^1 div f dt
# --------------------------------------------------------------------------------------------
def divergence_exact(f: Field, x: torch.Tensor, t: torch.Tensor,
                     create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(f(x, t), div_x f(x, t)) with the exact trace: one vector-Jacobian product per dimension.

    create_graph=True keeps both differentiable in f's parameters (maximum-likelihood training);
    otherwise they are returned detached."""
    with torch.enable_grad():
        x_in = x if create_graph and x.requires_grad else x.detach().requires_grad_(True)
        out = f(x_in, t)
        flat_out = out.reshape(x.shape[0], -1)
        div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for i in range(flat_out.shape[1]):
            (grad,) = torch.autograd.grad(flat_out[:, i].sum(), x_in, retain_graph=True, create_graph=create_graph)
            div = div + grad.reshape(x.shape[0], -1)[:, i]
    return (out, div) if create_graph else (out.detach(), div.detach())


def divergence_hutchinson(f: Field, x: torch.Tensor, t: torch.Tensor, probes: int = 1,
                          generator: torch.Generator | None = None,
                          create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(f(x, t), unbiased estimate of div f): E_v[v^T (df/dx) v] = tr(df/dx) for Rademacher v
    (Hutchinson 1989; FFJORD, Grathwohl et al. 2019). One vector-Jacobian product per probe."""
    with torch.enable_grad():
        x_in = x if create_graph and x.requires_grad else x.detach().requires_grad_(True)
        out = f(x_in, t)
        est = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for _ in range(probes):
            v = (torch.randint(0, 2, x.shape, generator=generator) * 2 - 1).to(x)
            (vjp,) = torch.autograd.grad(out, x_in, v, retain_graph=True, create_graph=create_graph)
            est = est + (vjp * v).reshape(x.shape[0], -1).sum(1)
    return (out, est / probes) if create_graph else (out.detach(), (est / probes).detach())


def ode_log_prob(f: Field, x: torch.Tensor, prior_log_prob: Callable[[torch.Tensor], torch.Tensor],
                 steps: int = 100, divergence=divergence_exact) -> torch.Tensor:
    """log p_0(x) of the model whose samples are x_0 = ODE(x_1 ~ prior, from t=1 to t=0).

    Integrates the augmented state (x, int div f) forwards from t = 0 to t = 1 with RK4 and
    returns prior_log_prob(x_1) + int_0^1 div f(x_t, t) dt, shape (B,)."""
    shape, batch = x.shape, x.shape[0]

    def augmented(state, t):  # state (B, D + 1): x flattened, then the running integral of div f
        v, div = divergence(f, state[:, :-1].reshape(shape), t)
        return torch.cat([v.reshape(batch, -1), div[:, None]], dim=1)

    start = torch.cat([x.reshape(batch, -1), torch.zeros(batch, 1, dtype=x.dtype, device=x.device)], dim=1)
    end = integrate(rk4_step, augmented, start, steps, 0.0, 1.0)
    return prior_log_prob(end[:, :-1].reshape(shape)) + end[:, -1]


def standard_normal_log_prob(x: torch.Tensor) -> torch.Tensor:
    """log N(x; 0, I) summed over the event dimensions: (B, *E) -> (B,)."""
    flat = x.reshape(x.shape[0], -1)
    return -0.5 * (flat.pow(2).sum(1) + flat.shape[1] * math.log(2 * math.pi))


# --------------------------------------------------------------------------------------------
# Score SDEs (Song et al. 2021, arXiv:2011.13456): forward dx = f(x, t) dt + g(t) dW on t in [0, 1].
#   reverse SDE (eq. 6):           dx = [f - g^2 score] dt + g dW_bar, run from t = 1 to 0
#   probability-flow ODE (eq. 13): dx/dt = f - g^2 score / 2
# Both builders return fields in the course's time (t = 1 noise -> t = 0 data), ready for
# euler_maruyama(drift, diffusion, x, steps) and euler/heun/rk4(velocity, x, steps).
# `score`, `drift`: callables (x (B, *E), t (B,)) -> (B, *E); `g_squared`, `beta`: t (B,) -> (B,).
# --------------------------------------------------------------------------------------------
def _per_example(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, ..., 1), broadcasting against x (B, *E)."""
    return values.reshape(-1, *([1] * (x.dim() - 1)))


def reverse_sde(score: Field, drift: Field, g_squared: Callable[[torch.Tensor], torch.Tensor]):
    """(drift, diffusion) of the reverse-time SDE dx = [f(x, t) - g(t)^2 score(x, t)] dt + g(t) dW_bar,
    for euler_maruyama integrating from t = 1 down to t = 0."""

    def reverse_drift(x, t):
        return drift(x, t) - _per_example(g_squared(t), x) * score(x, t)

    def diffusion(t):
        return g_squared(t).sqrt()

    return reverse_drift, diffusion


def probability_flow(score: Field, drift: Field, g_squared: Callable[[torch.Tensor], torch.Tensor]) -> Field:
    """The probability-flow ODE velocity f(x, t) - g(t)^2 score(x, t) / 2: the same marginals p_t as
    the SDE, deterministically."""

    def velocity(x, t):
        return drift(x, t) - 0.5 * _per_example(g_squared(t), x) * score(x, t)

    return velocity


def vp_drift(beta: Callable[[torch.Tensor], torch.Tensor]) -> Field:
    """f(x, t) = -beta(t) x / 2 of the VP SDE dx = -beta x / 2 dt + sqrt(beta) dW (Song et al. 2021, eq. 11)."""
    return lambda x, t: -0.5 * _per_example(beta(t), x) * x


def reverse_sde_vp(score: Field, beta: Callable[[torch.Tensor], torch.Tensor]):
    """VP reverse SDE: drift -beta (x / 2 + score), diffusion sqrt(beta). E.g.
    euler_maruyama(*reverse_sde_vp(score, beta_vp_linear), x1, steps)."""
    return reverse_sde(score, vp_drift(beta), beta)


def probability_flow_vp(score: Field, beta: Callable[[torch.Tensor], torch.Tensor]) -> Field:
    """VP probability-flow ODE: dx/dt = -beta(t) (x + score(x, t)) / 2."""
    return probability_flow(score, vp_drift(beta), beta)


def _no_drift(x, t):
    return torch.zeros_like(x)


def reverse_sde_ve(score: Field, g_squared: Callable[[torch.Tensor], torch.Tensor]):
    """VE reverse SDE (f = 0, g^2 = d sigma^2 / dt): drift -g^2 score, diffusion g."""
    return reverse_sde(score, _no_drift, g_squared)


def probability_flow_ve(score: Field, g_squared: Callable[[torch.Tensor], torch.Tensor]) -> Field:
    """VE probability-flow ODE: dx/dt = -g(t)^2 score(x, t) / 2."""
    return probability_flow(score, _no_drift, g_squared)


# --------------------------------------------------------------------------------------------
# DDIM (Song, Meng & Ermon 2021, arXiv:2010.02502) for an eps-predictor eps(x, t) and a schedule
# alpha_bar(t) (e.g. unigm.diffusion.alpha_bar_vp_linear); eta = 0 is deterministic, eta = 1 is
# DDPM's ancestral sampler.
# --------------------------------------------------------------------------------------------
def ddim_step(eps: Field, x: torch.Tensor, t, s, alpha_bar: Callable[[torch.Tensor], torch.Tensor],
              eta: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """One DDIM update from time t to s < t (eq. 12):
        x0_hat = (x - sqrt(1 - a_t) eps) / sqrt(a_t)
        x_s    = sqrt(a_s) x0_hat + sqrt(1 - a_s - sigma^2) eps + sigma z,   z ~ N(0, I),
        sigma  = eta sqrt((1 - a_s) / (1 - a_t)) sqrt(1 - a_t / a_s)         (eq. 16),
    with a = alpha_bar. Noise is drawn only when sigma > 0."""
    t, s = torch.as_tensor(t, dtype=torch.float64), torch.as_tensor(s, dtype=torch.float64)
    a_t, a_s = alpha_bar(t).item(), alpha_bar(s).item()
    predicted = eps(x, _t(t, x))
    x0_hat = (x - math.sqrt(1 - a_t) * predicted) / math.sqrt(a_t)
    sigma = eta * math.sqrt((1 - a_s) / (1 - a_t) * (1 - a_t / a_s))
    x_s = math.sqrt(a_s) * x0_hat + math.sqrt(max(1 - a_s - sigma**2, 0.0)) * predicted
    if sigma > 0:
        x_s = x_s + sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    return x_s


@torch.no_grad()
def ddim(eps: Field, x: torch.Tensor, steps: int, alpha_bar: Callable[[torch.Tensor], torch.Tensor],
         eta: float = 0.0, t_start: float = 1.0, t_end: float = 0.0, generator: torch.Generator | None = None,
         trajectory: list | None = None) -> torch.Tensor:
    """DDIM sampling on `steps` equal intervals from t_start down to t_end. NFE = steps.
    Needs alpha_bar(t_start) > 0 (stop short of t = 1 with the cosine schedule)."""
    ts = time_grid(steps, t_start, t_end)
    _record(trajectory, x)
    for t0, t1 in zip(ts[:-1], ts[1:]):
        x = ddim_step(eps, x, t0, t1, alpha_bar, eta, generator)
        _record(trajectory, x)
    return x
