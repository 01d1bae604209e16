"""Wasserstein GANs (Arjovsky, Chintala & Bottou 2017, arXiv:1701.07875).

The critic f estimates W1(p_data, p_g) = sup_{|f|_L <= 1} E_data f - E_model f (Kantorovich-
Rubinstein duality), an integral probability metric, not an f-divergence; the generator
minimises the estimate. `WGAN` holds the two losses of the dual; the supremum is only over
1-Lipschitz functions, and its three subclasses are three ways to keep the critic there:

    WGANClip  clamps every critic weight to [-c, c] after each critic step (Arjovsky et al. 2017)
    WGANGP    penalises |grad f| != 1 at interpolates of real and fake points (Gulrajani et al. 2017)
    WGANSN    divides each critic layer by its largest singular value (Miyato et al. 2018)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..registry import Recipe, register
from ..tensors import rand
from .core import GAN, GANConfig


@dataclass
class WGANConfig(GANConfig):
    r1_gamma: float = 0.0
    critic_updates: int = 5
    betas: tuple[float, float] = (0.0, 0.9)  # as in Gulrajani et al. 2017


class WGAN(GAN):
    """The Kantorovich-Rubinstein dual, with no Lipschitz constraint of its own (not trainable
    as it stands: an unconstrained critic drives the estimate to infinity)."""

    Config = WGANConfig

    def discriminator_loss(self, real_logits, fake_logits):
        return fake_logits.mean() - real_logits.mean()  # -(W1 estimate)

    def generator_loss(self, fake_logits):
        return -fake_logits.mean()


@dataclass
class WGANClipConfig(WGANConfig):
    clip: float = 0.1  # weight clipping bound; the paper's 0.01 starves these small 2D critics


# 500 steps: at 300 the weakest of the eight Gaussians got 20 of the 25 samples that count as a hit on
# one CPU and all eight on another (GAN training amplifies rounding differences); at 500 it gets >= 65
@register("wgan_clip",
          recipes={"2d": Recipe(steps=500, lr=1e-3, min_quality={"two_moons": 0.35, "eight_gaussians": 0.5})})
class WGANClip(WGAN):
    """WGAN with weight clipping: every critic weight is clamped to [-c, c] after each step
    (Arjovsky et al. 2017, Algorithm 1), so the critic is K-Lipschitz for some K(c)."""

    Config = WGANClipConfig

    def after_discriminator_step(self, *batch):
        with torch.no_grad():
            for p in self.discriminator.parameters():
                p.clamp_(-self.config.clip, self.config.clip)


@dataclass
class WGANGPConfig(WGANConfig):
    gp_lambda: float = 1.0  # gradient-penalty weight; the paper's 10 needs ~2x the steps on 2D toys


@register("wgan_gp",
          recipes={"2d": Recipe(steps=500, lr=1e-3, batch_size=128, min_quality={"two_moons": 0.6, "eight_gaussians": 0.5})})
class WGANGP(WGAN):
    """WGAN-GP (Gulrajani et al. 2017, arXiv:1704.00028): the penalty
    lambda E (|grad D(x_hat)| - 1)^2 on random interpolates x_hat of real and fake points."""

    Config = WGANGPConfig

    def penalty(self, real, fake, real_logits, fake_logits, *, generator=None):
        eps = rand((len(real), 1), real, generator)  # (B, 1), one mixing weight per pair
        x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.discriminator(x_hat).sum(), x_hat, create_graph=True)
        return self.config.gp_lambda * (grad.norm(dim=1) - 1).pow(2).mean()


@register("wgan_sn",
          recipes={"2d": Recipe(steps=500, lr=1e-3, batch_size=128, min_quality={"two_moons": 0.45, "eight_gaussians": 0.55})})
class WGANSN(WGAN):
    """WGAN whose critic layers are spectrally normalised (Miyato et al. 2018, arXiv:1802.05957):
    each weight is divided by its largest singular value (one power iteration per step), so
    each layer, and with 1-Lipschitz activations the whole critic, is 1-Lipschitz."""

    def build_discriminator(self):
        critic = super().build_discriminator()
        for module in critic.modules():
            if isinstance(module, nn.Linear):
                nn.utils.parametrizations.spectral_norm(module)
        return critic
