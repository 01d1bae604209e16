"""Small tensor helpers every layer shares: broadcasting a time over a batch, drawing noise
from an explicit generator, validating a sample count.

One broadcast rule for the whole library: a time is a float, a 0-dim tensor or a (B,) tensor;
`as_time` turns it into (B,), `per_example` reshapes (B,) values to (B, 1, ..., 1) so that they
broadcast against a batch x of shape (B, *event_shape).
"""
from __future__ import annotations

import torch


class ShapeError(ValueError):
    """Raised when a tensor does not have the shape (or dtype) a function needs."""


def as_time(t, x: torch.Tensor) -> torch.Tensor:
    """A float, 0-dim or (B,) time -> shape (B,) on x's device and dtype, B = x.shape[0]."""
    t = torch.as_tensor(t).to(device=x.device, dtype=x.dtype)
    if t.dim() == 0:
        return t.expand(x.shape[0])
    if t.shape != (x.shape[0],):
        raise ShapeError(f"time must be a scalar or have shape ({x.shape[0]},), got {tuple(t.shape)}")
    return t


def per_example(values, x: torch.Tensor) -> torch.Tensor:
    """Per-example values (B,) (or a scalar) -> (B, 1, ..., 1), broadcasting against x (B, *E)."""
    values = torch.as_tensor(values).to(device=x.device, dtype=x.dtype)
    if values.dim() == 0:
        return values
    return values.reshape(values.shape[0], *([1] * (x.dim() - 1)))


def randn(shape, like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard normal noise of `shape` with like's dtype and device, drawn from `generator`
    (on the generator's own device, then moved) or, without one, from the global RNG."""
    if generator is None:
        return torch.randn(shape, dtype=like.dtype, device=like.device)
    return torch.randn(shape, dtype=like.dtype, device=generator.device, generator=generator).to(like.device)


def randn_like(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """torch.randn_like(x) that accepts a generator (see `randn`)."""
    return randn(x.shape, x, generator)


def rand(shape, like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform [0, 1) noise, like `randn`."""
    if generator is None:
        return torch.rand(shape, dtype=like.dtype, device=like.device)
    return torch.rand(shape, dtype=like.dtype, device=generator.device, generator=generator).to(like.device)


def check_n(n) -> int:
    """A number of samples: a positive int (not a bool)."""
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        raise ValueError(f"number of samples must be a positive int, got {n!r}")
    return n


def randint(low: int, high: int, shape, like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Integers uniform in [low, high) on like's device (long), drawn like `randn`."""
    device = like.device if generator is None else generator.device
    return torch.randint(low, high, shape, device=device, generator=generator).to(like.device)
