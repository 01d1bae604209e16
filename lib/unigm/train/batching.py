"""The data forms `fit` accepts, turned into one function that draws the next batch."""
from __future__ import annotations

from typing import Callable

import torch


def batches(data, batch_size: int, generator: torch.Generator,
            part: tuple[int, int] = (0, 1)) -> Callable[[], tuple[torch.Tensor, ...]]:
    """A function returning the next training batch, as a tuple of the arguments of loss().

    data: a tensor (N, *event_shape), sampled with replacement; a tuple of equally long tensors
    (x, y, ...), sampled with the same indices and passed as loss(x, y, ...) (conditioning,
    or a fixed coupling such as reflow pairs); or a distribution with `.sample(n, generator)`
    (e.g. a 2D toy), giving fresh samples every step. All randomness comes from `generator`.

    part=(rank, world_size): keep only the rank-th of world_size equal slices of each batch. With
    the same generator state on every rank (as under torchrun, see distributed.py), the ranks
    then train on disjoint shares of exactly the batch one process would draw: this is what
    torch's DistributedSampler does for epochs without replacement. A tensor data set draws
    only its slice's rows; a distribution samples the whole batch and keeps its slice."""
    rank, world_size = part
    if batch_size % world_size:
        raise ValueError(f"batch_size={batch_size} is the global batch, split evenly over {world_size} processes; "
                         f"make it a multiple of {world_size}")
    share = slice(rank * (batch_size // world_size), (rank + 1) * (batch_size // world_size))
    if isinstance(data, torch.Tensor):
        data = (data,)
    if isinstance(data, (tuple, list)) and data and all(isinstance(d, torch.Tensor) for d in data):
        if len(data[0]) == 0:
            raise ValueError("training data is empty")
        if any(len(d) != len(data[0]) for d in data):
            raise ValueError(f"tensors in a data tuple must have equal length, got {[len(d) for d in data]}")

        def draw():
            index = torch.randint(len(data[0]), (batch_size,), generator=generator)
            if world_size > 1:
                index = index[share]
            return tuple(d[index] for d in data)
        return draw
    if hasattr(data, "sample"):
        if world_size > 1:
            return lambda: (data.sample(batch_size, generator)[share],)
        return lambda: (data.sample(batch_size, generator),)
    raise TypeError("fit() needs a tensor, a tuple of tensors or an object with .sample(n, generator), "
                    f"got {type(data).__name__}")
