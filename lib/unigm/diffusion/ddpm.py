"""DDPM (Ho et al. 2020, arXiv:2006.11239) on the course's time axis t in [0, 1] (t = 0 data, t = 1 noise).

Forward process (variance preserving):  q(x_t | x_0) = N(sqrt(alpha_bar(t)) x_0, (1 - alpha_bar(t)) I),
the VP Gaussian path of unigm.paths. The network predicts the noise eps_theta(x_t, t); step i of
a T-step chain is time t = i / T here. The continuous-time view (Song et al. 2021,
arXiv:2011.13456) gives the score grad log p_t(x) = -eps_theta(x, t) / sqrt(1 - alpha_bar(t)) and the
probability-flow ODE, through which the likelihood is computed.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import samplers
from ..base import ScoreBased
from ..densities import standard_normal_log_prob
from ..nets import MLP
from ..paths import vp_path
from ..registry import Recipe, register
from ..schedules import alpha_bar_vp_linear, beta_vp_linear
from ..tensors import as_time, randint, randn_like


@dataclass
class DDPMConfig:
    hidden: int = 128
    depth: int = 3
    time_dim: int = 32
    num_steps: int = 1000  # T, the length of the discrete chain
    beta_min: float = 0.1
    beta_max: float = 20.0
    likelihood_steps: int = 100  # RK4 steps of the probability-flow ODE in log_prob


@register("ddpm", recipes={"2d": Recipe(steps=3000, lr=4e-3, ema_decay=0.995,
                                        min_quality={"two_moons": 0.85, "eight_gaussians": 0.85})})
class DDPM(ScoreBased):
    """Epsilon-prediction DDPM with the linear (VP) schedule."""

    Config = DDPMConfig

    def __init__(self, event_shape, config: DDPMConfig | None = None):
        config = config or self.Config()
        super().__init__(event_shape, config)
        self.net = MLP(self.event_dim, self.event_dim, config.hidden, config.depth, time_dim=config.time_dim)
        self.gaussian_path = vp_path(config.beta_min, config.beta_max)

    # -- schedule ----------------------------------------------------------------------------
    def alpha_bar(self, t):
        return alpha_bar_vp_linear(t, self.config.beta_min, self.config.beta_max)

    def beta(self, t):
        return beta_vp_linear(t, self.config.beta_min, self.config.beta_max)

    # -- the network and what it implies -----------------------------------------------------
    def predict_eps(self, x, t):  # (B, *E), (B,) -> (B, *E)
        return self.unflat(self.net(self.flat(x), t))

    def score(self, x, t):
        t = as_time(t, x)
        return self.gaussian_path.score_from_eps(self.predict_eps(x, t), t)

    def noise(self, x0, eps, t):
        """Sample of q(x_t | x_0): sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps."""
        return self.gaussian_path.sample(x0, eps, t)

    def loss(self, x, *, generator=None):
        """L_simple (Ho et al. 2020, eq. 14): E_{i, x0, eps} |eps - eps_theta(x_t, t_i)|^2, t_i = i / T."""
        x0 = self.check_input(x)
        T = self.config.num_steps
        t = randint(1, T + 1, (x0.shape[0],), x0, generator).to(x0.dtype) / T
        eps = randn_like(x0, generator)
        return (self.predict_eps(self.noise(x0, eps, t), t) - eps).pow(2).mean()

    @torch.no_grad()
    def sample(self, n, steps=None, *, generator=None, trajectory: list | None = None):
        """Ancestral sampling (Ho et al. 2020, Alg. 2) on `steps` equal intervals of [0, 1] (default
        T): DDIM with eta = 1, whose noise is the posterior variance
        beta (1 - alpha_bar(s)) / (1 - alpha_bar(t)) (lecture 02, check 10.6 proves the two equal).
        If `trajectory` is a list, every state x_t (the start included) is appended to it."""
        x = self.randn(self.check_n(n), *self.event_shape, generator=generator)
        return samplers.ddim(self.predict_eps, x, steps or self.config.num_steps, self.alpha_bar, eta=1.0,
                             generator=generator, trajectory=trajectory)

    def probability_flow_velocity(self, x, t):
        """dx/dt = f - g^2 score / 2 = -beta(t) / 2 (x + score(x, t)) (Song et al. 2021, eq. 13)."""
        t = as_time(t, x)
        return self.gaussian_path.velocity_from_score(self.score(x, t), x, t)

    def log_prob(self, x, steps=None):
        """Log-likelihood through the probability-flow ODE, integrated from t = 1/T (the smallest
        noise level the network was trained on) to t = 1, with a N(0, I) prior at t = 1."""
        x = self.check_input(x)
        t0 = 1.0 / self.config.num_steps

        def velocity_from_t0(y, u):  # u in [0, 1] -> t = t0 + u (1 - t0)
            return (1 - t0) * self.probability_flow_velocity(y, t0 + u * (1 - t0))

        return samplers.ode_log_prob(velocity_from_t0, x, standard_normal_log_prob,
                                     steps or self.config.likelihood_steps)
