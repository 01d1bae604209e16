"""A minimal GPT (Radford et al. 2018; the decoder of Vaswani et al. 2017, arXiv:1706.03762): a causal
transformer that reads a sequence and predicts each element from the ones before it.

`CausalTransformer` is the network: inputs (B, L, F) -> outputs (B, L, O), output i a function of
inputs 0 .. i-1 only. The sequence is shifted right by one behind a learned start vector, so output 0
sees only the start vector and output i sees inputs < i; inside, PyTorch's own transformer layers
run with a causal attention mask (nn.TransformerEncoderLayer, pre-norm).

Two models use it:
- `PixelTransformer`: the images of the PixelCNNs (binary, or `levels` grey levels with a softmax per
  pixel) as a sequence of H * W pixels in raster order (Chen et al. 2020, "Generative Pretraining from
  Pixels", at toy scale). Attention sees every earlier pixel from the first layer on: no blind spot,
  at a cost quadratic in H * W.
- `CodePrior`: a categorical sequence model over discrete tokens, e.g. the codes of a quantized
  autoencoder (the second stage of VQ-VAE, van den Oord et al. 2017, arXiv:1711.00937): encode the
  data to codes, fit the prior to them, sample codes, decode.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..base import LikelihoodBased
from ..nets import transformer_stack  # on the ground floor: JEPA (unigm.world) uses it too
from ..registry import register
from ..tensors import ShapeError
from .causal import check_tokens
from .pixelcnn import BinaryImageAR


class CausalTransformer(nn.Module):
    """inputs (B, L, in_features) -> (B, L, out_features); output i depends on inputs < i only."""

    def __init__(self, length: int, in_features: int, out_features: int, width: int = 64, depth: int = 2,
                 heads: int = 4, dropout: float = 0.0):
        super().__init__()
        self.length = length
        self.embed = nn.Linear(in_features, width)  # on one-hot tokens: an embedding table (plus a bias)
        self.start = nn.Parameter(torch.zeros(width))  # what output 0 sees
        self.position = nn.Parameter(0.02 * torch.randn(length, width))  # learned absolute positions
        self.blocks = transformer_stack(width, depth, heads, dropout)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, out_features)
        self.register_buffer("causal_mask", nn.Transformer.generate_square_subsequent_mask(length), persistent=False)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        batch, length, _ = inputs.shape
        if length != self.length:
            raise ValueError(f"expected sequences of length {self.length}, got {length}")
        h = self.embed(inputs)
        h = torch.cat([self.start.expand(batch, 1, -1), h[:, :-1]], dim=1) + self.position  # shift right by one
        h = self.blocks(h, mask=self.causal_mask, is_causal=True)
        return self.head(self.norm(h))


# Measured on the binarised digits (course checkpoint recipe: 1,500 steps, batch 128, lr 2e-3, seed 0):
# width 64 0.391 test bits/pixel (104k parameters, 246 s on 2 cores), width 32 0.405 (28k, 119 s);
# independent pixels 0.565.
@dataclass
class PixelTransformerConfig:
    width: int = 64
    depth: int = 2
    heads: int = 4
    levels: int = 2  # values per pixel: 2 binary (one Bernoulli logit), L > 2 grey levels 0..L-1 (L softmax logits)


@register("pixel_transformer")  # an image model: no 2D recipe
class PixelTransformer(BinaryImageAR):
    """Pixels in raster order, each a Bernoulli (levels = 2) or a categorical over `levels` grey levels
    (van den Oord et al. 2016, PixelRNN Sec. 2.2: a softmax per pixel) whose logits a causal transformer
    computes from the pixels before it (read as reals in [-1, 1]; binary: -1 / +1). Exact
    log-likelihood in one evaluation; H * W to sample."""

    Config = PixelTransformerConfig

    def __init__(self, event_shape, config: PixelTransformerConfig | None = None):
        super().__init__(event_shape, config or self.Config())
        c = self.config
        self.net = CausalTransformer(self.event_dim, 1, self.out_channels, c.width, c.depth, c.heads)

    def forward(self, x):  # (B, 1, H, W) -> logits (B, C, H, W), C = 1 (binary) or levels
        batch, _, height, width = x.shape
        out = self.net(self.network_input(x).reshape(batch, -1, 1))  # (B, H * W, C)
        return out.transpose(1, 2).reshape(batch, self.out_channels, height, width)


@dataclass
class CodePriorConfig:
    vocab: int = 512  # tokens 0 .. vocab - 1 (the course's VQ-VAE has 512 codes per position)
    width: int = 64
    depth: int = 2
    heads: int = 4
    dropout: float = 0.0  # in attention and the MLPs, while training: a prior fitted to a small set overfits


@register("code_prior")  # a model of token sequences: no 2D recipe
class CodePrior(LikelihoodBased):
    """p(c) = prod_i Categorical(c_i; softmax(logits_i(c_<i))) over sequences c of L tokens, event_shape
    (L,); tokens are integers 0 .. vocab - 1 stored as floats (as WaveNet's codes). The exact
    log-likelihood in one network evaluation; L evaluations to sample."""

    Config = CodePriorConfig

    def __init__(self, event_shape, config: CodePriorConfig | None = None):
        super().__init__(event_shape, config or self.Config())
        if len(self.event_shape) != 1:
            raise ShapeError(f"CodePrior models sequences of tokens: event_shape (L,), got {self.event_shape}")
        c = self.config
        self.net = CausalTransformer(self.event_shape[0], c.vocab, c.vocab, c.width, c.depth, c.heads, c.dropout)

    def check_codes(self, x) -> torch.Tensor:
        return check_tokens(self.check_input(x), self.config.vocab,
                            "CodePrior models tokens (e.g. a quantized autoencoder's code indices, .float())")

    def logits(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, L) tokens -> (B, L, vocab) logits of each token given the ones before it."""
        return self.net(F.one_hot(codes.long(), self.config.vocab).to(self.dtype))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) in nats, (B, L) -> (B,)."""
        codes = self.check_codes(x)
        return -F.cross_entropy(self.logits(codes).transpose(1, 2), codes.long(), reduction="none").sum(1)

    def loss(self, x, *, generator=None):
        """Negative log-likelihood in nats per sequence."""
        return -self.log_prob(x).mean()

    @torch.no_grad()
    def sample(self, n, steps=None, *, generator=None):
        """Token by token, L network evaluations; `steps` must be None."""
        length = self.event_shape[0]
        if steps is not None:
            raise ValueError(f"CodePrior samples one token per step, L = {length} steps; steps must be None, "
                             f"got {steps!r}")
        n = self.check_n(n)
        codes = torch.zeros(n, length, device=self.device, dtype=self.dtype)
        for i in range(length):
            probs = torch.softmax(self.logits(codes)[:, i].double(), dim=-1)
            codes[:, i] = torch.multinomial(probs, 1, generator=generator).squeeze(1).to(codes.dtype)
        return codes
