"""An action-conditioned next-frame model: p(x_{t+1} | x_{t-T+1..t}, a_t), rolled out on its own predictions.

The core of a world model such as Genie (Bruce et al. 2024, arXiv:2402.15391, Sec. 2: a dynamics
model predicts the next frame's tokens from the past frames and a latent action) or Cosmos (NVIDIA
2025, arXiv:2501.03575: video prediction conditioned on actions), at toy scale: frames of binary
pixels, so the model is a product of Bernoullis whose log-likelihood is exact,
    log p(x | context, a) = sum_i [x_i log p_i + (1 - x_i) log(1 - p_i)],  p = sigmoid(f(context, a)).
f is a small conv net: the context frames stacked as channels, plus two coordinate channels (so
the net sees the walls; zero padding alone looks like an empty pixel), with the action entering
every block by FiLM (Perez et al. 2018, arXiv:1709.07871): h <- h * (1 + scale(a)) + shift(a).

`rollout(context, actions)` predicts k frames autoregressively in time, each step feeding back the
predicted probabilities as the newest context frame. `action_blind=True` zeroes FiLM's input:
the same net, trained the same way, that cannot see the action (the baseline that shows what the
action is worth). `copy_last_frame` and `rollout_errors` are the measurement.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..base import Conditional, LikelihoodBased
from ..registry import register
from ..tensors import ShapeError, rand
from . import env


@dataclass
class NextFrameConfig:
    context: int = env.CONTEXT  # past frames seen
    num_actions: int = len(env.ACTIONS)
    hidden: int = 32  # conv channels
    depth: int = 3  # FiLM-conditioned residual blocks (3x3 convs)
    action_blind: bool = False  # the baseline: the action is never seen


class FiLMBlock(nn.Module):
    """h + conv(relu(conv(h)) * (1 + scale) + shift), scale and shift from the action embedding."""

    def __init__(self, hidden: int, embed: int):
        super().__init__()
        self.conv1 = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.film = nn.Linear(embed, 2 * hidden)

    def forward(self, h: torch.Tensor, a: torch.Tensor) -> torch.Tensor:  # (B, hidden, H, W), (B, embed)
        scale, shift = self.film(a)[:, :, None, None].chunk(2, dim=1)
        return h + self.conv2(F.relu(self.conv1(h)) * (1 + scale) + shift)


@register("next_frame")
class NextFrame(Conditional, LikelihoodBased):
    """p(x | context, action) for frames x of shape event_shape = (C, H, W), binary pixels.

    The condition is a pair, batched like x: context (B, T, C, H, W) floats in [0, 1] (T =
    config.context, oldest first; rollouts feed back probabilities) and action (B,) long in
    0 .. num_actions - 1. fit(model, (x, context, action)) trains it (env.transitions gives that
    tuple)."""

    Config = NextFrameConfig
    condition_shape, condition_dtype = (), torch.long  # the action; the context is checked separately

    def __init__(self, event_shape, config=None):
        super().__init__(event_shape, config or self.Config())
        if len(self.event_shape) != 3:
            raise ShapeError(f"NextFrame models frames: event_shape (C, H, W), got {self.event_shape}")
        c, cfg = self.event_shape[0], self.config
        self.action_embedding = nn.Embedding(cfg.num_actions, cfg.hidden)
        self.stem = nn.Conv2d(cfg.context * c + 2, cfg.hidden, 3, padding=1)
        self.blocks = nn.ModuleList(FiLMBlock(cfg.hidden, cfg.hidden) for _ in range(cfg.depth))
        self.head = nn.Conv2d(cfg.hidden, c, 1)

    # -- checks ---------------------------------------------------------------------------------
    def check_context(self, context, batch: int | None = None) -> torch.Tensor:
        expected = (self.config.context, *self.event_shape)
        if not isinstance(context, torch.Tensor) or not torch.is_floating_point(context):
            raise ShapeError("NextFrame expects the context as a floating-point tensor "
                             f"(B, {', '.join(map(str, expected))})")
        if context.dim() != 5 or tuple(context.shape[1:]) != expected or batch not in (None, len(context)):
            raise ShapeError(f"NextFrame expects a context of shape ({batch or 'B'}, {', '.join(map(str, expected))}) "
                             f"(the last {self.config.context} frames), got {tuple(context.shape)}")
        return context.to(self.device, self.dtype)

    def check_action(self, action, batch: int) -> torch.Tensor:
        action = self.check_condition(action, batch)
        if action.numel() and (action.min() < 0 or action.max() >= self.config.num_actions):
            raise ValueError(f"actions must lie in 0 .. {self.config.num_actions - 1}, got "
                             f"{action.min().item()} .. {action.max().item()}")
        return action

    # -- the network ----------------------------------------------------------------------------
    def logits(self, context: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W), (B,) -> next-frame logits (B, C, H, W)."""
        context = self.check_context(context)
        action = self.check_action(action, len(context))
        b, _, _, h, w = context.shape
        rows = torch.linspace(-1, 1, h, device=self.device, dtype=self.dtype)[:, None].expand(h, w)
        cols = torch.linspace(-1, 1, w, device=self.device, dtype=self.dtype)[None, :].expand(h, w)
        coords = torch.stack([rows, cols])[None].expand(b, 2, h, w)
        hidden = self.stem(torch.cat([context.flatten(1, 2), coords], 1))
        a = self.action_embedding(action)  # (B, hidden)
        if self.config.action_blind:
            a = torch.zeros_like(a)  # FiLM sees the same input whatever the action
        for block in self.blocks:
            hidden = block(F.relu(hidden), a)
        return self.head(F.relu(hidden))

    def predict(self, context: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The predicted next frame, E[x | context, action] = sigmoid(logits): (B, C, H, W)."""
        return torch.sigmoid(self.logits(context, action))

    # -- the contract ---------------------------------------------------------------------------
    def log_prob(self, x: torch.Tensor, context: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Exact log p(x | context, action) in nats, (B,); x must be binary."""
        x = self.check_input(x)
        if not torch.all((x == 0) | (x == 1)):
            raise ValueError("NextFrame models binary frames: every pixel of x must be 0 or 1")
        logits = self.logits(self.check_context(context, len(x)), action)
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)

    def loss(self, x, context, action, *, generator=None):
        """Negative log-likelihood per frame, in nats."""
        return -self.log_prob(x, context, action).mean()

    @torch.no_grad()
    def sample(self, n, context, action, steps=None, *, generator=None):
        """n next frames, each pixel drawn from its Bernoulli: (n, C, H, W)."""
        p = self.predict(self.check_context(context, self.check_n(n)), action)
        return (rand(p.shape, p, generator) < p).to(p.dtype)

    @torch.no_grad()
    def rollout(self, context: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Predict k frames from context (B, T, C, H, W) and actions (B, k): (B, k, C, H, W).
        Autoregressive in time: prediction j becomes the newest context frame of step j + 1."""
        context = self.check_context(context)
        if not isinstance(actions, torch.Tensor) or actions.dim() != 2 or len(actions) != len(context):
            raise ShapeError(f"rollout expects actions of shape ({len(context)}, k), got "
                             f"{tuple(actions.shape) if isinstance(actions, torch.Tensor) else type(actions).__name__}")
        frames = []
        for j in range(actions.shape[1]):
            frames.append(self.predict(context, actions[:, j]))
            context = torch.cat([context[:, 1:], frames[-1][:, None]], 1)
        return torch.stack(frames, 1)


# -- measurement -------------------------------------------------------------------------------
def copy_last_frame(context: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """The trivial baseline: the world stands still. (B, T, C, H, W), (B, k) -> (B, k, C, H, W)."""
    return context[:, -1:].expand(-1, actions.shape[1], *context.shape[2:])


def rollout_errors(rollout: Callable, frames: torch.Tensor, actions: torch.Tensor, horizon: int = 5,
                   context: int = env.CONTEXT) -> dict[str, torch.Tensor]:
    """k-step errors, k = 1 .. horizon, of `rollout(context, actions) -> (B, k, C, H, W)` (model.rollout,
    copy_last_frame) on true rollouts frames (N, L, C, H, W), actions (N, L - 1) of env.rollouts:
    the first `context` frames start it, the next `horizon` are the truth. Returns (horizon,) tensors:
    'mse' per pixel, and 'agent' / 'ball': the mean distance in pixels between the decoded and
    the true positions (env.decode)."""
    if frames.shape[1] < context + horizon:
        raise ValueError(f"rollouts of {frames.shape[1]} frames are too short for {context} context frames "
                         f"and a horizon of {horizon}")
    truth = frames[:, context:context + horizon]
    with torch.no_grad():
        predicted = rollout(frames[:, :context], actions[:, context - 1:context - 1 + horizon]).float().cpu()
    (agent, ball), (agent_true, ball_true) = env.decode(predicted), env.decode(truth)
    return {"mse": (predicted - truth).pow(2).mean((0, 2, 3, 4)),
            "agent": (agent - agent_true).norm(dim=-1).mean(0),
            "ball": (ball - ball_true).norm(dim=-1).mean(0)}
