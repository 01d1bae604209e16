"""Flow models: a velocity field that carries data (t = 0) to noise (t = 1).

Flow matching (Lipman et al. 2023, arXiv:2210.02747; Liu et al. 2023, arXiv:2209.03003;
Albergo & Vanden-Eijnden 2023, arXiv:2209.15571) with the linear path
    x_t = (1 - t) x_0 + t x_1,   x_0 ~ p_data,  x_1 ~ N(0, I),
regresses v(x_t, t) on the conditional velocity dx_t/dt = x_1 - x_0. The minimiser is the
marginal velocity E[x_1 - x_0 | x_t], whose ODE transports p_data to N(0, I) exactly, so
sampling integrates it from t = 1 to t = 0 and the likelihood follows from the
instantaneous change of variables.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import FlowBased, as_time, expand_like
from .nets import MLP
from .samplers import heun, ode_log_prob, standard_normal_log_prob


@dataclass
class FlowMatchingConfig:
    hidden: int = 128
    depth: int = 3
    time_dim: int = 32
    sample_steps: int = 32  # Heun steps (NFE = 2 x steps)
    likelihood_steps: int = 64  # RK4 steps for log_prob


class FlowMatching(FlowBased):
    """Conditional flow matching on the linear path with a Gaussian source."""

    name = "flow_matching"
    Config = FlowMatchingConfig

    def __init__(self, event_shape, config: FlowMatchingConfig | None = None):
        config = config or self.Config()
        super().__init__(event_shape, config)
        self.net = MLP(self.event_dim, self.event_dim, config.hidden, config.depth, time_dim=config.time_dim)

    def velocity(self, x, t):
        t = as_time(t, x.shape[0], x)
        return self.unflat(self.net(self.flat(x), t))

    def path(self, x0, x1, t):
        """x_t and the conditional velocity dx_t/dt on the linear path."""
        tt = expand_like(t, x0)
        return (1 - tt) * x0 + tt * x1, x1 - x0

    def loss(self, x):
        x0 = self.check_input(x)
        x1 = torch.randn_like(x0)
        t = torch.rand(x0.shape[0], device=x0.device)
        xt, target = self.path(x0, x1, t)
        return (self.velocity(xt, t) - target).pow(2).mean()

    @torch.no_grad()
    def sample(self, n, steps=None):
        x1 = torch.randn(self.check_n(n), *self.event_shape, device=self.device, dtype=self.dtype)
        return heun(self.velocity, x1, steps or self.config.sample_steps)

    def log_prob(self, x, steps=None):
        """Exact log-likelihood (up to ODE discretisation): log N(x_1; 0, I) + int_0^1 div v dt."""
        x = self.check_input(x)
        return ode_log_prob(self.velocity, x, standard_normal_log_prob, steps or self.config.likelihood_steps)
