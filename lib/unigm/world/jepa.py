"""JEPA: predict the embedding of a hidden part of an image from the visible rest, never its pixels.

I-JEPA (Assran et al. 2023, "Self-Supervised Learning from Images with a Joint-Embedding Predictive
Architecture", arXiv:2301.08243) at toy scale, on the 8x8 digits:

    patches     the image cut into p x p patches, a 2D grid of G_h x G_w tokens (2x2: 4 x 4 = 16)
    masks       a few rectangular target blocks per image; the context is the rest (Sec. 3, "Targets",
                "Context"; here the context is simply the complement of the targets)
    s_x         the context encoder f_theta, a non-causal transformer over the visible patches only
    s_y         the target encoder f_theta_bar, the same architecture, over the whole image; its weights
                are an exponential moving average of theta and it gets no gradient (Sec. 3)
    prediction  a narrow transformer g_phi reads s_x plus a mask token at every target position and
                predicts s_y there; loss = mean squared error over the target tokens (Sec. 3, eq. 1)

Predicting embeddings has a trivial solution: an encoder that maps every image to the same vector is
predicted perfectly. The stop-gradient and the slowly moving EMA target are what keep training away
from it (as in BYOL, Grill et al. 2020). `SharedTargetJEPA` removes both (the target is the context
encoder itself, gradients flowing through it) and collapses: the lecture's counter-example.

JEPA is a `Representation`: it learns `embed(x) -> (B, D)`, measured by a linear probe on labels it
never saw, and by how spread out its embeddings are (`embedding_std`, `effective_rank`).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..base import Representation
from ..nets import transformer_stack
from ..registry import register
from ..tensors import ShapeError

__all__ = ["JEPA", "JEPAConfig", "PatchEncoder", "Predictor", "SharedTargetJEPA", "block_masks", "effective_rank",
           "embedding_std", "few_label_probe", "linear_probe", "patchify", "sincos_positions_2d"]


# -- patches, positions, masks ------------------------------------------------------------------
def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, (H / p) (W / p), C p p): non-overlapping p x p patches in raster order."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // patch) * (w // patch), c * patch * patch)


def sincos_positions_2d(rows: int, cols: int, dim: int) -> torch.Tensor:
    """Fixed 2D sine-cosine positions (Vaswani et al. 2017, per axis; as in I-JEPA's ViTs), (rows * cols, dim):
    the first half of the channels encodes the row, the second half the column."""
    if dim % 4:
        raise ValueError(f"2D sine-cosine positions need a width divisible by 4, got {dim}")
    quarter = dim // 4
    freqs = 1.0 / 10_000 ** (torch.arange(quarter) / quarter)  # (dim / 4,)
    r, c = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    angles = [r.reshape(-1, 1) * freqs, c.reshape(-1, 1) * freqs]  # 2 x (L, dim / 4)
    return torch.cat([f(a) for a in angles for f in (torch.sin, torch.cos)], dim=1)


def block_masks(batch: int, grid: tuple[int, int], blocks: int, min_side: int, max_side: int,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rectangular target blocks on a grid of patches (I-JEPA Sec. 3, at the scale of a 4 x 4 grid).

    Each of the `blocks` rectangles of each image has a height and a width drawn uniformly from
    min_side .. max_side and a uniform position inside the grid; blocks may overlap.
    Returns (targets, rectangles): targets (B, L) bool, True on a patch inside any block (L = rows * cols,
    raster order); rectangles (B, blocks, 4) long, each (top, left, height, width)."""
    rows, cols = grid
    if not 1 <= min_side <= max_side <= min(rows, cols):
        raise ValueError(f"need 1 <= min_side <= max_side <= {min(rows, cols)}, got {min_side}, {max_side}")
    shape = (batch, blocks)
    height = torch.randint(min_side, max_side + 1, shape, generator=generator)
    width = torch.randint(min_side, max_side + 1, shape, generator=generator)
    top = (torch.rand(shape, generator=generator) * (rows - height + 1)).long()  # uniform in 0 .. rows - height
    left = (torch.rand(shape, generator=generator) * (cols - width + 1)).long()
    r, c = torch.arange(rows).view(1, 1, rows, 1), torch.arange(cols).view(1, 1, 1, cols)
    inside = ((r >= top[..., None, None]) & (r < (top + height)[..., None, None])
              & (c >= left[..., None, None]) & (c < (left + width)[..., None, None]))  # (B, blocks, rows, cols)
    return inside.any(1).reshape(batch, rows * cols), torch.stack([top, left, height, width], -1)


# -- the two networks -----------------------------------------------------------------------------
class PatchEncoder(nn.Module):
    """Patches (B, L, C p p) -> embeddings (B, L, width): a linear patch embedding plus fixed 2D positions,
    a non-causal transformer and a final LayerNorm. With `visible` (B, L) bool, attention reads only the
    visible patches (their outputs are those of an encoder run on the visible patches alone; the outputs
    at hidden positions are meaningless and must be ignored)."""

    def __init__(self, grid: tuple[int, int], patch_dim: int, width: int, depth: int, heads: int):
        super().__init__()
        self.embed = nn.Linear(patch_dim, width)
        self.register_buffer("position", sincos_positions_2d(*grid, width), persistent=False)
        self.blocks = transformer_stack(width, depth, heads)
        self.norm = nn.LayerNorm(width)

    def forward(self, patches: torch.Tensor, visible: torch.Tensor | None = None) -> torch.Tensor:
        h = self.embed(patches) + self.position
        h = self.blocks(h, src_key_padding_mask=None if visible is None else ~visible)
        return self.norm(h)


class Predictor(nn.Module):
    """g_phi: context embeddings (B, L, width) and target positions (B, L) bool -> predicted target
    embeddings (B, L, width). A narrow transformer (width `hidden`) over the context tokens and one
    learned mask token, plus its position, at every target position (I-JEPA Sec. 3, "Prediction").
    All target blocks are predicted in one pass (I-JEPA runs one pass per block): the mask tokens
    carry positions only, so seeing each other tells the predictor nothing about the targets."""

    def __init__(self, grid: tuple[int, int], width: int, hidden: int, depth: int, heads: int):
        super().__init__()
        self.project_in = nn.Linear(width, hidden)
        self.mask_token = nn.Parameter(0.02 * torch.randn(hidden))
        self.register_buffer("position", sincos_positions_2d(*grid, hidden), persistent=False)
        self.blocks = transformer_stack(hidden, depth, heads)
        self.norm = nn.LayerNorm(hidden)
        self.project_out = nn.Linear(hidden, width)

    def forward(self, context: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        h = torch.where(targets[..., None], self.mask_token, self.project_in(context)) + self.position
        return self.project_out(self.norm(self.blocks(h)))


# -- the model ----------------------------------------------------------------------------------------
# Course recipe and measured numbers: the jepa_ema and jepa_shared specs in lib/unigm/course/checkpoints.py.
@dataclass
class JEPAConfig:
    patch: int = 2  # patch side in pixels: 8x8 digits -> a 4 x 4 grid of 16 tokens
    width: int = 32  # D, the embedding dimension (divisible by heads and by 4)
    depth: int = 2
    heads: int = 4
    # I-JEPA's predictor is narrower than its encoder (Sec. 4); at this scale a narrower one (16) taught the
    # encoder less (10-label probe 0.53 vs 0.60), so it has the encoder's width here.
    predictor_width: int = 32
    predictor_depth: int = 2
    predictor_heads: int = 4
    target_blocks: int = 2  # rectangles per image, each of side min_side .. max_side patches
    min_side: int = 1
    max_side: int = 2
    ema_decay: float = 0.99  # theta_bar <- d theta_bar + (1 - d) theta after every update (I-JEPA: 0.996 -> 1)
    # Pixels enter as pixel_gain * (x - 1/2). Content must outweigh the fixed positions (amplitude 1): with
    # gain 1 the targets are mostly a function of position, predictable without looking at the image, and
    # the features barely beat a random encoder's (10-label probe 0.58 vs 0.55 in a first, smaller setup); with
    # gain 6 and these defaults, 0.60 vs 0.43 (the jepa_ema checkpoint).
    pixel_gain: float = 6.0


@register("jepa")  # a digits model of embeddings: no 2D recipe
class JEPA(Representation):
    """I-JEPA with an EMA target encoder. event_shape (C, H, W), H and W multiples of `patch`."""

    Config = JEPAConfig

    def __init__(self, event_shape, config: JEPAConfig | None = None):
        super().__init__(event_shape, config or self.Config())
        c = self.config
        if len(self.event_shape) != 3 or self.event_shape[1] % c.patch or self.event_shape[2] % c.patch:
            raise ShapeError(f"JEPA models images (C, H, W) with H and W multiples of patch = {c.patch}, "
                             f"got event_shape {self.event_shape}")
        if not 0.0 < c.ema_decay < 1.0:
            raise ValueError(f"ema_decay must lie in (0, 1), got {c.ema_decay}")
        channels, height, width = self.event_shape
        self.grid = (height // c.patch, width // c.patch)
        if c.target_blocks * c.max_side**2 >= self.grid[0] * self.grid[1]:
            raise ValueError(f"{c.target_blocks} target blocks of side up to {c.max_side} could hide the whole "
                             f"{self.grid[0]} x {self.grid[1]} grid of patches: no context would be left")
        self.encoder = PatchEncoder(self.grid, channels * c.patch**2, c.width, c.depth, c.heads)  # f_theta
        self.predictor = Predictor(self.grid, c.width, c.predictor_width, c.predictor_depth, c.predictor_heads)
        self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)  # f_theta_bar, moved by EMA only

    def patches(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) in [0, 1) -> (B, L, C p p)
        return patchify(self.config.pixel_gain * (self.check_input(x) - 0.5), self.config.patch)

    def masks(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, L) bool, True at the target patches; the context is the rest."""
        c = self.config
        targets, _ = block_masks(batch, self.grid, c.target_blocks, c.min_side, c.max_side, generator)
        return targets.to(self.device)

    def target(self, patches: torch.Tensor) -> torch.Tensor:
        """s_y (B, L, D): the target encoder on the whole image, under stop-gradient (the hook variants change)."""
        with torch.no_grad():
            return self.target_encoder(patches)

    def loss(self, x, *, generator=None):
        """Mean squared error between predicted and target embeddings over the target patches (eq. 1)."""
        patches = self.patches(x)
        targets = self.masks(len(patches), generator)  # (B, L)
        context = self.encoder(patches, visible=~targets)  # s_x, from the context patches only
        prediction = self.predictor(context, targets)  # (B, L, D)
        target = F.layer_norm(self.target(patches), (self.config.width,))  # s_y, normalised per token as I-JEPA's code does
        error = (prediction - target).pow(2).mean(-1)  # (B, L)
        return error[targets].mean()

    def after_update(self, *batch):
        """theta_bar <- d theta_bar + (1 - d) theta (I-JEPA Sec. 3, with a constant d)."""
        for bar, theta in zip(self.target_encoder.parameters(), self.encoder.parameters()):
            bar.lerp_(theta, 1.0 - self.config.ema_decay)

    @torch.no_grad()
    def embed(self, x):
        """(B, C, H, W) -> (B, D): the target encoder's output on the whole image (no masking), mean-pooled
        over the patches (the features I-JEPA evaluates, Sec. 5)."""
        return self.target(self.patches(x)).mean(1)


@register("jepa_shared")  # the collapsing counter-example: no 2D recipe
class SharedTargetJEPA(JEPA):
    """JEPA without its defences: the target encoder IS the context encoder, with gradients flowing
    through the targets too (no EMA, no stop-gradient). A constant encoder is then a perfect predictor
    of itself, and training finds it: the embeddings collapse."""

    def __init__(self, event_shape, config: JEPAConfig | None = None):
        super().__init__(event_shape, config)
        del self.target_encoder  # no second network: after_update has nothing to move

    def target(self, patches):
        return self.encoder(patches)

    def after_update(self, *batch):
        pass


# -- measurements -------------------------------------------------------------------------------------
def linear_probe(train_features, train_labels, test_features, test_labels, *, C: float = 1.0, seed: int = 0,
                 max_iter: int = 5000) -> float:
    """Test accuracy of a logistic regression (scikit-learn, L2 penalty C) fitted on standardised
    frozen features: the linear evaluation of I-JEPA Sec. 5. Features (N, D), labels (N,)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    arrays = [np.asarray(torch.as_tensor(a).detach().cpu()) for a in
              (train_features, train_labels, test_features, test_labels)]
    for features, labels in (arrays[:2], arrays[2:]):
        if features.ndim != 2 or labels.shape != (len(features),):
            raise ShapeError(f"a probe needs features (N, D) and labels (N,), got {features.shape} and {labels.shape}")
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter, random_state=seed))
    return float(probe.fit(*arrays[:2]).score(*arrays[2:]))


def few_label_probe(train_features, train_labels, test_features, test_labels, *, per_class: int = 10,
                    seeds=(0, 1, 2, 3, 4), C: float = 1.0) -> float:
    """linear_probe fitted on `per_class` labelled training images of each class (drawn without
    replacement with numpy's generator of each seed), the test accuracy averaged over the seeds."""
    labels = np.asarray(torch.as_tensor(train_labels).cpu())
    accuracies = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        chosen = np.concatenate([rng.choice(np.flatnonzero(labels == k), per_class, replace=False)
                                 for k in np.unique(labels)])
        accuracies.append(linear_probe(np.asarray(torch.as_tensor(train_features).cpu())[chosen], labels[chosen],
                                       test_features, test_labels, C=C, seed=seed))
    return float(np.mean(accuracies))


def embedding_std(z: torch.Tensor) -> float:
    """Mean over dimensions of the standard deviation (over images, 1/N) of the L2-normalised embeddings
    (Chen & He 2021, "Exploring Simple Siamese Representation Learning", Sec. 4.1): 0 when every image
    gets the same direction, about 1/sqrt(D) when the directions are spread isotropically."""
    z = torch.as_tensor(z).double()
    if z.dim() != 2:
        raise ShapeError(f"embeddings must be (N, D), got {tuple(z.shape)}")
    return (z / z.norm(dim=1, keepdim=True)).std(0, correction=0).mean().item()


def effective_rank(z: torch.Tensor) -> float:
    """exp(entropy) of the normalised singular values p_k = s_k / sum s of the (N, D) embeddings
    (Roy & Vetterli 2007; RankMe, Garrido et al. 2023): 1 when all images lie on one direction, D when
    all directions are used equally; 0 for all-zero embeddings."""
    z = torch.as_tensor(z).double()
    if z.dim() != 2:
        raise ShapeError(f"embeddings must be (N, D), got {tuple(z.shape)}")
    s = torch.linalg.svdvals(z)
    if s.sum() == 0:
        return 0.0
    p = s[s > 0] / s.sum()
    return math.exp(-(p * p.log()).sum().item())
