"""Gaussian probability paths x_t = alpha_t x_0 + sigma_t eps, and every conversion between
the quantities a network can predict on them: noise eps, data x_0, v, score and velocity.

Time convention of the course: t in [0, 1], t = 0 data (alpha_0 = 1, sigma_0 = 0), t = 1 noise.
Symbols follow Kingma et al. 2021 (Variational Diffusion Models, arXiv:2107.00630): alpha_t
scales the data, sigma_t the noise, SNR(t) = alpha_t^2 / sigma_t^2. Diffusion (the VP path,
alpha_t = sqrt(alpha_bar(t))) and flow matching (the linear path, alpha_t = 1 - t) are two
instances of one object, which is why they can be converted into each other (lecture 02, result 3):
    linear time t  <->  alpha_bar = (1 - t)^2 / ((1 - t)^2 + t^2),
    x_linear = x_VP / (sqrt(alpha_bar) + sqrt(1 - alpha_bar)).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .schedules import alpha_bar_vp_linear, beta_vp_linear
from .tensors import per_example

Schedule = Callable[[torch.Tensor], torch.Tensor]  # t -> a tensor shaped like t


@dataclass(frozen=True)
class GaussianPath:
    """x_t = alpha(t) x_0 + sigma(t) eps, eps ~ N(0, I), with the derivatives the ODEs need.

    Every method takes batches x, x0, eps, ... of shape (B, *E) and a time t that is a float,
    a 0-dim or a (B,) tensor. `d_sigma_squared` = d(sigma^2)/dt is kept beside d_sigma because it
    stays finite at t = 0 on the VP path, where sigma_t grows like sqrt(t)."""

    name: str
    alpha: Schedule
    sigma: Schedule
    d_alpha: Schedule
    d_sigma: Schedule
    d_sigma_squared: Schedule

    def __post_init__(self):
        zero = torch.tensor(0.0, dtype=torch.float64)
        assert abs(float(self.alpha(zero)) - 1.0) < 1e-12, f"{self.name}: alpha(0) must be 1"
        assert abs(float(self.sigma(zero))) < 1e-12, f"{self.name}: sigma(0) must be 0"

    def coefficients(self, t, x: torch.Tensor, *names: str) -> list[torch.Tensor]:
        """The named schedules evaluated at t, each shaped to broadcast against x."""
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        return [per_example(getattr(self, name)(t), x) for name in names]

    def snr(self, t):
        return self.alpha(t) ** 2 / self.sigma(t) ** 2

    # -- the forward process and its conditional velocity -----------------------------------------
    def sample(self, x0: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
        """x_t = alpha_t x_0 + sigma_t eps."""
        alpha, sigma = self.coefficients(t, x0, "alpha", "sigma")
        return alpha * x0 + sigma * eps

    def velocity(self, x0: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
        """d x_t / dt = alpha'_t x_0 + sigma'_t eps. Given a pair (x_0, eps) it is the conditional
        velocity flow matching regresses on; given the posterior means E[x_0 | x_t], E[eps | x_t] it
        is the marginal velocity whose ODE carries p_0 to p_1 (Lipman et al. 2023, arXiv:2210.02747)."""
        d_alpha, d_sigma = self.coefficients(t, x0, "d_alpha", "d_sigma")
        return d_alpha * x0 + d_sigma * eps

    # -- conversions between predictions, all at the same (x_t, t) ----------------------------------
    def x0_from_eps(self, x: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
        alpha, sigma = self.coefficients(t, x, "alpha", "sigma")
        return (x - sigma * eps) / alpha

    def eps_from_x0(self, x: torch.Tensor, x0: torch.Tensor, t) -> torch.Tensor:
        alpha, sigma = self.coefficients(t, x, "alpha", "sigma")
        return (x - alpha * x0) / sigma

    def score_from_eps(self, eps: torch.Tensor, t) -> torch.Tensor:
        """grad log p_t = -E[eps | x_t] / sigma_t (Tweedie; Vincent 2011 for the conditional score)."""
        (sigma,) = self.coefficients(t, eps, "sigma")
        return -eps / sigma

    def eps_from_score(self, score: torch.Tensor, t) -> torch.Tensor:
        (sigma,) = self.coefficients(t, score, "sigma")
        return -sigma * score

    def v_from_x0_eps(self, x0: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
        """The v-prediction target v = alpha_t eps - sigma_t x_0 (Salimans & Ho 2022, arXiv:2202.00512)."""
        alpha, sigma = self.coefficients(t, x0, "alpha", "sigma")
        return alpha * eps - sigma * x0

    def x0_eps_from_v(self, x: torch.Tensor, v: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """Invert (x_t, v) = [[alpha, sigma], [-sigma, alpha]] (x_0, eps): a rotation scaled by
        alpha^2 + sigma^2 (1 on the VP path)."""
        alpha, sigma = self.coefficients(t, x, "alpha", "sigma")
        norm = alpha**2 + sigma**2
        return (alpha * x - sigma * v) / norm, (sigma * x + alpha * v) / norm

    def velocity_from_eps(self, x: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
        """Marginal velocity from E[eps | x_t]: u = (alpha'/alpha) x + (sigma' - alpha' sigma / alpha) eps."""
        alpha, sigma, d_alpha, d_sigma = self.coefficients(t, x, "alpha", "sigma", "d_alpha", "d_sigma")
        return d_alpha / alpha * x + (d_sigma - d_alpha * sigma / alpha) * eps

    def eps_from_velocity(self, x: torch.Tensor, velocity: torch.Tensor, t) -> torch.Tensor:
        """The inverse of velocity_from_eps (on the linear path: eps = x + (1 - t) u)."""
        alpha, sigma, d_alpha, d_sigma = self.coefficients(t, x, "alpha", "sigma", "d_alpha", "d_sigma")
        return (velocity - d_alpha / alpha * x) / (d_sigma - d_alpha * sigma / alpha)

    def velocity_from_score(self, score: torch.Tensor, x: torch.Tensor, t) -> torch.Tensor:
        """Marginal velocity from the score (lecture 02, result 3, step 4):
        u(x, t) = (alpha'/alpha) x + (alpha' sigma^2 / alpha - (sigma^2)'/2) grad log p_t(x).
        Uses (sigma^2)' only, so it is finite at t = 0 on the VP path (Song et al. 2021, eq. 13)."""
        alpha, sigma, d_alpha, d_sigma_squared = self.coefficients(
            t, x, "alpha", "sigma", "d_alpha", "d_sigma_squared")
        return d_alpha / alpha * x + (d_alpha * sigma**2 / alpha - 0.5 * d_sigma_squared) * score


def linear_path() -> GaussianPath:
    """alpha_t = 1 - t, sigma_t = t: the flow-matching / rectified-flow path (unigm.flows)."""
    return GaussianPath(
        "linear",
        alpha=lambda t: 1 - t,
        sigma=lambda t: t,
        d_alpha=lambda t: -torch.ones_like(t),
        d_sigma=lambda t: torch.ones_like(t),
        d_sigma_squared=lambda t: 2 * t,
    )


def vp_path(beta_min: float = 0.1, beta_max: float = 20.0) -> GaussianPath:
    """alpha_t = sqrt(alpha_bar(t)), sigma_t = sqrt(1 - alpha_bar(t)) with the linear-beta VP schedule
    (unigm.schedules); alpha' = -beta alpha / 2, (sigma^2)' = beta alpha_bar, sigma' = (sigma^2)' / (2 sigma)."""

    def alpha_bar(t):
        return alpha_bar_vp_linear(t, beta_min, beta_max)

    def beta(t):
        return beta_vp_linear(t, beta_min, beta_max)

    return GaussianPath(
        "vp",
        alpha=lambda t: alpha_bar(t).sqrt(),
        sigma=lambda t: (1 - alpha_bar(t)).sqrt(),
        d_alpha=lambda t: -0.5 * beta(t) * alpha_bar(t).sqrt(),
        d_sigma=lambda t: 0.5 * beta(t) * alpha_bar(t) / (1 - alpha_bar(t)).sqrt(),
        d_sigma_squared=lambda t: beta(t) * alpha_bar(t),
    )


def vp_to_linear(x_vp: torch.Tensor, alpha_bar) -> torch.Tensor:
    """x_linear = x_VP / (sqrt(alpha_bar) + sqrt(1 - alpha_bar)) at matched SNR."""
    return x_vp / (alpha_bar**0.5 + (1 - alpha_bar) ** 0.5)


def linear_to_vp(x_linear: torch.Tensor, t) -> torch.Tensor:
    """x_VP = x_linear / sqrt((1 - t)^2 + t^2) at matched SNR."""
    return x_linear / ((1 - t) ** 2 + t**2) ** 0.5
