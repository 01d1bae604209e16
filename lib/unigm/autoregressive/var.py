"""VAR (Tian, Jiang, Yuan, Peng & Wang 2024, "Visual Autoregressive Modeling: Scalable Image Generation via
Next-Scale Prediction", arXiv:2404.02905) at toy scale: next-*scale* prediction instead of next pixel.

Stage 1, a multi-scale residual tokenizer (VAR Sec. 3.2, Algorithms 1 and 2). A convolutional encoder maps
an image to a feature map f (C, S, S), S = scales[-1] (the default: 4 x 4 for an 8 x 8 digit, then a
decoder back to 8 x 8). For the scales s_1 < s_2 < ... < s_K = S in turn (default 1, 2, 3, 4),
    r_k     = Q_k(area-downsample of the residual f - f_hat to s_k x s_k)       the token map of scale k
    f_hat  += phi_k(upsample of r_k to S x S)                                 (bilinear; phi_k a residual 3x3 conv)
and the decoder reads f_hat, the sum of every scale's upsampled quantized map. The first scales carry the
layout, the last ones the detail.

Deviation from the paper: VAR quantizes every scale with one shared VQ codebook. On 1,257 digits that
codebook collapsed (an earlier attempt: 6 codes in use, then, with dead-code restarts, 1, 2, 21 and 29
codes per scale and nothing carried by the coarse scales). Here Q_k is finite scalar quantization (FSQ,
Mentzer et al. 2023, arXiv:2309.15505; `unigm.nets.FSQ`) between a per-scale 1x1 projection in
(C -> d) and out (d -> C): no codebook, so nothing can collapse or die, no codebook or commitment loss,
and the projections learn each scale's range (the residual shrinks from scale to scale). All scales share
the FSQ levels, so a token is one of prod(levels) indices at every scale, as in VAR's shared vocabulary.
The tokenizer is trained on the reconstruction error alone, gradients straight through the rounding.

Stage 2, a transformer over the token maps in order of scale. All s_k^2 tokens of scale k are predicted at
once from every token of the coarser scales: attention is block-causal (a position attends to its own
scale's block and to the blocks of coarser scales, never to finer ones). The input at scale k is, as in
VAR, what has been drawn so far, f_hat after scales < k, area-downsampled to s_k x s_k (a learned start
vector for the first scale). So

    p(tokens) = prod_k p(token map k | maps < k),  each map's tokens independent given the coarser maps,

the likelihood of an image's tokens is exact (`token_log_prob`), and sampling takes one transformer
evaluation per scale (4 here, `sample_tokens`) plus one of the decoder, against one per token for a
raster-order model. Tokens are drawn from the plain softmax (the paper's top-k / top-p and classifier-free
guidance are left out: there are no classes here). The decoder is deterministic: no density of images
(`log_prob` raises).

One `fit`, two phases (as unigm.diffusion.latent): the first `tokenizer_steps` optimiser steps train the
tokenizer, then it is frozen (its parameters get no gradient: the features are computed under no_grad)
and the transformer trains on its tokens, with the negative log-likelihood in nats per image.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..base import Implicit
from ..nets import FSQ, transformer_stack
from ..registry import register
from ..tensors import ShapeError


class MultiScaleTokenizer(nn.Module):
    """Images (B, 1, H, H) <-> token maps [(B, s_k^2) for each scale], through the residual scheme above."""

    def __init__(self, image_size: int, scales: tuple[int, ...], levels: tuple[int, ...], channels: int,
                 hidden: int):
        super().__init__()
        size = scales[-1]
        if scales[0] != 1 or any(a >= b for a, b in zip(scales, scales[1:])):
            raise ValueError(f"scales must increase strictly from 1, got {scales}")
        if size not in (image_size, image_size // 2) or image_size % size:
            raise ValueError(f"the finest scale must be the image size {image_size} or half of it, got {size}")
        self.image_size, self.size, self.scales = image_size, size, tuple(scales)
        stride = image_size // size  # 1, or 2: the encoder halves the resolution and the decoder doubles it
        self.encoder = nn.Sequential(nn.Conv2d(1, hidden, 3, padding=1), nn.SiLU(),
                                     nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1), nn.SiLU(),
                                     nn.Conv2d(hidden, channels, 1))
        up = nn.ConvTranspose2d(hidden, hidden, 4, stride=2, padding=1) if stride == 2 else \
            nn.Conv2d(hidden, hidden, 3, padding=1)
        self.decoder = nn.Sequential(nn.Conv2d(channels, hidden, 3, padding=1), nn.SiLU(), up, nn.SiLU(),
                                     nn.Conv2d(hidden, 1, 3, padding=1))
        self.fsq = FSQ(levels)
        self.project_in = nn.ModuleList(nn.Conv2d(channels, self.fsq.dim, 1) for _ in scales)  # C -> d per scale
        self.project_out = nn.ModuleList(nn.Conv2d(self.fsq.dim, channels, 1) for _ in scales)  # d -> C
        self.phi = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in scales)

    @property
    def vocab(self) -> int:
        return self.fsq.codebook_size

    def down(self, f: torch.Tensor, k: int) -> torch.Tensor:
        """(B, C, S, S) -> (B, C, s_k, s_k) by area averaging."""
        s = self.scales[k]
        return f if s == f.shape[-1] else F.adaptive_avg_pool2d(f, s)

    def contribution(self, k: int, codes: torch.Tensor) -> torch.Tensor:
        """Scale k's FSQ codes (B, d, s_k, s_k) -> its term of f_hat, (B, C, S, S): project out, upsample,
        phi_k (residual). Functional calls, so that samplers.count_nfe counts whole networks, not these."""
        out, phi = self.project_out[k], self.phi[k]
        e = F.conv2d(codes, out.weight, out.bias)
        if e.shape[-1] != self.size:
            e = F.interpolate(e, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return e + F.conv2d(e, phi.weight, phi.bias, padding=1)

    def quantize(self, f: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The encoder's map f (B, C, S, S) -> (f_hat, gradients straight through the rounding; the FSQ codes
        of each scale, (B, d, s_k, s_k))."""
        f_hat, codes = torch.zeros_like(f), []
        for k in range(len(self.scales)):
            r = self.down(f - f_hat, k)  # (B, C, s, s): what the coarser scales left unexplained
            z = self.fsq(self.project_in[k](r).movedim(1, -1)).movedim(-1, 1)  # (B, d, s, s), on the grid
            f_hat = f_hat + self.contribution(k, z)
            codes.append(z)
        return f_hat, codes

    def codes_to_tokens(self, codes: list[torch.Tensor]) -> list[torch.Tensor]:
        return [self.fsq.codes_to_indices(z.movedim(1, -1)).flatten(1) for z in codes]  # (B, s^2) each

    def tokens_to_codes(self, tokens: list[torch.Tensor], dtype=torch.float32) -> list[torch.Tensor]:
        """[(B, s_k^2) indices] -> [(B, d, s_k, s_k) FSQ codes]."""
        return [self.fsq.indices_to_codes(t).to(dtype).transpose(1, 2).reshape(len(t), -1, s, s)
                for t, s in zip(tokens, self.scales)]

    def f_hat(self, codes: list[torch.Tensor]) -> torch.Tensor:
        """The decoder's input: the sum of every scale's contribution, (B, C, S, S)."""
        return sum(self.contribution(k, z) for k, z in enumerate(codes))

    def decode(self, f_hat: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(f_hat))  # (B, 1, H, H) in (0, 1)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Squared reconstruction error per image, averaged over the batch (FSQ needs no other term)."""
        f_hat, _ = self.quantize(self.encoder(x))
        return (self.decode(f_hat) - x).pow(2).flatten(1).sum(1).mean()

    @torch.no_grad()
    def tokenize(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.codes_to_tokens(self.quantize(self.encoder(x))[1])


@dataclass
class VARConfig:
    scales: tuple[int, ...] = (1, 2, 3, 4)  # token maps 1x1 .. 4x4 (30 tokens); the decoder goes 4x4 -> 8x8
    levels: tuple[int, ...] = (5, 5, 5)  # FSQ levels of every scale: a vocabulary of 125 tokens
    channels: int = 16  # C, the tokenizer's feature map
    hidden: int = 32  # the tokenizer's convolutions
    width: int = 64  # the transformer
    depth: int = 2
    heads: int = 4
    dropout: float = 0.1
    tokenizer_steps: int = 1000  # the first phase of fit; the remaining steps train the transformer

    def __post_init__(self):
        self.scales, self.levels = tuple(int(s) for s in self.scales), tuple(int(v) for v in self.levels)


@register("var")  # an image model: no 2D recipe
class VAR(Implicit):
    """Next-scale prediction: a multi-scale residual tokenizer, then a block-causal transformer over its token
    maps (see the module doc). sample(n) costs len(scales) transformer evaluations and one of the decoder."""

    Config = VARConfig

    def __init__(self, event_shape, config: VARConfig | None = None):
        super().__init__(event_shape, config or self.Config())
        c = self.config
        if len(self.event_shape) != 3 or self.event_shape[0] != 1 or self.event_shape[1] != self.event_shape[2]:
            raise ShapeError(f"VAR models square one-channel images: event_shape (1, H, H), got {self.event_shape}")
        if c.tokenizer_steps < 0:
            raise ValueError(f"tokenizer_steps must be >= 0, got {c.tokenizer_steps}")
        self.tokenizer = MultiScaleTokenizer(self.event_shape[1], c.scales, c.levels, c.channels, c.hidden)
        self.lengths = [s * s for s in c.scales]
        self.offsets = [sum(self.lengths[:k]) for k in range(len(self.lengths) + 1)]  # block k: offsets[k:k+2]
        block = torch.repeat_interleave(torch.arange(len(c.scales)), torch.tensor(self.lengths))  # (L,)
        self.register_buffer("block_mask", torch.where(block[None, :] <= block[:, None], 0.0, -torch.inf),
                             persistent=False)  # (L, L): query i attends to key j iff scale(j) <= scale(i)
        self.start = nn.Parameter(torch.zeros(c.width))  # the first scale's input
        self.embed_features = nn.Linear(c.channels, c.width)
        self.position = nn.Parameter(0.02 * torch.randn(self.offsets[-1], c.width))  # scale and place in it
        self.blocks = transformer_stack(c.width, c.depth, c.heads, c.dropout)
        self.norm = nn.LayerNorm(c.width)
        self.head = nn.Linear(c.width, self.tokenizer.vocab)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))  # optimiser steps taken

    @property
    def num_scales(self) -> int:
        return len(self.lengths)

    @property
    def in_transformer_phase(self) -> bool:
        return int(self.updates) >= self.config.tokenizer_steps

    # -- the transformer ---------------------------------------------------------------------------
    def inputs(self, codes: list[torch.Tensor], batch: int) -> torch.Tensor:
        """The transformer's input for the FSQ code maps of the first len(codes) scales: (B, L, C). Block k
        holds f_hat after scales < k, area-downsampled to s_k x s_k; blocks with no coarser maps given are
        zeros (block 0 is replaced by the start vector; later ones are only reached by finer scales)."""
        t = self.tokenizer
        f_hat = torch.zeros(batch, self.config.channels, t.size, t.size, device=self.device, dtype=self.dtype)
        parts = [torch.zeros(batch, 1, self.config.channels, device=self.device, dtype=self.dtype)]
        for k in range(1, self.num_scales):
            if k <= len(codes):
                f_hat = f_hat + t.contribution(k - 1, codes[k - 1])
                parts.append(t.down(f_hat, k).flatten(2).transpose(1, 2))  # (B, s_k^2, C)
            else:
                parts.append(torch.zeros(batch, self.lengths[k], self.config.channels, device=self.device,
                                         dtype=self.dtype))
        return torch.cat(parts, dim=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, L, C) input features -> (B, L, vocab) logits of every scale's tokens, block-causally."""
        if features.dim() != 3 or features.shape[1:] != (self.offsets[-1], self.config.channels):
            raise ShapeError(f"VAR's transformer expects features (B, {self.offsets[-1]}, {self.config.channels}), "
                             f"got {tuple(features.shape)}")
        h = self.embed_features(features)
        h = torch.cat([self.start.expand(len(h), 1, -1), h[:, 1:]], dim=1) + self.position
        return self.head(self.norm(self.blocks(h, mask=self.block_mask)))

    def check_tokens(self, tokens: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(tokens) != self.num_scales or any(not isinstance(t, torch.Tensor) for t in tokens):
            raise ShapeError(f"expected a list of {self.num_scales} token maps, one per scale, got {len(tokens)}")
        shapes = [tuple(t.shape) for t in tokens]
        if any(s != (len(tokens[0]), n) for s, n in zip(shapes, self.lengths)):
            raise ShapeError(f"token maps must have shapes (B, s^2) = {[('B', n) for n in self.lengths]}, got {shapes}")
        if any(t.dtype != torch.long or t.min() < 0 or t.max() >= self.tokenizer.vocab for t in tokens if t.numel()):
            raise ValueError(f"tokens must be integers (torch.long) in [0, {self.tokenizer.vocab})")
        return [t.to(self.device) for t in tokens]

    def tokens_log_prob(self, tokens: list[torch.Tensor]) -> torch.Tensor:
        """Exact log p(token maps) in nats, [(B, s_k^2) per scale] -> (B,)."""
        tokens = self.check_tokens(tokens)
        with torch.no_grad():  # the frozen tokenizer: no gradient reaches its projections or phi
            features = self.inputs(self.tokenizer.tokens_to_codes(tokens, self.dtype), len(tokens[0]))
        logits = self(features)  # (B, L, vocab)
        return -F.cross_entropy(logits.transpose(1, 2), torch.cat(tokens, dim=1), reduction="none").sum(1)

    def token_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p of the tokens of images x, (B, 1, H, H) -> (B,) nats: a likelihood of the tokenizer's codes,
        not of the image (the decoder is deterministic)."""
        return self.tokens_log_prob(self.tokenizer.tokenize(self.check_input(x)))

    def log_prob(self, x):
        raise NotImplementedError("VAR has no likelihood of images (the decoder is deterministic); "
                                  "token_log_prob(x) is the exact likelihood of the image's tokens")

    # -- training ----------------------------------------------------------------------------------
    def loss(self, x, *, generator=None):
        """The tokenizer's reconstruction error for the first tokenizer_steps optimiser steps, then the
        transformer's negative log-likelihood of the frozen tokenizer's tokens (nats per image)."""
        x = self.check_input(x)
        if not self.in_transformer_phase:
            return self.tokenizer.loss(x)
        return -self.token_log_prob(x).mean()

    def after_update(self, *batch):
        self.updates += 1

    # -- sampling ----------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_tokens(self, n, *, generator=None) -> list[torch.Tensor]:
        """Scale by scale, coarse to fine: one transformer evaluation gives every token of the next scale at
        once, each drawn from its softmax. -> [(n, s_k^2) per scale]."""
        n = self.check_n(n)
        tokens, codes = [], []
        for k in range(self.num_scales):
            logits = self(self.inputs(codes, n))[:, self.offsets[k]:self.offsets[k + 1]]  # (n, s_k^2, vocab)
            probs = torch.softmax(logits.double(), dim=-1).reshape(-1, self.tokenizer.vocab)
            tokens.append(torch.multinomial(probs, 1, generator=generator).reshape(n, -1))
            codes.append(self.tokenizer.tokens_to_codes(tokens, self.dtype)[k])
        return tokens

    @torch.no_grad()
    def sample(self, n, steps=None, *, generator=None):
        """sample_tokens, then the decoder: images (n, 1, H, H) in (0, 1). `steps` must be None (or the
        number of scales): VAR takes one step per scale."""
        if steps is not None and steps != self.num_scales:
            raise ValueError(f"VAR samples in one step per scale ({self.num_scales} steps); steps must be None, "
                             f"got {steps!r}")
        return self.decode_tokens(self.sample_tokens(n, generator=generator))

    @torch.no_grad()
    def decode_tokens(self, tokens: list[torch.Tensor]) -> torch.Tensor:
        """Token maps [(B, s_k^2) per scale] -> images (B, 1, H, H) in (0, 1)."""
        tokens = self.check_tokens(tokens)
        return self.tokenizer.decode(self.tokenizer.f_hat(self.tokenizer.tokens_to_codes(tokens, self.dtype)))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The tokenizer's round trip: images -> token maps -> images."""
        return self.decode_tokens(self.tokenizer.tokenize(self.check_input(x)))
