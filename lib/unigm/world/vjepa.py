"""V-JEPA: predict the embeddings of a hidden space-time tube of a video from the visible rest.

V-JEPA (Bardes et al. 2024, "Revisiting Feature Prediction for Learning Visual Representations from
Video", arXiv:2404.08471) is I-JEPA (unigm.world.jepa) on clips instead of images, at toy scale on the
toy world's videos (unigm.world.env: an agent moved by random actions, a ball bouncing off the walls):

    tubelets    a clip (T, C, H, W) cut into t x p x p tubelets (Sec. 3.2, "Network parameterization";
                the paper: 2 x 16 x 16): a 3D grid of T/t x H/p x W/p tokens (here 4 frames of 8x8 in
                2 x 2 x 2 tubelets: 2 x 4 x 4 = 32 tokens), with fixed 3D sine-cosine positions
    masks       spatial blocks hidden in EVERY frame (Sec. 3.2, "Prediction task: predicting y from x",
                multi-block masking, "the same spatial mask is repeated across the temporal dimension"):
                a hidden object cannot be copied from a neighbouring frame; it must be inferred
    s_x         the context encoder, a non-causal transformer over the visible tubelets only
    s_y         the target encoder over the whole clip, an EMA of the context encoder, no gradient
    prediction  the predictor reads s_x plus a mask token at every hidden tubelet and regresses s_y there;
                loss = L1 distance to the layer-normalised targets (the paper's eq. 1 uses L1)

Why video: the ball's velocity is invisible in one frame (unigm.world.env: "one frame shows where the
ball is, not where it goes"). A clip shows it, and predicting where the ball is in a hidden tube
pays for knowing where it goes. The probes below read position and velocity from frozen features.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..base import Representation
from ..registry import register
from ..tensors import ShapeError
from . import env
from .jepa import PatchEncoder, Predictor, block_masks

__all__ = ["VJEPA", "VJEPAConfig", "ball_labels", "ridge_probe", "sincos_positions_3d", "space_time_masks",
           "tubelets", "untubelets"]


# -- tubelets, positions, masks -------------------------------------------------------------------
def _tubelet_grid(shape, frames: int, patch: int) -> tuple[int, int, int]:
    t, _, h, w = shape
    if t % frames or h % patch or w % patch:
        raise ShapeError(f"clips (T, C, H, W) = {tuple(shape)} do not split into tubelets of {frames} frames x "
                         f"{patch} x {patch} pixels: T must be a multiple of {frames}, H and W of {patch}")
    return t // frames, h // patch, w // patch


def tubelets(clips: torch.Tensor, frames: int, patch: int) -> torch.Tensor:
    """(B, T, C, H, W) -> (B, L, frames C p p), L = (T / frames)(H / p)(W / p): non-overlapping tubelets,
    ordered time-major, then raster order within each time slice; each token flattened as
    (frame, channel, row, col)."""
    if clips.dim() != 5:
        raise ShapeError(f"clips must be (B, T, C, H, W), got {tuple(clips.shape)}")
    b, _, c, _, _ = clips.shape
    tg, gh, gw = _tubelet_grid(clips.shape[1:], frames, patch)
    x = clips.reshape(b, tg, frames, c, gh, patch, gw, patch)
    x = x.permute(0, 1, 4, 6, 2, 3, 5, 7)  # (B, Tg, Gh, Gw, frames, C, p, p)
    return x.reshape(b, tg * gh * gw, frames * c * patch * patch)


def untubelets(tokens: torch.Tensor, clip_shape, frames: int, patch: int) -> torch.Tensor:
    """The inverse of `tubelets`: (B, L, frames C p p) -> (B, T, C, H, W) for clips of shape (T, C, H, W)."""
    t, c, h, w = clip_shape
    tg, gh, gw = _tubelet_grid(clip_shape, frames, patch)
    if tokens.dim() != 3 or tokens.shape[1:] != (tg * gh * gw, frames * c * patch * patch):
        raise ShapeError(f"tokens of clips {tuple(clip_shape)} must be (B, {tg * gh * gw}, "
                         f"{frames * c * patch * patch}), got {tuple(tokens.shape)}")
    x = tokens.reshape(len(tokens), tg, gh, gw, frames, c, patch, patch)
    return x.permute(0, 1, 4, 5, 2, 6, 3, 7).reshape(len(tokens), t, c, h, w)


def sincos_positions_3d(frames: int, rows: int, cols: int, dim: int) -> torch.Tensor:
    """Fixed 3D sine-cosine positions, (frames rows cols, dim), in the token order of `tubelets`: a third of
    the channels per axis (time, row, column), each half sines, half cosines of geometric frequencies
    (Vaswani et al. 2017, per axis, as V-JEPA's ViTs)."""
    if dim % 6:
        raise ValueError(f"3D sine-cosine positions need a width divisible by 6, got {dim}")
    sixth = dim // 6
    freqs = 1.0 / 10_000 ** (torch.arange(sixth) / sixth)  # (dim / 6,)
    axes = torch.meshgrid(torch.arange(frames), torch.arange(rows), torch.arange(cols), indexing="ij")
    angles = [a.reshape(-1, 1) * freqs for a in axes]  # 3 x (L, dim / 6)
    return torch.cat([f(a) for a in angles for f in (torch.sin, torch.cos)], dim=1)


def space_time_masks(batch: int, grid: tuple[int, int, int], blocks: int, min_side: int, max_side: int,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-block masks extended in time (V-JEPA Sec. 3.2): `blocks` rectangles on the spatial grid,
    drawn as unigm.world.jepa.block_masks draws them, each hidden at every time step.
    Returns (targets (B, L) bool in the token order of `tubelets`, rectangles (B, blocks, 4) long)."""
    frames, rows, cols = grid
    spatial, rectangles = block_masks(batch, (rows, cols), blocks, min_side, max_side, generator)  # (B, rows cols)
    return spatial.repeat(1, frames), rectangles  # the same spatial mask in every time slice


# -- the networks: the image JEPA's, with 3D positions ----------------------------------------------
class TubeletEncoder(PatchEncoder):
    """unigm.world.jepa.PatchEncoder over the tubelets of a (frames, rows, cols) grid with 3D positions."""

    def __init__(self, grid: tuple[int, int, int], tubelet_dim: int, width: int, depth: int, heads: int):
        super().__init__((grid[0] * grid[1], grid[2]), tubelet_dim, width, depth, heads)
        self.position = sincos_positions_3d(*grid, width)


class TubeletPredictor(Predictor):
    """unigm.world.jepa.Predictor on a (frames, rows, cols) grid with 3D positions."""

    def __init__(self, grid: tuple[int, int, int], width: int, hidden: int, depth: int, heads: int):
        super().__init__((grid[0] * grid[1], grid[2]), width, hidden, depth, heads)
        self.position = sincos_positions_3d(*grid, hidden)


# -- the model --------------------------------------------------------------------------------------
# Course recipe and measured numbers: the vjepa spec in lib/unigm/course/checkpoints.py.
@dataclass
class VJEPAConfig:
    tubelet_frames: int = 2  # t: frames per tubelet (the paper: 2)
    patch: int = 2  # p: tubelet side in pixels; 4 frames of 8x8 -> a 2 x 4 x 4 grid of 32 tokens
    width: int = 48  # D, divisible by heads and by 6 (3D positions)
    depth: int = 2
    heads: int = 4
    predictor_width: int = 48  # divisible by predictor_heads and by 6
    predictor_depth: int = 2
    predictor_heads: int = 4
    target_blocks: int = 2  # spatial rectangles per clip, each of side min_side .. max_side tubelets, all frames
    min_side: int = 1
    max_side: int = 2
    ema_decay: float = 0.99  # theta_bar <- d theta_bar + (1 - d) theta (V-JEPA: 0.998 -> 1)
    pixel_gain: float = 6.0  # pixels enter as gain (x - 1/2), so that content outweighs positions (see JEPAConfig)


@register("vjepa")  # a video model of embeddings: no 2D recipe
class VJEPA(Representation):
    """V-JEPA with an EMA target encoder. event_shape (T, C, H, W): clips of T frames."""

    Config = VJEPAConfig

    def __init__(self, event_shape, config: VJEPAConfig | None = None):
        super().__init__(event_shape, config or self.Config())
        c = self.config
        if len(self.event_shape) != 4:
            raise ShapeError(f"VJEPA models clips (T, C, H, W), got event_shape {self.event_shape}")
        if not 0.0 < c.ema_decay < 1.0:
            raise ValueError(f"ema_decay must lie in (0, 1), got {c.ema_decay}")
        self.grid = _tubelet_grid(self.event_shape, c.tubelet_frames, c.patch)  # (frames, rows, cols) of tubelets
        if c.target_blocks * c.max_side**2 >= self.grid[1] * self.grid[2]:
            raise ValueError(f"{c.target_blocks} target blocks of side up to {c.max_side} could hide the whole "
                             f"{self.grid[1]} x {self.grid[2]} spatial grid: no context would be left")
        tubelet_dim = c.tubelet_frames * self.event_shape[1] * c.patch**2
        self.encoder = TubeletEncoder(self.grid, tubelet_dim, c.width, c.depth, c.heads)  # f_theta
        self.predictor = TubeletPredictor(self.grid, c.width, c.predictor_width, c.predictor_depth,
                                          c.predictor_heads)
        self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)  # f_theta_bar, moved by EMA only

    def tokens(self, clips: torch.Tensor) -> torch.Tensor:  # (B, T, C, H, W) in [0, 1] -> (B, L, t C p p)
        c = self.config
        return tubelets(c.pixel_gain * (self.check_input(clips) - 0.5), c.tubelet_frames, c.patch)

    def masks(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, L) bool, True at the hidden tubelets (whole tubes through time); the context is the rest."""
        c = self.config
        targets, _ = space_time_masks(batch, self.grid, c.target_blocks, c.min_side, c.max_side, generator)
        return targets.to(self.device)

    def target(self, tokens: torch.Tensor) -> torch.Tensor:
        """s_y (B, L, D): the target encoder on the whole clip, under stop-gradient."""
        with torch.no_grad():
            return self.target_encoder(tokens)

    def loss(self, x, *, generator=None):
        """Mean L1 distance between predicted and layer-normalised target embeddings at the hidden tubelets."""
        tokens = self.tokens(x)
        targets = self.masks(len(tokens), generator)  # (B, L)
        context = self.encoder(tokens, visible=~targets)  # s_x, from the visible tubelets only
        prediction = self.predictor(context, targets)  # (B, L, D)
        target = F.layer_norm(self.target(tokens), (self.config.width,))
        return (prediction - target).abs().mean(-1)[targets].mean()

    def after_update(self, *batch):
        """theta_bar <- d theta_bar + (1 - d) theta, after every optimiser step (constant d)."""
        for bar, theta in zip(self.target_encoder.parameters(), self.encoder.parameters()):
            bar.lerp_(theta, 1.0 - self.config.ema_decay)

    @torch.no_grad()
    def embed(self, x):
        """(B, T, C, H, W) -> (B, D): the target encoder on the whole clip, mean-pooled over the tubelets."""
        return self.target(self.tokens(x)).mean(1)


# -- what the features should know: the ball's position and velocity --------------------------------
def ball_labels(clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips of the toy world (N, T, 2, SIZE, SIZE), T >= 2 -> (position (N, 2) float: the ball's (row, col)
    in the last frame; velocity (N,) long in 0..3: 2 [v_row > 0] + [v_col > 0] of its last move, each
    component +-1, read as the difference of the last two frames' positions)."""
    if clips.dim() != 5 or clips.shape[1] < 2 or tuple(clips.shape[2:]) != env.FRAME_SHAPE:
        raise ShapeError(f"ball_labels needs clips (N, T >= 2, {', '.join(map(str, env.FRAME_SHAPE))}), "
                         f"got {tuple(clips.shape)}")
    _, ball = env.decode(clips[:, -2:])  # (N, 2, 2)
    step = ball[:, 1] - ball[:, 0]
    if not torch.all(step.abs() == 1):
        raise ValueError("the ball moved by other than one pixel per axis between the last two frames: "
                         "these are not clips of unigm.world.env")
    return ball[:, 1], (2 * (step[:, 0] > 0) + (step[:, 1] > 0)).long()


def ridge_probe(train_features, train_targets, test_features, test_targets, *, alpha: float = 1.0) -> float:
    """Test R^2 (scikit-learn's, averaged over the target columns) of a ridge regression with penalty alpha
    fitted on standardised frozen features: the linear evaluation of a continuous target.
    Features (N, D), targets (N,) or (N, K)."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    arrays = [np.asarray(torch.as_tensor(a).detach().cpu(), dtype=np.float64) for a in
              (train_features, train_targets, test_features, test_targets)]
    for features, targets in (arrays[:2], arrays[2:]):
        if features.ndim != 2 or targets.ndim not in (1, 2) or len(targets) != len(features):
            raise ShapeError(f"a ridge probe needs features (N, D) and targets (N,) or (N, K), got "
                             f"{features.shape} and {targets.shape}")
    probe = make_pipeline(StandardScaler(), Ridge(alpha=alpha))
    return float(probe.fit(*arrays[:2]).score(*arrays[2:]))
