"""Causal convolutions, the building block of WaveNet (van den Oord et al. 2016, arXiv:1609.03499):
the output at time i sees only inputs at times <= i; stacked with dilations 1, 2, 4, ... the
receptive field doubles with every layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def check_tokens(x: torch.Tensor, vocab: int, what: str) -> torch.Tensor:
    """x unchanged if every entry is an integer 0 .. vocab - 1 (stored as a float, as the family's
    token models take them); otherwise a ValueError that says what the model expects (`what`)."""
    if not torch.all((x == x.round()) & (x >= 0) & (x < vocab)):
        raise ValueError(f"{what}: integers 0 .. {vocab - 1} stored as floats")
    return x


class CausalConv1d(nn.Conv1d):
    """A 1D convolution padded on the left only: output[..., i] depends on input[..., <= i].

    (B, C_in, T) -> (B, C_out, T). It sees `(kernel_size - 1) * dilation + 1` consecutive inputs."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation, bias=bias)
        self.left_padding = (kernel_size - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.left_padding, 0)))


class DilatedCausalStack(nn.Module):
    """`layers` causal convolutions with dilations 1, 2, 4, ..., 2^(layers - 1) and a nonlinearity
    between them. (B, channels, T) -> (B, channels, T).

    Receptive field: layer l adds (kernel_size - 1) 2^l inputs, so
        R = 1 + (kernel_size - 1) (2^layers - 1)        (1024 for kernel_size 2, 10 layers)."""

    def __init__(self, kernel_size: int = 2, layers: int = 10, channels: int = 1, activation=nn.Tanh):
        super().__init__()
        if kernel_size < 1 or layers < 1:
            raise ValueError(f"kernel_size and layers must be >= 1, got {kernel_size}, {layers}")
        self.kernel_size, self.layers = kernel_size, layers
        self.convs = nn.ModuleList(
            CausalConv1d(channels, channels, kernel_size, dilation=2**layer) for layer in range(layers)
        )
        self.activation = activation()

    @property
    def receptive_field(self) -> int:
        return 1 + sum(conv.left_padding for conv in self.convs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i < len(self.convs) - 1:
                x = self.activation(x)
        return x
