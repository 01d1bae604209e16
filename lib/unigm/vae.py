"""Variational autoencoders (Kingma & Welling 2014, arXiv:1312.6114).

log p(x) >= ELBO = E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z)); training minimises -ELBO.
Every likelihood here keeps all its constants, so the bounds are real log-densities in nats.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .base import LikelihoodBased
from .nets import MLP

LOG_2PI = math.log(2 * math.pi)


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, diag(exp(2 log_std))) summed over the last dim: (..., D) -> (...)."""
    return (-0.5 * ((x - mean) / log_std.exp()).pow(2) - log_std - 0.5 * LOG_2PI).sum(-1)


def kl_to_standard_normal(mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, diag std^2) || N(0, I)) in closed form, summed over the last dim."""
    return 0.5 * (mean.pow(2) + (2 * log_std).exp() - 1 - 2 * log_std).sum(-1)


@dataclass
class VAEConfig:
    latent_dim: int = 2
    hidden: int = 128
    depth: int = 3
    min_log_std: float = -6.0  # floor on the decoder's log std, so its density stays bounded
    iw_samples: int = 256  # k of the importance-weighted bound used by log_prob
    kl_warmup_steps: int = 1000  # KL weight rises linearly from 0 to 1 over these training steps


class VAE(LikelihoodBased):
    """Gaussian encoder q(z|x) = N(mu(x), diag s(x)^2), prior N(0, I), and a Gaussian decoder
    p(x|z) = N(m(z), diag sigma(z)^2) whose variance is learned."""

    name = "vae"
    Config = VAEConfig

    def __init__(self, event_shape, config: VAEConfig | None = None):
        config = config or self.Config()
        super().__init__(event_shape, config)
        d, k = self.event_dim, config.latent_dim
        self.encoder = MLP(d, 2 * k, config.hidden, config.depth)
        self.decoder = MLP(k, 2 * d, config.hidden, config.depth)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))  # training losses computed

    def encode(self, x):  # (B, D) -> mean, log_std, each (B, K)
        mean, log_std = self.encoder(x).chunk(2, dim=-1)
        return mean, log_std

    def decode(self, z):  # (..., K) -> mean, log_std, each (..., D)
        mean, log_std = self.decoder(z).chunk(2, dim=-1)
        return mean, log_std.clamp(min=self.config.min_log_std)

    def elbo_terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(E_q log p(x|z), KL(q(z|x) || p(z))) per example, one reparameterised z: (B, *E) -> (B,), (B,)."""
        x = self.flat(self.check_input(x))
        mean, log_std = self.encode(x)
        z = mean + log_std.exp() * torch.randn_like(mean)  # reparameterisation trick
        x_mean, x_log_std = self.decode(z)
        return gaussian_log_prob(x, x_mean, x_log_std), kl_to_standard_normal(mean, log_std)

    def elbo(self, x: torch.Tensor) -> torch.Tensor:
        """ELBO per example (B,), a lower bound on log p(x) in nats."""
        reconstruction, kl = self.elbo_terms(x)
        return reconstruction - kl

    def kl_weight(self) -> float:
        """KL annealing (Bowman et al. 2016, arXiv:1511.06349; Sonderby et al. 2016): training
        starts as a plain autoencoder so the latent code is used before the prior pulls q(z|x)
        toward N(0, I); without it a learned-variance decoder collapses to one Gaussian."""
        if self.config.kl_warmup_steps <= 0:
            return 1.0
        return min(1.0, self.updates.item() / self.config.kl_warmup_steps)

    def loss(self, x):
        """-ELBO averaged over the batch. While training, the KL term is down-weighted during the
        warm-up; in eval mode this is always the true negative ELBO (in nats per example)."""
        reconstruction, kl = self.elbo_terms(x)
        weight = self.kl_weight() if self.training else 1.0
        if self.training and torch.is_grad_enabled():
            self.updates += 1
        return -(reconstruction - weight * kl).mean()

    @torch.no_grad()
    def log_prob(self, x: torch.Tensor, k: int | None = None) -> torch.Tensor:
        """Importance-weighted bound (Burda et al. 2016, arXiv:1509.00519):
        log p(x) >= E log (1/k) sum_i p(x, z_i) / q(z_i | x), z_i ~ q(z|x); tight as k grows."""
        k = k or self.config.iw_samples
        x = self.flat(self.check_input(x))
        mean, log_std = self.encode(x)
        z = mean + log_std.exp() * torch.randn(k, *mean.shape, device=x.device, dtype=x.dtype)  # (k, B, K)
        x_mean, x_log_std = self.decode(z)
        log_joint = gaussian_log_prob(x, x_mean, x_log_std) + gaussian_log_prob(
            z, torch.zeros_like(z), torch.zeros_like(z))
        log_q = gaussian_log_prob(z, mean, log_std)
        return torch.logsumexp(log_joint - log_q, dim=0) - math.log(k)

    @torch.no_grad()
    def sample(self, n, steps=None):
        n = self.check_n(n)
        z = torch.randn(n, self.config.latent_dim, device=self.device, dtype=self.dtype)
        mean, log_std = self.decode(z)
        return self.unflat(mean + log_std.exp() * torch.randn_like(mean))


# --------------------------------------------------------------------------------------------
# Finite scalar quantization (Mentzer et al. 2023, arXiv:2309.15505)
# --------------------------------------------------------------------------------------------
class FSQ(torch.nn.Module):
    """Quantize each of d channels to exactly L_i levels: a fixed, implicit codebook of
    prod(L_i) codes, no codebook loss and no dead codes.

    Channel i is bounded to an interval holding exactly L_i integers, rounded (with the
    straight-through estimator for the gradient) and rescaled to [-1, 1]:
        odd L:  tanh(z) (L - 1) / 2            rounds to {-(L-1)/2, ..., (L-1)/2}
        even L: tanh(z + s) (L - 1) / 2 - 1/2  rounds to {-L/2, ..., L/2 - 1}
    (s = atanh(1 / (L - 1)) makes z = 0 map to code 0 in the even case). L levels, not 2L + 1.
    """

    def __init__(self, levels: tuple[int, ...], eps: float = 1e-3):
        super().__init__()
        if not levels or any(int(level) < 2 for level in levels):
            raise ValueError(f"FSQ needs at least 2 levels per channel, got {levels}")
        self.levels = tuple(int(level) for level in levels)
        L = torch.tensor(self.levels, dtype=torch.float64)
        half = (L - 1) * (1 - eps) / 2
        offset = torch.where(L % 2 == 0, 0.5, 0.0)
        self.register_buffer("half_width", half.float(), persistent=False)
        self.register_buffer("offset", offset.float(), persistent=False)
        # shift: z = 0 maps to the code 0 (for L = 2, where 0 is an end level, as near as tanh allows)
        self.register_buffer("shift", torch.atanh((offset / half).clamp(max=0.99)).float(), persistent=False)
        self.register_buffer("scale", torch.floor(L / 2).float(), persistent=False)  # integer -> [-1, 1]
        basis = torch.cumprod(torch.tensor((1,) + self.levels[:-1]), 0)
        self.register_buffer("basis", basis, persistent=False)

    @property
    def dim(self) -> int:
        return len(self.levels)

    @property
    def codebook_size(self) -> int:
        return math.prod(self.levels)

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z + self.shift) * self.half_width - self.offset

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(..., d) -> quantized codes in [-1, 1], (..., d); gradients pass straight through."""
        if z.shape[-1] != self.dim:
            raise ValueError(f"FSQ with {self.dim} channels got last dimension {z.shape[-1]}")
        bounded = self.bound(z)
        rounded = bounded + (torch.round(bounded) - bounded).detach()  # straight-through estimator
        return rounded / self.scale

    def codes_to_indices(self, codes: torch.Tensor) -> torch.Tensor:
        """(..., d) codes -> (...,) integer index in [0, codebook_size), mixed radix."""
        digits = torch.round(codes * self.scale + self.scale).long()  # 0 .. L_i - 1
        return (digits * self.basis).sum(-1)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        digits = (indices[..., None] // self.basis) % torch.tensor(self.levels, device=indices.device)
        return (digits.float() - self.scale) / self.scale

    def implicit_codebook(self) -> torch.Tensor:
        """All prod(L_i) codes, (codebook_size, d), in index order."""
        return self.indices_to_codes(torch.arange(self.codebook_size))
