"""A toy environment for world models: an agent the actions move and a ball they do not.

The Genie / Cosmos idea at toy scale (Bruce et al. 2024, "Genie: Generative Interactive
Environments", arXiv:2402.15391; NVIDIA 2025, "Cosmos World Foundation Model Platform",
arXiv:2501.03575): learn p(next frame | past frames, action) from recorded play, then roll the
model forward on its own predictions. The world is deterministic and closed form, so every
prediction can be checked against the truth.

Rules, on a SIZE x SIZE grid (rows grow downwards, columns to the right):
    agent   an AGENT x AGENT square, top-left corner (row, col) in [0, SIZE - AGENT]^2. Action
            0 stay, 1 up (row - 1), 2 down (row + 1), 3 left (col - 1), 4 right (col + 1);
            a move into a wall leaves it where it is (the position is clamped).
    ball    one pixel at (row, col) in [0, SIZE - 1]^2 with velocity (v_row, v_col) in {-1, +1}^2,
            which the actions do not touch. Per axis: if pos + v would leave the grid, v flips
            first; then pos <- pos + v (an elastic bounce off the wall).
Frames are (2, SIZE, SIZE) floats in {0, 1}: channel 0 the agent, channel 1 the ball. One frame
shows where the ball is, not where it goes: its velocity is the difference of two frames, so a
model needs the last two frames (CONTEXT) as well as the action.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

SIZE, AGENT, CHANNELS = 8, 2, 2
CONTEXT = 2  # frames a predictor needs: the ball's velocity is the difference of the last two
ACTIONS = ("stay", "up", "down", "left", "right")
MOVES = torch.tensor([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]])  # (row, col) step of each action
FRAME_SHAPE = (CHANNELS, SIZE, SIZE)


class State(NamedTuple):
    """A batch of N states: long tensors, (N, 2) each, as (row, col)."""

    agent: torch.Tensor  # top-left corner of the agent's square
    ball: torch.Tensor
    velocity: torch.Tensor  # the ball's, entries in {-1, +1}


def reset(n: int, generator: torch.Generator | None = None) -> State:
    """N random states: agent and ball placed uniformly, the ball's velocity uniform in {-1, +1}^2."""
    agent = torch.randint(SIZE - AGENT + 1, (n, 2), generator=generator)
    ball = torch.randint(SIZE, (n, 2), generator=generator)
    velocity = 2 * torch.randint(2, (n, 2), generator=generator) - 1
    return State(agent, ball, velocity)


def step(state: State, action: torch.Tensor) -> State:
    """The next states after `action` (N,) long in 0..4, by the rules above."""
    action = torch.as_tensor(action)
    if action.shape != (len(state.agent),) or action.dtype != torch.long:
        raise ValueError(f"action must be a long tensor of shape ({len(state.agent)},), got "
                         f"{tuple(action.shape)} {action.dtype}")
    if action.numel() and (action.min() < 0 or action.max() >= len(ACTIONS)):
        raise ValueError(f"actions are 0..{len(ACTIONS) - 1} ({', '.join(ACTIONS)}), got {action.unique().tolist()}")
    agent = (state.agent + MOVES[action]).clamp(0, SIZE - AGENT)  # walls: clamped
    ahead = state.ball + state.velocity
    velocity = torch.where((ahead < 0) | (ahead > SIZE - 1), -state.velocity, state.velocity)  # bounce
    return State(agent, state.ball + velocity, velocity)


def render(state: State) -> torch.Tensor:
    """States -> frames (N, 2, SIZE, SIZE) in {0, 1}: channel 0 the agent's square, channel 1 the ball."""
    grid = torch.arange(SIZE)
    rows, cols = grid[None, :, None], grid[None, None, :]  # (1, SIZE, 1), (1, 1, SIZE)
    ar, ac = state.agent[:, 0, None, None], state.agent[:, 1, None, None]
    agent = (rows >= ar) & (rows < ar + AGENT) & (cols >= ac) & (cols < ac + AGENT)
    ball = (rows == state.ball[:, 0, None, None]) & (cols == state.ball[:, 1, None, None])
    return torch.stack([agent, ball], 1).float()


def rollouts(n: int, steps: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """N episodes of `steps` uniformly random actions from reset states.
    -> frames (N, steps + 1, 2, SIZE, SIZE), actions (N, steps) long; actions[:, t] takes frame t to t + 1."""
    state = reset(n, generator)
    actions = torch.randint(len(ACTIONS), (n, steps), generator=generator)
    frames = [render(state)]
    for t in range(steps):
        state = step(state, actions[:, t])
        frames.append(render(state))
    return torch.stack(frames, 1), actions


def transitions(frames: torch.Tensor, actions: torch.Tensor, context: int = CONTEXT):
    """Every training example in a batch of rollouts, in the order fit() takes them:
    (next frame (M, C, H, W), the `context` frames before it (M, context, C, H, W), action (M,)),
    M = N * (steps + 1 - context). Example (n, t) predicts frame t + context from frames t .. t + context - 1."""
    n, length = frames.shape[:2]
    starts = range(length - context)
    before = torch.stack([frames[:, t:t + context] for t in starts], 1)  # (N, T, context, C, H, W)
    after = frames[:, context:]  # (N, T, C, H, W)
    action = actions[:, context - 1:]  # (N, T): the action taken at the last context frame
    return after.flatten(0, 1), before.flatten(0, 1), action.flatten(0, 1)


def decode(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Read the positions back from (possibly blurry, predicted) frames (..., 2, SIZE, SIZE):
    (agent (..., 2), ball (..., 2)) as float (row, col): the AGENT x AGENT window with the most
    agent mass, and the brightest ball pixel. Exact on rendered frames."""
    lead = frames.shape[:-3]
    frames = frames.reshape(-1, *frames.shape[-3:])
    mass = F.avg_pool2d(frames[:, :1], AGENT, stride=1).flatten(1)  # (B, (SIZE - AGENT + 1)^2)
    width = SIZE - AGENT + 1
    agent, ball = mass.argmax(1), frames[:, 1].flatten(1).argmax(1)
    agent = torch.stack([agent // width, agent % width], -1)
    ball = torch.stack([ball // SIZE, ball % SIZE], -1)
    return agent.reshape(*lead, 2).float(), ball.reshape(*lead, 2).float()


def to_rgb(frames: torch.Tensor) -> torch.Tensor:
    """Frames (..., 2, H, W) -> images (..., H, W, 3) for plotting: the agent blue, the ball orange."""
    agent, ball = frames[..., 0, :, :, None], frames[..., 1, :, :, None]
    blue, orange = torch.tensor([0.2, 0.4, 1.0]), torch.tensor([1.0, 0.55, 0.0])
    return (agent * blue + ball * orange).clamp(0, 1)
