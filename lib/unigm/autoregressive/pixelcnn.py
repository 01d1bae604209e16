"""PixelCNN and the gated PixelCNN for binary images: p(x) = prod_i Bernoulli(x_i; sigmoid(logit_i(x_<i))),
the pixels in raster order (row by row, each row left to right).

PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural Networks",
arXiv:1601.06759, Sec. 3.4) makes a convolution causal by masking its kernel: mask A (first layer)
hides the centre pixel and everything after it, mask B (later layers) hides only what comes after
the centre. Stacked 3x3 masked convolutions grow a receptive field that misses a wedge of pixels
above and to the right of the centre: the blind spot.

The gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders",
arXiv:1606.05328, Sec. 2.1-2.2) removes it with two stacks: a vertical stack that sees every row
above (and is shifted down one row before the horizontal stack uses it) and a horizontal stack that
sees the pixels to the left in the current row; each layer is gated, tanh(a) * sigmoid(b).

Both give the exact log-likelihood in one network evaluation and sample in H * W evaluations, one
per pixel. `receptive_field` measures from gradients which input pixels each output depends on.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..base import LikelihoodBased
from ..registry import register
from ..tensors import ShapeError, rand


class MaskedConv2d(nn.Conv2d):
    """A 'same'-padded k x k convolution whose kernel is zero after its centre in raster order
    ('B'), or at and after it ('A'). Output pixel i then depends on input pixels before i ('A') or
    up to and including i ('B') within the kernel's window."""

    def __init__(self, mask_type: str, in_channels: int, out_channels: int, kernel_size: int):
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd (the mask is centred), got {kernel_size}")
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        centre = kernel_size // 2
        mask = torch.ones(kernel_size, kernel_size)
        mask[centre, centre + (mask_type == "B"):] = 0  # the centre row: the centre (A) and what follows
        mask[centre + 1:] = 0  # every row below the centre
        self.mask_type = mask_type
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class BinaryImageAR(LikelihoodBased):
    """What the two PixelCNNs share: Bernoulli pixels, the exact log-likelihood, raster sampling.
    Subclasses define `forward(x)`: (B, 1, H, W) -> (B, 1, H, W) logits, logit_i a function of x_<i only;
    `logits(x)` calls it (one network evaluation, as samplers.count_nfe counts)."""

    def __init__(self, event_shape, config):
        super().__init__(event_shape, config)
        if len(self.event_shape) != 3 or self.event_shape[0] != 1:
            raise ShapeError(f"{type(self).__name__} models one-channel images: event_shape (1, H, W), "
                             f"got {self.event_shape}")

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)

    def check_binary(self, x) -> torch.Tensor:
        x = self.check_input(x)
        if not torch.all((x == 0) | (x == 1)):
            raise ValueError(f"{type(self).__name__} models binary images: every value must be 0 or 1 "
                             "(binarise first, e.g. unigm.course.checkpoints.digits_binary)")
        return x

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) in nats, (B, 1, H, W) -> (B,): the sum over pixels of log Bernoulli(x_i | x_<i)."""
        x = self.check_binary(x)
        return -F.binary_cross_entropy_with_logits(self.logits(x), x, reduction="none").flatten(1).sum(1)

    def loss(self, x, *, generator=None):
        """Negative log-likelihood in nats per image (the exact one: no bound, no sampling)."""
        return -self.log_prob(x).mean()

    @torch.no_grad()
    def sample(self, n, steps=None, *, generator=None):
        """Ancestral sampling in raster order: one network evaluation per pixel (NFE = H * W).
        `steps` must be None (the order fixes the number of steps)."""
        if steps is not None:
            raise ValueError(f"{type(self).__name__} samples one pixel per step, H * W = {self.event_dim} steps; "
                             f"steps must be None, got {steps!r}")
        n = self.check_n(n)
        _, height, width = self.event_shape
        x = torch.zeros(n, *self.event_shape, device=self.device, dtype=self.dtype)
        for row in range(height):
            for col in range(width):
                p = torch.sigmoid(self.logits(x)[:, 0, row, col])
                x[:, 0, row, col] = (rand((n,), x, generator) < p).to(x.dtype)
        return x


def logit_head(channels: int) -> nn.Sequential:
    """ReLU, 1x1, ReLU, 1x1: per-pixel features -> one Bernoulli logit per pixel (both models' last layers)."""
    return nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, 1, 1))


# -- PixelCNN ------------------------------------------------------------------------------------
# Measured on the binarised 8x8 digits (1,257 training images; 1,500 steps, batch 128, lr 2e-3, seed 0;
# test bits/pixel, the independent-pixel baseline 0.565): PixelCNN 32 channels 0.407 (48k parameters,
# 65 s on 2 cores), 16 channels 0.413; gated PixelCNN 16 channels 0.381 (29k parameters, 131 s), 32
# channels 0.468 (115k parameters: it overfits the 1,257 images), hence the defaults.
@dataclass
class GatedPixelCNNConfig:
    channels: int = 16
    layers: int = 6  # gated layers (PixelCNN: masked convolutions, one of type A, then layers - 1 of type B)
    kernel: int = 3


@dataclass
class PixelCNNConfig(GatedPixelCNNConfig):
    channels: int = 32
    first_kernel: int = 5  # the mask-A convolution's


@register("pixelcnn")  # an image model: no 2D recipe
class PixelCNN(BinaryImageAR):
    """Masked convolutions (A, then B) with ReLUs, then two 1x1 convolutions to one logit per pixel."""

    Config = PixelCNNConfig

    def __init__(self, event_shape, config: PixelCNNConfig | None = None):
        config = config or self.Config()
        super().__init__(event_shape, config)
        c = config.channels
        convs = [MaskedConv2d("A", 1, c, config.first_kernel)]
        convs += [MaskedConv2d("B", c, c, config.kernel) for _ in range(config.layers - 1)]
        self.convs = nn.ModuleList(convs)
        self.head = logit_head(c)

    def forward(self, x):
        h = self.convs[0](2 * x - 1)  # pixels as -1 / +1
        for conv in self.convs[1:]:
            h = h + conv(F.relu(h))  # residual B layers
        return self.head(h)


# -- gated PixelCNN --------------------------------------------------------------------------------
def _shift_down(x: torch.Tensor) -> torch.Tensor:
    """Row r of the output is row r - 1 of x (zeros in row 0)."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


def _shift_right(x: torch.Tensor) -> torch.Tensor:
    """Column c of the output is column c - 1 of x (zeros in column 0)."""
    return F.pad(x, (1, 0))[:, :, :, :-1]


class GatedLayer(nn.Module):
    """One layer of the two stacks (van den Oord et al. 2016b, Fig. 2), kernel k = 2 m + 1:
    vertical: a (m + 1) x k convolution over the rows up to and including the current one;
    horizontal: a 1 x (m + 1) convolution over the current column and the m to its left, plus the
    vertical features shifted down one row (rows strictly above); both gated; the horizontal stack
    has a residual connection. In the first layer the horizontal input is shifted right one column so
    that the current pixel itself is not seen (the role of mask A)."""

    def __init__(self, in_channels: int, channels: int, kernel: int, first: bool):
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"kernel must be odd, got {kernel}")
        self.m, self.first = kernel // 2, first
        self.vertical = nn.Conv2d(in_channels, 2 * channels, (self.m + 1, kernel))
        self.horizontal = nn.Conv2d(in_channels, 2 * channels, (1, self.m + 1))
        self.vertical_to_horizontal = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.horizontal_out = nn.Conv2d(channels, channels, 1)

    @staticmethod
    def gate(a_b: torch.Tensor) -> torch.Tensor:
        a, b = a_b.chunk(2, dim=1)
        return torch.tanh(a) * torch.sigmoid(b)

    def forward(self, v: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.m
        v_features = self.vertical(F.pad(v, (m, m, m, 0)))  # row r sees rows r - m .. r
        h_in = _shift_right(h) if self.first else h
        h_features = self.horizontal(F.pad(h_in, (m, 0, 0, 0)))  # column c sees c - m .. c
        h_features = h_features + self.vertical_to_horizontal(_shift_down(v_features))  # rows above only
        h_out = self.horizontal_out(self.gate(h_features))
        return self.gate(v_features), h_out if self.first else h + h_out


@register("gated_pixelcnn")  # an image model: no 2D recipe
class GatedPixelCNN(BinaryImageAR):
    """Vertical and horizontal stacks of gated layers, no blind spot; a 1x1 head on the horizontal stack."""

    Config = GatedPixelCNNConfig

    def __init__(self, event_shape, config: GatedPixelCNNConfig | None = None):
        super().__init__(event_shape, config or self.Config())
        c = self.config.channels
        self.layers = nn.ModuleList(GatedLayer(1 if i == 0 else c, c, self.config.kernel, first=i == 0)
                                    for i in range(self.config.layers))
        self.head = logit_head(c)

    def forward(self, x):
        v = h = 2 * x - 1
        for layer in self.layers:
            v, h = layer(v, h)
        return self.head(h)


# -- measuring what each output sees -----------------------------------------------------------------
def receptive_field(model: BinaryImageAR, row: int, col: int, draws: int = 3, seed: int = 0) -> torch.Tensor:
    """(H, W) bool: which input pixels the logit of pixel (row, col) depends on, from the gradient of
    that logit with respect to a real-valued input (any nonzero entry, over a few random inputs in
    float64, so that no dependence is missed by a zero activation)."""
    _, height, width = model.event_shape
    if not (0 <= row < height and 0 <= col < width):
        raise ValueError(f"pixel ({row}, {col}) is outside the {height} x {width} image")
    model = copy.deepcopy(model).double()  # the caller's model keeps its dtype
    g = torch.Generator().manual_seed(seed)
    seen = torch.zeros(height, width, dtype=torch.bool)
    for _ in range(draws):
        x = torch.rand(1, *model.event_shape, generator=g, dtype=torch.float64).requires_grad_(True)
        (grad,) = torch.autograd.grad(model.logits(x)[0, 0, row, col], x)
        seen |= grad[0, 0] != 0
    return seen


def raster_before(height: int, width: int, row: int, col: int) -> torch.Tensor:
    """(H, W) bool: the pixels strictly before (row, col) in raster order, the ones it may depend on."""
    index = torch.arange(height * width).reshape(height, width)
    return index < row * width + col
