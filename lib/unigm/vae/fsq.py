"""Finite scalar quantization (Mentzer et al. 2023, arXiv:2309.15505): a fixed, implicit codebook."""
from __future__ import annotations

import math

import torch


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
        return self.indices_to_codes(torch.arange(self.codebook_size, device=self.basis.device))
