"""Diffusion models on the course's time axis t in [0, 1] (t = 0 data, t = 1 noise).

Forward process (variance preserving):  q(x_t | x_0) = N(sqrt(alpha_bar(t)) x_0, (1 - alpha_bar(t)) I).
DDPM (Ho et al. 2020, arXiv:2006.11239) trains eps_theta(x_t, t) to predict the noise and
samples with the ancestral chain; step i of a T-step chain is time t = i / T here.
The continuous-time view (Song et al. 2021, arXiv:2011.13456) gives the score
grad log p_t(x) = -eps_theta(x, t) / sqrt(1 - alpha_bar(t)) and the probability-flow ODE,
through which the likelihood is computed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .base import ScoreBased, as_time, expand_like
from .nets import MLP
from .samplers import ode_log_prob, standard_normal_log_prob, time_grid


def beta_vp_linear(t, beta_min: float = 0.1, beta_max: float = 20.0):
    """beta(t) = beta_min + t (beta_max - beta_min) (Song et al. 2021, eq. 33). With T = 1000
    steps, beta_i = beta(i / T) / T runs from 1e-4 to 0.02: the schedule of Ho et al. 2020."""
    return beta_min + t * (beta_max - beta_min)


def alpha_bar_vp_linear(t, beta_min: float = 0.1, beta_max: float = 20.0):
    """alpha_bar(t) = exp(-int_0^t beta(s) ds); alpha_bar(0) = 1, alpha_bar(1) = e^-10.05."""
    return torch.exp(-(beta_min * t + 0.5 * (beta_max - beta_min) * t**2))


def t_of_alpha_bar_vp_linear(alpha_bar, beta_min: float = 0.1, beta_max: float = 20.0):
    """The inverse of alpha_bar_vp_linear: the t in [0, 1] with alpha_bar(t) = alpha_bar, the
    positive root of (beta_max - beta_min) t^2 / 2 + beta_min t + log alpha_bar = 0."""
    alpha_bar = torch.as_tensor(alpha_bar)
    slope = beta_max - beta_min
    return (-beta_min + torch.sqrt(beta_min**2 - 2 * slope * torch.log(alpha_bar))) / slope


def alpha_bar_cosine(t, s: float = 0.008):
    """alpha_bar(t) = f(t) / f(0), f(t) = cos((t + s) / (1 + s) pi / 2)^2 (Nichol & Dhariwal 2021,
    arXiv:2102.09672, eq. 17); alpha_bar(0) = 1, alpha_bar(1) = 0. Samplers that divide by
    sqrt(alpha_bar) must stop short of t = 1 with this schedule."""
    t = torch.as_tensor(t)
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    return f / math.cos(s / (1 + s) * math.pi / 2) ** 2


def sigma_ve(t, sigma_min: float = 0.01, sigma_max: float = 50.0):
    """sigma(t) = sigma_min (sigma_max / sigma_min)^t, the variance-exploding noise scale of
    Song et al. 2021 (arXiv:2011.13456, Appendix C); sigma(0) = sigma_min, sigma(1) = sigma_max."""
    return sigma_min * (sigma_max / sigma_min) ** torch.as_tensor(t)


def g_squared_ve(t, sigma_min: float = 0.01, sigma_max: float = 50.0):
    """g(t)^2 = d sigma(t)^2 / dt = 2 sigma(t)^2 log(sigma_max / sigma_min): the squared diffusion
    coefficient of the VE SDE dx = g(t) dW (Song et al. 2021, eq. 9)."""
    return 2 * sigma_ve(t, sigma_min, sigma_max) ** 2 * math.log(sigma_max / sigma_min)


def snr(alpha_bar):
    """Signal-to-noise ratio of x_t = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps:
    alpha_bar / (1 - alpha_bar) (Kingma et al. 2021, arXiv:2107.00630, eq. 2)."""
    return alpha_bar / (1 - alpha_bar)


def sigma_bar(alpha_bar):
    """sqrt((1 - alpha_bar) / alpha_bar) = 1 / sqrt(snr): the noise level of x_t / sqrt(alpha_bar),
    the variable in which DDIM is an Euler step (Song, Meng & Ermon 2021, arXiv:2010.02502, Sec. 4.3)."""
    return torch.sqrt((1 - alpha_bar) / alpha_bar)


def _assert_boundary(name, value, expected, tol=1e-6):
    value = float(value)
    assert abs(value - expected) <= tol * max(1.0, abs(expected)), f"{name} = {value}, expected {expected}"


_ONE, _ZERO = torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
_assert_boundary("alpha_bar_vp_linear(0)", alpha_bar_vp_linear(_ZERO), 1.0)
_assert_boundary("alpha_bar_vp_linear(1)", alpha_bar_vp_linear(_ONE), math.exp(-10.05))
_assert_boundary("alpha_bar_cosine(0)", alpha_bar_cosine(_ZERO), 1.0)
_assert_boundary("alpha_bar_cosine(1)", alpha_bar_cosine(_ONE), 0.0)
_assert_boundary("sigma_ve(0)", sigma_ve(_ZERO), 0.01)
_assert_boundary("sigma_ve(1)", sigma_ve(_ONE), 50.0)


@dataclass
class DDPMConfig:
    hidden: int = 128
    depth: int = 3
    time_dim: int = 32
    num_steps: int = 1000  # T, the length of the discrete chain
    beta_min: float = 0.1
    beta_max: float = 20.0
    likelihood_steps: int = 100  # RK4 steps of the probability-flow ODE in log_prob


class DDPM(ScoreBased):
    """Epsilon-prediction DDPM with the linear (VP) schedule."""

    name = "ddpm"
    Config = DDPMConfig

    def __init__(self, event_shape, config: DDPMConfig | None = None):
        config = config or self.Config()
        super().__init__(event_shape, config)
        self.net = MLP(self.event_dim, self.event_dim, config.hidden, config.depth, time_dim=config.time_dim)
        assert abs(self.alpha_bar(torch.tensor(0.0)).item() - 1.0) < 1e-12, "alpha_bar(0) must be 1"

    # -- schedule ----------------------------------------------------------------------------
    def alpha_bar(self, t):
        return alpha_bar_vp_linear(t, self.config.beta_min, self.config.beta_max)

    def beta(self, t):
        return beta_vp_linear(t, self.config.beta_min, self.config.beta_max)

    # -- the network and what it implies -----------------------------------------------------
    def predict_eps(self, x, t):  # (B, *E), (B,) -> (B, *E)
        return self.unflat(self.net(self.flat(x), t))

    def score(self, x, t):
        t = as_time(t, x.shape[0], x)
        return -self.predict_eps(x, t) / expand_like((1 - self.alpha_bar(t)).sqrt(), x)

    def noise(self, x0, eps, t):
        """Sample of q(x_t | x_0): sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps."""
        a = expand_like(self.alpha_bar(t), x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * eps

    def loss(self, x):
        """L_simple (Ho et al. 2020, eq. 14): E_{i, x0, eps} |eps - eps_theta(x_t, t_i)|^2, t_i = i / T."""
        x0 = self.check_input(x)
        T = self.config.num_steps
        t = torch.randint(1, T + 1, (x0.shape[0],), device=x0.device).to(x0.dtype) / T
        eps = torch.randn_like(x0)
        return (self.predict_eps(self.noise(x0, eps, t), t) - eps).pow(2).mean()

    @torch.no_grad()
    def sample(self, n, steps=None, trajectory: list | None = None):
        """Ancestral sampling (Ho et al. 2020, Alg. 2) on `steps` equal intervals of [0, 1]
        (default T). From t to s < t, with alpha = alpha_bar(t) / alpha_bar(s), beta = 1 - alpha:
            x_s = (x_t - beta / sqrt(1 - alpha_bar(t)) eps) / sqrt(alpha) + sigma z,
            sigma^2 = beta (1 - alpha_bar(s)) / (1 - alpha_bar(t))   (the posterior variance).
        If `trajectory` is a list, every state x_t (the start included) is appended to it."""
        x = torch.randn(self.check_n(n), *self.event_shape, device=self.device, dtype=self.dtype)
        ts = time_grid(steps or self.config.num_steps, 1.0, 0.0).to(x.dtype).to(x.device)
        if trajectory is not None:
            trajectory.append(x.clone())
        for t, s in zip(ts[:-1], ts[1:]):
            ab_t, ab_s = self.alpha_bar(t), self.alpha_bar(s)
            alpha = ab_t / ab_s
            beta = 1 - alpha
            eps = self.predict_eps(x, as_time(t, x.shape[0], x))
            x = (x - beta / (1 - ab_t).sqrt() * eps) / alpha.sqrt()
            if s > 0:
                x = x + (beta * (1 - ab_s) / (1 - ab_t)).sqrt() * torch.randn_like(x)
            if trajectory is not None:
                trajectory.append(x.clone())
        return x

    def probability_flow_velocity(self, x, t):
        """dx/dt = f - g^2 score / 2 = -beta(t) / 2 (x + score(x, t)) (Song et al. 2021, eq. 13)."""
        t = as_time(t, x.shape[0], x)
        return -0.5 * expand_like(self.beta(t), x) * (x + self.score(x, t))

    def log_prob(self, x, steps=None):
        """Log-likelihood through the probability-flow ODE, integrated from t = 1/T (the smallest
        noise level the network was trained on) to t = 1, with a N(0, I) prior at t = 1."""
        x = self.check_input(x)
        t0 = 1.0 / self.config.num_steps

        def velocity_from_t0(y, u):  # u in [0, 1] -> t = t0 + u (1 - t0)
            return (1 - t0) * self.probability_flow_velocity(y, t0 + u * (1 - t0))

        return ode_log_prob(velocity_from_t0, x, standard_normal_log_prob, steps or self.config.likelihood_steps)
