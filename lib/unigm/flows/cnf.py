"""Continuous normalizing flows trained by maximum likelihood (Chen et al. 2018, arXiv:1806.07366):
the loss is -log p(x) from the instantaneous change of variables, differentiated through a
fixed-step RK4 solver; the trace of dv/dx is exact (CNF) or Hutchinson's estimate (FFJORD).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import samplers
from ..densities import standard_normal_log_prob
from ..registry import Recipe, register
from .matching import FlowMatching, FlowMatchingConfig


@dataclass
class CNFConfig(FlowMatchingConfig):
    hidden: int = 64
    train_ode_steps: int = 4  # RK4 steps of the ODE solved (and differentiated) in each training step
    kinetic_weight: float = 0.1  # lambda of the kinetic-energy regulariser (0: plain maximum likelihood)


_RECIPE = Recipe(steps=165, lr=3e-3, min_quality={"two_moons": 0.35, "eight_gaussians": 0.6})


@register("cnf", recipes={"2d": _RECIPE})
class CNF(FlowMatching):
    """Continuous normalizing flow with the exact trace of dv/dx (one vector-Jacobian product per
    dimension). It shares FlowMatching's velocity network, sampler and ODE likelihood; only the
    loss differs.

    A fixed-step solver can be fooled: the field grows stiff until the discretised log-det is
    wrong in the model's favour and the training NLL falls without bound while samples get
    worse (measured here). The kinetic energy lambda int |v|^2 dt (Finlay et al. 2020, RNODE,
    arXiv:2002.02798) keeps the paths short and the solver accurate."""

    Config = CNFConfig

    def divergence(self, f, x, t, generator=None):
        return samplers.divergence_exact(f, x, t, create_graph=True)

    def negative_log_likelihood_and_kinetic_energy(self, x, generator=None):
        """(-log p(x), int_0^1 |v(x_t, t)|^2 dt) per example, through one differentiable RK4 solve."""
        batch, dim = x.shape[0], self.event_dim

        def augmented(state, t):  # state (B, D + 2): x, int div v, int |v|^2
            v, div = self.divergence(self.velocity, state[:, :dim].reshape(x.shape), t, generator)
            v = v.reshape(batch, dim)
            return torch.cat([v, div[:, None], v.pow(2).sum(1, keepdim=True)], dim=1)

        start = torch.cat([x.reshape(batch, dim), x.new_zeros(batch, 2)], dim=1)
        end = samplers.integrate(samplers.rk4_step, augmented, start, self.config.train_ode_steps, 0.0, 1.0)
        log_p = standard_normal_log_prob(end[:, :dim]) + end[:, dim]
        return -log_p, end[:, dim + 1]

    def loss(self, x, *, generator=None):
        nll, kinetic = self.negative_log_likelihood_and_kinetic_energy(self.check_input(x), generator)
        return (nll.mean() + self.config.kinetic_weight * kinetic.mean()) / self.event_dim  # per dimension


@register("cnf_hutchinson", recipes={"2d": _RECIPE})
class HutchinsonCNF(CNF):
    """FFJORD (Grathwohl et al. 2019, arXiv:1810.01367): the same CNF with the trace replaced by
    Hutchinson's unbiased one-probe estimate, one vector-Jacobian product instead of D."""

    def divergence(self, f, x, t, generator=None):
        return samplers.divergence_hutchinson(f, x, t, probes=1, generator=generator, create_graph=True)
