"""What `fit` returns (History) and what its hooks see while it runs (TrainState)."""
from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import torch

from ..base import GenerativeModel, Player


@dataclass
class History:
    """What happened during `fit`: per-step losses (one series per player), wall time (of every
    fit call that led here, when training was resumed from a checkpoint)."""

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
    `batch` and `loss` are those of the latest update (with gradient accumulation: the update's
    micro-batches concatenated, and the mean of their losses). A hook sets `stop = True` to end
    training after the current step.

    Under torchrun (world_size > 1) every rank runs the loop: `batch` is this rank's share of the
    global batch, `generator` is the same on every rank (it draws the global batches) and
    `loss_generator` is this rank's own, reseeded from `generator` before every loss."""

    model: GenerativeModel
    steps: int  # the number of training steps asked for
    history: History
    generator: torch.Generator  # draws the batches and (in one process) every loss's noise
    device: torch.device
    autocast: AbstractContextManager  # entered around each loss: bfloat16 autocast or a no-op
    loss_generator: torch.Generator | None = None  # passed to every loss; None: `generator`
    batch_size: int = 0  # the global batch of one micro-batch, and micro-batches per optimiser step
    accumulate: int = 1
    rank: int = 0  # this process's rank under torchrun, and the number of processes
    world_size: int = 1
    turns: list = field(default_factory=list)  # every player's Turn: optimiser, lr schedule (see loop.py)
    hooks: list = field(default_factory=list)  # the hooks of this fit, in the order they run
    step: int = 0  # 1-based index of the current training step; 0 before the first
    player: Player | None = None
    parameters: list[torch.nn.Parameter] = field(default_factory=list)  # what `optimizer` updates
    optimizer: torch.optim.Optimizer | None = None
    batch: tuple[torch.Tensor, ...] = ()
    loss: torch.Tensor | None = None
    stop: bool = False
