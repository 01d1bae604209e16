"""Hooks: what `fit` does around its loop besides optimising (EMA, clipping, callbacks, progress).

A hook subclasses `Hook` and overrides some of its methods; each gets the `TrainState`.
The loop calls only the methods a hook overrides, so an unused hook point costs nothing:

    on_start(state)               once, before the first training step
    before_optimizer_step(state)  after each backward pass, before the optimiser steps (grads ready)
    after_optimizer_step(state)   after each optimiser step (and the player's after_step)
    after_training_step(state)    after every player has moved and the lr schedules stepped
    on_end(state)                 once, after the last step or an early stop (not if training raised)

A hook that keeps state across steps (EMA) also defines state_dict() and load_state_dict(d), so
that a checkpoint of the training state (resume.py) includes it.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from tqdm.auto import tqdm

from .state import TrainState


class Hook:
    """Base class of the trainer's hooks; every method is a no-op until overridden."""

    def on_start(self, state: TrainState) -> None: ...

    def before_optimizer_step(self, state: TrainState) -> None: ...

    def after_optimizer_step(self, state: TrainState) -> None: ...

    def after_training_step(self, state: TrainState) -> None: ...

    def on_end(self, state: TrainState) -> None: ...


def overridden(hooks: Iterable, name: str) -> list[Callable[[TrainState], None]]:
    """The bound `name` methods of the hooks that override Hook's no-op, in order."""
    default = getattr(Hook, name)
    return [getattr(h, name) for h in hooks if getattr(type(h), name, default) is not default]


class EMA(Hook):
    """Exponential moving average of the parameters (Polyak & Juditsky 1992):
    shadow <- decay * shadow + (1 - decay) * theta after every training step, starting from
    the weights at construction. Kept as flat lists so that an update costs one lerp per tensor.
    As a hook it updates after each training step and copies the average into the model at the end;
    its shadow weights are part of a resumable training state (state_dict / load_state_dict)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.params = [p for p in model.parameters() if p.dtype.is_floating_point]
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        for s, p in zip(self.shadow, self.params):
            s.lerp_(p, 1.0 - self.decay)

    @torch.no_grad()
    def copy_to_model(self) -> None:
        for s, p in zip(self.shadow, self.params):
            p.copy_(s)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "shadow": list(self.shadow)}

    @torch.no_grad()
    def load_state_dict(self, saved: dict) -> None:
        if saved["decay"] != self.decay or len(saved["shadow"]) != len(self.shadow):
            raise ValueError(f"EMA state of decay {saved['decay']} over {len(saved['shadow'])} tensors does not "
                             f"match this EMA (decay {self.decay}, {len(self.shadow)} tensors)")
        for s, value in zip(self.shadow, saved["shadow"]):
            s.copy_(value)

    def after_training_step(self, state: TrainState) -> None:
        self.update()

    def on_end(self, state: TrainState) -> None:
        self.copy_to_model()


class GradientClipping(Hook):
    """Rescale the moving player's gradients to a global L2 norm of at most `max_norm`
    (Pascanu et al. 2013)."""

    def __init__(self, max_norm: float):
        self.max_norm = max_norm

    def before_optimizer_step(self, state: TrainState) -> None:
        torch.nn.utils.clip_grad_norm_(state.parameters, self.max_norm)


class Callbacks(Hook):
    """User functions cb(step, model, history), called every `every` training steps and after the
    last; if any returns True, training stops (all of them are called first)."""

    def __init__(self, callbacks: Iterable[Callable], every: int):
        self.callbacks, self.every = list(callbacks), every

    def after_training_step(self, state: TrainState) -> None:
        if state.step % self.every == 0 or state.step == state.steps:
            if any([bool(cb(state.step, state.model, state.history)) for cb in self.callbacks]):
                state.stop = True


class ProgressBar(Hook):
    """A tqdm bar over the training steps showing the latest loss of each player."""

    def __init__(self, desc: str):
        self.desc = desc

    def on_start(self, state: TrainState) -> None:
        self.bar = tqdm(total=state.steps, initial=state.step, desc=self.desc, mininterval=0.5, leave=False)

    def after_training_step(self, state: TrainState) -> None:
        self.bar.update()
        if state.step % 50 == 0 or state.step == state.steps:
            self.bar.set_postfix({k: f"{v[-1]:.4g}" for k, v in state.history.losses.items()}, refresh=False)

    def on_end(self, state: TrainState) -> None:
        self.bar.close()
