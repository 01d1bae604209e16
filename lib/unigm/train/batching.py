"""The data forms `fit` accepts, turned into one function that draws the next batch."""
from __future__ import annotations

from typing import Callable

import torch


def batches(data, batch_size: int, generator: torch.Generator) -> Callable[[], tuple[torch.Tensor, ...]]:
    """A function returning the next training batch, as a tuple of the arguments of loss().

    data: a tensor (N, *event_shape), sampled with replacement; a tuple of equally long tensors
    (x, y, ...), sampled with the same indices and passed as loss(x, y, ...) (conditioning,
    or a fixed coupling such as reflow pairs); or a distribution with `.sample(n, generator)`
    (e.g. a 2D toy), giving fresh samples every step. All randomness comes from `generator`."""
    if isinstance(data, torch.Tensor):
        data = (data,)
    if isinstance(data, (tuple, list)) and data and all(isinstance(d, torch.Tensor) for d in data):
        if len(data[0]) == 0:
            raise ValueError("training data is empty")
        if any(len(d) != len(data[0]) for d in data):
            raise ValueError(f"tensors in a data tuple must have equal length, got {[len(d) for d in data]}")

        def draw():
            index = torch.randint(len(data[0]), (batch_size,), generator=generator)
            return tuple(d[index] for d in data)
        return draw
    if hasattr(data, "sample"):
        return lambda: (data.sample(batch_size, generator),)
    raise TypeError("fit() needs a tensor, a tuple of tensors or an object with .sample(n, generator), "
                    f"got {type(data).__name__}")
