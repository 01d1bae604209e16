"""Variational autoencoders (Kingma & Welling 2014, arXiv:1312.6114).

log p(x) >= ELBO = E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z)); training minimises -ELBO.
Every likelihood here keeps all its constants, so the bounds are real log-densities in nats.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .base import Implicit, LikelihoodBased
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
    p(x|z) = N(m(z), diag sigma(z)^2) whose variance is learned.

    The decoder likelihood is a pair of hooks (decoder_log_prob, decoder_sample); BernoulliVAE
    overrides them for binary data."""

    name = "vae"
    Config = VAEConfig
    decoder_params_per_dim = 2  # mean and log std

    def __init__(self, event_shape, config: VAEConfig | None = None):
        config = config or self.Config()
        super().__init__(event_shape, config)
        d, k = self.event_dim, config.latent_dim
        self.encoder = MLP(d, 2 * k, config.hidden, config.depth)
        self.decoder = MLP(k, self.decoder_params_per_dim * d, config.hidden, config.depth)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))  # training losses computed

    def encode(self, x):  # (B, D) -> mean, log_std, each (B, K)
        mean, log_std = self.encoder(x).chunk(2, dim=-1)
        return mean, log_std

    def decode(self, z):  # (..., K) -> mean, log_std, each (..., D)
        mean, log_std = self.decoder(z).chunk(2, dim=-1)
        return mean, log_std.clamp(min=self.config.min_log_std)

    # -- the decoder likelihood p(x|z): override these two for another observation model -------
    def decoder_log_prob(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) in nats, summed over dimensions: x (B, D), z (..., B, K) -> (..., B)."""
        return gaussian_log_prob(x, *self.decode(z))

    def decoder_sample(self, z: torch.Tensor) -> torch.Tensor:
        mean, log_std = self.decode(z)
        return mean + log_std.exp() * torch.randn_like(mean)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Validate a batch and flatten it to (B, D)."""
        return self.flat(self.check_input(x))

    # -- bounds ------------------------------------------------------------------------------
    def elbo_terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(E_q log p(x|z), KL(q(z|x) || p(z))) per example, one reparameterised z: (B, *E) -> (B,), (B,).

        The first is minus the distortion, the second the rate (Alemi et al. 2018, arXiv:1711.00464)."""
        x = self.preprocess(x)
        mean, log_std = self.encode(x)
        z = mean + log_std.exp() * torch.randn_like(mean)  # reparameterisation trick
        return self.decoder_log_prob(x, z), kl_to_standard_normal(mean, log_std)

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
        """-ELBO averaged over the batch. While training, the KL term is weighted by kl_weight()
        (the warm-up); in eval mode this is always the true negative ELBO (nats per example)."""
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
        x = self.preprocess(x)
        mean, log_std = self.encode(x)
        z = mean + log_std.exp() * torch.randn(k, *mean.shape, device=x.device, dtype=x.dtype)  # (k, B, K)
        log_joint = self.decoder_log_prob(x, z) + gaussian_log_prob(z, torch.zeros_like(z), torch.zeros_like(z))
        log_q = gaussian_log_prob(z, mean, log_std)
        return torch.logsumexp(log_joint - log_q, dim=0) - math.log(k)

    @torch.no_grad()
    def sample(self, n, steps=None):
        n = self.check_n(n)
        z = torch.randn(n, self.config.latent_dim, device=self.device, dtype=self.dtype)
        return self.unflat(self.decoder_sample(z))


@dataclass
class BetaVAEConfig(VAEConfig):
    beta: float = 4.0  # weight of the KL (rate) term; 1 is the plain VAE


class BetaVAE(VAE):
    """beta-VAE (Higgins et al. 2017): minimise distortion + beta * rate. beta traces the
    rate-distortion curve of the model class (Alemi et al. 2018); log_prob stays the true bound."""

    name = "beta_vae"
    Config = BetaVAEConfig

    def kl_weight(self) -> float:
        return self.config.beta * super().kl_weight()


@dataclass
class BernoulliVAEConfig(VAEConfig):
    latent_dim: int = 8
    hidden: int = 256
    depth: int = 2
    kl_warmup_steps: int = 0


class BernoulliVAE(VAE):
    """VAE for binary data: p(x|z) = prod_i Bernoulli(x_i; sigmoid(logit_i(z)))."""

    name = "bernoulli_vae"
    Config = BernoulliVAEConfig
    decoder_params_per_dim = 1  # one logit per dimension

    def preprocess(self, x):
        x = super().preprocess(x)
        if not torch.all((x == 0) | (x == 1)):
            raise ValueError("BernoulliVAE models binary data: every value must be 0 or 1 (binarize first)")
        return x

    def decoder_log_prob(self, x, z):
        logits = self.decoder(z)
        return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)

    def decoder_sample(self, z):
        return torch.bernoulli(torch.sigmoid(self.decoder(z)))


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


# --------------------------------------------------------------------------------------------
# Quantized autoencoders: VQ-VAE (van den Oord et al. 2017, arXiv:1711.00937) and FSQ
# --------------------------------------------------------------------------------------------
def code_perplexity(indices: torch.Tensor, codebook_size: int) -> float:
    """exp(entropy) of the empirical code distribution: the number of codes effectively used."""
    p = torch.bincount(indices.flatten(), minlength=codebook_size).double()
    p = p / p.sum()
    return math.exp(-(p[p > 0] * p[p > 0].log()).sum().item())


@dataclass
class VQVAEConfig:
    latents: int = 4  # code vectors per example
    code_dim: int = 4
    codebook_size: int = 64
    hidden: int = 256
    depth: int = 2
    commitment: float = 0.25  # beta of van den Oord et al. 2017, eq. 3
    restart_every: int = 200  # training steps between dead-code restarts (0: never restart)


class VQVAE(Implicit):
    """Deterministic autoencoder with a learned codebook between encoder and decoder.

    Loss (van den Oord et al. 2017, eq. 3), with sg = stop-gradient and e the nearest code:
        |x - dec(z_q)|^2  +  |sg[z_e] - e|^2  +  commitment * |z_e - sg[e]|^2,
        z_q = z_e + sg[e - z_e]  (straight-through: the decoder sees e, the encoder gets its gradient)
    so the decoder learns from reconstruction only, the codebook from the codebook term only,
    and the encoder from reconstruction (through the straight-through copy) and commitment.
    Codes unused for `restart_every` steps are restarted on random encoder outputs.
    Sampling draws each position's code from its training frequency (an independent prior;
    an autoregressive prior over codes does better, as later lectures show)."""

    name = "vqvae"
    Config = VQVAEConfig

    def __init__(self, event_shape, config: VQVAEConfig | None = None):
        config = config or self.Config()
        super().__init__(event_shape, config)
        c = config
        self.encoder = MLP(self.event_dim, c.latents * c.code_dim, c.hidden, c.depth)
        self.decoder = MLP(c.latents * c.code_dim, self.event_dim, c.hidden, c.depth)
        self.codebook = torch.nn.Embedding(self.num_codes, c.code_dim)  # initialised N(0, I)
        self.register_buffer("usage", torch.zeros(c.latents, self.num_codes))  # training counts
        self.register_buffer("window_usage", torch.zeros(self.num_codes))  # since the last restart
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("restarts", torch.zeros((), dtype=torch.long))  # codes restarted so far

    @property
    def num_codes(self) -> int:
        return self.config.codebook_size

    def encode(self, x):  # (B, *E) -> z_e (B, m, d)
        x = self.flat(self.check_input(x))
        return self.encoder(x).reshape(len(x), self.config.latents, self.config.code_dim)

    def quantize(self, z_e):
        """z_e (B, m, d) -> (z_q with straight-through gradient, code indices (B, m), aux losses)."""
        flat = z_e.reshape(-1, z_e.shape[-1])
        indices = torch.cdist(flat, self.codebook.weight).argmin(1).reshape(z_e.shape[:-1])
        e = self.codebook(indices)
        codebook_loss = (z_e.detach() - e).pow(2).sum(-1).mean()
        commitment_loss = (z_e - e.detach()).pow(2).sum(-1).mean()
        z_q = z_e + (e - z_e).detach()
        return z_q, indices, {"codebook": codebook_loss, "commitment": self.config.commitment * commitment_loss}

    def decode(self, z_q):  # (B, m, d) -> (B, *E), values in (0, 1)
        return self.unflat(torch.sigmoid(self.decoder(z_q.reshape(len(z_q), -1))))

    def codes_to_latents(self, indices):  # (B, m) -> (B, m, d)
        return self.codebook(indices)

    def loss_terms(self, x) -> dict[str, torch.Tensor]:
        """Each term of the loss separately (all scalars), plus the code indices used."""
        z_e = self.encode(x)
        z_q, indices, aux = self.quantize(z_e)
        x = self.check_input(x)
        reconstruction = (self.decode(z_q) - x).pow(2).reshape(len(x), -1).sum(1).mean()
        return {"reconstruction": reconstruction, **aux, "indices": indices, "z_e": z_e}

    def loss(self, x):
        terms = self.loss_terms(x)
        if self.training and torch.is_grad_enabled():
            self.track_usage(terms["indices"], terms["z_e"])
        return sum(v for k, v in terms.items() if k not in ("indices", "z_e"))

    @torch.no_grad()
    def track_usage(self, indices, z_e):
        for position in range(indices.shape[1]):
            self.usage[position] += torch.bincount(indices[:, position], minlength=self.num_codes).to(self.usage)
        self.window_usage += torch.bincount(indices.flatten(), minlength=self.num_codes).to(self.window_usage)
        self.updates += 1
        every = self.config.restart_every
        if every and self.updates.item() % every == 0:
            dead = (self.window_usage == 0).nonzero().flatten()
            if len(dead):
                candidates = z_e.reshape(-1, z_e.shape[-1])
                pick = torch.randint(len(candidates), (len(dead),), device=candidates.device)
                self.codebook.weight[dead] = candidates[pick]
                self.restarts += len(dead)
            self.window_usage.zero_()

    @torch.no_grad()
    def reconstruct(self, x):
        z_q, indices, _ = self.quantize(self.encode(x))
        return self.decode(z_q), indices

    @torch.no_grad()
    def sample(self, n, steps=None):
        n = self.check_n(n)
        if self.usage.sum() == 0:
            raise RuntimeError("sample() draws codes with their training frequencies: train the model first")
        probs = self.usage / self.usage.sum(1, keepdim=True)  # (m, K)
        indices = torch.stack([torch.multinomial(p, n, replacement=True) for p in probs], dim=1)  # (n, m)
        return self.decode(self.codes_to_latents(indices))


@dataclass
class FSQVAEConfig(VQVAEConfig):
    levels: tuple[int, ...] = (4, 4, 4)  # FSQ levels; code_dim and codebook_size follow from them
    code_dim: int = 3
    codebook_size: int = 64
    restart_every: int = 0  # FSQ has no dead codes to restart


class FSQVAE(VQVAE):
    """The VQ-VAE with its learned codebook replaced by finite scalar quantization (Mentzer et
    al. 2023): no codebook or commitment loss, no restarts, prod(levels) codes."""

    name = "fsq_vae"
    Config = FSQVAEConfig

    def __init__(self, event_shape, config: FSQVAEConfig | None = None):
        config = config or self.Config()
        levels = tuple(config.levels)
        if config.code_dim != len(levels) or config.codebook_size != math.prod(levels):
            raise ValueError(f"FSQ levels {levels} need code_dim={len(levels)} and codebook_size="
                             f"{math.prod(levels)}, got {config.code_dim} and {config.codebook_size}")
        super().__init__(event_shape, config)
        del self.codebook
        # A non-affine batch normalisation before the bound keeps the encoder outputs in tanh's
        # responsive range. Without it, early in training Adam pushes every example's latent the
        # same way into saturation, and the model collapses onto a handful of codes (measured on
        # the 8x8 digits: 4 of 64 codes used, reconstruction no better than the mean image).
        self.normalise = torch.nn.BatchNorm1d(len(levels), affine=False)
        self.fsq = FSQ(levels)

    def quantize(self, z_e):
        z = self.normalise(z_e.reshape(-1, z_e.shape[-1])).reshape(z_e.shape)
        z_q = self.fsq(z)
        return z_q, self.fsq.codes_to_indices(z_q.detach()), {}

    def codes_to_latents(self, indices):
        return self.fsq.indices_to_codes(indices).to(self.dtype)
