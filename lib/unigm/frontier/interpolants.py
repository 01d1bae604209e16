"""Stochastic interpolants (Albergo, Boffi & Vanden-Eijnden 2023, arXiv:2303.08797, "Stochastic
Interpolants: A Unifying Framework for Flows and Diffusions"):

    x_t = alpha_t x0 + beta_t x1 + gamma_t z,   z ~ N(0, I) independent of (x0, x1),

with alpha_0 = beta_1 = 1, alpha_1 = beta_0 = 0, gamma_0 = gamma_1 = 0. Course convention (unigm.base):
t = 0 is data, t = 1 is noise, so x0 ~ p_data and x1 is the noise end (N(0, I), or its entropic-OT partner).
The paper's (rho_0, rho_1) are our (data, noise); its backward SDE is the one that generates here.

Two regressions give everything (paper, Thm. 2.6 and eq. 2.13):
    velocity  b(t, x) = E[alpha' x0 + beta' x1 + gamma' z | x_t = x]      loss E|b - target|^2
    denoiser  eta(t, x) = E[n | x_t = x],  n the Gaussian noise of x_t, score s = -eta / sigma_t
With independent Gaussian x1 the noise of x_t is beta x1 + gamma z = sigma_t n, sigma_t = sqrt(beta^2 + gamma^2),
so the score exists for gamma = 0 too; with the Sinkhorn coupling x1 depends on x0 and only z is Gaussian noise
(n = z, sigma_t = gamma_t; the score is then unreliable where gamma -> 0, at both ends).
Generation runs from t = 1 to t = 0 by the ODE dx = b dt, or by the backward SDE (paper, eq. 2.23 with our time):
    dx = [b - eps(t) s] dt + sqrt(2 eps(t)) dW,  integrated backwards (dt < 0),
which has the same marginals for every eps(t) >= 0: with Y_tau = X_{1 - tau}, Fokker-Planck needs
b_B rho + eps grad rho = b rho, i.e. b_B = b - eps s (checked on a Gaussian in tests/test_interpolants.py).

Instances: linear (flow matching), trigonometric, vp (one-sided diffusion), with_gamma (adds a latent
gamma_t = scale sqrt(t (1 - t))), Learnable (a monotone learnable schedule), and the Schrodinger bridge
(coupling="sinkhorn"): x_t = (1 - t) x0 + t x1 + sigma sqrt(t (1 - t)) z with (x0, x1) drawn from the entropic-OT
plan with reg = 2 sigma^2 on squared distances (the static Schrodinger bridge for a Brownian reference
sigma W; Tong et al. 2024, arXiv:2307.03672).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import ot
import torch
from torch import nn
from torch.nn import functional as F

from .. import samplers
from ..base import FlowBased
from ..data import toy
from ..flows.matching import straightness
from ..nets import MLP
from ..schedules import alpha_bar_vp_linear, beta_vp_linear
from ..tensors import as_time, per_example, rand, randn_like

__all__ = ["DERIVATIVE_CLAMP", "FunctionSchedule", "InterpolantConfig", "Learnable", "Schedule", "StochasticInterpolant",
           "WithGamma", "gaussian_fields", "linear", "ode_sample", "path_straightness", "schedule_experiment",
           "sde_sample", "sinkhorn_pairs", "sinkhorn_plan", "trigonometric", "transport_cost", "vp", "with_gamma"]

DERIVATIVE_CLAMP = 1e-3  # derivatives that blow up at an end (sqrt(t) laws) are evaluated at t in [c, 1 - c]
NAMES = ("alpha", "beta", "gamma", "d_alpha", "d_beta", "d_gamma")


# -- schedules ---------------------------------------------------------------------------------------
class Schedule(nn.Module):
    """alpha(t), beta(t), gamma(t) and their time derivatives d_alpha, d_beta, d_gamma; t a tensor of any shape
    (vectorised, elementwise). An nn.Module so that a learnable schedule trains with the model."""

    name = "schedule"

    def alpha(self, t): raise NotImplementedError
    def beta(self, t): raise NotImplementedError
    def gamma(self, t): return torch.zeros_like(t)
    def d_alpha(self, t): raise NotImplementedError
    def d_beta(self, t): raise NotImplementedError
    def d_gamma(self, t): return torch.zeros_like(t)

    def coefficients(self, t: torch.Tensor, x: torch.Tensor) -> list[torch.Tensor]:
        """[alpha, beta, gamma, d_alpha, d_beta, d_gamma] at t (B,), each (B, 1, ...) to broadcast against x."""
        return [per_example(getattr(self, name)(t), x) for name in NAMES]

    def check(self, tol: float = 1e-6) -> "Schedule":
        """Raise ValueError naming the first violated boundary condition; return self when all hold within tol."""
        ends = torch.tensor([0.0, 1.0], dtype=torch.float64)
        with torch.no_grad():
            values = {name: getattr(self, name)(ends) for name in ("alpha", "beta", "gamma")}
        conditions = [("alpha_0 = 1", values["alpha"][0], 1.0), ("alpha_1 = 0", values["alpha"][1], 0.0),
                      ("beta_0 = 0", values["beta"][0], 0.0), ("beta_1 = 1", values["beta"][1], 1.0),
                      ("gamma_0 = 0", values["gamma"][0], 0.0), ("gamma_1 = 0", values["gamma"][1], 0.0)]
        for condition, value, expected in conditions:
            if not abs(float(value) - expected) <= tol:
                raise ValueError(f"schedule {self.name!r} violates {condition}: got {float(value):.3g} (tol {tol:g})")
        for condition in ("gamma_t >= 0",):
            grid = torch.linspace(0, 1, 101, dtype=torch.float64)
            if (self.gamma(grid).detach() < -tol).any():
                raise ValueError(f"schedule {self.name!r} violates {condition}")
        return self


class FunctionSchedule(Schedule):
    """A schedule given by six pure functions of t (alpha, beta, d_alpha, d_beta; gamma = 0)."""

    def __init__(self, name, alpha, beta, d_alpha, d_beta):
        super().__init__()
        self.name = name
        self._f = {"alpha": alpha, "beta": beta, "d_alpha": d_alpha, "d_beta": d_beta}

    def alpha(self, t): return self._f["alpha"](t)
    def beta(self, t): return self._f["beta"](t)
    def d_alpha(self, t): return self._f["d_alpha"](t)
    def d_beta(self, t): return self._f["d_beta"](t)


def linear() -> Schedule:
    """alpha = 1 - t, beta = t, gamma = 0: flow matching / rectified flow (paper, Sec. 4.1)."""
    return FunctionSchedule("linear", lambda t: 1 - t, lambda t: t,
                            lambda t: -torch.ones_like(t), lambda t: torch.ones_like(t)).check()


def trigonometric() -> Schedule:
    """alpha = cos(pi t / 2), beta = sin(pi t / 2), gamma = 0 (alpha^2 + beta^2 = 1: variance preserving)."""
    h = math.pi / 2
    return FunctionSchedule("trigonometric", lambda t: torch.cos(h * t), lambda t: torch.sin(h * t),
                            lambda t: -h * torch.sin(h * t), lambda t: h * torch.cos(h * t)).check()


def vp(beta_min: float = 0.1, beta_max: float = 20.0) -> Schedule:
    """The one-sided diffusion (VP SDE, Song et al. 2021): x_t = a_t x_data + b_t eps with
    a_t = exp(-1/2 int_0^t beta(s) ds) (= sqrt(alpha_bar(t)); not sqrt(1 - beta(t))), b_t = sqrt(1 - a_t^2).
    a_1 = exp(-(beta_min + beta_max) / 4) = e^-5.025 ~ 0.0066 for the default betas, not exactly 0: check() passes
    with tol=1e-2. a' = -beta(t) a / 2; b' = beta(t) a^2 / (2 b) is infinite at t = 0 (b ~ sqrt(t)), so it is
    evaluated at max(t, DERIVATIVE_CLAMP)."""

    def a(t):
        return alpha_bar_vp_linear(t, beta_min, beta_max).sqrt()

    def db(t):
        t = t.clamp(min=DERIVATIVE_CLAMP)
        a2 = alpha_bar_vp_linear(t, beta_min, beta_max)
        return beta_vp_linear(t, beta_min, beta_max) * a2 / (2 * (1 - a2).sqrt())

    schedule = FunctionSchedule("vp", a, lambda t: (1 - alpha_bar_vp_linear(t, beta_min, beta_max)).sqrt(),
                                lambda t: -0.5 * beta_vp_linear(t, beta_min, beta_max) * a(t), db)
    return schedule.check(tol=1e-2)


class WithGamma(Schedule):
    """`base` plus a latent term gamma_t = scale sqrt(t (1 - t)) (paper, eq. 4.1). gamma' = scale (1 - 2t) /
    (2 sqrt(t (1 - t))) is infinite at both ends; it is evaluated at t clamped to [c, 1 - c], c = DERIVATIVE_CLAMP
    (the regression target then stays bounded; b itself is finite there, since gamma' gamma -> scale^2 / 2)."""

    def __init__(self, base: Schedule, scale: float):
        super().__init__()
        if scale < 0:
            raise ValueError(f"gamma scale must be >= 0, got {scale}")
        self.base, self.scale, self.name = base, float(scale), f"{base.name}+gamma{scale:g}"

    def alpha(self, t): return self.base.alpha(t)
    def beta(self, t): return self.base.beta(t)
    def d_alpha(self, t): return self.base.d_alpha(t)
    def d_beta(self, t): return self.base.d_beta(t)
    def gamma(self, t): return self.scale * (t * (1 - t)).clamp(min=0).sqrt() + self.base.gamma(t)

    def d_gamma(self, t):
        c = t.clamp(DERIVATIVE_CLAMP, 1 - DERIVATIVE_CLAMP)
        return self.scale * (1 - 2 * c) / (2 * (c * (1 - c)).sqrt()) + self.base.d_gamma(t)


def with_gamma(schedule: Schedule, scale: float) -> Schedule:
    return WithGamma(schedule, scale).check(tol=1e-2 if schedule.name == "vp" else 1e-6)


class Learnable(Schedule):
    """alpha_t = 1 - F(t), beta_t = F(t), F piecewise linear on `knots` equal intervals with slopes
    proportional to softplus(w_k) (normalised cumulative sum): F(0) = 0 and F(1) = 1 exactly, monotone by
    construction; w = 0 at the start gives F(t) = t (the linear schedule). With learn_gamma, gamma_t =
    softplus(g) sqrt(t (1 - t)) >= 0 with a learnable amplitude (initially gamma_init). F' is the slope of
    the interval t lies in (right derivative at a knot). The marginal law of x_t is the linear path's at
    time F(t), so learning F learns how fast the path is walked."""

    name = "learnable"

    def __init__(self, knots: int = 16, learn_gamma: bool = False, gamma_init: float = 0.1):
        super().__init__()
        self.knots = int(knots)
        self.weights = nn.Parameter(torch.zeros(self.knots))
        self.raw_gamma = nn.Parameter(torch.tensor(math.log(math.expm1(gamma_init)))) if learn_gamma else None

    def _cumulative(self) -> torch.Tensor:  # (knots + 1,), 0 ... 1 exactly
        increments = F.softplus(self.weights)
        c = torch.cumsum(increments, 0)
        return torch.cat([torch.zeros(1, dtype=c.dtype, device=c.device), c / c[-1]])

    def _locate(self, t):
        scaled = t * self.knots
        k = scaled.floor().clamp(0, self.knots - 1).long()
        return k, scaled - k.to(t.dtype)

    def beta(self, t):  # F(t) = (1 - u) c_k + u c_{k+1}
        c = self._cumulative().to(t.dtype)
        k, u = self._locate(t)
        return (1 - u) * c[k] + u * c[k + 1]

    def d_beta(self, t):
        c = self._cumulative().to(t.dtype)
        k, _ = self._locate(t)
        return (c[k + 1] - c[k]) * self.knots

    def alpha(self, t): return 1 - self.beta(t)
    def d_alpha(self, t): return -self.d_beta(t)

    def amplitude(self) -> torch.Tensor:
        return F.softplus(self.raw_gamma) if self.raw_gamma is not None else torch.zeros(())

    def gamma(self, t): return self.amplitude().to(t.dtype) * (t * (1 - t)).clamp(min=0).sqrt()

    def d_gamma(self, t):
        c = t.clamp(DERIVATIVE_CLAMP, 1 - DERIVATIVE_CLAMP)
        return self.amplitude().to(t.dtype) * (1 - 2 * c) / (2 * (c * (1 - c)).sqrt())


def make_schedule(name: str | Schedule, **kwargs) -> Schedule:
    """A schedule by name ("linear", "trigonometric", "vp", "learnable", or "<name>+gamma<scale>", e.g.
    "linear+gamma0.5"), or the Schedule itself."""
    if isinstance(name, Schedule):
        return name
    base, _, scale = name.partition("+gamma")
    factories = {"linear": linear, "trigonometric": trigonometric, "vp": vp, "learnable": Learnable}
    if base not in factories:
        raise ValueError(f"unknown schedule {name!r}; choose from {sorted(factories)} (optionally '+gamma<scale>')")
    schedule = factories[base](**kwargs)
    return with_gamma(schedule, float(scale)) if scale else schedule


# -- couplings ---------------------------------------------------------------------------------------
def sinkhorn_plan(x0: torch.Tensor, x1: torch.Tensor, sigma: float) -> np.ndarray:
    """The entropic-OT plan (n, m) between uniform weights on x0 (n, D) and x1 (m, D) for the cost |x0 - x1|^2 with
    reg = 2 sigma^2: pi ~ exp(-|x0 - x1|^2 / (2 sigma^2)), the static Schrodinger bridge of sigma W (the
    Sinkhorn of POT; its log-domain version when exp(-C / reg) would underflow)."""
    a = x0.reshape(len(x0), -1).detach().cpu().double().numpy()
    b = x1.reshape(len(x1), -1).detach().cpu().double().numpy()
    n, m, cost, reg = len(a), len(b), ot.dist(a, b), 2 * sigma**2
    method = "sinkhorn" if cost.max() / reg < 300 else "sinkhorn_log"  # exp(-C / reg) stays a float64 there
    return ot.sinkhorn(np.full(n, 1 / n), np.full(m, 1 / m), cost, reg=reg, method=method, numItermax=5000, stopThr=1e-9)


def sinkhorn_pairs(x0: torch.Tensor, x1: torch.Tensor, sigma: float,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """For each x0[i] a partner x1[j] drawn from the plan's row i (j ~ pi[i, :] n): the pairs (x0, partner) have
    the plan's law exactly, since its rows all weigh 1 / n. Returns the partners (n, *E)."""
    plan = torch.as_tensor(sinkhorn_plan(x0, x1, sigma)).clamp(min=0)
    cpu_generator = generator if generator is not None and generator.device.type == "cpu" else None
    partner = torch.multinomial(plan, 1, generator=cpu_generator).squeeze(1)  # (n,)
    return x1[partner.to(x1.device)]


# -- samplers: plain functions of callables (x (B, *E), t (B,)) -> (B, *E) ------------------------------
def ode_sample(velocity, x1: torch.Tensor, steps: int, method: str = "heun") -> torch.Tensor:
    """dx = b dt from t = 1 to 0 with unigm.samplers' euler (NFE = steps) or heun (NFE = 2 steps)."""
    solvers = {"euler": samplers.euler, "heun": samplers.heun}
    if method not in solvers:
        raise ValueError(f"method must be one of {sorted(solvers)}, got {method!r}")
    return solvers[method](velocity, x1, steps)


def sde_sample(velocity, score, x1: torch.Tensor, steps: int, eps: float | Callable = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """The backward SDE dx = [b - eps(t) s] dt + sqrt(2 eps(t)) dW from t = 1 to 0 by Euler-Maruyama (NFE =
    steps, two fields per step); eps a float >= 0 or a function t (B,) -> (B,). eps = 0 is the Euler ODE."""
    eps_of_t = eps if callable(eps) else (lambda t: torch.full_like(t, float(eps)))
    if not callable(eps) and eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")

    def drift(x, t):
        return velocity(x, t) - per_example(eps_of_t(t), x) * score(x, t)

    return samplers.euler_maruyama(drift, lambda t: (2 * eps_of_t(t)).sqrt(), x1, steps, generator=generator)


def gaussian_fields(schedule: Schedule, mean: torch.Tensor, std: float):
    """Exact (velocity, score) when x0 ~ N(mean, std^2 I) and x1, z ~ N(0, I) independent: x_t is Gaussian with
    mean mu_t = alpha mean and variance v_t = alpha^2 std^2 + beta^2 + gamma^2, and since (target, x_t) are jointly
    Gaussian, E[target | x_t] = alpha' mean + Cov(target, x_t) / v_t (x - mu_t) with Cov = alpha alpha' std^2 +
    beta beta' + gamma gamma' = v_t' / 2; the score is -(x - mu_t) / v_t."""

    def moments(x, t):
        a, b, g, da, db, dg = schedule.coefficients(t, x)
        mu, v = a * mean.to(x), a**2 * std**2 + b**2 + g**2
        return a, da, mu, v, a * da * std**2 + b * db + g * dg

    def velocity(x, t):
        a, da, mu, v, cov = moments(x, t)
        return da * mean.to(x) + cov / v * (x - mu)

    def score(x, t):
        _, _, mu, v, _ = moments(x, t)
        return -(x - mu) / v

    return velocity, score


# -- the model -----------------------------------------------------------------------------------------
@dataclass
class InterpolantConfig:
    hidden: int = 128
    depth: int = 3
    time_dim: int = 32
    schedule: object = "linear"  # a name for make_schedule or a Schedule (ignored by coupling="sinkhorn")
    coupling: str = "independent"  # or "sinkhorn": the Schrodinger bridge x_t = (1-t) x0 + t x1 + sigma sqrt(t(1-t)) z
    sigma: float = 0.5  # Brownian reference of the Schrodinger bridge (Sinkhorn reg = 2 sigma^2)
    learn_score: bool = True  # a second net for eta = E[n | x_t] (needed by the SDE samplers, eps > 0)
    sample_steps: int = 32  # Heun steps of sample() when eps = 0 (NFE = 2 x steps); Euler-Maruyama steps otherwise


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -grad


class StochasticInterpolant(FlowBased):
    """Learns b(t, x) (and eta(t, x), the score's denoiser) for x_t = alpha x0 + beta x1 + gamma z; generates
    by the ODE or the backward SDE from N(0, I) at t = 1 (for vp, N(0, I) is the end point up to a_1 ~ 0.0066).

    A Learnable schedule trains jointly by the max-min of Albergo & Vanden-Eijnden 2023 (arXiv:2209.15571): the net
    minimises L(b) = E|b|^2 - 2 E[b . target] (the regression loss less E|target|^2, which depends on the schedule
    and which a schedule could shrink trivially), the schedule maximises it. min_b L = -int E|b*|^2 dt, so the
    schedule minimises the kinetic energy of the marginal flow (Benamou-Brenier): for alpha = 1 - F, beta = F it
    reparametrises the linear path to constant speed, which is what few-step Euler needs. Implemented in one loss:
    the schedule's coefficients pass through a gradient reversal in the net's term and E|target|^2 is added with
    its value subtracted (so `loss` reports the plain regression MSE)."""

    Config = InterpolantConfig

    def __init__(self, event_shape, config: InterpolantConfig | None = None):
        config = config or self.Config()
        super().__init__(event_shape, config)
        if config.coupling not in COUPLINGS:
            raise ValueError(f"coupling must be one of {sorted(COUPLINGS)}, got {config.coupling!r}")
        if config.coupling == "sinkhorn":
            if config.schedule not in ("linear", None):
                raise ValueError("coupling='sinkhorn' is the Brownian bridge (1-t) x0 + t x1 + sigma sqrt(t(1-t)) z; "
                                 f"it takes no schedule (got {config.schedule!r}): set sigma instead")
            if config.sigma <= 0:
                raise ValueError(f"sigma must be > 0 for the Schrodinger bridge, got {config.sigma}")
            self.schedule = with_gamma(linear(), config.sigma)
        else:
            self.schedule = make_schedule(config.schedule)
        d = self.event_dim
        self.net = MLP(d, d, config.hidden, config.depth, time_dim=config.time_dim)
        self.denoiser_net = MLP(d, d, config.hidden, config.depth, time_dim=config.time_dim) if config.learn_score else None

    # -- fields --
    def velocity(self, x, t):
        t = as_time(t, x)
        return self.unflat(self.net(self.flat(x), t))

    def denoiser(self, x, t):
        if self.denoiser_net is None:
            raise RuntimeError("this model was built with learn_score=False: it has no denoiser, so no score and no "
                               "SDE sampler (eps > 0); use the ODE (eps = 0) or build it with learn_score=True")
        t = as_time(t, x)
        return self.unflat(self.denoiser_net(self.flat(x), t))

    def noise_scale(self, t: torch.Tensor) -> torch.Tensor:
        """sigma_t of the Gaussian noise n of x_t: sqrt(beta^2 + gamma^2) (independent x1) or gamma (Sinkhorn)."""
        g = self.schedule.gamma(t)
        return g if self.config.coupling == "sinkhorn" else (self.schedule.beta(t) ** 2 + g**2).sqrt()

    def score(self, x, t):
        """grad log p_t(x) = -eta(t, x) / sigma_t (sigma_t floored at 1e-3)."""
        t = as_time(t, x)
        return -self.denoiser(x, t) / per_example(self.noise_scale(t).clamp(min=1e-3), x)

    # -- training --
    def pairs(self, x0, generator=None):
        """The noise end x1 paired with each data point x0, by the configured coupling."""
        return COUPLINGS[self.config.coupling](self, x0, generator)

    def loss(self, x, *, generator=None):
        x0 = self.check_input(x)
        x1 = self.pairs(x0, generator)
        t = rand((x0.shape[0],), x0, generator)
        z = randn_like(x0, generator)
        coefficients = self.schedule.coefficients(t, x0)
        learnable = any(p.requires_grad for p in self.schedule.parameters())
        moved = [_ReverseGradient.apply(c) for c in coefficients] if learnable else coefficients
        a, b, g, da, db, dg = moved
        xt, target = a * x0 + b * x1 + g * z, da * x0 + db * x1 + dg * z
        loss = (self.velocity(xt, t) - target).pow(2).flatten(1).sum(1).mean() / self.event_dim
        if learnable:  # + E|target|^2 through the schedule only, value removed: schedule gradient = -dL/dtheta
            a, b, g, da, db, dg = coefficients
            energy = (da * x0 + db * x1 + dg * z).pow(2).flatten(1).sum(1).mean() / self.event_dim
            loss = loss + energy - energy.detach()
        if self.denoiser_net is not None:
            a, b, g = (c.detach() for c in coefficients[:3])
            xt = a * x0 + b * x1 + g * z
            noise = z if self.config.coupling == "sinkhorn" else (b * x1 + g * z) / (b**2 + g**2).sqrt().clamp(min=1e-6)
            loss = loss + (self.denoiser(xt, t) - noise).pow(2).mean()
        return loss

    # -- sampling --
    @torch.no_grad()
    def sample(self, n, steps=None, *, eps: float | Callable = 0.0, generator=None, method: str = "heun"):
        """n samples from N(0, I) at t = 1: the ODE (eps = 0; `method` euler or heun) or the backward SDE with
        diffusion eps(t) >= 0 (Euler-Maruyama). steps: solver steps (default config.sample_steps)."""
        x1 = self.randn(self.check_n(n), *self.event_shape, generator=generator)
        steps = steps or self.config.sample_steps
        if not callable(eps) and eps == 0:
            return ode_sample(self.velocity, x1, steps, method)
        return sde_sample(self.velocity, self.score, x1, steps, eps, generator)


def _independent(model, x0, generator):
    return randn_like(x0, generator)


def _sinkhorn(model, x0, generator):
    return sinkhorn_pairs(x0, randn_like(x0, generator), model.config.sigma, generator)


COUPLINGS = {"independent": _independent, "sinkhorn": _sinkhorn}


# -- measurements ------------------------------------------------------------------------------------
@torch.no_grad()
def path_straightness(model: StochasticInterpolant, n: int = 2000, steps: int = 64, seed: int = 0) -> float:
    """flows.matching.straightness of the model's ODE (0: straight paths walked at constant speed)."""
    g = torch.Generator().manual_seed(seed)
    return straightness(model.velocity, model.randn(n, *model.event_shape, generator=g), steps)


@torch.no_grad()
def transport_cost(model: StochasticInterpolant, n: int = 2000, steps: int = 64, seed: int = 0,
                   method: str = "heun") -> float:
    """E|x0 - x1|^2 of the pairs (x0, x1) = (ODE(x1), x1) the model's ODE produces (per example, summed over
    dimensions); the W2^2 between noise and data is its lower bound."""
    g = torch.Generator().manual_seed(seed)
    x1 = model.randn(n, *model.event_shape, generator=g)
    return (ode_sample(model.velocity, x1, steps, method) - x1).pow(2).flatten(1).sum(1).mean().item()


DEFAULT_SCHEDULES = ("linear", "trigonometric", "vp", "linear+gamma0.5", "learnable")


def schedule_experiment(fit, metrics, dataset: str = "two_moons", schedules=DEFAULT_SCHEDULES, steps: int = 1500,
                        batch_size: int = 256, lr: float = 3e-3, seeds=(0, 1, 2), nfes=(4, 8, 16, 64),
                        method: str = "euler", n: int = 2000, config: dict | None = None) -> list[dict]:
    """Which schedule is best? One StochasticInterpolant per (schedule, seed), all at matched compute (the same
    `steps` gradient steps of `batch_size`, same net, same lr), velocity only (learn_score=False). Each row:
    {schedule, seed, G@<nfe> (Euler ODE by default, NFE = steps; heun: NFE = 2 steps), straightness,
    transport_cost, train_seconds}. "learnable" is the Learnable schedule trained by the max-min (kinetic energy)
    objective described in StochasticInterpolant: chosen because it needs no held-out data, costs nothing extra
    per step, and cannot be won trivially (the schedule-dependent E|target|^2 is removed from what it optimises).

    `fit` (unigm.train.fit) and `metrics` (unigm.metrics) are passed in: this module sits in the model layer and
    may not import the trainer or the metrics (tests/test_layering.py). Sequential, one process."""
    dist = toy(dataset)
    ref = metrics.reference(dist, n=n)
    rows = []
    for name in schedules:
        for seed in seeds:
            torch.manual_seed(seed)
            model = StochasticInterpolant((2,), InterpolantConfig(schedule=name, learn_score=False, **(config or {})))
            history = fit(model, dist, steps=steps, batch_size=batch_size, lr=lr, seed=seed, progress=False)
            g = torch.Generator().manual_seed(10_000 + seed)
            x1 = torch.randn(n, 2, generator=g)
            per_step = 2 if method == "heun" else 1
            samples = [ode_sample(model.velocity, x1, max(1, nfe // per_step), method) for nfe in nfes]
            quality = metrics.sample_quality_many(samples, ref)
            row = {"schedule": model.schedule.name if name != "learnable" else "learnable", "seed": seed}
            row.update({f"G@{nfe}": q.gap_closed for nfe, q in zip(nfes, quality)})
            row["straightness"] = path_straightness(model, n, 64, seed)
            row["transport_cost"] = transport_cost(model, n, 64, seed)
            row["train_seconds"] = history.seconds
            rows.append(row)
    return rows
