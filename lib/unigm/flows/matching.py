"""Flow matching (Lipman et al. 2023, arXiv:2210.02747; Liu et al. 2023, arXiv:2209.03003;
Albergo & Vanden-Eijnden 2023, arXiv:2209.15571) on the linear Gaussian path of unigm.paths,
    x_t = (1 - t) x_0 + t x_1,   x_0 ~ p_data,  x_1 ~ N(0, I),
regresses v(x_t, t) on the conditional velocity dx_t/dt = x_1 - x_0. The minimiser is the
marginal velocity E[x_1 - x_0 | x_t], whose ODE transports p_data to N(0, I) exactly, so
sampling integrates it from t = 1 to t = 0 and the likelihood follows from the instantaneous
change of variables. Variants change one hook: the coupling (minibatch OT) or the pairs (reflow).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import ot
import torch

from .. import samplers
from ..base import FlowBased
from ..densities import standard_normal_log_prob
from ..nets import MLP
from ..paths import linear_path
from ..registry import Recipe, register
from ..tensors import as_time, rand, randn_like

_GATE = {"two_moons": 0.85, "eight_gaussians": 0.85}


@dataclass
class FlowMatchingConfig:
    hidden: int = 128
    depth: int = 3
    time_dim: int = 32
    sample_steps: int = 32  # Heun steps (NFE = 2 x steps)
    likelihood_steps: int = 64  # RK4 steps for log_prob


@register("flow_matching", recipes={"2d": Recipe(steps=3000, lr=4e-3, ema_decay=0.995, min_quality=_GATE)})
class FlowMatching(FlowBased):
    """Conditional flow matching on the linear path with a Gaussian source."""

    Config = FlowMatchingConfig

    def __init__(self, event_shape, config: FlowMatchingConfig | None = None):
        config = config or self.Config()
        super().__init__(event_shape, config)
        self.net = MLP(self.event_dim, self.event_dim, config.hidden, config.depth, time_dim=config.time_dim)
        self.gaussian_path = linear_path()

    def velocity(self, x, t):
        t = as_time(t, x)
        return self.unflat(self.net(self.flat(x), t))

    def path(self, x0, x1, t):
        """x_t and the conditional velocity dx_t/dt = x_1 - x_0 on the linear path."""
        return self.gaussian_path.sample(x0, x1, t), self.gaussian_path.velocity(x0, x1, t)

    def coupling(self, x0, generator=None):
        """The noise each data point is paired with: independent N(0, I) draws."""
        return randn_like(x0, generator)

    def loss(self, x, x1=None, *, generator=None):
        """E_t |v(x_t, t) - (x_1 - x_0)|^2 with t ~ U[0, 1]; x1 (optional) is a fixed partner
        for each data point (reflow pairs), otherwise drawn by coupling(x)."""
        x0 = self.check_input(x)
        x1 = self.coupling(x0, generator) if x1 is None else x1.to(x0)
        t = rand((x0.shape[0],), x0, generator)
        xt, target = self.path(x0, x1, t)
        return (self.velocity(xt, t) - target).pow(2).mean()

    @torch.no_grad()
    def sample(self, n, steps=None, *, generator=None):
        x1 = self.randn(self.check_n(n), *self.event_shape, generator=generator)
        return samplers.heun(self.velocity, x1, steps or self.config.sample_steps)

    def log_prob(self, x, steps=None):
        """Exact log-likelihood (up to ODE discretisation): log N(x_1; 0, I) + int_0^1 div v dt."""
        x = self.check_input(x)
        return samplers.ode_log_prob(self.velocity, x, standard_normal_log_prob,
                                     steps or self.config.likelihood_steps)


@register("ot_flow_matching", recipes={"2d": Recipe(steps=1400, lr=4e-3, ema_decay=0.995, min_quality=_GATE)})
class OTFlowMatching(FlowMatching):
    """Flow matching with minibatch optimal-transport couplings (Tong et al. 2024,
    arXiv:2302.00482; Pooladian et al. 2023, arXiv:2304.14772): within each batch, noise and
    data are paired by the exact OT plan for the squared distance (POT's network simplex), so
    conditional paths cross less and the learned flow is straighter."""

    def coupling(self, x0, generator=None):
        x1 = randn_like(x0, generator)
        a = self.flat(x0).detach().cpu().double().numpy()
        b = self.flat(x1).detach().cpu().double().numpy()
        n = len(a)
        plan = ot.emd(np.full(n, 1 / n), np.full(n, 1 / n), ot.dist(a, b))  # a permutation / n
        partner = torch.as_tensor(plan.argmax(1), device=x0.device)
        return x1[partner]


@register("rectified_flow", recipes={"2d": Recipe(steps=3000, lr=4e-3, ema_decay=0.995, min_quality=_GATE)})
class RectifiedFlow(FlowMatching):
    """Rectified flow (Liu, Gong & Liu 2023, arXiv:2209.03003). Round 1 is flow matching;
    each reflow round draws pairs (x_0, x_1) = (ODE(z), z) from the current model and trains
    on them as a fixed coupling, which straightens the paths so that few Euler steps suffice."""

    @torch.no_grad()
    def reflow_pairs(self, n: int, steps: int = 64, generator: torch.Generator | None = None):
        """(x0, x1): n noise draws x1 and the data points the current flow sends them to."""
        x1 = self.randn(n, *self.event_shape, generator=generator)
        return samplers.heun(self.velocity, x1, steps), x1

    def student(self) -> "RectifiedFlow":
        """A copy to train on reflow pairs, initialised from this model (as Liu et al. do)."""
        return copy.deepcopy(self).train()


@torch.no_grad()
def straightness(velocity, x1: torch.Tensor, steps: int = 64) -> float:
    """S = int_0^1 E |(x_1 - x_0) - v(x_t, t)|^2 dt along the flow's own trajectories
    (Liu et al. 2023, eq. 7); 0 when every trajectory is a straight line walked at constant speed."""
    trajectory: list[torch.Tensor] = []
    x0 = samplers.euler(velocity, x1, steps, trajectory=trajectory)
    chord = x1 - x0
    ts = samplers.time_grid(steps)
    gaps = [(chord - velocity(x, as_time(t, x))).pow(2).flatten(1).sum(1).mean()
            for x, t in zip(trajectory[:-1], ts[:-1])]
    return torch.stack(gaps).mean().item()
