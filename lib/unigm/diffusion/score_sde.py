"""Score SDEs (Song et al. 2021, arXiv:2011.13456) on the course's time axis (t = 0 data, t = 1 noise).

A forward SDE dx = f(x, t) dt + g(t) dW carries the data to a prior; its transition kernel is the
Gaussian path x_t = alpha_t x_0 + sigma_t eps (unigm.paths). Two instances (Sec. 3.4):
    VP (eq. 11)  f = -beta(t) x / 2, g^2 = beta(t)        alpha_t = sqrt(alpha_bar(t)), prior N(0, I)
    VE (eq. 9)   f = 0,             g^2 = d sigma(t)^2/dt  alpha_t = 1, sigma_t^2 = sigma(t)^2 - sigma(0)^2,
                                                           prior N(0, sigma_max^2 I)
The network predicts the noise, score(x, t) = -eps_theta(x, t) / sigma_t, and is trained by
denoising score matching in continuous time (eq. 7) with lambda(t) = sigma_t^2, which is exactly the
noise-prediction loss E |eps_theta(x_t, t) - eps|^2, t ~ U[t_min, 1]. Sampling runs from t = 1 to
t_min by the reverse SDE (Euler-Maruyama), the probability-flow ODE (Heun) or predictor-corrector
(Alg. 1); log_prob integrates the probability-flow ODE (Sec. 4.3, App. D.2).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .. import samplers
from ..base import ScoreBased
from ..densities import isotropic_gaussian_log_prob
from ..nets import MLP
from ..paths import GaussianPath, vp_path
from ..registry import Recipe, register
from ..schedules import beta_vp_linear, g_squared_ve, sigma_squared_ve_kernel
from ..tensors import as_time, rand, randn_like

METHODS = ("ode", "sde", "pc")  # probability-flow ODE (Heun), reverse SDE (Euler-Maruyama), predictor-corrector


@dataclass
class ScoreSDEConfig:
    hidden: int = 128
    depth: int = 3
    time_dim: int = 32
    t_min: float = 1e-3  # training, sampling and likelihood live on [t_min, 1] (Song et al. 2021, App. C)
    data_std: float = 1.0  # the network sees x_t / sqrt(alpha_t^2 data_std^2 + sigma_t^2) (Karras et al. 2022, c_in)
    sample_steps: int = 100  # time steps of every sampler (PC and Heun spend 2 evaluations per step)
    snr: float = 0.05  # r of the Langevin corrector (App. G, Alg. 4-5); the paper's 0.16 blurs the 2D toys
    corrector_steps: int = 1
    likelihood_steps: int = 100  # RK4 steps of the probability-flow ODE in log_prob


class ScoreSDE(ScoreBased):
    """A score model of a forward SDE; a subclass defines the SDE by overriding the hooks
    `make_path` (its transition kernel), `drift`, `g_squared`, `prior_std` and `corrector_alpha`."""

    Config = ScoreSDEConfig

    def __init__(self, event_shape, config: ScoreSDEConfig | None = None):
        config = config or self.Config()
        super().__init__(event_shape, config)
        if not 0 < config.t_min < 1:
            raise ValueError(f"t_min must lie in (0, 1), got {config.t_min}")
        self.net = MLP(self.event_dim, self.event_dim, config.hidden, config.depth, time_dim=config.time_dim)
        self.gaussian_path = self.make_path()

    # -- the SDE: hooks of the subclasses ---------------------------------------------------------
    def make_path(self) -> GaussianPath:
        raise NotImplementedError

    def drift(self, x, t):  # f(x, t)
        raise NotImplementedError

    def g_squared(self, t):  # g(t)^2, (B,) -> (B,)
        raise NotImplementedError

    prior_std: float = 1.0  # p_1 ~ N(0, prior_std^2 I)

    def corrector_alpha(self, t, dt):
        """alpha_i of the Langevin step-size rule (App. G): 1, except on the discretised VP chain."""
        return torch.ones_like(t)

    # -- the network and what it implies -------------------------------------------------------------
    def predict_eps(self, x, t):  # (B, *E), (B,) -> (B, *E)
        alpha, sigma = self.gaussian_path.coefficients(t, x, "alpha", "sigma")
        scaled = x / (alpha**2 * self.config.data_std**2 + sigma**2).sqrt()
        return self.unflat(self.net(self.flat(scaled), t))

    def score(self, x, t):
        t = as_time(t, x)
        return self.gaussian_path.score_from_eps(self.predict_eps(x, t), t)

    def loss(self, x, *, generator=None):
        """Denoising score matching (Song et al. 2021, eq. 7) with lambda(t) = sigma_t^2:
        sigma_t^2 |score(x_t, t) + eps / sigma_t|^2 = |eps_theta(x_t, t) - eps|^2, t ~ U[t_min, 1]."""
        x0 = self.check_input(x)
        t_min = self.config.t_min
        t = t_min + (1 - t_min) * rand((x0.shape[0],), x0, generator)
        eps = randn_like(x0, generator)
        return (self.predict_eps(self.gaussian_path.sample(x0, eps, t), t) - eps).pow(2).mean()

    # -- the reverse-time processes --------------------------------------------------------------
    def reverse_sde(self):
        """(drift, diffusion) of the reverse SDE dx = [f - g^2 score] dt + g dW_bar (eq. 6)."""
        return samplers.reverse_sde(self.score, self.drift, self.g_squared)

    def probability_flow_velocity(self, x, t):
        """dx/dt = f - g^2 score / 2 (eq. 13)."""
        return samplers.probability_flow(self.score, self.drift, self.g_squared)(x, as_time(t, x))

    @torch.no_grad()
    def sample(self, n, steps=None, *, generator=None, method: str = "ode", trajectory: list | None = None):
        """Draw x_1 from the prior and run time back to t_min with `steps` steps (default
        config.sample_steps) of: "ode" the probability-flow ODE by Heun (NFE 2 steps; the default,
        so that samples come from the model whose log_prob is reported), "sde" the reverse SDE by
        Euler-Maruyama (NFE steps), "pc" predictor-corrector (NFE 2 steps with one corrector step).
        The stochastic ones take their last step without noise (App. G)."""
        if method not in METHODS:
            raise ValueError(f"unknown sampling method {method!r}; choose one of {', '.join(METHODS)}")
        steps = self.config.sample_steps if steps is None else steps
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive int, got {steps!r}")
        x = self.prior_std * self.randn(self.check_n(n), *self.event_shape, generator=generator)
        t_min = self.config.t_min
        if method == "ode":
            return samplers.heun(self.probability_flow_velocity, x, steps, 1.0, t_min, trajectory)
        drift, diffusion = self.reverse_sde()
        if method == "sde":
            return samplers.euler_maruyama(drift, diffusion, x, steps, 1.0, t_min, generator, trajectory,
                                           denoise=True)
        dt = (1 - t_min) / steps
        return samplers.predictor_corrector(drift, diffusion, self.score, x, steps, self.config.snr,
                                            self.config.corrector_steps, lambda t: self.corrector_alpha(t, dt),
                                            1.0, t_min, generator, trajectory)

    def prior_log_prob(self, x):  # log N(x; 0, prior_std^2 I), (B, *E) -> (B,)
        squared = self.flat(x).pow(2).sum(1)
        return isotropic_gaussian_log_prob(squared, self.prior_std**2, self.event_dim)

    def log_prob(self, x, steps=None):
        """log p_{t_min}(x) of the model through the probability-flow ODE (instantaneous change of
        variables, Song et al. 2021, App. D.2), integrated from t_min to 1 onto the prior."""
        x = self.check_input(x)
        t_min = self.config.t_min

        def velocity_from_t_min(y, u):  # u in [0, 1] -> t = t_min + u (1 - t_min)
            return (1 - t_min) * self.probability_flow_velocity(y, t_min + u * (1 - t_min))

        return samplers.ode_log_prob(velocity_from_t_min, x, self.prior_log_prob,
                                     steps or self.config.likelihood_steps)


# -- VP: the continuous DDPM ---------------------------------------------------------------------
@dataclass
class VPScoreSDEConfig(ScoreSDEConfig):
    beta_min: float = 0.1
    beta_max: float = 20.0


@register("score_sde_vp", recipes={"2d": Recipe(steps=3000, lr=4e-3, ema_decay=0.995,
                                                min_quality={"two_moons": 0.9, "eight_gaussians": 0.9})})
class VPScoreSDE(ScoreSDE):
    """Variance-preserving SDE dx = -beta(t) x / 2 dt + sqrt(beta(t)) dW (eq. 11), linear beta."""

    Config = VPScoreSDEConfig

    def make_path(self):
        return vp_path(self.config.beta_min, self.config.beta_max)

    def beta(self, t):
        return beta_vp_linear(t, self.config.beta_min, self.config.beta_max)

    def drift(self, x, t):
        return samplers.vp_drift(self.beta)(x, t)

    def g_squared(self, t):
        return self.beta(t)

    def corrector_alpha(self, t, dt):
        """alpha_i = 1 - beta_i of the discretised chain (App. G, Alg. 5), taken as exp(-beta(t) dt):
        the same to first order in dt, and positive for any number of steps."""
        return torch.exp(-self.beta(t) * dt)


# -- VE: noise conditional score networks in continuous time --------------------------------------
@dataclass
class VEScoreSDEConfig(ScoreSDEConfig):
    sigma_min: float = 0.01
    sigma_max: float = 10.0  # about the largest distance between two data points (Song & Ermon 2020, technique 1)


def ve_path(sigma_min: float, sigma_max: float) -> GaussianPath:
    """The VE kernel as a Gaussian path: alpha_t = 1, sigma_t^2 = sigma(t)^2 - sigma(0)^2,
    (sigma_t^2)' = g(t)^2 (schedules.g_squared_ve)."""

    def variance(t):
        return sigma_squared_ve_kernel(t, sigma_min, sigma_max)

    def g_squared(t):
        return g_squared_ve(t, sigma_min, sigma_max)

    return GaussianPath(
        "ve",
        alpha=lambda t: torch.ones_like(torch.as_tensor(t)),
        sigma=lambda t: variance(t).sqrt(),
        d_alpha=lambda t: torch.zeros_like(torch.as_tensor(t)),
        d_sigma=lambda t: 0.5 * g_squared(t) / variance(t).sqrt(),
        d_sigma_squared=g_squared,
    )


@register("score_sde_ve", recipes={"2d": Recipe(steps=2000, lr=4e-3, ema_decay=0.995,
                                                min_quality={"two_moons": 0.9, "eight_gaussians": 0.9})})
class VEScoreSDE(ScoreSDE):
    """Variance-exploding SDE dx = sqrt(d sigma(t)^2 / dt) dW (eq. 9), geometric sigma(t)."""

    Config = VEScoreSDEConfig

    def make_path(self):
        return ve_path(self.config.sigma_min, self.config.sigma_max)

    @property
    def prior_std(self):
        return math.sqrt(self.config.sigma_max**2 - self.config.sigma_min**2)

    def drift(self, x, t):
        return torch.zeros_like(x)

    def g_squared(self, t):
        return g_squared_ve(t, self.config.sigma_min, self.config.sigma_max)
