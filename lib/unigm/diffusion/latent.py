"""Latent diffusion (Rombach et al. 2022, arXiv:2112.10752): the course's DDPM in an autoencoder's latent space.

One model, one `fit`, two phases of one training run (config.autoencoder_steps = K):
  steps 1..K    the autoencoder: x -> q(z|x) = N(mu(x), diag s(x)^2) -> sigmoid(decoder(z)), loss
                |x - x_hat|^2 + kl_weight KL(q(z|x) || N(0, I)) per image (a lightly KL-regularised
                Gaussian autoencoder, Rombach et al. Sec. 3.1, "KL-reg.").
  after step K  the encoder and decoder are frozen for good, and the scale factor is set from step K's
                batch, latent_scale = 1 / std(z), z ~ q(z|x) (Rombach et al. App. G: z <- z / sigma_hat,
                sigma_hat from the first batch), so the diffusion sees latents of unit variance.
  steps K+1..   the course's DDPM (unigm.diffusion.DDPM, epsilon prediction) on latent_scale * z; no
                gradient reaches the autoencoder (its latents are computed under no_grad).
sample(n) draws scaled latents with the DDPM's ancestral chain, divides by latent_scale and decodes:
images in [0, 1] (the sigmoid), the range of the dequantized digits.

Why KL-regularised and not deterministic: the light KL bounds the latent scale and makes the encoder
noisy by s(x), so the decoder is trained on a neighbourhood of every code, not on 1,257 points only; a
diffusion sample that lands between codes then still decodes to a digit. kl_weight is small, so the
8 numbers keep most of an image (course checkpoint: test MSE 0.011 per pixel; the mean image's is 0.066).
Why it is built here and not taken from unigm.vae: the model families are siblings that never import
one another (tests/test_layering.py); the parts are the same (nets.MLP, densities.kl_to_standard_normal).

PixelDDPM is the matched baseline: the same class with the identity as its "autoencoder" (one hook,
`build_autoencoder`), so the same DDPM, scaling rule, sampler and clamp run on the 64 pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..base import ScoreBased
from ..densities import kl_to_standard_normal
from ..nets import MLP
from ..registry import register
from ..tensors import randn_like
from .ddpm import DDPM, DDPMConfig


def unit_variance_scale(z: torch.Tensor) -> torch.Tensor:
    """1 / std of all entries of z (Rombach et al. 2022, App. G; `scale_by_std` in their code): a 0-dim tensor."""
    std = z.detach().flatten().std()
    if not torch.isfinite(std) or std <= 0:
        raise ValueError(f"cannot scale latents to unit variance: their std is {std.item()}")
    return 1.0 / std


class GaussianAutoencoder(nn.Module):
    """Encoder x (B, D) -> mean, log_std (B, K) (as VAE.encode); decoder z (..., K) -> sigmoid(net(z)) in (0, 1)."""

    def __init__(self, data_dim: int, latent_dim: int, hidden: int, depth: int):
        super().__init__()
        self.encoder = MLP(data_dim, 2 * latent_dim, hidden, depth)
        self.decoder = MLP(latent_dim, data_dim, hidden, depth)

    def encode(self, x):  # (B, D) -> mean, log_std, each (B, K)
        return self.encoder(x).chunk(2, dim=-1)

    def decode(self, z):  # (B, K) -> (B, D) in (0, 1)
        return torch.sigmoid(self.decoder(z))

    def loss(self, x, kl_weight: float, generator=None):
        """Mean over the batch of |x - decode(z)|^2 + kl_weight KL(q(z|x) || N(0, I)), z ~ q(z|x)."""
        mean, log_std = self.encode(x)
        z = mean + log_std.exp() * randn_like(mean, generator)  # reparameterisation
        distortion = (self.decode(z) - x).pow(2).sum(-1)  # (B,)
        return (distortion + kl_weight * kl_to_standard_normal(mean, log_std)).mean()


class IdentityAutoencoder(nn.Module):
    """No parameters: the "latent" is the data itself; decode clamps to the data range [0, 1]."""

    def encode(self, x):  # (B, D) -> x, log_std = -inf (a point mass)
        return x, torch.full_like(x, -torch.inf)

    def decode(self, z):
        return z.clamp(0.0, 1.0)


@dataclass
class LatentDiffusionConfig:
    latent_dim: int = 8
    autoencoder_hidden: int = 256
    autoencoder_depth: int = 2
    kl_weight: float = 1e-3  # "lightly" regularised: loss = squared error per image + 1e-3 x KL (nats)
    autoencoder_steps: int = 2000  # K: the first K training steps train the autoencoder, the rest the DDPM
    hidden: int = 256  # the DDPM's MLP (DDPMConfig)
    depth: int = 3
    time_dim: int = 32
    num_steps: int = 1000
    beta_min: float = 0.1
    beta_max: float = 20.0


@register("latent_diffusion")  # a digits model: no 2D recipe
class LatentDiffusion(ScoreBased):
    """An autoencoder (trained first) and the course's DDPM on its scaled latents (trained second)."""

    Config = LatentDiffusionConfig

    def __init__(self, event_shape, config: LatentDiffusionConfig | None = None):
        config = config or self.Config()
        super().__init__(event_shape, config)
        if config.autoencoder_steps < 0 or config.kl_weight < 0 or config.latent_dim < 1:
            raise ValueError("LatentDiffusion needs latent_dim >= 1, autoencoder_steps >= 0 and kl_weight >= 0, "
                             f"got {config.latent_dim}, {config.autoencoder_steps}, {config.kl_weight}")
        self.autoencoder = self.build_autoencoder()
        self.prior = DDPM((self.latent_dim,), DDPMConfig(hidden=config.hidden, depth=config.depth,
                                                         time_dim=config.time_dim, num_steps=config.num_steps,
                                                         beta_min=config.beta_min, beta_max=config.beta_max))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))  # optimiser steps taken
        self.register_buffer("latent_scale", torch.ones(()))  # 1 / std of the latents, set after step K

    # -- the one hook a variant overrides ------------------------------------------------------
    def build_autoencoder(self) -> nn.Module:
        c = self.config
        return GaussianAutoencoder(self.event_dim, c.latent_dim, c.autoencoder_hidden, c.autoencoder_depth)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def in_diffusion_phase(self) -> bool:
        return int(self.updates) >= self.config.autoencoder_steps

    # -- encoder and decoder on the diffusion's (scaled) latent space --------------------------
    @torch.no_grad()
    def encode(self, x):
        """Scaled posterior means: images (B, *E) -> (B, latent_dim), unit variance on the training data."""
        return self.autoencoder.encode(self.flat(self.check_input(x)))[0] * self.latent_scale

    @torch.no_grad()
    def decode(self, z):
        """Scaled latents (B, latent_dim) -> images (B, *E) in [0, 1]."""
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"decode expects scaled latents of shape (B, {self.latent_dim}), "
                             f"got {tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__}")
        return self.unflat(self.autoencoder.decode(z.to(self.device, self.dtype) / self.latent_scale))

    def reconstruct(self, x):
        """decode(encode(x)): the autoencoder's round trip through the posterior mean."""
        return self.decode(self.encode(x))

    # -- training --------------------------------------------------------------------------------
    def autoencoder_loss(self, x, *, generator=None):
        return self.autoencoder.loss(self.flat(self.check_input(x)), self.config.kl_weight, generator)

    def diffusion_loss(self, x, *, generator=None):
        """The DDPM's L_simple on latent_scale * z, z ~ q(z|x) from the frozen encoder (no gradient reaches it)."""
        with torch.no_grad():
            mean, log_std = self.autoencoder.encode(self.flat(self.check_input(x)))
            z = mean + log_std.exp() * randn_like(mean, generator)  # (B, K); exp(-inf) = 0 for the identity
        return self.prior.loss(z * self.latent_scale, generator=generator)

    def loss(self, x, *, generator=None):
        """The autoencoder's loss for the first K optimiser steps, then the DDPM's on the scaled latents."""
        if not self.in_diffusion_phase:
            return self.autoencoder_loss(x, generator=generator)
        return self.diffusion_loss(x, generator=generator)

    def after_update(self, *batch):
        """One optimiser step was taken. After the K-th (the last of the autoencoder), set the scale factor
        from this batch (Rombach et al.). With K = 0 that is after step 1, which trained with latent_scale = 1."""
        self.updates += 1
        if int(self.updates) == max(self.config.autoencoder_steps, 1):  # its own generator: global RNG untouched
            self.set_latent_scale(batch[0], generator=torch.Generator(batch[0].device).manual_seed(0))

    @torch.no_grad()
    def set_latent_scale(self, x, generator=None):
        """latent_scale = 1 / std(z), z ~ q(z|x): latents of x scaled to unit variance."""
        mean, log_std = self.autoencoder.encode(self.flat(self.check_input(x)))
        self.latent_scale.copy_(unit_variance_scale(mean + log_std.exp() * randn_like(mean, generator)))

    # -- sampling --------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n, steps=None, *, generator=None, eta: float = 1.0):
        """Scaled latents from the DDPM (`steps` network evaluations, default all T; eta as DDPM.sample),
        decoded to images (n, *event_shape) in [0, 1]."""
        return self.decode(self.prior.sample(self.check_n(n), steps, eta=eta, generator=generator))

    def score(self, x, t):
        """The DDPM's score in the scaled latent space: x is (B, latent_dim), not an image."""
        return self.prior.score(x, t)

    def log_prob(self, x):
        raise NotImplementedError("LatentDiffusion has no likelihood of images: the decoder is deterministic")


@dataclass
class PixelDDPMConfig(LatentDiffusionConfig):
    autoencoder_steps: int = 0  # nothing to train first: the DDPM trains from step 1
    # latent_dim, autoencoder_hidden, autoencoder_depth and kl_weight are unused: the latent is the image


@register("pixel_ddpm")  # a digits model: no 2D recipe
class PixelDDPM(LatentDiffusion):
    """The matched baseline: the same DDPM, scaling and sampler on the pixels themselves (latent_dim = D)."""

    Config = PixelDDPMConfig

    def build_autoencoder(self) -> nn.Module:
        return IdentityAutoencoder()

    @property
    def latent_dim(self) -> int:
        return self.event_dim
