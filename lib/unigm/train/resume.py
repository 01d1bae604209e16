"""Exact resume: save the whole training state every N steps, continue from it bit for bit.

    fit(model, data, steps=2000, checkpoint_path="run.pt", checkpoint_every=200)
    fit(new_model, data, steps=2000, checkpoint_path="run.pt", checkpoint_every=200,
        resume_from="run.pt")                 # after a crash: the same curve and weights
    # one script for both: resume_from=path if path.exists() else None

What a training run depends on, all of it saved: the model's state dict (weights and buffers,
e.g. a warm-up counter), every player's optimiser and lr-schedule state, the state of hooks that
keep one (EMA's shadow weights), the generator's state (it draws every batch and, through it,
every loss's noise), the step and the history so far. One file of tensors and plain containers,
written with torch.save and read with torch.load(weights_only=True): loading runs no code.
Under torchrun only rank 0 writes; every rank reads the same file (on a shared file system).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from .hooks import Hook
from .state import TrainState

FORMAT = "unigm.train_state/1"


def settings(state: TrainState) -> dict:
    """What a resumed fit must repeat for the run to continue exactly as it would have."""
    return {"steps": state.steps, "batch_size": state.batch_size, "accumulate": state.accumulate,
            "players": [t.player.name for t in state.turns]}


def stateful(state: TrainState) -> dict[str, Hook]:
    """The hooks that keep state (they define state_dict), keyed by class and rank among them."""
    keeping = [h for h in state.hooks if hasattr(h, "state_dict")]
    return {f"{i}:{type(h).__name__}": h for i, h in enumerate(keeping)}


def training_state(state: TrainState, seconds: float) -> dict:
    """Everything the run depends on, as tensors and plain containers (see the module's docstring)."""
    return {"format": FORMAT, "settings": settings(state), "step": state.step,
            "model": state.model.state_dict(),
            "optimizers": {t.player.name: t.optimizer.state_dict() for t in state.turns},
            "schedulers": {t.player.name: t.scheduler.state_dict() for t in state.turns},
            "hooks": {k: h.state_dict() for k, h in stateful(state).items()},
            "generator": state.generator.get_state(),
            "history": {"losses": {k: list(v) for k, v in state.history.losses.items()},
                        "steps": state.history.steps, "seconds": seconds}}


class Checkpointing(Hook):
    """Save the training state to `path` after every `every` training steps, after the last one
    and after an early stop (`every=None`: only then). The file is replaced atomically, so a
    crash while writing leaves the previous checkpoint intact."""

    def __init__(self, path: str | Path, every: int | None = None):
        if every is not None and (not isinstance(every, int) or every < 1):
            raise ValueError(f"checkpoint_every must be a positive int (steps), got {every!r}")
        self.path, self.every = Path(path), every

    def on_start(self, state: TrainState) -> None:
        self.started, self.seconds_before = time.perf_counter(), state.history.seconds

    def after_training_step(self, state: TrainState) -> None:
        due = (self.every is not None and state.step % self.every == 0) or state.step == state.steps or state.stop
        if due and state.rank == 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_name(self.path.name + ".partial")
            seconds = self.seconds_before + time.perf_counter() - self.started
            torch.save(training_state(state, seconds), partial)
            os.replace(partial, self.path)


class Resume(Hook):
    """Restore a training state saved by Checkpointing, before the first step (on_start): the
    loop then continues with step state.step + 1. It must run before every other on_start
    (fit(resume_from=path) puts it first)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"resume_from={str(path)!r}: no such training-state file")

    def on_start(self, state: TrainState) -> None:
        saved = torch.load(self.path, map_location=state.device, weights_only=True)
        if not isinstance(saved, dict) or saved.get("format") != FORMAT:
            raise ValueError(f"{self.path} is not a training state written by fit(checkpoint_path=...); "
                             "(model weights alone are loaded with load_checkpoint)")
        expected = settings(state)
        differ = {k: (saved["settings"].get(k), v) for k, v in expected.items() if saved["settings"].get(k) != v}
        if differ:
            raise ValueError(f"cannot resume {self.path} exactly: " + ", ".join(
                f"{k} was {old!r}, now {new!r}" for k, (old, new) in differ.items()) +
                " (the lr schedule and the batches depend on them); call fit with the saved values")
        hooks = stateful(state)
        if hooks.keys() != saved["hooks"].keys():
            raise ValueError(f"cannot resume {self.path}: it holds the state of hooks {sorted(saved['hooks'])}, "
                             f"this fit has {sorted(hooks)} (e.g. ema_decay given in one run only)")
        state.model.load_state_dict(saved["model"])
        for turn in state.turns:
            turn.optimizer.load_state_dict(saved["optimizers"][turn.player.name])
            turn.scheduler.load_state_dict(saved["schedulers"][turn.player.name])
        for key, hook in hooks.items():
            hook.load_state_dict(saved["hooks"][key])
        state.generator.set_state(saved["generator"].cpu())  # a ByteTensor, on the CPU for any generator
        history = saved["history"]
        state.history.losses = {k: list(v) for k, v in history["losses"].items()}
        state.history.steps, state.history.seconds = history["steps"], history["seconds"]
        state.step = saved["step"]
