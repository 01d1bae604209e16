"""Generative adversarial networks (Goodfellow et al. 2014, arXiv:1406.2661).

A generator G maps noise z to samples; a discriminator D outputs a logit. With the logistic
loss the discriminator minimises the binary cross-entropy of 'real' (label 1) vs 'fake'
(label 0); its optimum is D*(x) = p_data / (p_data + p_g), where the loss equals
log 4 - 2 JSD(p_data || p_g). The generator maximises log D(G(z)) instead of minimising
log(1 - D(G(z))): the non-saturating loss, with the same fixed point and strong gradients
early in training.

`GAN` is the base of the family. A variant overrides one of its hooks: discriminator_loss,
generator_loss, penalty, after_discriminator_step, build_generator / build_discriminator, or
(R3GAN, whose generator also looks at real data) generator_objective. The trainer alternates the
two players declared by players() and passes its generator to both objectives, so every random
draw (z, and the interpolation of the gradient penalty) comes from it.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from ..base import Adversarial, Implicit, Player
from ..nets import MLP
from ..registry import Recipe, register
from .losses import discriminator_loss, generator_loss_non_saturating, r1_penalty


@dataclass
class GANConfig:
    noise_dim: int = 8
    hidden: int = 128
    depth: int = 3
    r1_gamma: float = 0.1  # weight gamma of the R1 penalty gamma/2 E|grad D|^2 (0: off)
    critic_updates: int = 1  # discriminator steps per generator step
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas of both players
    lr_generator: float | None = None  # None: the lr given to fit()
    lr_discriminator: float | None = None


@register("gan",
          recipes={"2d": Recipe(steps=1000, lr=1e-3, min_quality={"two_moons": 0.7, "eight_gaussians": 0.7})})
class GAN(Adversarial, Implicit):
    """Non-saturating GAN with MLP generator and discriminator, and an R1 penalty on the
    discriminator (without it, training on 8 gaussians drops modes for some seeds)."""

    Config = GANConfig

    def __init__(self, event_shape, config: GANConfig | None = None):
        config = config or self.Config()
        super().__init__(event_shape, config)
        self.generator = self.build_generator()
        self.discriminator = self.build_discriminator()

    def build_generator(self) -> nn.Module:  # z (B, noise_dim) -> x (B, D)
        c = self.config
        return MLP(c.noise_dim, self.event_dim, c.hidden, c.depth, activation=partial(nn.LeakyReLU, 0.2))

    def build_discriminator(self) -> nn.Module:  # x (B, D) -> logit (B, 1)
        c = self.config
        return MLP(self.event_dim, 1, c.hidden, c.depth, activation=partial(nn.LeakyReLU, 0.2))

    def generate(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """G(z), z ~ N(0, I) drawn from `generator`: (n, D), differentiable in G's weights."""
        return self.generator(self.randn(n, self.config.noise_dim, generator=generator))

    # -- the hooks variants override ----------------------------------------------------------
    def discriminator_loss(self, real_logits, fake_logits):
        """BCE(D(x), 1) + BCE(D(G(z)), 0)."""
        return discriminator_loss(real_logits, fake_logits)

    def generator_loss(self, fake_logits):
        """The non-saturating loss -log D(G(z))."""
        return generator_loss_non_saturating(fake_logits)

    def penalty(self, real, fake, real_logits, fake_logits, *, generator=None):
        """gamma/2 R1 (zero-centred gradient penalty on real data)."""
        return 0.5 * self.config.r1_gamma * r1_penalty(real_logits, real) if self.config.r1_gamma else 0.0

    def needs_input_grad(self) -> bool:
        """Whether penalty differentiates D at the real and fake points themselves (R1, R2)."""
        return self.config.r1_gamma > 0

    def after_discriminator_step(self, *batch) -> None:
        """Runs after each optimiser step of the discriminator; nothing here (WGANClip clips)."""

    # -- the two players ----------------------------------------------------------------------
    def discriminator_objective(self, x, *, generator=None):
        """What the discriminator minimises: discriminator_loss + penalty, on x and fresh fakes."""
        grad = self.needs_input_grad()
        real = self.flat(self.check_input(x)).detach().requires_grad_(grad)  # (B, D)
        with torch.no_grad():
            fake = self.generate(len(real), generator)
        fake.requires_grad_(grad)
        real_logits, fake_logits = self.discriminator(real), self.discriminator(fake)
        penalty = self.penalty(real, fake, real_logits, fake_logits, generator=generator)
        return self.discriminator_loss(real_logits, fake_logits) + penalty

    def generator_objective(self, x, *, generator=None):
        """What the generator minimises: generator_loss on as many fresh samples as x has rows
        (x itself is not looked at)."""
        fake_logits = self.discriminator(self.generate(len(self.check_input(x)), generator))
        return self.generator_loss(fake_logits)

    def loss(self, x, *, generator=None):
        """The discriminator's loss (without penalty) on real data and fresh fakes; for this GAN at
        the optimal discriminator it equals log 4 - 2 JSD(p_data || p_g) (Goodfellow et al. 2014)."""
        x = self.flat(self.check_input(x))
        with torch.no_grad():
            fake = self.generate(len(x), generator)
        return self.discriminator_loss(self.discriminator(x), self.discriminator(fake))

    def players(self):
        c = self.config
        return [Player("discriminator", self.discriminator, self.discriminator_objective, updates=c.critic_updates,
                       lr=c.lr_discriminator, betas=c.betas, after_step=self.after_discriminator_step),
                Player("generator", self.generator, self.generator_objective, lr=c.lr_generator, betas=c.betas)]

    @torch.no_grad()
    def sample(self, n, steps=None, *, generator=None):
        return self.unflat(self.generate(self.check_n(n), generator))


@dataclass
class MinimaxGANConfig(GANConfig):
    r1_gamma: float = 0.0


@register("minimax_gan",
          recipes={"2d": Recipe(steps=1000, lr=1e-3, min_quality={"two_moons": 0.6, "eight_gaussians": 0.5})})
class MinimaxGAN(GAN):
    """The original minimax game: the generator minimises log(1 - D(G(z))), whose gradient
    vanishes when D confidently rejects the samples (Goodfellow et al. 2014, Sec. 3)."""

    Config = MinimaxGANConfig

    def generator_loss(self, fake_logits):
        return -F.softplus(fake_logits).mean()  # log(1 - sigmoid(l)) = -softplus(l)
