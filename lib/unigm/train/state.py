"""What `fit` returns (History) and what its hooks see while it runs (TrainState)."""
from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import torch

from ..base import GenerativeModel, Player


@dataclass
class History:
    """What happened during `fit`: per-step losses (one series per player), wall time."""

    losses: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    steps: int = 0
    stopped_early: bool = False

    def smoothed(self, key: str = "loss", window: int = 100) -> float:
        values = self.losses[key][-window:]
        return sum(values) / len(values)


@dataclass
class TrainState:
    """The trainer's state, handed to every hook. The loop writes `step` before a training
    step, and `player`, `parameters` and `optimizer` (the moving player's) before its updates;
    `batch` and `loss` are those of the latest update. A hook sets `stop = True` to end training
    after the current step."""

    model: GenerativeModel
    steps: int  # the number of training steps asked for
    history: History
    generator: torch.Generator  # draws the batches and every loss's noise
    device: torch.device
    autocast: AbstractContextManager  # entered around each loss: bfloat16 autocast or a no-op
    step: int = 0  # 1-based index of the current training step; 0 before the first
    player: Player | None = None
    parameters: list[torch.nn.Parameter] = field(default_factory=list)  # what `optimizer` updates
    optimizer: torch.optim.Optimizer | None = None
    batch: tuple[torch.Tensor, ...] = ()
    loss: torch.Tensor | None = None
    stop: bool = False
