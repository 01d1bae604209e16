"""VAR (Tian, Jiang, Yuan, Peng & Wang 2024, "Visual Autoregressive Modeling: Scalable Image Generation
via Next-Scale Prediction", arXiv:2404.02905) at toy scale: next-*scale* prediction instead of next pixel.

Stage 1, a multi-scale residual tokenizer (VAR Sec. 3.2, Algorithms 1 and 2). An encoder maps an image
to a feature map f (C, 8, 8). For the scales s = 1, 2, 4, 8 in turn, the residual f - f_hat is
area-downsampled to s x s, each of its s^2 vectors is snapped to the nearest of K codebook vectors
shared by all scales (the token map of that scale), and the quantized map is upsampled to 8 x 8,
passed through a small convolution phi_s (residual, as VAR's phi) and added to f_hat. The decoder
reads f_hat. An image becomes 1 + 4 + 16 + 64 = 85 tokens, coarse to fine; the first scales carry
the layout, the last ones the detail. Trained like a VQ-VAE (van den Oord et al. 2017): the
reconstruction error plus, per scale, the codebook and commitment terms, with straight-through
gradients.

Stage 2, a transformer over the token maps in order of scale. All s^2 tokens of a scale are predicted
at once from every token of the coarser scales: attention is block-causal (a position sees its own
scale's block and the blocks before it). The input at scale k is what has been drawn so far, f_hat
after the scales before k, area-downsampled to the k-th size (a learned start vector for the first
scale). So p(tokens) = prod_k p(token map k | maps < k), each map's tokens independent given the
coarser ones; sampling takes one transformer evaluation per scale (4 here) and one of the decoder,
against 64 for a pixel-by-pixel model.

One `fit`, two phases (as unigm.diffusion.latent): the first `tokenizer_steps` optimiser steps train
the tokenizer, then it is frozen and the transformer trains on its tokens. The likelihood is exact for
tokens (`token_log_prob`); the decoder is deterministic, so there is no density of images.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..base import Implicit
from ..registry import register
from ..tensors import ShapeError
from .transformer import transformer_stack


def _conv_net(in_channels: int, out_channels: int, hidden: int) -> nn.Sequential:
    """3x3, SiLU, 3x3, SiLU, 1x1 ('same' padding): the tokenizer's encoder and decoder."""
    return nn.Sequential(nn.Conv2d(in_channels, hidden, 3, padding=1), nn.SiLU(),
                         nn.Conv2d(hidden, hidden, 3, padding=1), nn.SiLU(), nn.Conv2d(hidden, out_channels, 1))


class MultiScaleTokenizer(nn.Module):
    """Images (B, 1, H, W) <-> token maps [(B, s^2) for s in scales], through the residual scheme above."""

    def __init__(self, size: int, scales: tuple[int, ...], codebook_size: int, code_dim: int, hidden: int,
                 commitment: float):
        super().__init__()
        if scales[0] != 1 or scales[-1] != size or any(a >= b for a, b in zip(scales, scales[1:])):
            raise ValueError(f"scales must increase from 1 to the image size {size}, got {scales}")
        self.size, self.scales, self.commitment = size, tuple(scales), commitment
        self.encoder = _conv_net(1, code_dim, hidden)
        self.decoder = _conv_net(code_dim, 1, hidden)
        self.codebook = nn.Parameter(torch.randn(codebook_size, code_dim))
        self.phi = nn.ModuleList(nn.Conv2d(code_dim, code_dim, 3, padding=1) for _ in scales)

    def embed(self, k: int, tokens: torch.Tensor) -> torch.Tensor:
        """Scale k's token map (B, s^2) -> its contribution to f_hat, (B, C, size, size). Functional
        calls only, so that samplers.count_nfe counts the transformer and the decoder, not this."""
        s = self.scales[k]
        e = F.embedding(tokens, self.codebook).transpose(1, 2).reshape(len(tokens), -1, s, s)
        return self.contribution(k, e)

    def contribution(self, k: int, e: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(e, size=(self.size, self.size), mode="bilinear", align_corners=False) if e.shape[-1] != self.size else e
        return up + F.conv2d(up, self.phi[k].weight, self.phi[k].bias, padding=1)  # residual phi

    def down(self, f: torch.Tensor, k: int) -> torch.Tensor:
        s = self.scales[k]
        return F.adaptive_avg_pool2d(f, s) if s != f.shape[-1] else f

    def quantize(self, f: torch.Tensor):
        """The encoder's map f (B, C, size, size) -> (f_hat with straight-through gradients, token maps,
        the codebook and commitment losses summed over scales)."""
        f_hat = torch.zeros_like(f)
        tokens, codebook_loss, commitment_loss = [], 0.0, 0.0
        for k in range(len(self.scales)):
            r = self.down(f - f_hat, k)  # (B, C, s, s)
            flat = r.permute(0, 2, 3, 1).reshape(-1, r.shape[1])
            index = torch.cdist(flat, self.codebook).argmin(1)
            e = self.codebook[index]
            codebook_loss = codebook_loss + (flat.detach() - e).pow(2).sum(1).mean()
            commitment_loss = commitment_loss + (flat - e.detach()).pow(2).sum(1).mean()
            e = (flat + (e - flat).detach()).reshape(r.shape[0], r.shape[2], r.shape[3], -1).permute(0, 3, 1, 2)
            f_hat = f_hat + self.contribution(k, e)
            tokens.append(index.reshape(len(f), -1))
        return f_hat, tokens, codebook_loss, self.commitment * commitment_loss

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        f_hat, _, codebook_loss, commitment_loss = self.quantize(self.encoder(x))
        reconstruction = (torch.sigmoid(self.decoder(f_hat)) - x).pow(2).flatten(1).sum(1).mean()
        return reconstruction + codebook_loss + commitment_loss

    @torch.no_grad()
    def tokenize(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.quantize(self.encoder(x))[1]

    def decode(self, f_hat: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(f_hat))


@dataclass
class VARConfig:
    scales: tuple[int, ...] = (1, 2, 4, 8)
    codebook_size: int = 32  # K, shared by all scales
    code_dim: int = 8  # C
    hidden: int = 32  # the tokenizer's convolutions
    commitment: float = 0.25
    width: int = 64  # the transformer
    depth: int = 2
    heads: int = 4
    dropout: float = 0.1
    tokenizer_steps: int = 1500  # the first phase of fit

    def __post_init__(self):
        self.scales = tuple(int(s) for s in self.scales)


@register("var")  # an image model: no 2D recipe
class VAR(Implicit):
    """Next-scale prediction: a multi-scale residual tokenizer, then a block-causal transformer over
    its token maps (see the module doc). sample(n) costs len(scales) transformer evaluations + 1 decoder."""

    Config = VARConfig

    def __init__(self, event_shape, config: VARConfig | None = None):
        super().__init__(event_shape, config or self.Config())
        c = self.config
        if len(self.event_shape) != 3 or self.event_shape[0] != 1 or self.event_shape[1] != self.event_shape[2]:
            raise ShapeError(f"VAR models square one-channel images: event_shape (1, S, S), got {self.event_shape}")
        self.tokenizer = MultiScaleTokenizer(self.event_shape[1], c.scales, c.codebook_size, c.code_dim, c.hidden,
                                             c.commitment)
        self.lengths = [s * s for s in c.scales]
        block = torch.repeat_interleave(torch.arange(len(c.scales)), torch.tensor(self.lengths))
        self.register_buffer("block_mask", torch.where(block[None, :] <= block[:, None], 0.0, -torch.inf),
                             persistent=False)  # (L, L): position i sees the blocks up to its own
        self.start = nn.Parameter(torch.zeros(c.width))
        self.embed_features = nn.Linear(c.code_dim, c.width)
        self.position = nn.Parameter(0.02 * torch.randn(sum(self.lengths), c.width))
        self.blocks = transformer_stack(c.width, c.depth, c.heads, c.dropout)
        self.norm = nn.LayerNorm(c.width)
        self.head = nn.Linear(c.width, c.codebook_size)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))  # optimiser steps taken

    @property
    def in_transformer_phase(self) -> bool:
        return int(self.updates) >= self.config.tokenizer_steps

    # -- the transformer ---------------------------------------------------------------------------
    def inputs(self, token_maps: list[torch.Tensor], batch: int) -> torch.Tensor:
        """The transformer's input features for the given (first few) token maps: (B, L, C), with the
        scales after them left as zeros (the mask keeps them from mattering). Scale k's block holds
        f_hat after scales < k, downsampled to scale k's size; the first block is replaced by `start`."""
        t = self.tokenizer
        f_hat = torch.zeros(batch, self.config.code_dim, t.size, t.size, device=self.device, dtype=self.dtype)
        parts = []
        for k, length in enumerate(self.lengths):
            if k > 0 and k <= len(token_maps):
                f_hat = f_hat + t.embed(k - 1, token_maps[k - 1])
                parts.append(t.down(f_hat, k).flatten(2).transpose(1, 2))
            else:
                parts.append(torch.zeros(batch, length, self.config.code_dim, device=self.device, dtype=self.dtype))
        return torch.cat(parts, dim=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, L, C) input features -> (B, L, K) logits of every scale's tokens, block-causally."""
        h = self.embed_features(features)
        h = torch.cat([self.start.expand(len(h), 1, -1), h[:, 1:]], dim=1) + self.position
        return self.head(self.norm(self.blocks(h, mask=self.block_mask)))

    def tokens_log_prob(self, token_maps: list[torch.Tensor]) -> torch.Tensor:
        """Exact log p(token maps) in nats under the transformer, [(B, s^2) per scale] -> (B,)."""
        with torch.no_grad():  # the tokenizer is frozen: no gradient reaches its codebook or phi
            features = self.inputs(token_maps, len(token_maps[0]))
        logits = self(features)
        return -F.cross_entropy(logits.transpose(1, 2), torch.cat(token_maps, dim=1), reduction="none").sum(1)

    def token_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p of the tokens of images x, (B, 1, S, S) -> (B,): a likelihood of the tokenizer's codes,
        not of the image (the decoder is deterministic)."""
        return self.tokens_log_prob(self.tokenizer.tokenize(self.check_input(x)))

    # -- training ----------------------------------------------------------------------------------
    def loss(self, x, *, generator=None):
        """The tokenizer's loss for the first tokenizer_steps optimiser steps, then the transformer's
        negative log-likelihood of the frozen tokenizer's tokens (nats per image)."""
        x = self.check_input(x)
        if not self.in_transformer_phase:
            return self.tokenizer.loss(x)
        return -self.token_log_prob(x).mean()

    def after_update(self, *batch):
        self.updates += 1

    # -- sampling ----------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n, steps=None, *, generator=None):
        """Scale by scale: the transformer gives every token of the next scale at once (each drawn
        from its softmax), then the decoder maps f_hat to images in (0, 1). `steps` must be None."""
        if steps is not None:
            raise ValueError(f"VAR samples one scale per step, {len(self.lengths)} steps; steps must be None, "
                             f"got {steps!r}")
        n = self.check_n(n)
        token_maps = []
        offsets = [sum(self.lengths[:k]) for k in range(len(self.lengths))]
        for k, length in enumerate(self.lengths):
            logits = self(self.inputs(token_maps, n))[:, offsets[k]:offsets[k] + length]  # (n, s^2, K)
            probs = torch.softmax(logits.double(), dim=-1).reshape(-1, self.config.codebook_size)
            token_maps.append(torch.multinomial(probs, 1, generator=generator).reshape(n, length))
        return self.decode_tokens(token_maps)

    @torch.no_grad()
    def decode_tokens(self, token_maps: list[torch.Tensor]) -> torch.Tensor:
        """Token maps [(B, s^2) per scale] -> images (B, 1, S, S) in (0, 1)."""
        f_hat = sum(self.tokenizer.embed(k, tokens) for k, tokens in enumerate(token_maps))
        return self.tokenizer.decode(f_hat)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The tokenizer's round trip: images -> 85 tokens -> images."""
        return self.decode_tokens(self.tokenizer.tokenize(self.check_input(x)))
