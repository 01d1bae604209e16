"""Gaussian probability paths x_t = alpha_t x_0 + sigma_t eps and the maps between them.

Time convention of the course: t in [0, 1], t = 0 data (alpha_0 = 1, sigma_0 = 0), t = 1 noise.
The symbols follow Kingma et al. 2021 (Variational Diffusion Models, arXiv:2107.00630):
alpha_t scales the data, sigma_t the noise, and SNR(t) = alpha_t^2 / sigma_t^2. For the VP
(DDPM) path alpha_t = sqrt(alpha_bar(t)); for the linear (flow-matching) path alpha_t = 1 - t.

Two paths with the same SNR at matched times are the same path up to a scale of x, so their
probability-flow trajectories coincide under that change of time and scale (lecture 02, result 3):
    linear time t  <->  alpha_bar = (1 - t)^2 / ((1 - t)^2 + t^2),
    x_linear = x_VP / (sqrt(alpha_bar) + sqrt(1 - alpha_bar)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .diffusion import alpha_bar_vp_linear, beta_vp_linear

Schedule = Callable[[torch.Tensor], torch.Tensor]  # t -> a tensor shaped like t


@dataclass(frozen=True)
class GaussianPath:
    """x_t = alpha(t) x_0 + sigma(t) eps, eps ~ N(0, I), with the derivatives the ODE needs.

    `d_sigma_squared` is d(sigma^2)/dt rather than d sigma/dt: it stays finite at t = 0 for the
    VP path, where sigma_t grows like sqrt(t)."""

    name: str
    alpha: Schedule
    sigma: Schedule
    d_alpha: Schedule
    d_sigma_squared: Schedule

    def __post_init__(self):
        zero = torch.tensor(0.0, dtype=torch.float64)
        assert abs(float(self.alpha(zero)) - 1.0) < 1e-12, f"{self.name}: alpha(0) must be 1"
        assert abs(float(self.sigma(zero))) < 1e-12, f"{self.name}: sigma(0) must be 0"

    def sample(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t for x0, eps (B, D) and t (B,) or a scalar tensor."""
        t = _column(t, x0)
        return self.alpha(t) * x0 + self.sigma(t) * eps

    def snr(self, t):
        return self.alpha(t) ** 2 / self.sigma(t) ** 2

    def velocity_from_score(self, score: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Marginal velocity of the path from its score (lecture 02, result 3, step 4):
        u(x, t) = (alpha'/alpha) x + (alpha' sigma^2 / alpha - (sigma^2)'/2) grad log p_t(x)."""
        t = _column(t, x)
        alpha, d_alpha = self.alpha(t), self.d_alpha(t)
        return d_alpha / alpha * x + (d_alpha * self.sigma(t) ** 2 / alpha - 0.5 * self.d_sigma_squared(t)) * score


def _column(t, x: torch.Tensor) -> torch.Tensor:
    """A float, 0-dim or (B,) time -> (B, 1) (or 0-dim) in x's dtype, for (B, D) arithmetic."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    return t[:, None] if t.dim() == 1 else t


def linear_path() -> GaussianPath:
    """alpha_t = 1 - t, sigma_t = t: the flow-matching / rectified-flow path (unigm.flows)."""
    return GaussianPath(
        "linear",
        alpha=lambda t: 1 - t,
        sigma=lambda t: t,
        d_alpha=lambda t: -torch.ones_like(t),
        d_sigma_squared=lambda t: 2 * t,
    )


def vp_path(beta_min: float = 0.1, beta_max: float = 20.0) -> GaussianPath:
    """alpha_t = sqrt(alpha_bar(t)), sigma_t = sqrt(1 - alpha_bar(t)) with the linear-beta VP schedule
    of unigm.diffusion; alpha' = -beta alpha / 2 and (sigma^2)' = beta alpha_bar."""

    def alpha_bar(t):
        return alpha_bar_vp_linear(t, beta_min, beta_max)

    def beta(t):
        return beta_vp_linear(t, beta_min, beta_max)

    return GaussianPath(
        "vp",
        alpha=lambda t: alpha_bar(t).sqrt(),
        sigma=lambda t: (1 - alpha_bar(t)).sqrt(),
        d_alpha=lambda t: -0.5 * beta(t) * alpha_bar(t).sqrt(),
        d_sigma_squared=lambda t: beta(t) * alpha_bar(t),
    )


# -- the linear path <-> the VP path, through the signal-to-noise ratio -------------------------
def alpha_bar_of_linear_path(t):
    """The alpha_bar whose VP path has the SNR of the linear path at time t:
    alpha_bar / (1 - alpha_bar) = (1 - t)^2 / t^2  =>  alpha_bar = (1 - t)^2 / ((1 - t)^2 + t^2).
    (Not (1 - t)^2: that path has SNR (1 - t)^2 / (t (2 - t)).)"""
    return (1 - t) ** 2 / ((1 - t) ** 2 + t**2)


def linear_time_of_alpha_bar(alpha_bar):
    """The inverse map: t = sqrt(1 - alpha_bar) / (sqrt(alpha_bar) + sqrt(1 - alpha_bar))."""
    root, root_noise = alpha_bar**0.5, (1 - alpha_bar) ** 0.5
    return root_noise / (root + root_noise)


def vp_to_linear(x_vp: torch.Tensor, alpha_bar) -> torch.Tensor:
    """x_linear = x_VP / (sqrt(alpha_bar) + sqrt(1 - alpha_bar)) at matched SNR."""
    return x_vp / (alpha_bar**0.5 + (1 - alpha_bar) ** 0.5)


def linear_to_vp(x_linear: torch.Tensor, t) -> torch.Tensor:
    """x_VP = x_linear / sqrt((1 - t)^2 + t^2) at matched SNR."""
    return x_linear / ((1 - t) ** 2 + t**2) ** 0.5


# -- an exactly solvable toy: a Gaussian mixture carried along any Gaussian path ----------------
class GaussianMixtureOnPath:
    """p_0 = sum_k w_k N(mu_k, s^2 I) carried along a Gaussian path. Every marginal is again a
    Gaussian mixture,
        p_t = sum_k w_k N(alpha_t mu_k, v_t I),   v_t = alpha_t^2 s^2 + sigma_t^2,
    so log p_t, its score, the marginal velocity and the posterior mean E[x_0 | x_t] are exact:
    the analytic oracle for samplers, likelihoods and denoisers."""

    def __init__(self, means, std: float, path: GaussianPath, weights=None):
        self.means = torch.as_tensor(means, dtype=torch.float64)  # (K, D)
        self.std = float(std)
        self.path = path
        k = len(self.means)
        weights = torch.full((k,), 1.0 / k, dtype=torch.float64) if weights is None else torch.as_tensor(weights)
        self.log_weights = torch.log(weights.to(torch.float64) / weights.sum())  # (K,)

    @classmethod
    def from_toy(cls, toy, path: GaussianPath) -> "GaussianMixtureOnPath":
        """From an equal-weight unigm.data.GaussianMixture (eight_gaussians, grid25)."""
        return cls(toy.means, toy.std, path)

    def _components(self, x: torch.Tensor, t):
        """(scaled means (B or 1, K, D), variance v_t (B or 1, 1, 1), log responsibilities (B, K))."""
        t = _column(t, x)
        alpha, sigma = self.path.alpha(t), self.path.sigma(t)
        alpha, sigma = alpha.reshape(-1, 1, 1), sigma.reshape(-1, 1, 1)
        centres = alpha * self.means.to(x)[None]  # (B or 1, K, D)
        variance = alpha**2 * self.std**2 + sigma**2
        d2 = (x[:, None, :] - centres).pow(2).sum(-1)  # (B, K)
        dim = x.shape[1]
        log_normal = -0.5 * d2 / variance[:, :, 0] - 0.5 * dim * torch.log(2 * math.pi * variance[:, :, 0])
        log_joint = self.log_weights.to(x) + log_normal  # (B, K)
        return centres, variance, log_joint

    def log_prob(self, x: torch.Tensor, t=0.0) -> torch.Tensor:
        """log p_t(x): (B, D) -> (B,)."""
        _, _, log_joint = self._components(x, t)
        return torch.logsumexp(log_joint, dim=1)

    def score(self, x: torch.Tensor, t=0.0) -> torch.Tensor:
        """grad_x log p_t(x) = sum_k r_k(x) (alpha_t mu_k - x) / v_t: (B, D) -> (B, D)."""
        centres, variance, log_joint = self._components(x, t)
        responsibilities = torch.softmax(log_joint, dim=1)[:, :, None]  # (B, K, 1)
        return (responsibilities * (centres - x[:, None, :]) / variance).sum(1)

    def velocity(self, x: torch.Tensor, t) -> torch.Tensor:
        """The marginal velocity u(x, t) = E[alpha' x_0 + sigma' eps | x_t = x], whose ODE carries
        p_0 to p_1 exactly. Per component the posterior means are linear in x, which gives
            u = sum_k r_k [alpha' mu_k + (alpha' alpha s^2 + (sigma^2)'/2) / v_t (x - alpha mu_k)],
        finite at both ends of the path (velocity_from_score divides by alpha, 0 at t = 1 on the
        linear path); the two agree wherever both are defined."""
        centres, variance, log_joint = self._components(x, t)
        tt = _column(t, x)
        alpha, d_alpha = self.path.alpha(tt).reshape(-1, 1, 1), self.path.d_alpha(tt).reshape(-1, 1, 1)
        half_d_sigma_squared = 0.5 * self.path.d_sigma_squared(tt).reshape(-1, 1, 1)
        responsibilities = torch.softmax(log_joint, dim=1)[:, :, None]  # (B, K, 1)
        gain = (d_alpha * alpha * self.std**2 + half_d_sigma_squared) / variance
        per_component = d_alpha * self.means.to(x)[None] + gain * (x[:, None, :] - centres)  # (B, K, D)
        return (responsibilities * per_component).sum(1)

    def posterior_mean(self, x: torch.Tensor, t) -> torch.Tensor:
        """E[x_0 | x_t = x] from the per-component Gaussian posteriors (no score involved):
        x_0 | x_t, k ~ N(mu_k + alpha s^2 / v_t (x - alpha mu_k), ...), weighted by r_k(x)."""
        centres, variance, log_joint = self._components(x, t)
        alpha = self.path.alpha(_column(t, x)).reshape(-1, 1, 1)
        responsibilities = torch.softmax(log_joint, dim=1)[:, :, None]
        means = self.means.to(x)[None] + alpha * self.std**2 / variance * (x[:, None, :] - centres)
        return (responsibilities * means).sum(1)

    def sample(self, n: int, t=0.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """n exact samples of p_t, float64: (n, D)."""
        k = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=generator)
        x0 = self.means[k] + self.std * torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64)
        eps = torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64)
        return self.path.sample(x0, eps, torch.as_tensor(t, dtype=torch.float64))
