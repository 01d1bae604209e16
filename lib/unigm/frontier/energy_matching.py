"""Energy Matching (Balcerak et al. 2025, "Energy Matching: Unifying Flow Matching and Energy-Based
Models for Generative Modeling", arXiv:2504.10612): one time-independent scalar potential E_theta(x)
(an MLP x -> scalar) whose gradient transports noise to data and whose Boltzmann law exp(-E / T)
describes the data near it.

Sign convention. The course's path is x_t = (1 - t) x_data + t x_noise (t = 0 data, t = 1 noise), whose
conditional velocity dx_t/dt = x_noise - x_data is what unigm.flows.FlowMatching regresses. Energy
Matching generates by GRADIENT DESCENT on E, dx/ds = -grad E(x), with s = 1 - t running noise -> data,
so it regresses
    -grad E(x_t) ~ x_data - x_noise       i.e.   grad E(x_t) ~ x_noise - x_data = dx_t/dt,
with (x_data, x_noise) paired by the exact minibatch OT plan (POT's ot.emd), as in OT flow matching. E is
low at the data and grows toward the noise.

Training, two phases on the model's own step counter (`updates`, advanced in after_update):
    phase 1 (updates < config.phase1_steps): the OT flow-matching loss above, t ~ U[0, 1].
    phase 2: w(t)-weighted flow loss (w = 1 for t >= flow_cutoff, falling linearly to 0 at t = 0: the flow
        term is switched off near the data) + lambda_cd * [mean E(data) - mean E(negatives)], the
        contrastive-divergence gradient of the Boltzmann likelihood exp(-E / T) (Hinton 2002); negatives are
        short Langevin runs on E at temperature T started half from data (CD-k) and half from noise, as in
        the authors' 2D code; a small alpha * (E(data)^2 + E(neg)^2) keeps the energy's offset bounded
        (Du & Mordatch 2019).
Sampling: `flow_steps` gradient-descent steps x <- x - grad E / flow_steps from N(0, I) (time 1, as an Euler
solve of flow matching), then `langevin_steps` of dx = -grad E dt + sqrt(2 T) dW.

Why not simply penalise |grad E|^2 near the data? A bare E_p |grad E|^2 penalty is not score matching:
for E_theta(x) = x^2 / (2 theta^2) on N(0, 1) data it equals 1 / theta^4, which decreases without a
minimum (the energy flattens), whereas Hyvarinen's J = E[|grad E|^2 / 2 - lap E] = 1 / (2 theta^4) -
1 / theta^2 is minimised at theta = 1: lecture 02's derivation check "6.9 score matching recovers
theta = 1". `QuadraticEnergy`, `bare_gradient_penalty` and `hyvarinen_objective` compute both by
Monte Carlo with autograd.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import ot
import torch
from torch import nn

from ..base import GenerativeModel
from ..nets import MLP
from ..tensors import rand, randn_like

__all__ = ["EnergyMatching", "EnergyMatchingConfig", "QuadraticEnergy", "bare_gradient_penalty",
           "gradient", "hyvarinen_objective", "ot_pairing"]


def gradient(energy: nn.Module, x: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
    """grad_x E(x): (B, D) -> (B, D), for an energy (B, D) -> (B,)."""
    with torch.enable_grad():
        xx = x if x.requires_grad else x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(xx).sum(), xx, create_graph=create_graph)
    return grad


def ot_pairing(x_data: torch.Tensor, x_noise: torch.Tensor) -> torch.Tensor:
    """x_noise reordered so that row i is paired with x_data[i] by the exact OT plan for |x - y|^2
    (equal weights: the plan is a permutation / n, POT's network simplex)."""
    a, b = x_data.detach().cpu().double().numpy(), x_noise.detach().cpu().double().numpy()
    n = len(a)
    plan = ot.emd(np.full(n, 1 / n), np.full(n, 1 / n), ot.dist(a, b))
    return x_noise[torch.as_tensor(plan.argmax(1), device=x_noise.device)]


@dataclass
class EnergyMatchingConfig:
    hidden: int = 128
    depth: int = 3
    phase1_steps: int = 1000  # optimiser steps of flow matching alone
    flow_cutoff: float = 0.2  # phase 2: flow loss weight 1 for t >= flow_cutoff, linear to 0 at t = 0 (data)
    lambda_cd: float = 1.0  # weight of the contrastive (Boltzmann) term in phase 2
    alpha_energy: float = 0.01  # E^2 regulariser on data and negatives in phase 2
    temperature: float = 0.01  # T of the Boltzmann law exp(-E / T) and of the Langevin chains
    cd_steps: int = 20  # Langevin steps per negative sample
    cd_step: float = 0.002  # their step size
    flow_steps: int = 50  # sampling: gradient-descent steps over unit time
    langevin_steps: int = 50  # sampling: Langevin steps at temperature T after the descent
    langevin_step: float = 0.002


class QuadraticEnergy(nn.Module):
    """E_theta(x) = |x|^2 / (2 theta^2): the energy of N(0, theta^2 I), theta a parameter (log-parametrised)."""

    def __init__(self, theta: float = 1.0):
        super().__init__()
        self.log_theta = nn.Parameter(torch.tensor(float(theta)).log())

    @property
    def theta(self) -> torch.Tensor:
        return self.log_theta.exp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, D) -> (B,)
        return x.pow(2).sum(-1) / (2 * self.theta**2)


def laplacian(energy: nn.Module, x: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
    """(grad E, lap E) at x by autograd, one backward pass per dimension: (B, D), (B,)."""
    with torch.enable_grad():
        xx = x.detach().requires_grad_(True)
        grad = gradient(energy, xx, create_graph=True)
        lap = sum(torch.autograd.grad(grad[:, i].sum(), xx, create_graph=create_graph)[0][:, i]
                  for i in range(x.shape[1]))
    return grad, lap


def bare_gradient_penalty(energy: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """E_x |grad E(x)|^2 by Monte Carlo over the rows of x (differentiable in the energy's parameters)."""
    with torch.enable_grad():
        return gradient(energy, x.detach().requires_grad_(True), create_graph=True).pow(2).sum(-1).mean()


def hyvarinen_objective(energy: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Hyvarinen's score-matching objective J = E_x[|grad E|^2 / 2 - lap E] (2005; the score is -grad E),
    equal to E|grad E + grad log p_data|^2 / 2 up to a constant free of the energy."""
    grad, lap = laplacian(energy, x, create_graph=True)
    return (grad.pow(2).sum(-1) / 2 - lap).mean()


class EnergyMatching(GenerativeModel):
    """A time-independent scalar potential trained by OT flow matching, then with a contrastive term."""

    Config = EnergyMatchingConfig
    name = "energy_matching"

    def __init__(self, event_shape, config: EnergyMatchingConfig | None = None):
        config = config or self.Config()
        super().__init__(event_shape, config)
        self.net = MLP(self.event_dim, 1, config.hidden, config.depth)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))  # optimiser steps taken

    # -- the potential ----------------------------------------------------------------------------
    def energy(self, x: torch.Tensor) -> torch.Tensor:  # (B, *E) -> (B,)
        return self.net(self.flat(x)).squeeze(-1)

    def velocity(self, x: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
        """-grad E(x), the generating direction (noise -> data): (B, *E) -> (B, *E)."""
        return -gradient(self.energy, x, create_graph)

    @property
    def phase(self) -> int:
        return 1 if int(self.updates) < self.config.phase1_steps else 2

    # -- the two losses -----------------------------------------------------------------------------
    def flow_loss(self, x_data: torch.Tensor, generator=None, weighted: bool = False) -> torch.Tensor:
        """E_t w(t) |-grad E(x_t) - (x_data - x_noise)|^2, x_t = (1 - t) x_data + t x_noise, OT pairs."""
        x_noise = ot_pairing(x_data, randn_like(x_data, generator))
        t = rand((x_data.shape[0],), x_data, generator)
        tt = t.reshape(-1, *([1] * len(self.event_shape)))
        xt = (1 - tt) * x_data + tt * x_noise
        error = (self.velocity(xt, create_graph=True) - (x_data - x_noise)).pow(2).flatten(1).sum(1)  # (B,)
        if weighted:  # phase 2: the flow is trusted far from the data only
            error = error * (t / self.config.flow_cutoff).clamp(max=1.0)
        return error.mean()

    def langevin(self, x: torch.Tensor, steps: int, step: float, temperature: float,
                 generator=None) -> torch.Tensor:
        """x <- x - step grad E + sqrt(2 T step) z: Langevin toward exp(-E / T). No graph is kept."""
        for _ in range(steps):
            x = (x - step * gradient(self.energy, x) + (2 * temperature * step) ** 0.5 * randn_like(x, generator)).detach()
        return x

    def contrastive_loss(self, x_data: torch.Tensor, generator=None) -> torch.Tensor:
        """mean E(data) - mean E(negatives) + alpha (mean E(data)^2 + mean E(neg)^2); negatives: Langevin
        chains on E at temperature T started half from the data batch, half from noise."""
        c = self.config
        half = x_data.shape[0] // 2
        start = torch.cat([x_data[:half], randn_like(x_data[half:], generator)])
        negatives = self.langevin(start, c.cd_steps, c.cd_step, c.temperature, generator)
        e_data, e_neg = self.energy(x_data), self.energy(negatives)
        return e_data.mean() - e_neg.mean() + c.alpha_energy * (e_data.pow(2).mean() + e_neg.pow(2).mean())

    def loss(self, x, *, generator=None):
        x = self.check_input(x)
        if self.phase == 1:
            return self.flow_loss(x, generator)
        return self.flow_loss(x, generator, weighted=True) + self.config.lambda_cd * self.contrastive_loss(x, generator)

    def after_update(self, *batch):
        self.updates += 1

    # -- sampling -------------------------------------------------------------------------------
    def sample(self, n, steps=None, *, generator=None, langevin_steps: int | None = None):
        """Gradient descent on E from N(0, I) (`steps` steps of size 1 / steps), then Langevin at T."""
        c = self.config
        steps = steps or c.flow_steps
        x = self.randn(self.check_n(n), *self.event_shape, generator=generator)
        for _ in range(steps):
            x = (x + self.velocity(x) / steps).detach()
        k = c.langevin_steps if langevin_steps is None else langevin_steps
        return self.langevin(x, k, c.langevin_step, c.temperature, generator)
