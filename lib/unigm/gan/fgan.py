"""f-GAN (Nowozin, Cseke & Tomioka 2016, arXiv:1606.00709): any f-divergence as a GAN game.

    D_f(P || Q) = E_Q[f(dP/dQ)] >= sup_T E_P[T(x)] - E_Q[f*(T(x))],  f*(t) = sup_u (u t - f(u)),

with equality at T = f'(dP/dQ) (their Sec. 2.2); T(x) = activation(V(x)) maps the network
output V into the domain of the convex conjugate f* (their Table 2).

The supremum runs over u = p/q >= 0 only (a ratio of densities is never negative), which matters for
the two generators that are finite at u < 0: total variation, f*(t) = -1/2 for t < -1/2, t on
[-1/2, 1/2], +infinity above; Pearson chi^2, f*(t) = t + t^2/4 for t >= -2 and -1 below (where the
stationary point u* = 1 + t/2 would be negative). Lecture 02, checks 5.4, 5.6 and 5.9-5.11.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..registry import Recipe, register
from .core import GAN, GANConfig


@dataclass(frozen=True)
class FDivergence:
    name: str
    f: callable  # generator f(u), u = p/q > 0, convex with f(1) = 0
    conjugate: callable  # f*(t) on its domain
    activation: callable  # R -> dom f*


F_DIVERGENCES: dict[str, FDivergence] = {
    "kl": FDivergence("kl", lambda u: u * torch.log(u), lambda t: torch.exp(t - 1), lambda v: v),
    "reverse_kl": FDivergence("reverse_kl", lambda u: -torch.log(u), lambda t: -1 - torch.log(-t),
                              lambda v: -torch.exp(v)),  # dom f* = (-inf, 0)
    "pearson": FDivergence("pearson", lambda u: (u - 1) ** 2, lambda t: (1 + t / 2).clamp(min=0) ** 2 - 1,
                           lambda v: v),  # t + t^2/4 for t >= -2, -1 below (sup at u = 0)
    # f(u) = u log u - (u + 1) log((u + 1) / 2) gives D_f = 2 JSD; dom f* = (-inf, log 2)
    "jensen_shannon": FDivergence(
        "jensen_shannon", lambda u: u * torch.log(u) - (u + 1) * torch.log((u + 1) / 2),
        lambda t: -torch.log(2 - torch.exp(t)), lambda v: math.log(2) - F.softplus(-v)),
    # f(u) = |u - 1| / 2, u >= 0: f*(t) = max(t, -1/2) for t <= 1/2, +inf above; T stays in (-1/2, 1/2)
    "total_variation": FDivergence(
        "total_variation", lambda u: 0.5 * (u - 1).abs(),
        lambda t: torch.where(t > 0.5, torch.inf, t.clamp(min=-0.5)), lambda v: 0.5 * torch.tanh(v)),
}


@dataclass
class FGANConfig(GANConfig):
    divergence: str = "jensen_shannon"  # a key of F_DIVERGENCES; R1 stays on (TV diverges without it)


@register("f_gan",
          recipes={"2d": Recipe(steps=700, lr=1e-3, batch_size=128, min_quality={"two_moons": 0.6, "eight_gaussians": 0.6})})
class FGAN(GAN):
    """f-GAN (Nowozin et al. 2016): the discriminator V maximises the variational lower bound
    E_data[T(x)] - E_model[f*(T(x))], T = activation(V), of D_f(p_data || p_model); the
    generator minimises it (the saddle-point objective, their eq. 6)."""

    Config = FGANConfig

    def __init__(self, event_shape, config: FGANConfig | None = None):
        config = config or self.Config()
        if config.divergence not in F_DIVERGENCES:
            raise KeyError(f"unknown f-divergence {config.divergence!r}; choose from {', '.join(F_DIVERGENCES)}")
        super().__init__(event_shape, config)
        self.f = F_DIVERGENCES[config.divergence]

    def variational_bound(self, real_logits, fake_logits):
        """E_P[T] - E_Q[f*(T)] <= D_f(P || Q): the f-divergence estimate."""
        return self.f.activation(real_logits).mean() - self.f.conjugate(self.f.activation(fake_logits)).mean()

    def discriminator_loss(self, real_logits, fake_logits):
        return -self.variational_bound(real_logits, fake_logits)

    def generator_loss(self, fake_logits):
        """The part of the bound the generator can move: it minimises E_P[T] - E_Q[f*(T)], so it
        minimises -E_Q[f*(T(G(z)))] (lecture 02, check 5.15)."""
        return -self.f.conjugate(self.f.activation(fake_logits)).mean()
