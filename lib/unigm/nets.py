"""Networks shared by the models: an MLP that can take a time input, a stack of transformer layers."""
from __future__ import annotations

import math

import torch
from torch import nn


class SinusoidalTimeEmbedding(nn.Module):
    """t in [0, 1] -> [sin(w_k t), cos(w_k t)]_k with geometric frequencies (Vaswani et al. 2017;
    used for diffusion time by Ho et al. 2020). t is scaled by 1000 so that the grid t = i / T of
    a 1000-step chain is resolved as finely as integer steps would be."""

    def __init__(self, dim: int, max_period: float = 10_000.0, scale: float = 1000.0):
        super().__init__()
        if dim % 2:
            raise ValueError(f"time embedding dim must be even, got {dim}")
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half) / half)  # (half,)
        self.register_buffer("freqs", freqs * scale, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:  # (B,) -> (B, dim)
        angles = t[:, None].to(self.freqs.dtype) * self.freqs[None]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class MLP(nn.Module):
    """x (B, in_dim) [and t (B,)] -> (B, out_dim): `depth` hidden layers of width `hidden`.

    With time_dim > 0 the sinusoidal embedding of t is concatenated to the input."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 128, depth: int = 3,
                 time_dim: int = 0, activation: type[nn.Module] = nn.SiLU):
        super().__init__()
        if depth < 1 or hidden < 1:
            raise ValueError(f"MLP needs depth >= 1 and hidden >= 1, got depth={depth}, hidden={hidden}")
        self.time_embedding = SinusoidalTimeEmbedding(time_dim) if time_dim else None
        layers: list[nn.Module] = []
        width = in_dim + time_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), activation()]
            width = hidden
        layers.append(nn.Linear(width, out_dim))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        if self.time_embedding is not None:
            if t is None:
                raise ValueError("this MLP was built with a time input; call it as net(x, t)")
            x = torch.cat([x, self.time_embedding(t)], dim=-1)
        elif t is not None:
            raise ValueError("this MLP has no time input (time_dim=0) but was given t")
        return self.layers(x)


def transformer_stack(width: int, depth: int, heads: int, dropout: float = 0.0) -> nn.TransformerEncoder:
    """`depth` of PyTorch's pre-norm transformer layers (GELU MLPs of 4 x width); the caller passes the
    attention mask (causal in the autoregressive transformers; other orders, such as VAR's block-causal one,
    need only another mask; none, or a key-padding mask, in JEPA's encoders)."""
    if width % heads:
        raise ValueError(f"width ({width}) must be a multiple of heads ({heads})")
    layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=4 * width, dropout=dropout, activation="gelu",
                                       batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
