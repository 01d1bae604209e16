"""The training loop: `fit(model, data, steps=..., batch_size=..., lr=...)`.

The trainer knows nothing about families. A model gives `loss(x, *, generator)`; an adversarial
model (`base.Adversarial`) instead lists its players, and each training step gives every player a
turn: only its own trainable parameters require grad, and only its optimiser steps. One
torch.Generator draws the batches and is passed to every loss; the global RNG is never touched.
Everything else (EMA, clipping, callbacks, progress) is a hook (see hooks.py).
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import torch

from .. import runtime
from ..base import Adversarial, GenerativeModel, Player
from .batching import batches
from .hooks import EMA, Callbacks, GradientClipping, Hook, ProgressBar, overridden
from .lr_schedules import cosine_lr
from .state import History, TrainState


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss."""


@dataclass
class Turn:
    """One player's turn in a training step: the parameters it updates (its own trainable ones),
    their optimiser and lr schedule, and the other trainable parameters, frozen while it moves."""

    player: Player
    parameters: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    others: list[torch.nn.Parameter]


def players(model: GenerativeModel) -> list[Player]:
    """An adversarial model's players; any other model is one player minimising model.loss."""
    if isinstance(model, Adversarial):
        return model.players()
    return [Player("loss", model, model.loss, betas=(0.9, 0.999), after_step=getattr(model, "after_update", None))]


def turns(model: GenerativeModel, lr: float, schedule: Callable[[float], float], steps: int,
          fused: bool) -> list[Turn]:
    """One Turn per player, with Adam over the player's parameters that require grad now
    (parameters a user froze stay out of every optimiser)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    result = []
    for player in players(model):
        own = [p for p in player.module.parameters() if p.requires_grad]
        if not own:
            raise ValueError(f"player {player.name!r} has no parameter that requires grad; nothing to train")
        optimizer = torch.optim.Adam(own, lr=lr if player.lr is None else player.lr, betas=player.betas, fused=fused)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: schedule(s / steps))
        own_ids = {id(p) for p in own}
        result.append(Turn(player, own, optimizer, scheduler, [p for p in trainable if id(p) not in own_ids]))
    return result


def fit(model: GenerativeModel, data, *, steps: int, batch_size: int = 256, lr: float = 1e-3,
        schedule: Callable[[float], float] = cosine_lr, ema_decay: float | None = None,
        grad_clip: float | None = None, callbacks: Iterable[Callable] = (), callback_every: int = 100,
        hooks: Iterable[Hook] = (), generator: torch.Generator | None = None, seed: int = 0,
        device: torch.device | str | None = None, amp: bool | None = None, progress: bool = True,
        desc: str | None = None) -> History:
    """Train `model` for `steps` training steps on `data` (see `batches`); return a History.

    generator: draws the batches and is passed to every loss (default: a new CPU generator seeded
    with `seed`), so the same call gives the same model; the global RNG is left alone.
    callbacks: functions cb(step, model, history) called every `callback_every` steps and at
    the end; returning True stops training. hooks: extra Hook objects (see hooks.py).
    ema_decay: keep an exponential moving average of the weights (see EMA) and load it into the
    model at the end. grad_clip: max global gradient norm of each update. amp: bfloat16 autocast
    on CUDA (default on there, never on CPU). Parameters with requires_grad=False stay frozen."""
    if not isinstance(model, GenerativeModel):
        raise TypeError(f"fit() trains a unigm GenerativeModel, got {type(model).__name__}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    generator = torch.Generator().manual_seed(seed) if generator is None else generator
    dev = torch.device(device) if device is not None else runtime.device()
    model.to(dev)
    next_batch = batches(data, batch_size, generator)
    model.check_input(next_batch()[0])  # fail early, with the model's message, on wrongly shaped data
    # DDP (later): wrap the model here, before the optimisers are built; progress on rank 0 only.
    model_turns = turns(model, lr, schedule, steps, fused=dev.type in ("cpu", "cuda"))  # fused: ~10% faster here
    use_amp = dev.type == "cuda" and (amp is None or bool(amp))
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16) if use_amp else contextlib.nullcontext()
    history = History(losses={t.player.name: [] for t in model_turns})
    state = TrainState(model, steps, history, generator, dev, autocast)
    hooks = [*([GradientClipping(grad_clip)] if grad_clip is not None else []),
             *([EMA(model, ema_decay)] if ema_decay else []), *hooks,
             *([Callbacks(callbacks, callback_every)] if callbacks else []),
             *([ProgressBar(desc or type(model).__name__)] if progress else [])]

    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.train()
    start = time.perf_counter()
    try:
        run(state, model_turns, next_batch, hooks)
    finally:  # the user's requires_grad flags, exactly, also when training raised
        for p, flag in flags:
            p.requires_grad_(flag)
    model.eval()
    history.seconds = time.perf_counter() - start
    return history


def run(state: TrainState, model_turns: list[Turn], next_batch: Callable[[], tuple[torch.Tensor, ...]],
        hooks: list[Hook]) -> None:
    """The loop: each step, every player takes its turn of `updates` updates; then the lr
    schedules step and the after_training_step hooks run (one of them may set state.stop)."""
    before, after = overridden(hooks, "before_optimizer_step"), overridden(hooks, "after_optimizer_step")
    end_of_step = overridden(hooks, "after_training_step")
    for hook in overridden(hooks, "on_start"):
        hook(state)
    # exact resume (later): an on_start hook restores optimisers, schedules, EMA and generator
    # and sets state.step to the last step done; the loop continues after it.
    for step in range(state.step + 1, state.steps + 1):
        state.step = step
        for turn in model_turns:
            state.player, state.parameters, state.optimizer = turn.player, turn.parameters, turn.optimizer
            for p in turn.others:  # only the moving player's parameters require grad
                p.requires_grad_(False)
            for _ in range(turn.player.updates):
                value = update(state, turn, next_batch(), before, after)
            for p in turn.others:
                p.requires_grad_(True)
            state.history.losses[turn.player.name].append(value)
        for turn in model_turns:
            turn.scheduler.step()
        state.history.steps = step
        for hook in end_of_step:
            hook(state)
        if state.stop:
            state.history.stopped_early = step < state.steps
            break
    for hook in overridden(hooks, "on_end"):
        hook(state)


def update(state: TrainState, turn: Turn, batch: tuple[torch.Tensor, ...], before: list, after: list) -> float:
    """One optimiser step of the moving player on `batch`; returns its loss."""
    player = turn.player
    batch = tuple(b.to(state.device, non_blocking=True) for b in batch)
    with state.autocast:
        loss = player.loss(*batch, generator=state.generator)
    value = loss.item()
    if not math.isfinite(value):
        raise NonFiniteLossError(
            f"{player.name} loss became {value} at step {state.step} of {state.steps}; training stopped. "
            "Try a smaller learning rate, gradient clipping (grad_clip=1.0) or check the data for NaN/inf."
        )
    state.batch, state.loss = batch, loss
    turn.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    # gradient accumulation (later): add the gradients of further batches here, before stepping.
    for hook in before:
        hook(state)
    turn.optimizer.step()
    if player.after_step is not None:  # state updates of the model (e.g. a KL warm-up counter)
        with torch.no_grad():
            player.after_step(*batch)
    for hook in after:
        hook(state)
    return value
