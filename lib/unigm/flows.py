"""Flow models: invertible maps and velocity fields that carry data (t = 0) to noise (t = 1).

Coupling flows (RealNVP) are exact invertible maps trained by maximum likelihood; the
continuous flows below share one velocity network v(x, t) and differ only in their loss:
maximum likelihood through the ODE (CNF), regression on a conditional velocity (flow
matching, with independent or minibatch-OT couplings), or on pairs produced by the model
itself (rectified flow with reflow).

Flow matching (Lipman et al. 2023, arXiv:2210.02747; Liu et al. 2023, arXiv:2209.03003;
Albergo & Vanden-Eijnden 2023, arXiv:2209.15571) with the linear path
    x_t = (1 - t) x_0 + t x_1,   x_0 ~ p_data,  x_1 ~ N(0, I),
regresses v(x_t, t) on the conditional velocity dx_t/dt = x_1 - x_0. The minimiser is the
marginal velocity E[x_1 - x_0 | x_t], whose ODE transports p_data to N(0, I) exactly, so
sampling integrates it from t = 1 to t = 0 and the likelihood follows from the
instantaneous change of variables.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import partial

import numpy as np
import ot
import torch
from torch import nn

from .base import FlowBased, LikelihoodBased, as_time, expand_like
from .nets import MLP
from .samplers import (divergence_exact, divergence_hutchinson, euler, heun, integrate, ode_log_prob,
                       rk4_step, standard_normal_log_prob)


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

    def coupling(self, x0):
        """The noise each data point is paired with: independent N(0, I) draws."""
        return torch.randn_like(x0)

    def loss(self, x, x1=None):
        """E_t |v(x_t, t) - (x_1 - x_0)|^2 with t ~ U[0, 1]; x1 (optional) is a fixed partner
        for each data point (reflow pairs), otherwise drawn by coupling(x)."""
        x0 = self.check_input(x)
        x1 = self.coupling(x0) if x1 is None else x1.to(x0)
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


class OTFlowMatching(FlowMatching):
    """Flow matching with minibatch optimal-transport couplings (Tong et al. 2024,
    arXiv:2302.00482; Pooladian et al. 2023, arXiv:2304.14772): within each batch, noise and
    data are paired by the exact OT plan for the squared distance (POT's network simplex), so
    conditional paths cross less and the learned flow is straighter."""

    name = "ot_flow_matching"

    def coupling(self, x0):
        x1 = torch.randn_like(x0)
        a = self.flat(x0).detach().cpu().double().numpy()
        b = self.flat(x1).detach().cpu().double().numpy()
        n = len(a)
        plan = ot.emd(np.full(n, 1 / n), np.full(n, 1 / n), ot.dist(a, b))  # a permutation / n
        partner = torch.as_tensor(plan.argmax(1), device=x0.device)
        return x1[partner]


class RectifiedFlow(FlowMatching):
    """Rectified flow (Liu, Gong & Liu 2023, arXiv:2209.03003). Round 1 is flow matching;
    each reflow round draws pairs (x_0, x_1) = (ODE(z), z) from the current model and trains
    on them as a fixed coupling, which straightens the paths so that few Euler steps suffice."""

    name = "rectified_flow"

    @torch.no_grad()
    def reflow_pairs(self, n: int, steps: int = 64, generator: torch.Generator | None = None):
        """(x0, x1): n noise draws x1 and the data points the current flow sends them to."""
        x1 = torch.randn(n, *self.event_shape, generator=generator).to(self.device, self.dtype)
        return heun(self.velocity, x1, steps), x1

    def student(self) -> "RectifiedFlow":
        """A copy to train on reflow pairs, initialised from this model (as Liu et al. do)."""
        return copy.deepcopy(self).train()


@torch.no_grad()
def straightness(velocity, x1: torch.Tensor, steps: int = 64) -> float:
    """S = int_0^1 E |(x_1 - x_0) - v(x_t, t)|^2 dt along the flow's own trajectories
    (Liu et al. 2023, eq. 7); 0 when every trajectory is a straight line walked at constant speed."""
    trajectory: list[torch.Tensor] = []
    x0 = euler(velocity, x1, steps, trajectory=trajectory)
    chord = x1 - x0
    ts = torch.linspace(1.0, 0.0, steps + 1)
    gaps = [(chord - velocity(x, as_time(t.item(), len(x), x))).pow(2).flatten(1).sum(1).mean()
            for x, t in zip(trajectory[:-1], ts[:-1])]
    return torch.stack(gaps).mean().item()


@dataclass
class CNFConfig(FlowMatchingConfig):
    hidden: int = 64
    train_ode_steps: int = 4  # RK4 steps of the ODE solved (and differentiated) in each training step
    kinetic_weight: float = 0.1  # lambda of the kinetic-energy regulariser (0: plain maximum likelihood)


class CNF(FlowMatching):
    """Continuous normalizing flow trained by maximum likelihood (Chen et al. 2018,
    arXiv:1806.07366): the loss is -log p(x) from the instantaneous change of variables,
    with the exact trace of dv/dx, differentiated through a fixed-step RK4 solver.

    A fixed-step solver can be fooled: the field grows stiff until the discretised log-det is
    wrong in the model's favour and the training NLL falls without bound while samples get
    worse (measured here). The kinetic energy lambda int |v|^2 dt (Finlay et al. 2020, RNODE,
    arXiv:2002.02798) keeps the paths short and the solver accurate."""

    name = "cnf"
    Config = CNFConfig

    def divergence(self, f, x, t):
        return divergence_exact(f, x, t, create_graph=True)

    def negative_log_likelihood_and_kinetic_energy(self, x):
        """(-log p(x), int_0^1 |v(x_t, t)|^2 dt) per example, through one differentiable RK4 solve."""
        batch, dim = x.shape[0], self.event_dim

        def augmented(state, t):  # state (B, D + 2): x, int div v, int |v|^2
            v, div = self.divergence(self.velocity, state[:, :dim].reshape(x.shape), t)
            v = v.reshape(batch, dim)
            return torch.cat([v, div[:, None], v.pow(2).sum(1, keepdim=True)], dim=1)

        start = torch.cat([x.reshape(batch, dim), x.new_zeros(batch, 2)], dim=1)
        end = integrate(rk4_step, augmented, start, self.config.train_ode_steps, 0.0, 1.0)
        log_p = standard_normal_log_prob(end[:, :dim]) + end[:, dim]
        return -log_p, end[:, dim + 1]

    def loss(self, x):
        nll, kinetic = self.negative_log_likelihood_and_kinetic_energy(self.check_input(x))
        return (nll.mean() + self.config.kinetic_weight * kinetic.mean()) / self.event_dim  # per dimension


class HutchinsonCNF(CNF):
    """FFJORD (Grathwohl et al. 2019, arXiv:1810.01367): the same CNF with the trace replaced by
    Hutchinson's unbiased one-probe estimate, one vector-Jacobian product instead of D."""

    name = "cnf_hutchinson"

    def divergence(self, f, x, t):
        return divergence_hutchinson(f, x, t, probes=1, create_graph=True)


# --------------------------------------------------------------------------------------------
# RealNVP (Dinh, Sohl-Dickstein & Bengio 2017, arXiv:1605.08803)
# --------------------------------------------------------------------------------------------
class AffineCoupling(nn.Module):
    """y = m * x + (1 - m) * (x * exp(s(m x)) + b(m x)); the masked half conditions the rest,
    so the Jacobian is triangular and log|det| = sum (1 - m) s."""

    def __init__(self, mask: torch.Tensor, hidden: int, depth: int, log_scale_bound: float = 2.0):
        super().__init__()
        self.register_buffer("mask", mask)
        self.net = MLP(len(mask), 2 * len(mask), hidden, depth)
        self.log_scale_bound = log_scale_bound

    def scale_shift(self, x):
        raw_scale, shift = self.net(x * self.mask).chunk(2, dim=-1)
        log_scale = self.log_scale_bound * torch.tanh(raw_scale / self.log_scale_bound)  # bounded for stability
        free = 1 - self.mask
        return log_scale * free, shift * free

    def forward(self, x):  # data side -> noise side: (y, log|det dy/dx|)
        log_scale, shift = self.scale_shift(x)
        return x * log_scale.exp() + shift, log_scale.sum(-1)

    def inverse(self, y):
        log_scale, shift = self.scale_shift(y)  # the masked half is unchanged, so this is exact
        return (y - shift) * (-log_scale).exp()


class CouplingStack(nn.Module):
    """Coupling layers applied in order (data -> noise, summing log|det|) or reversed
    (noise -> data). One call is one network evaluation, which is what NFE counts."""

    def __init__(self, layers):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x, inverse: bool = False):
        if inverse:
            for layer in reversed(self.layers):
                x = layer.inverse(x)
            return x
        log_det = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        for layer in self.layers:
            x, ld = layer(x)
            log_det = log_det + ld
        return x, log_det


@dataclass
class RealNVPConfig:
    layers: int = 8
    hidden: int = 128
    depth: int = 2


class RealNVP(LikelihoodBased):
    """A stack of affine couplings with alternating masks; z = f(x) ~ N(0, I) and
    log p(x) = log N(f(x); 0, I) + log|det df/dx| exactly."""

    name = "realnvp"
    Config = RealNVPConfig

    def __init__(self, event_shape, config: RealNVPConfig | None = None):
        config = config or self.Config()
        super().__init__(event_shape, config)
        d = self.event_dim
        if d < 2:
            raise ValueError("a coupling flow needs at least 2 dimensions")
        even = (torch.arange(d) % 2 == 0).float()
        self.couplings = CouplingStack(
            AffineCoupling(even if i % 2 == 0 else 1 - even, config.hidden, config.depth) for i in range(config.layers))

    def forward_with_log_det(self, x):  # (B, D) -> z (B, D), log|det| (B,)
        return self.couplings(x)

    def inverse(self, z):  # (B, D) -> x (B, D)
        return self.couplings(z, inverse=True)

    def log_prob(self, x):
        z, log_det = self.forward_with_log_det(self.flat(self.check_input(x)))
        return standard_normal_log_prob(z) + log_det

    def loss(self, x):
        return -self.log_prob(x).mean() / self.event_dim  # nats per dimension

    @torch.no_grad()
    def sample(self, n, steps=None):
        z = torch.randn(self.check_n(n), self.event_dim, device=self.device, dtype=self.dtype)
        return self.unflat(self.inverse(z))
