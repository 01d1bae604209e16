"""RealNVP (Dinh, Sohl-Dickstein & Bengio 2017, arXiv:1605.08803): a stack of affine coupling
layers, an exact invertible map z = f(x) with a triangular Jacobian, trained by maximum likelihood:
    log p(x) = log N(f(x); 0, I) + log|det df/dx|.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..base import LikelihoodBased
from ..densities import standard_normal_log_prob
from ..nets import MLP
from ..registry import Recipe, register


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


@register("realnvp", recipes={"2d": Recipe(steps=1500, lr=2e-3,
                                           min_quality={"two_moons": 0.7, "eight_gaussians": 0.6})})
class RealNVP(LikelihoodBased):
    """A stack of affine couplings with alternating masks; z = f(x) ~ N(0, I) and
    log p(x) = log N(f(x); 0, I) + log|det df/dx| exactly."""

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

    def loss(self, x, *, generator=None):
        return -self.log_prob(x).mean() / self.event_dim  # nats per dimension

    @torch.no_grad()
    def sample(self, n, steps=None, *, generator=None):
        z = self.randn(self.check_n(n), self.event_dim, generator=generator)
        return self.unflat(self.inverse(z))
