"""Gaussian log-densities, written once: every model, toy and oracle of the course uses these.

All are in nats and keep their constants, so they are true log-densities.
"""
from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2 * math.pi)


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, diag(exp(2 log_std))) summed over the last dim: (..., D) -> (...)."""
    return (-0.5 * ((x - mean) / log_std.exp()).pow(2) - log_std - 0.5 * LOG_2PI).sum(-1)


def standard_normal_log_prob(x: torch.Tensor) -> torch.Tensor:
    """log N(x; 0, I) summed over the event dimensions: (B, *E) -> (B,)."""
    flat = x.reshape(x.shape[0], -1)
    return -0.5 * (flat.pow(2).sum(1) + flat.shape[1] * LOG_2PI)


def isotropic_gaussian_log_prob(squared_distance: torch.Tensor, variance, dim: int) -> torch.Tensor:
    """log N(x; mu, variance I) in `dim` dimensions from |x - mu|^2 (any shape; variance broadcasts)."""
    variance = torch.as_tensor(variance, dtype=squared_distance.dtype, device=squared_distance.device)
    return -0.5 * squared_distance / variance - 0.5 * dim * (LOG_2PI + torch.log(variance))


def kl_to_standard_normal(mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, diag std^2) || N(0, I)) in closed form, summed over the last dim."""
    return 0.5 * (mean.pow(2) + (2 * log_std).exp() - 1 - 2 * log_std).sum(-1)


class GaussianMixtureOnPath:
    """p_0 = sum_k w_k N(mu_k, s^2 I) carried along a Gaussian path (unigm.paths). Every marginal
    is again a Gaussian mixture,
        p_t = sum_k w_k N(alpha_t mu_k, v_t I),   v_t = alpha_t^2 s^2 + sigma_t^2,
    so log p_t, its score, the marginal velocity and the posterior mean E[x_0 | x_t] are exact:
    the analytic oracle for samplers, likelihoods and denoisers. Points are (B, D)."""

    def __init__(self, means, std: float, path, weights=None):
        self.means = torch.as_tensor(means, dtype=torch.float64)  # (K, D)
        self.std = float(std)
        self.path = path
        k = len(self.means)
        weights = torch.full((k,), 1.0 / k, dtype=torch.float64) if weights is None else torch.as_tensor(weights)
        self.log_weights = torch.log(weights.to(torch.float64) / weights.sum())  # (K,)

    @classmethod
    def from_toy(cls, toy, path) -> "GaussianMixtureOnPath":
        """From an equal-weight unigm.data.GaussianMixture (eight_gaussians, grid25)."""
        return cls(toy.means, toy.std, path)

    def _schedule(self, name: str, x: torch.Tensor, t) -> torch.Tensor:
        """A path coefficient at t as (B or 1, 1, 1), to broadcast against (B, K, D)."""
        return getattr(self.path, name)(torch.as_tensor(t, dtype=x.dtype, device=x.device)).reshape(-1, 1, 1)

    def _components(self, x: torch.Tensor, t):
        """(scaled means (B or 1, K, D), variance v_t (B or 1, 1, 1), log responsibilities' numerators (B, K))."""
        alpha, sigma = self._schedule("alpha", x, t), self._schedule("sigma", x, t)
        centres = alpha * self.means.to(x)[None]  # (B or 1, K, D)
        variance = alpha**2 * self.std**2 + sigma**2
        d2 = (x[:, None, :] - centres).pow(2).sum(-1)  # (B, K)
        log_joint = self.log_weights.to(x) + isotropic_gaussian_log_prob(d2, variance[:, :, 0], x.shape[1])
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
        alpha, d_alpha = self._schedule("alpha", x, t), self._schedule("d_alpha", x, t)
        half_d_sigma_squared = 0.5 * self._schedule("d_sigma_squared", x, t)
        responsibilities = torch.softmax(log_joint, dim=1)[:, :, None]  # (B, K, 1)
        gain = (d_alpha * alpha * self.std**2 + half_d_sigma_squared) / variance
        per_component = d_alpha * self.means.to(x)[None] + gain * (x[:, None, :] - centres)  # (B, K, D)
        return (responsibilities * per_component).sum(1)

    def posterior_mean(self, x: torch.Tensor, t) -> torch.Tensor:
        """E[x_0 | x_t = x] from the per-component Gaussian posteriors (no score involved):
        x_0 | x_t, k ~ N(mu_k + alpha s^2 / v_t (x - alpha mu_k), ...), weighted by r_k(x)."""
        centres, variance, log_joint = self._components(x, t)
        alpha = self._schedule("alpha", x, t)
        responsibilities = torch.softmax(log_joint, dim=1)[:, :, None]
        means = self.means.to(x)[None] + alpha * self.std**2 / variance * (x[:, None, :] - centres)
        return (responsibilities * means).sum(1)

    def sample(self, n: int, t=0.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """n exact samples of p_t, float64: (n, D)."""
        k = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=generator)
        x0 = self.means[k] + self.std * torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64)
        eps = torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64)
        return self.path.sample(x0, eps, torch.as_tensor(t, dtype=torch.float64))
