"""The GAN family: a generator G(z) trained against a discriminator (or critic) D.

    losses.py       the logistic losses on logits and the R1 penalty, as plain functions
    core.py         GAN (non-saturating + R1), the base every variant subclasses; MinimaxGAN
    wasserstein.py  WGAN (the Kantorovich-Rubinstein dual) and its Lipschitz critics:
                    WGANClip (weight clipping), WGANGP (gradient penalty), WGANSN (spectral norm)
    fgan.py         f-GAN: any f-divergence of F_DIVERGENCES through its variational bound
    style.py        a toy StyleGAN: mapping network and AdaIN-modulated synthesis
    r3gan.py        R3GAN: relativistic pairing loss with R1 + R2 penalties

Class hierarchy (each variant overrides one hook of GAN):
    GAN ── MinimaxGAN, FGAN, StyleGAN, R3GAN
     └── WGAN ── WGANClip, WGANGP, WGANSN
"""
# imported in the order of the lectures, which is the order the zoo lists the models in
from .losses import discriminator_loss, generator_loss_non_saturating, r1_penalty
from .core import GAN, GANConfig, MinimaxGAN, MinimaxGANConfig
from .wasserstein import WGAN, WGANGP, WGANSN, WGANClip, WGANClipConfig, WGANConfig, WGANGPConfig
from .fgan import F_DIVERGENCES, FGAN, FDivergence, FGANConfig
from .style import AdaIN, StyleGAN, StyleGANConfig, StyleGenerator
from .r3gan import R3GAN, R3GANConfig, pairing_loss

__all__ = ["AdaIN", "FDivergence", "FGAN", "FGANConfig", "F_DIVERGENCES", "GAN", "GANConfig", "MinimaxGAN",
           "MinimaxGANConfig", "R3GAN", "R3GANConfig", "StyleGAN", "StyleGANConfig", "StyleGenerator", "WGAN",
           "WGANClip", "WGANClipConfig", "WGANConfig", "WGANGP", "WGANGPConfig", "WGANSN", "discriminator_loss",
           "generator_loss_non_saturating", "pairing_loss", "r1_penalty"]
