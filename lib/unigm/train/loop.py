"""The training loop: `fit(model, data, steps=..., batch_size=..., lr=...)`.

The trainer knows nothing about families. A model gives `loss(x, *, generator)`; an adversarial
model (`base.Adversarial`) instead lists its players, and each training step gives every player a
turn: only its own trainable parameters require grad, and only its optimiser steps. One
torch.Generator draws the batches and is passed to every loss; the global RNG is never touched.
Everything else (EMA, clipping, callbacks, progress, checkpoints) is a hook (see hooks.py).
Options: gradient accumulation (`accumulate`), bfloat16 autocast (`amp`), exact resume
(`checkpoint_path`, `resume_from`, see resume.py) and torchrun (see distributed.py).
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch

from .. import runtime
from ..base import Adversarial, GenerativeModel, Player
from . import distributed
from .batching import batches
from .hooks import EMA, Callbacks, GradientClipping, Hook, ProgressBar, overridden
from .lr_schedules import cosine_lr
from .resume import Checkpointing, Resume
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
    ddp: torch.nn.parallel.DistributedDataParallel | None = None  # under torchrun: the loss runs through it

    def loss(self, *batch: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if self.ddp is None:
            return self.player.loss(*batch, generator=generator)
        return self.ddp(self.player.loss, *batch, generator=generator)


def players(model: GenerativeModel) -> list[Player]:
    """An adversarial model's players; any other model is one player minimising model.loss."""
    if isinstance(model, Adversarial):
        return model.players()
    return [Player("loss", model, model.loss, betas=(0.9, 0.999), after_step=getattr(model, "after_update", None))]


def turns(model: GenerativeModel, lr: float, schedule: Callable[[float], float], steps: int,
          fused: bool, ddp_device: torch.device | None = None) -> list[Turn]:
    """One Turn per player, with Adam over the player's parameters that require grad now
    (parameters a user froze stay out of every optimiser); with `ddp_device`, each player's
    module is wrapped in DistributedDataParallel (see distributed.LossCall)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    result = []
    for player in players(model):
        own = [p for p in player.module.parameters() if p.requires_grad]
        if not own:
            raise ValueError(f"player {player.name!r} has no parameter that requires grad; nothing to train")
        optimizer = torch.optim.Adam(own, lr=lr if player.lr is None else player.lr, betas=player.betas, fused=fused)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: schedule(s / steps))
        own_ids = {id(p) for p in own}
        ddp = distributed.wrap(player.module, ddp_device) if ddp_device is not None else None
        result.append(Turn(player, own, optimizer, scheduler, [p for p in trainable if id(p) not in own_ids], ddp))
    return result


def fit(model: GenerativeModel, data, *, steps: int, batch_size: int = 256, lr: float = 1e-3,
        schedule: Callable[[float], float] = cosine_lr, ema_decay: float | None = None,
        grad_clip: float | None = None, callbacks: Iterable[Callable] = (), callback_every: int = 100,
        hooks: Iterable[Hook] = (), generator: torch.Generator | None = None, seed: int = 0,
        device: torch.device | str | None = None, amp: bool | None = None, progress: bool = True,
        desc: str | None = None, accumulate: int = 1, checkpoint_path: str | Path | None = None,
        checkpoint_every: int | None = None, resume_from: str | Path | None = None) -> History:
    """Train `model` for `steps` training steps on `data` (see `batches`); return a History.

    generator: draws the batches and is passed to every loss (default: a new CPU generator seeded
    with `seed`), so the same call gives the same model; the global RNG is left alone.
    callbacks: functions cb(step, model, history) called every `callback_every` steps and at
    the end; returning True stops training (under torchrun they run on every rank and must agree).
    hooks: extra Hook objects (see hooks.py).
    ema_decay: keep an exponential moving average of the weights (see EMA) and load it into the
    model at the end. grad_clip: max global gradient norm of each update. Parameters with
    requires_grad=False stay frozen.
    accumulate: each optimiser step averages the gradients of `accumulate` micro-batches of
    `batch_size` examples (effective batch accumulate * batch_size, at the memory of one
    micro-batch); the logged loss is the mean of the micro-batch losses. For an adversarial
    model it applies to each update of each player.
    amp: bfloat16 autocast around every loss (Micikevicius et al. 2018, arXiv:1710.03740; bfloat16
    keeps float32's exponent range, so no loss scaling is needed). None: on for CUDA, off
    elsewhere. True also works on CPU (torch.autocast("cpu"): matmuls and convolutions in
    bfloat16, faster only on CPUs with native bfloat16 (AVX512-BF16, AMX); useful there or to test
    bfloat16 numerics); a device without autocast is refused. Weights and optimiser stay float32.
    checkpoint_path, checkpoint_every: save the whole training state to checkpoint_path every
    checkpoint_every steps and at the end; resume_from: continue exactly from such a file, with
    the same steps, batch_size and accumulate (see resume.py).
    Under torchrun, fit trains one model on all processes with DistributedDataParallel and
    batch_size is the global batch (see distributed.py)."""
    if not isinstance(model, GenerativeModel):
        raise TypeError(f"fit() trains a unigm GenerativeModel, got {type(model).__name__}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not isinstance(accumulate, int) or accumulate < 1:
        raise ValueError(f"accumulate must be a positive int (micro-batches per optimiser step), got {accumulate!r}")
    if amp not in (None, True, False):
        raise TypeError(f"amp must be True, False or None (on for CUDA only), got {amp!r}")
    if checkpoint_every is not None and checkpoint_path is None:
        raise ValueError("checkpoint_every needs checkpoint_path: where to save the training state")
    rank, world_size = distributed.setup()
    generator = torch.Generator().manual_seed(seed) if generator is None else generator
    if device is not None:
        dev = torch.device(device)
    else:
        dev = runtime.device() if world_size == 1 else distributed.default_device()
    model.to(dev)
    if world_size == 1:
        loss_generator = generator
        next_batch = batches(data, batch_size, generator)
    else:
        distributed.broadcast_model(model)  # the same initial weights on every rank
        loss_generator = torch.Generator(device=generator.device)
        next_batch = distributed.rank_batches(data, batch_size, generator, loss_generator, rank, world_size)
    model.check_input(next_batch()[0])  # fail early, with the model's message, on wrongly shaped data
    model_turns = turns(model, lr, schedule, steps, fused=dev.type in ("cpu", "cuda"),  # fused: ~10% faster here
                        ddp_device=dev if world_size > 1 else None)
    use_amp = dev.type == "cuda" if amp is None else amp
    autocast = bfloat16_autocast(dev) if use_amp else contextlib.nullcontext()
    history = History(losses={t.player.name: [] for t in model_turns})
    state = TrainState(model, steps, history, generator, dev, autocast, loss_generator=loss_generator,
                       batch_size=batch_size, accumulate=accumulate, rank=rank, world_size=world_size,
                       turns=model_turns)
    hooks = [*([Resume(resume_from)] if resume_from is not None else []),
             *([GradientClipping(grad_clip)] if grad_clip is not None else []),
             *([EMA(model, ema_decay)] if ema_decay else []), *hooks,
             *([Callbacks(callbacks, callback_every)] if callbacks else []),
             *([Checkpointing(checkpoint_path, checkpoint_every)]
               if checkpoint_path is not None else []),
             *([ProgressBar(desc or type(model).__name__)] if progress and rank == 0 else [])]
    state.hooks = hooks

    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.train()
    start = time.perf_counter()
    try:
        run(state, model_turns, next_batch, hooks, accumulate)
    finally:  # the user's requires_grad flags, exactly, also when training raised
        for p, flag in flags:
            p.requires_grad_(flag)
    model.eval()
    history.seconds += time.perf_counter() - start  # a resumed run adds its earlier time
    return history


def bfloat16_autocast(device: torch.device) -> torch.autocast:
    """torch.autocast to bfloat16 on `device`, refused with the reason where it cannot work."""
    if not torch.amp.is_autocast_available(device.type):
        raise ValueError(f"amp=True: PyTorch has no autocast for {device.type} devices; use amp=False there")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16)
    try:
        with autocast:
            probe = torch.ones(2, 2, device=device) @ torch.ones(2, 2, device=device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"amp=True: bfloat16 autocast does not work on this {device.type} device ({error}); "
                         "use amp=False") from error
    if probe.dtype != torch.bfloat16:
        raise ValueError(f"amp=True: autocast on this {device.type} device does not compute in bfloat16; use amp=False")
    return autocast


def run(state: TrainState, model_turns: list[Turn], next_batch: Callable[[], tuple[torch.Tensor, ...]],
        hooks: list[Hook], accumulate: int = 1) -> None:
    """The loop: each step, every player takes its turn of `updates` updates; then the lr
    schedules step and the after_training_step hooks run (one of them may set state.stop)."""
    before, after = overridden(hooks, "before_optimizer_step"), overridden(hooks, "after_optimizer_step")
    end_of_step = overridden(hooks, "after_training_step")
    for hook in overridden(hooks, "on_start"):
        hook(state)  # a Resume hook (first) restores the training state and sets state.step to the last step done
    for step in range(state.step + 1, state.steps + 1):
        state.step = step
        for turn in model_turns:
            state.player, state.parameters, state.optimizer = turn.player, turn.parameters, turn.optimizer
            for p in turn.others:  # only the moving player's parameters require grad
                p.requires_grad_(False)
            for _ in range(turn.player.updates):
                value = update(state, turn, next_batch, before, after, accumulate)
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


def update(state: TrainState, turn: Turn, next_batch: Callable[[], tuple[torch.Tensor, ...]], before: list,
           after: list, accumulate: int = 1) -> float:
    """One optimiser step of the moving player on `accumulate` micro-batches; returns its loss
    (the mean over the micro-batches, and over the ranks under torchrun).

    The gradient of each micro-batch's loss / accumulate is added up, which is the gradient of the
    mean loss over all of them (equal micro-batches); under DDP only the last backward all-reduces
    (no_sync before), and each rank's share weighs 1 / world_size (DDP averages)."""
    player = turn.player
    turn.optimizer.zero_grad(set_to_none=True)
    micro_batches, values = [], []
    for i in range(accumulate):
        batch = tuple(b.to(state.device, non_blocking=True) for b in next_batch())
        last = i == accumulate - 1
        with contextlib.nullcontext() if turn.ddp is None or last else turn.ddp.no_sync():
            with state.autocast:
                loss = turn.loss(*batch, generator=state.loss_generator or state.generator)
            value = loss.item() if state.world_size == 1 else distributed.mean_over_ranks(loss)
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"{player.name} loss became {value} at step {state.step} of {state.steps}; training stopped. "
                    "Try a smaller learning rate, gradient clipping (grad_clip=1.0) or check the data for NaN/inf."
                )
            (loss if accumulate == 1 else loss / accumulate).backward()
        micro_batches.append(batch)
        values.append(value)
    if accumulate == 1:
        state.batch, state.loss = batch, loss
    else:
        value = sum(values) / accumulate
        state.batch = tuple(torch.cat(parts) for parts in zip(*micro_batches))
        state.loss = torch.tensor(value)
    for hook in before:
        hook(state)
    turn.optimizer.step()
    if player.after_step is not None:  # state updates of the model (e.g. a KL warm-up counter)
        with torch.no_grad():
            player.after_step(*state.batch)
    for hook in after:
        hook(state)
    return value
