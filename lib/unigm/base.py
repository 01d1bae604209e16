"""The contract every model in the course follows, and the one time convention.

Time convention (used by every family: diffusion, flow matching, interpolants):
    t is a float in [0, 1]; t = 0 is data, t = 1 is noise.
A discrete chain of T steps (DDPM) uses the grid t_i = i / T, i = 0..T, so step i of the
paper is time i / T here. Samplers therefore integrate from t = 1 down to t = 0.

Four paradigms, one base class each:
    LikelihoodBased  log_prob(x) is exact or a lower bound       (VAE, flows)
    Implicit         a sampling process only                      (GAN)
    ScoreBased       score(x, t) ~ grad_x log p_t(x)              (diffusion)
    FlowBased        velocity(x, t) = dx/dt of a transport ODE    (flow matching)
One class is not a distribution at all: a `Representation` (JEPA) learns an embedding
embed(x) -> (B, D) of the data and neither samples nor has a likelihood; it subclasses
GenerativeModel only so that the zoo, the trainer and the checkpoints take it unchanged.
Adversarial models (GANs) additionally declare their players; `unigm.train.fit` owns the
optimisers and alternates the updates.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .tensors import ShapeError, check_n, randn

__all__ = ["Adversarial", "Conditional", "FlowBased", "GenerativeModel", "Implicit", "LikelihoodBased", "Player",
           "Representation", "ScoreBased", "ShapeError"]


class GenerativeModel(nn.Module):
    """A distribution p_theta over tensors of shape `event_shape`.

    Subclasses implement `loss` (what training minimises), `sample` and, where a likelihood
    exists, `log_prob`. `config` is the dataclass the model was built from (see `unigm.zoo`).
    Randomness comes from the `generator` argument when one is given (the trainer passes its
    own), so a loss is a pure function of its inputs and the generator's state; state a model
    must update while training (a warm-up counter, codebook usage) is updated in `after_update`.
    """

    name: str = "model"

    def __init__(self, event_shape: tuple[int, ...], config=None):
        super().__init__()
        shape = tuple(int(s) for s in event_shape)
        if not shape or any(s <= 0 for s in shape):
            raise ShapeError(f"event_shape must be a non-empty tuple of positive ints, got {event_shape!r}")
        self.event_shape = shape
        self.config = config

    # -- the contract -------------------------------------------------------------------
    def loss(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """x: (B, *event_shape) -> scalar to minimise."""
        raise NotImplementedError

    def sample(self, n: int, steps: int | None = None, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """-> (n, *event_shape); `steps` sets the sampler's step count where there is one."""
        raise NotImplementedError

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:  # -> (B,)
        raise NotImplementedError(f"{type(self).__name__} defines no likelihood")

    def after_update(self, *batch: torch.Tensor) -> None:
        """Called by the trainer, under no_grad, after each optimiser step with that step's batch."""

    # -- helpers shared by every model ------------------------------------------------------
    @property
    def event_dim(self) -> int:
        """Number of scalars in one event (D in 'bits per dimension')."""
        out = 1
        for s in self.event_shape:
            out *= s
        return out

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        for p in self.parameters():
            return p.dtype
        return torch.get_default_dtype()

    def check_input(self, x) -> torch.Tensor:
        """Validate a batch: a floating tensor of shape (B, *event_shape), moved to the model."""
        if not isinstance(x, torch.Tensor):
            raise ShapeError(f"{type(self).__name__} expects a torch.Tensor, got {type(x).__name__}")
        if not torch.is_floating_point(x):
            raise ShapeError(
                f"{type(self).__name__} expects a floating-point tensor, got dtype {x.dtype}; "
                "convert with x.float() (and dequantize integer data first)"
            )
        if x.dim() != 1 + len(self.event_shape) or tuple(x.shape[1:]) != self.event_shape:
            raise ShapeError(
                f"{type(self).__name__} was built for events of shape {self.event_shape}, so it expects "
                f"a batch of shape (B, {', '.join(map(str, self.event_shape))}); got {tuple(x.shape)}"
            )
        return x.to(self.device, self.dtype)

    def check_n(self, n) -> int:
        return check_n(n)

    def randn(self, *shape: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Standard normal noise of `shape` on the model's device and dtype (from `generator` if given)."""
        return randn(shape, torch.empty((), device=self.device, dtype=self.dtype), generator)

    def flat(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *event_shape) -> (B, D), for the MLPs of the 2D models."""
        return x.reshape(x.shape[0], -1)

    def unflat(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, *event_shape)."""
        return x.reshape(x.shape[0], *self.event_shape)


class LikelihoodBased(GenerativeModel):
    """log_prob(x) is exact (flows) or a lower bound on it (VAE)."""

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Implicit(GenerativeModel):
    """Only a sampling process: x = G(z). No likelihood."""


class ScoreBased(GenerativeModel):
    """Learns the score of the noised marginals p_t, t in [0, 1] (t = 0 data, t = 1 noise)."""

    def score(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # (B, *E), (B,) -> (B, *E)
        raise NotImplementedError


class FlowBased(GenerativeModel):
    """Learns a velocity field; data at t = 0 is carried to noise at t = 1 by dx/dt = v(x, t)."""

    def velocity(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # (B, *E), (B,) -> (B, *E)
        raise NotImplementedError


class Representation(GenerativeModel):
    """Learns features of the data, not its distribution: `embed(x)` (B, *event_shape) -> (B, D).

    Self-supervised models such as JEPA (Assran et al. 2023, arXiv:2301.08243) predict embeddings,
    never pixels, so there is nothing to sample and no likelihood: both raise NotImplementedError.
    `loss` and `after_update` follow the contract, so `unigm.train.fit` trains them like any model."""

    def embed(self, x: torch.Tensor) -> torch.Tensor:  # (B, *E) -> (B, D)
        raise NotImplementedError

    def sample(self, n: int, steps: int | None = None, *, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} learns an embedding of the data (embed(x) -> (B, D)), "
                                  "not a distribution over it: it has no sampler")

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} learns an embedding of the data (embed(x) -> (B, D)), "
                                  "not a distribution over it: it has no likelihood")


@dataclass
class Player:
    """One player of an adversarial game, as the trainer needs it.

    `loss(*batch, generator=...)` is this player's objective on a data batch; only `module`'s
    parameters are updated with it. `updates` is how many times the player moves per training
    step; `after_step(*batch)` (if given) runs after each of its optimiser steps (e.g. WGAN
    weight clipping).
    """

    name: str
    module: nn.Module
    loss: callable
    updates: int = 1
    lr: float | None = None  # None: the lr given to fit()
    betas: tuple[float, float] = (0.5, 0.999)
    after_step: callable = None  # after_step(*batch), after each of this player's optimiser steps


class Adversarial:
    """Mixin for models trained as a game. `players()` lists them in update order."""

    def players(self) -> list[Player]:
        raise NotImplementedError


class Conditional:
    """Mixin for conditional models p_theta(x | c): class labels, text tokens or actions.

    The contract gains the condition as a second argument, batched like x:
        loss(x, c, *, generator=None)        x (B, *event_shape), c (B, *condition_shape)
        sample(n, c, steps=None, *, generator=None) -> (n, *event_shape), c (n, *condition_shape)
    The trainer needs nothing new: fit(model, (x, c), ...) draws both with the same indices and
    calls loss(x, c). `condition_shape` is the shape of one condition (() for a class index) and
    `condition_dtype` its dtype (torch.long for labels and tokens, None: any floating dtype)."""

    condition_shape: tuple[int, ...] = ()
    condition_dtype: torch.dtype | None = torch.long

    def check_condition(self, c, batch: int) -> torch.Tensor:
        """Validate a batch of `batch` conditions and move it to the model's device."""
        name = type(self).__name__
        if not isinstance(c, torch.Tensor):
            raise ShapeError(f"{name} expects its condition as a torch.Tensor, got {type(c).__name__}")
        expected = (batch, *self.condition_shape)
        if tuple(c.shape) != expected:
            raise ShapeError(f"{name} expects conditions of shape {expected}, got {tuple(c.shape)}")
        if self.condition_dtype is not None and c.dtype != self.condition_dtype:
            raise ShapeError(f"{name} expects conditions of dtype {self.condition_dtype}, got {c.dtype}")
        if self.condition_dtype is None and not torch.is_floating_point(c):
            raise ShapeError(f"{name} expects floating-point conditions, got {c.dtype}")
        return c.to(self.device)
