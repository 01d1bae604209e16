"""R3GAN (Huang, Gokaslan, Kuleshov & Tompkin 2024, "The GAN is dead; long live the GAN!",
arXiv:2501.05441): the relativistic pairing loss (Jolicoeur-Martineau 2018, arXiv:1807.00734)
regularised by zero-centred gradient penalties on both real (R1) and fake (R2) data.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from ..registry import Recipe, register
from .core import GAN, GANConfig
from .losses import r1_penalty


def pairing_loss(preferred_logits, other_logits):
    """E softplus(l_other - l_preferred) = -E log sigmoid(l_preferred - l_other): the loss of a
    critic asked to score each `preferred` sample above its partner in `other`."""
    return F.softplus(other_logits - preferred_logits).mean()


@dataclass
class R3GANConfig(GANConfig):
    r1_gamma: float = 0.1  # gamma of both R1 (real) and R2 (fake) penalties


@register("r3gan",
          recipes={"2d": Recipe(steps=1000, lr=1e-3, min_quality={"two_moons": 0.65, "eight_gaussians": 0.6})})
class R3GAN(GAN):
    """Relativistic pairing loss: the discriminator scores each real sample against a fake one,
    L_D = E softplus(D(G(z)) - D(x)),  L_G = E softplus(D(x) - D(G(z))),
    regularised by gamma/2 (R1 + R2). The generator's loss needs D on the real batch too, so
    R3GAN overrides generator_objective (the base one looks at fakes only)."""

    Config = R3GANConfig

    def discriminator_loss(self, real_logits, fake_logits):
        return pairing_loss(real_logits, fake_logits)

    def generator_objective(self, x, *, generator=None):
        real = self.flat(self.check_input(x))  # (B, D)
        fake_logits = self.discriminator(self.generate(len(real), generator))
        return pairing_loss(fake_logits, self.discriminator(real))

    def penalty(self, real, fake, real_logits, fake_logits, *, generator=None):
        gamma = self.config.r1_gamma
        if not gamma:  # no penalty: real and fake do not require grad (needs_input_grad)
            return 0.0
        return 0.5 * gamma * (r1_penalty(real_logits, real) + r1_penalty(fake_logits, fake))  # R1 + R2
