"""Quantized autoencoders: VQ-VAE (van den Oord et al. 2017, arXiv:1711.00937) and FSQ-VAE
(Mentzer et al. 2023, arXiv:2309.15505).

    QuantizedAutoencoder   encoder -> quantize -> decoder, reconstruction loss, code-usage prior
      VQVAE                a learned codebook: codebook and commitment losses, dead-code restarts
      FSQVAE               finite scalar quantization: no codebook at all

loss() is pure; the code-usage counts (and VQ's restarts, FSQ's normalisation statistics) are
updated in after_update, from the encoder outputs of the step's batch recomputed there.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..base import Implicit
from ..nets import MLP
from ..registry import register
from ..tensors import rand
from .fsq import FSQ


def code_perplexity(indices: torch.Tensor, codebook_size: int) -> float:
    """exp(entropy) of the empirical code distribution: the number of codes effectively used."""
    p = torch.bincount(indices.flatten(), minlength=codebook_size).double()
    p = p / p.sum()
    return math.exp(-(p[p > 0] * p[p > 0].log()).sum().item())


class QuantizedAutoencoder(Implicit):
    """Deterministic autoencoder with `latents` code vectors of `code_dim` channels per example,
    each snapped to one of `num_codes` codes by the `quantize` hook.

    Sampling draws each position's code from its training frequency (an independent prior;
    an autoregressive prior over codes does better, as later lectures show). A subclass gives
    quantize, codes_to_latents and, if it keeps more training state, update_state; its config
    has latents, code_dim, codebook_size, hidden and depth."""

    def __init__(self, event_shape, config):
        super().__init__(event_shape, config)
        width = config.latents * config.code_dim
        self.encoder = MLP(self.event_dim, width, config.hidden, config.depth)
        self.decoder = MLP(width, self.event_dim, config.hidden, config.depth)
        self.register_buffer("usage", torch.zeros(config.latents, self.num_codes))  # training counts, (m, K)

    @property
    def num_codes(self) -> int:
        return self.config.codebook_size

    @property
    def code_dim(self) -> int:
        return self.config.code_dim

    def encode(self, x):  # (B, *E) -> z_e (B, m, d)
        x = self.flat(self.check_input(x))
        return self.encoder(x).reshape(len(x), self.config.latents, self.code_dim)

    def quantize(self, z_e):
        """z_e (B, m, d) -> (z_q with straight-through gradient, code indices (B, m), aux losses)."""
        raise NotImplementedError

    def codes_to_latents(self, indices):  # (B, m) -> (B, m, d)
        raise NotImplementedError

    def decode(self, z_q):  # (B, m, d) -> (B, *E), values in (0, 1)
        return self.unflat(torch.sigmoid(self.decoder(z_q.reshape(len(z_q), -1))))

    def loss_terms(self, x) -> dict[str, torch.Tensor]:
        """Each term of the loss separately, all scalars: reconstruction and the quantizer's own."""
        z_q, _, aux = self.quantize(self.encode(x))
        x = self.check_input(x)
        reconstruction = (self.decode(z_q) - x).pow(2).reshape(len(x), -1).sum(1).mean()
        return {"reconstruction": reconstruction, **aux}

    def loss(self, x, *, generator=None):
        return sum(self.loss_terms(x).values())

    @torch.no_grad()
    def after_update(self, x, *rest):
        """Count the codes the batch uses now, per position (the prior sample() draws from)."""
        z_e = self.encode(x)
        _, indices, _ = self.quantize(z_e)
        self.usage += F.one_hot(indices, self.num_codes).sum(0).to(self.usage)  # (B, m) -> (m, K)
        self.update_state(z_e, indices)

    def update_state(self, z_e, indices):
        """Training state of the quantizer itself, from the batch's z_e (B, m, d) and codes (B, m)."""

    @torch.no_grad()
    def reconstruct(self, x):
        z_q, indices, _ = self.quantize(self.encode(x))
        return self.decode(z_q), indices

    def sample_codes(self, n: int, *, generator=None) -> torch.Tensor:
        """n code-index vectors (n, m), each position's code drawn from its training frequencies."""
        if self.usage.sum() == 0:
            raise RuntimeError("sample() draws codes with their training frequencies: train the model first")
        cdf = self.usage.double().cumsum(1)
        cdf = cdf / cdf[:, -1:]  # (m, K), last column exactly 1
        u = rand((self.config.latents, n), cdf, generator)  # (m, n), uniform in [0, 1)
        return torch.searchsorted(cdf, u, right=True).T  # inverse-CDF draw: P(k) = usage_k / sum_j usage_j

    @torch.no_grad()
    def sample(self, n, steps=None, *, generator=None):
        indices = self.sample_codes(self.check_n(n), generator=generator)
        return self.decode(self.codes_to_latents(indices))


# --------------------------------------------------------------------------------------------
@dataclass
class VQVAEConfig:
    latents: int = 4  # code vectors per example
    code_dim: int = 4
    codebook_size: int = 64
    hidden: int = 256
    depth: int = 2
    commitment: float = 0.25  # beta of van den Oord et al. 2017, eq. 3
    restart_every: int = 200  # training steps between dead-code restarts (0: never restart)


@register("vqvae")  # an image model: no 2D recipe
class VQVAE(QuantizedAutoencoder):
    """A learned codebook between encoder and decoder.

    Loss (van den Oord et al. 2017, eq. 3), with sg = stop-gradient and e the nearest code:
        |x - dec(z_q)|^2  +  |sg[z_e] - e|^2  +  commitment * |z_e - sg[e]|^2,
        z_q = z_e + sg[e - z_e]  (straight-through: the decoder sees e, the encoder gets its gradient)
    so the decoder learns from reconstruction only, the codebook from the codebook term only,
    and the encoder from reconstruction (through the straight-through copy) and commitment.
    Codes unused for `restart_every` steps are restarted on encoder outputs (restart_dead_codes)."""

    Config = VQVAEConfig

    def __init__(self, event_shape, config: VQVAEConfig | None = None):
        config = config or self.Config()
        super().__init__(event_shape, config)
        self.codebook = torch.nn.Embedding(self.num_codes, config.code_dim)  # initialised N(0, I)
        self.register_buffer("window_usage", torch.zeros(self.num_codes))  # since the last restart
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))  # optimiser steps taken
        self.register_buffer("restarts", torch.zeros((), dtype=torch.long))  # codes restarted so far

    def quantize(self, z_e):
        flat = z_e.reshape(-1, z_e.shape[-1])
        indices = torch.cdist(flat, self.codebook.weight).argmin(1).reshape(z_e.shape[:-1])
        e = self.codebook(indices)
        codebook_loss = (z_e.detach() - e).pow(2).sum(-1).mean()
        commitment_loss = (z_e - e.detach()).pow(2).sum(-1).mean()
        z_q = z_e + (e - z_e).detach()
        return z_q, indices, {"codebook": codebook_loss, "commitment": self.config.commitment * commitment_loss}

    def codes_to_latents(self, indices):
        return self.codebook(indices)

    def update_state(self, z_e, indices):
        self.window_usage += torch.bincount(indices.flatten(), minlength=self.num_codes).to(self.window_usage)
        self.updates += 1
        every = self.config.restart_every
        if every and self.updates.item() % every == 0:
            self.restart_dead_codes(z_e)
            self.window_usage.zero_()

    @torch.no_grad()
    def restart_dead_codes(self, z_e):
        """Move every code unused since the last restart onto an encoder output of the batch,
        chosen by farthest-first traversal (Gonzalez 1985): each dead code goes to the output
        farthest from every live or already restarted code. This is the deterministic form of
        k-means++ seeding (Arthur & Vassilvitskii 2007), which Lancucki et al. 2020
        (arXiv:2005.08520) use to re-initialise VQ codebooks: the worst-quantized outputs get a
        code, and no two restarts land on the same point. At most one code per output."""
        candidates = z_e.reshape(-1, z_e.shape[-1])  # (N, d)
        dead = (self.window_usage == 0).nonzero().flatten()[: len(candidates)]
        live = self.codebook.weight[self.window_usage > 0]  # never empty: the batch used its codes
        distance = torch.cdist(candidates, live).amin(1)  # (N,) to the nearest live code
        for code in dead:
            pick = distance.argmax()
            self.codebook.weight[code] = candidates[pick]
            distance = torch.minimum(distance, (candidates - candidates[pick]).norm(dim=1))
        self.restarts += len(dead)


# --------------------------------------------------------------------------------------------
@dataclass
class FSQVAEConfig:
    latents: int = 4  # code vectors per example
    levels: tuple[int, ...] = (4, 4, 4)  # FSQ levels per channel: code_dim and codebook_size follow
    hidden: int = 256
    depth: int = 2

    def __post_init__(self):
        self.levels = tuple(int(level) for level in self.levels)

    @property
    def code_dim(self) -> int:
        return len(self.levels)

    @property
    def codebook_size(self) -> int:
        return math.prod(self.levels)


@register("fsq_vae")  # an image model: no 2D recipe
class FSQVAE(QuantizedAutoencoder):
    """The VQ-VAE's learned codebook replaced by finite scalar quantization (Mentzer et al.
    2023): no codebook or commitment loss and no codes to restart, prod(levels) codes (of which the
    encoder may still leave some unused: code_perplexity measures the use)."""

    Config = FSQVAEConfig

    def __init__(self, event_shape, config: FSQVAEConfig | None = None):
        config = config or self.Config()
        super().__init__(event_shape, config)
        # A non-affine batch normalisation before the bound keeps the encoder outputs in tanh's
        # responsive range. Without it, early in training Adam pushes every example's latent the
        # same way into saturation, and the model collapses onto a handful of codes (measured on
        # the 8x8 digits: 4 of 64 codes used, reconstruction no better than the mean image).
        self.normalise = torch.nn.BatchNorm1d(config.code_dim, affine=False)
        self.fsq = FSQ(config.levels)

    def normalise_latents(self, z_e):  # (B, m, d) -> (B, m, d)
        flat = z_e.reshape(-1, self.code_dim)
        if self.training:  # batch statistics; the running ones are updated in update_state, so loss() stays pure
            flat = F.batch_norm(flat, None, None, training=True, eps=self.normalise.eps)
        else:
            flat = self.normalise(flat)
        return flat.reshape(z_e.shape)

    def quantize(self, z_e):
        z_q = self.fsq(self.normalise_latents(z_e))
        return z_q, self.fsq.codes_to_indices(z_q.detach()), {}

    def codes_to_latents(self, indices):
        return self.fsq.indices_to_codes(indices).to(self.dtype)

    def update_state(self, z_e, indices):
        """Fold the batch's statistics into the running mean and variance, as BatchNorm's forward does in training."""
        norm = self.normalise
        F.batch_norm(z_e.reshape(-1, self.code_dim), norm.running_mean, norm.running_var, training=True,
                     momentum=norm.momentum, eps=norm.eps)
        norm.num_batches_tracked += 1
