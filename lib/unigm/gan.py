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
    critic_updates: int = 1  # discriminator steps per generator step
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas of both players
    lr_generator: float | None = None  # None: the lr given to fit()
    lr_discriminator: float | None = None


class GAN(Adversarial, Implicit):
    """Non-saturating GAN with MLP generator and discriminator, and an R1 penalty on the
    discriminator (without it, training on 8 gaussians drops modes for some seeds).

    Variants override the hooks discriminator_loss, generator_loss and penalty (and
    after_critic_step); the trainer alternates the two players declared by players()."""

    name = "gan"
    Config = GANConfig
    relativistic = False  # whether generator_loss needs D(real) (R3GAN's pairing loss)

    def __init__(self, event_shape, config: GANConfig | None = None):
        config = config or self.Config()
        super().__init__(event_shape, config)
        self.generator = self.build_generator()
        self.discriminator = self.build_discriminator()

    def build_generator(self) -> nn.Module:
        c = self.config
        return MLP(c.noise_dim, self.event_dim, c.hidden, c.depth, activation=partial(nn.LeakyReLU, 0.2))

    def build_discriminator(self) -> nn.Module:
        c = self.config
        return MLP(self.event_dim, 1, c.hidden, c.depth, activation=partial(nn.LeakyReLU, 0.2))

    def generate(self, n: int) -> torch.Tensor:  # (n, D), differentiable
        return self.generator(torch.randn(n, self.config.noise_dim, device=self.device, dtype=self.dtype))

    # -- the hooks variants override ----------------------------------------------------------
    def discriminator_loss(self, real_logits, fake_logits):
        """BCE(D(x), 1) + BCE(D(G(z)), 0)."""
        return discriminator_loss(real_logits, fake_logits)

    def generator_loss(self, fake_logits, real_logits=None):
        """The non-saturating loss -log D(G(z))."""
        return generator_loss_non_saturating(fake_logits)

    def penalty(self, real, fake, real_logits, fake_logits):
        """gamma/2 R1 (zero-centred gradient penalty on real data)."""
        return 0.5 * self.config.r1_gamma * r1_penalty(real_logits, real) if self.config.r1_gamma else 0.0

    def needs_input_grad(self) -> bool:
        return self.config.r1_gamma > 0

    after_critic_step = None  # e.g. weight clipping

    # -- the two players ----------------------------------------------------------------------
    def discriminator_objective(self, x):
        """What the discriminator minimises: discriminator_loss + penalty."""
        grad = self.needs_input_grad()
        real = self.flat(self.check_input(x)).detach().requires_grad_(grad)
        with torch.no_grad():
            fake = self.generate(len(real))
        fake.requires_grad_(grad)
        real_logits, fake_logits = self.discriminator(real), self.discriminator(fake)
        return self.discriminator_loss(real_logits, fake_logits) + self.penalty(real, fake, real_logits, fake_logits)

    def generator_objective(self, x):
        """What the generator minimises: generator_loss on fresh samples."""
        fake_logits = self.discriminator(self.generate(len(x)))
        real_logits = self.discriminator(self.flat(self.check_input(x))) if self.relativistic else None
        return self.generator_loss(fake_logits, real_logits)

    def loss(self, x):
        """The discriminator's loss (without penalty) on real data and fresh fakes; for this GAN at
        the optimal discriminator it equals log 4 - 2 JSD(p_data || p_g) (Goodfellow et al. 2014)."""
        x = self.flat(self.check_input(x))
        with torch.no_grad():
            fake = self.generate(len(x))
        return self.discriminator_loss(self.discriminator(x), self.discriminator(fake))

    def players(self):
        c = self.config
        return [Player("discriminator", self.discriminator, self.discriminator_objective, updates=c.critic_updates,
                       lr=c.lr_discriminator, betas=c.betas, after_step=self.after_critic_step),
                Player("generator", self.generator, self.generator_objective, lr=c.lr_generator, betas=c.betas)]

    @torch.no_grad()
    def sample(self, n, steps=None):
        return self.unflat(self.generate(self.check_n(n)))


@dataclass
class MinimaxGANConfig(GANConfig):
    r1_gamma: float = 0.0


class MinimaxGAN(GAN):
    """The original minimax game: the generator minimises log(1 - D(G(z))), whose gradient
    vanishes when D confidently rejects the samples (Goodfellow et al. 2014, Sec. 3)."""

    name = "minimax_gan"
    Config = MinimaxGANConfig

    def generator_loss(self, fake_logits, real_logits=None):
        return -F.softplus(fake_logits).mean()  # log(1 - sigmoid(l)) = -softplus(l)


# --------------------------------------------------------------------------------------------
# Wasserstein GANs (Arjovsky et al. 2017, arXiv:1701.07875): the critic estimates
# W1 = sup_{|f|_L <= 1} E_data f - E_model f (Kantorovich-Rubinstein duality), an integral
# probability metric, not an f-divergence. Three ways to keep the critic 1-Lipschitz.
# --------------------------------------------------------------------------------------------
@dataclass
class WGANConfig(GANConfig):
    r1_gamma: float = 0.0
    critic_updates: int = 5
    betas: tuple[float, float] = (0.0, 0.9)  # as in Gulrajani et al. 2017
    clip: float = 0.1  # weight clipping bound (WGANClip); the paper's 0.01 starves these small 2D critics
    gp_lambda: float = 1.0  # gradient-penalty weight (WGANGP); the paper's 10 needs ~2x the steps on 2D toys


class WGANClip(GAN):
    """WGAN with weight clipping: every critic weight is clamped to [-c, c] after each step."""

    name = "wgan_clip"
    Config = WGANConfig

    def discriminator_loss(self, real_logits, fake_logits):
        return fake_logits.mean() - real_logits.mean()  # -(W1 estimate)

    def generator_loss(self, fake_logits, real_logits=None):
        return -fake_logits.mean()

    def after_critic_step(self):
        with torch.no_grad():
            for p in self.discriminator.parameters():
                p.clamp_(-self.config.clip, self.config.clip)


class WGANGP(WGANClip):
    """WGAN-GP (Gulrajani et al. 2017, arXiv:1704.00028): no clipping; the penalty
    lambda E (|grad D(x_hat)| - 1)^2 on random interpolates x_hat of real and fake points."""

    name = "wgan_gp"
    after_critic_step = None

    def penalty(self, real, fake, real_logits, fake_logits):
        eps = torch.rand(len(real), 1, device=real.device, dtype=real.dtype)
        x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.discriminator(x_hat).sum(), x_hat, create_graph=True)
        return self.config.gp_lambda * (grad.norm(dim=1) - 1).pow(2).mean()


class WGANSN(WGANClip):
    """WGAN whose critic layers are spectrally normalised (Miyato et al. 2018, arXiv:1802.05957):
    each weight is divided by its largest singular value (one power iteration per step), so
    each layer, and with 1-Lipschitz activations the whole critic, is 1-Lipschitz."""

    name = "wgan_sn"
    after_critic_step = None

    def build_discriminator(self):
        critic = super().build_discriminator()
        for module in critic.modules():
            if isinstance(module, nn.Linear):
                nn.utils.parametrizations.spectral_norm(module)
        return critic


# --------------------------------------------------------------------------------------------
# R3GAN (Huang, Gokaslan, Kuleshov & Tompkin 2024, arXiv:2501.05441)
# --------------------------------------------------------------------------------------------
@dataclass
class R3GANConfig(GANConfig):
    r1_gamma: float = 0.1  # gamma of both R1 (real) and R2 (fake) penalties


class R3GAN(GAN):
    """Relativistic pairing loss: the discriminator scores each real sample against a fake one,
    L_D = E softplus(D(G(z)) - D(x)),  L_G = E softplus(D(x) - D(G(z))),
    regularised by zero-centred gradient penalties on both real (R1) and fake (R2) data."""

    name = "r3gan"
    Config = R3GANConfig
    relativistic = True

    def discriminator_loss(self, real_logits, fake_logits):
        return F.softplus(fake_logits - real_logits).mean()

    def generator_loss(self, fake_logits, real_logits=None):
        return F.softplus(real_logits - fake_logits).mean()

    def penalty(self, real, fake, real_logits, fake_logits):
        gamma = self.config.r1_gamma
        return 0.5 * gamma * (r1_penalty(real_logits, real) + r1_penalty(fake_logits, fake))  # R1 + R2


# --------------------------------------------------------------------------------------------
# A toy StyleGAN (Karras, Laine & Aila 2019, arXiv:1812.04948)
# --------------------------------------------------------------------------------------------
class AdaIN(nn.Module):
    """Adaptive instance normalisation: normalise the features of each example, then scale and
    shift them with a style computed from w."""

    def __init__(self, channels: int, w_dim: int):
        super().__init__()
        self.style = nn.Linear(w_dim, 2 * channels)

    def forward(self, h, w):  # h (B, C), w (B, W)
        scale, shift = self.style(w).chunk(2, dim=-1)
        normalised = (h - h.mean(-1, keepdim=True)) / (h.std(-1, keepdim=True) + 1e-5)
        return (1 + scale) * normalised + shift


class StyleGenerator(nn.Module):
    """z -> w by a mapping MLP; a learned constant is transformed by layers modulated by
    AdaIN(w); a linear head gives the sample."""

    def __init__(self, noise_dim: int, w_dim: int, hidden: int, depth: int, out_dim: int, mapping_depth: int):
        super().__init__()
        self.mapping = MLP(noise_dim, w_dim, hidden, mapping_depth, activation=partial(nn.LeakyReLU, 0.2))
        self.constant = nn.Parameter(torch.randn(hidden))
        self.layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth))
        self.styles = nn.ModuleList(AdaIN(hidden, w_dim) for _ in range(depth))
        self.head = nn.Linear(hidden, out_dim)

    def synthesize(self, w):  # (B, W) -> (B, out)
        h = self.constant.expand(len(w), -1)
        for layer, style in zip(self.layers, self.styles):
            h = style(F.leaky_relu(layer(h), 0.2), w)
        return self.head(h)

    def forward(self, z):
        return self.synthesize(self.mapping(z))


@dataclass
class StyleGANConfig(GANConfig):
    r1_gamma: float = 1.0  # with 0.1, 1 of 3 seeds collapsed onto one mode of 8 gaussians (measured)
    w_dim: int = 8
    mapping_depth: int = 3


class StyleGAN(GAN):
    """Non-saturating GAN + R1 with a style-based generator; generator.mapping(z) gives the W
    code and generator.synthesize(w) the sample, for interpolation in W instead of Z."""

    name = "stylegan"
    Config = StyleGANConfig

    def build_generator(self):
        c = self.config
        return StyleGenerator(c.noise_dim, c.w_dim, c.hidden, c.depth, self.event_dim, c.mapping_depth)


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


@dataclass
class FGANConfig(GANConfig):
    divergence: str = "jensen_shannon"  # a key of F_DIVERGENCES; R1 stays on (TV diverges without it)


class FGAN(GAN):
    """f-GAN (Nowozin et al. 2016): the discriminator V maximises the variational lower bound
    E_data[T(x)] - E_model[f*(T(x))], T = activation(V), of D_f(p_data || p_model); the
    generator minimises it (the saddle-point objective, their eq. 6)."""

    name = "f_gan"
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

    def generator_loss(self, fake_logits, real_logits=None):
        return -self.f.conjugate(self.f.activation(fake_logits)).mean()
