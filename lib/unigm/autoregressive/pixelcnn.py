"""PixelCNN and the gated PixelCNN for images of discrete pixels in raster order (row by row, each
row left to right): p(x) = prod_i p(x_i | x_<i).

`levels` (a Config field, default 2) sets what a pixel is:
- levels = 2: binary images, x_i in {0, 1}, Bernoulli(x_i; sigmoid(logit_i(x_<i))): one logit per pixel.
- levels = L > 2: grey levels, x_i in {0, .., L - 1} (stored as floats, e.g.
  `data.digits('train').images.float()`, L = 17), Categorical(x_i; softmax(logits_i(x_<i))): L logits
  per pixel, the discrete softmax of van den Oord, Kalchbrenner & Kavukcuoglu 2016 (PixelRNN,
  arXiv:1601.06759, Sec. 2.2 "Pixels as discrete variables": a 256-way softmax per colour channel,
  which beat a continuous mixture density). The network reads each pixel as one real value in
  [-1, 1], 2 v / (L - 1) - 1 (for L = 2: -1 / +1). log_prob is then the exact discrete log-likelihood
  in nats: no dequantization, no bound.

PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural Networks",
arXiv:1601.06759, Sec. 3.4) makes a convolution causal by masking its kernel: mask A (first layer)
hides the centre pixel and everything after it, mask B (later layers) hides only what comes after
the centre. Stacked 3x3 masked convolutions grow a receptive field that misses a wedge of pixels
above and to the right of the centre: the blind spot. (With one channel per image the masks need no
split of the channels into colours: for any `levels` the current pixel is hidden by mask A alone.)

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
    """What the pixel models share (PixelCNN, GatedPixelCNN, PixelTransformer): discrete pixels with
    `config.levels` values, the exact log-likelihood, raster sampling. (The name is historical: with
    levels = 2, the default, the pixels are binary; levels = L > 2 gives grey levels 0 .. L - 1.)

    Subclasses define `forward(x)`: (B, 1, H, W) -> (B, C, H, W) logits, C = 1 for levels = 2 (the
    Bernoulli logit) and C = L for levels = L > 2 (the softmax logits); logits of pixel i are a function
    of x_<i only. They feed the network `network_input(x)`, the pixels rescaled to [-1, 1].
    `logits(x)` calls forward (one network evaluation, as samplers.count_nfe counts)."""

    def __init__(self, event_shape, config):
        super().__init__(event_shape, config)
        if len(self.event_shape) != 3 or self.event_shape[0] != 1:
            raise ShapeError(f"{type(self).__name__} models one-channel images: event_shape (1, H, W), "
                             f"got {self.event_shape}")
        levels = self.levels
        if not isinstance(levels, int) or isinstance(levels, bool) or levels < 2:
            raise ValueError(f"levels is the number of values a pixel takes (2: binary, 17: the digits' "
                             f"grey levels), an int >= 2; got {levels!r}")

    @property
    def levels(self) -> int:
        return getattr(self.config, "levels", 2)

    @property
    def out_channels(self) -> int:
        """Logits per pixel: 1 (Bernoulli) for levels = 2, else levels (softmax)."""
        return 1 if self.levels == 2 else self.levels

    def network_input(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels 0 .. L - 1 as reals in [-1, 1]: 2 x / (L - 1) - 1 (binary: -1 / +1)."""
        return 2 * x - 1 if self.levels == 2 else 2 * x / (self.levels - 1) - 1

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)

    def check_levels(self, x) -> torch.Tensor:
        """x on the model if every value is an integer 0 .. levels - 1; otherwise a ValueError."""
        x = self.check_input(x)
        if self.levels == 2:
            if not torch.all((x == 0) | (x == 1)):
                raise ValueError(f"{type(self).__name__} models binary images (levels = 2): every value must be "
                                 "0 or 1 (binarise first, e.g. unigm.course.checkpoints.digits_binary, or build "
                                 "the model with levels = the number of grey levels)")
            return x
        top = self.levels - 1
        bad = ~((x == x.round()) & (x >= 0) & (x <= top))
        if bad.any():
            raise ValueError(f"{type(self).__name__} models grey levels with levels = {self.levels}: every value must "
                             f"be an integer 0 .. {top} stored as a float, got {x[bad][0].item()!r}; pass the "
                             "integer grey levels, e.g. data.digits('train').images.float() (levels = 17), not "
                             "images rescaled to [0, 1] or dequantized")
        return x

    check_binary = check_levels  # the old name

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) in nats, (B, 1, H, W) -> (B,): the sum over pixels of log p(x_i | x_<i),
        Bernoulli for levels = 2, the log softmax at the observed level for levels > 2."""
        x = self.check_levels(x)
        logits = self.logits(x)
        if self.levels == 2:
            return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
        return -F.cross_entropy(logits, x[:, 0].long(), reduction="none").flatten(1).sum(1)

    def loss(self, x, *, generator=None):
        """Negative log-likelihood in nats per image (the exact one: no bound, no sampling)."""
        return -self.log_prob(x).mean()

    @torch.no_grad()
    def sample(self, n, steps=None, *, generator=None):
        """Ancestral sampling in raster order: one network evaluation per pixel (NFE = H * W), each
        pixel drawn from its Bernoulli (levels = 2) or categorical (levels > 2, by inverting the CDF at
        one uniform); values 0 .. levels - 1 as floats. `steps` must be None (the order fixes the
        number of steps)."""
        if steps is not None:
            raise ValueError(f"{type(self).__name__} samples one pixel per step, H * W = {self.event_dim} steps; "
                             f"steps must be None, got {steps!r}")
        n = self.check_n(n)
        _, height, width = self.event_shape
        x = torch.zeros(n, *self.event_shape, device=self.device, dtype=self.dtype)
        for row in range(height):
            for col in range(width):
                if self.levels == 2:
                    p = torch.sigmoid(self.logits(x)[:, 0, row, col])
                    x[:, 0, row, col] = (rand((n,), x, generator) < p).to(x.dtype)
                else:
                    cdf = torch.softmax(self.logits(x)[:, :, row, col].double(), dim=1).cumsum(1)
                    u = rand((n, 1), cdf, generator)
                    level = (cdf[:, :-1] <= u).sum(1)  # the first level whose CDF exceeds u
                    x[:, 0, row, col] = level.to(x.dtype)
        return x


def logit_head(channels: int, out_channels: int = 1) -> nn.Sequential:
    """ReLU, 1x1, ReLU, 1x1: per-pixel features -> out_channels logits per pixel (both models' last
    layers): 1 Bernoulli logit for binary pixels, L softmax logits for L grey levels."""
    return nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, out_channels, 1))


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
    levels: int = 2  # values per pixel: 2 binary (one Bernoulli logit), L > 2 grey levels 0..L-1 (L softmax logits)


@dataclass
class PixelCNNConfig(GatedPixelCNNConfig):
    channels: int = 32
    first_kernel: int = 5  # the mask-A convolution's


@register("pixelcnn")  # an image model: no 2D recipe
class PixelCNN(BinaryImageAR):
    """Masked convolutions (A, then B) with ReLUs, then two 1x1 convolutions to the logits of each pixel
    (one for levels = 2, levels of them otherwise)."""

    Config = PixelCNNConfig

    def __init__(self, event_shape, config: PixelCNNConfig | None = None):
        config = config or self.Config()
        super().__init__(event_shape, config)
        c = config.channels
        convs = [MaskedConv2d("A", 1, c, config.first_kernel)]
        convs += [MaskedConv2d("B", c, c, config.kernel) for _ in range(config.layers - 1)]
        self.convs = nn.ModuleList(convs)
        self.head = logit_head(c, self.out_channels)

    def forward(self, x):
        h = self.convs[0](self.network_input(x))  # pixels in [-1, 1] (binary: -1 / +1)
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
        self.head = logit_head(c, self.out_channels)

    def forward(self, x):
        v = h = self.network_input(x)
        for layer in self.layers:
            v, h = layer(v, h)
        return self.head(h)


# -- measuring what each output sees -----------------------------------------------------------------
def receptive_field(model: BinaryImageAR, row: int, col: int, draws: int = 3, seed: int = 0) -> torch.Tensor:
    """(H, W) bool: which input pixels the logits of pixel (row, col) depend on, from the gradient of
    each of its logits (one, or `levels`) with respect to a real-valued input in [0, levels - 1] (any
    nonzero entry, over a few random inputs in float64, so that no dependence is missed by a zero
    activation)."""
    _, height, width = model.event_shape
    if not (0 <= row < height and 0 <= col < width):
        raise ValueError(f"pixel ({row}, {col}) is outside the {height} x {width} image")
    model = copy.deepcopy(model).double()  # the caller's model keeps its dtype
    g = torch.Generator().manual_seed(seed)
    seen = torch.zeros(height, width, dtype=torch.bool)
    for _ in range(draws):
        x = torch.rand(1, *model.event_shape, generator=g, dtype=torch.float64) * (model.levels - 1)
        x.requires_grad_(True)
        logits = model.logits(x)[0, :, row, col]
        for channel in range(len(logits)):
            (grad,) = torch.autograd.grad(logits[channel], x, retain_graph=channel + 1 < len(logits))
            seen |= grad[0, 0] != 0
    return seen


def raster_before(height: int, width: int, row: int, col: int) -> torch.Tensor:
    """(H, W) bool: the pixels strictly before (row, col) in raster order, the ones it may depend on."""
    index = torch.arange(height * width).reshape(height, width)
    return index < row * width + col
