"""Generative adversarial networks (Goodfellow et al. 2014, arXiv:1406.2661).

A generator G maps noise z to samples; a discriminator D outputs a logit. With the logistic
loss the discriminator minimises the binary cross-entropy of 'real' (label 1) vs 'fake'
(label 0); its optimum is D*(x) = p_data / (p_data + p_g), where the loss equals
log 4 - 2 JSD(p_data || p_g). The generator maximises log D(G(z)) instead of minimising
log(1 - D(G(z))): the non-saturating loss, with the same fixed point and strong gradients
early in training.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from .base import Adversarial, Implicit, Player
from .nets import MLP


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """BCE(D(x), 1) + BCE(D(G(z)), 0) = softplus(-l_real) + softplus(l_fake), averaged."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 = E_data |grad_x D(x)|^2 (Mescheder et al. 2018, arXiv:1801.04406), a zero-centred
    gradient penalty on real data that makes the game locally convergent. `real` must require
    grad and `real_logits` = D(real)."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.pow(2).reshape(len(real), -1).sum(1).mean()


def generator_loss_non_saturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(G(z)) = BCE(D(G(z)), 1) = softplus(-l_fake)."""
    return F.softplus(-fake_logits).mean()


@dataclass
class GANConfig:
    noise_dim: int = 8
    hidden: int = 128
    depth: int = 3
    r1_gamma: float = 0.1  # weight gamma of the R1 penalty gamma/2 E|grad D|^2 (0: off)
    lr_generator: float | None = None  # None: the lr given to fit()
    lr_discriminator: float | None = None


class GAN(Adversarial, Implicit):
    """Non-saturating GAN with MLP generator and discriminator, and an R1 penalty on the
    discriminator (without it, training on 8 gaussians drops modes for some seeds)."""

    name = "gan"
    Config = GANConfig

    def __init__(self, event_shape, config: GANConfig | None = None):
        config = config or self.Config()
        super().__init__(event_shape, config)
        d, leaky = self.event_dim, partial(nn.LeakyReLU, 0.2)
        self.generator = MLP(config.noise_dim, d, config.hidden, config.depth, activation=leaky)
        self.discriminator = MLP(d, 1, config.hidden, config.depth, activation=leaky)

    def generate(self, n: int) -> torch.Tensor:  # (n, D), differentiable
        return self.generator(torch.randn(n, self.config.noise_dim, device=self.device, dtype=self.dtype))

    def discriminator_objective(self, x):
        """What the discriminator minimises: BCE(D(x), 1) + BCE(D(G(z)), 0) + gamma/2 R1."""
        use_r1 = self.config.r1_gamma > 0
        real = self.flat(self.check_input(x)).detach().requires_grad_(use_r1)
        real_logits = self.discriminator(real)
        with torch.no_grad():
            fake = self.generate(len(real))
        loss = discriminator_loss(real_logits, self.discriminator(fake))
        if use_r1:
            loss = loss + 0.5 * self.config.r1_gamma * r1_penalty(real_logits, real)
        return loss

    def generator_objective(self, x):
        """What the generator minimises: the non-saturating loss -log D(G(z))."""
        return generator_loss_non_saturating(self.discriminator(self.generate(len(x))))

    def loss(self, x):
        """The discriminator's BCE on real data and fresh fakes. At the optimal discriminator it
        equals log 4 - 2 JSD(p_data || p_g) (Goodfellow et al. 2014, Thm. 1)."""
        x = self.flat(self.check_input(x))
        with torch.no_grad():
            fake = self.generate(len(x))
        return discriminator_loss(self.discriminator(x), self.discriminator(fake))

    def players(self):
        c = self.config
        return [Player("discriminator", self.discriminator, self.discriminator_objective, lr=c.lr_discriminator),
                Player("generator", self.generator, self.generator_objective, lr=c.lr_generator)]

    @torch.no_grad()
    def sample(self, n, steps=None):
        return self.unflat(self.generate(self.check_n(n)))


# --------------------------------------------------------------------------------------------
# f-divergences for f-GAN (Nowozin et al. 2016, arXiv:1606.00709)
#   D_f(P || Q) = E_Q[f(dP/dQ)] >= sup_T E_P[T(x)] - E_Q[f*(T(x))],  f*(t) = sup_u (u t - f(u)),
# with T(x) = activation(V(x)) mapping the network output V into the domain of f*.
# --------------------------------------------------------------------------------------------
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
    "pearson": FDivergence("pearson", lambda u: (u - 1) ** 2, lambda t: t**2 / 4 + t, lambda v: v),
    # f(u) = u log u - (u + 1) log((u + 1) / 2) gives D_f = 2 JSD; dom f* = (-inf, log 2)
    "jensen_shannon": FDivergence(
        "jensen_shannon", lambda u: u * torch.log(u) - (u + 1) * torch.log((u + 1) / 2),
        lambda t: -torch.log(2 - torch.exp(t)), lambda v: math.log(2) - F.softplus(-v)),
    # f(u) = |u - 1| / 2; f*(t) = t on dom f* = [-1/2, 1/2] (and +inf outside)
    "total_variation": FDivergence("total_variation", lambda u: 0.5 * (u - 1).abs(), lambda t: t,
                                   lambda v: 0.5 * torch.tanh(v)),
}
