"""Networks shared by the models: an MLP that can take a time input, a stack of transformer layers, and finite
scalar quantization (FSQ; used by unigm.vae and by VAR's multi-scale tokenizer in unigm.autoregressive)."""
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


# Finite scalar quantization (Mentzer et al. 2023, arXiv:2309.15505): a fixed, implicit codebook.
class FSQ(torch.nn.Module):
    """Quantize each of d channels to exactly L_i levels: a fixed, implicit codebook of
    prod(L_i) codes and no codebook loss. Nothing can collapse, but codes can still go unused: which
    of them occur depends on where the encoder's outputs fall (lecture 02, check 12.14).

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
        return self.indices_to_codes(torch.arange(self.codebook_size, device=self.basis.device))
