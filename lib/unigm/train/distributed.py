"""`fit` under torchrun: DistributedDataParallel (Li et al. 2020, arXiv:2006.15704), PyTorch's own.

    torchrun --nproc_per_node 2 train.py          # train.py calls fit() as in one process

`fit` calls `setup()`, which initialises the default process group when torchrun's environment
says so (WORLD_SIZE > 1) and it is not initialised yet: gloo on CPU, NCCL on CUDA (each rank on
the GPU cuda:LOCAL_RANK). A script may call `setup()` itself first, e.g. to know its rank. Then:

- rank 0's weights and buffers are broadcast to every rank before the optimisers are built;
- `batch_size` is the global batch: every rank draws it with the same generator and trains on
  its own slice (batching.py), so the ranks see disjoint examples and together exactly the batch
  one process would draw; a loss's noise comes from a per-rank generator reseeded from the shared
  one's state before every loss, so it differs across ranks and is still fixed by the seed;
- each player's loss runs through its own DistributedDataParallel wrapper, so gradients are
  averaged across ranks during backward (see `LossCall` for why a wrapper of the loss);
- the logged losses are averaged over the ranks; only rank 0 shows progress and saves.

A deterministic loss therefore gives, up to float rounding, the model one process trains with the
same global batch (tests/test_distributed.py checks it with 2 CPU processes).
"""
from __future__ import annotations

import atexit
import hashlib
import os
from typing import Callable

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .batching import batches


def setup() -> tuple[int, int]:
    """(rank, world_size) of this process; initialises the process group under torchrun.

    Outside torchrun (no WORLD_SIZE, or WORLD_SIZE=1) this does nothing and returns (0, 1). An
    already initialised process group (e.g. by the script, with its own backend) is used as is."""
    if not dist.is_available():
        return 0, 1
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return 0, 1
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise RuntimeError(f"WORLD_SIZE={world_size} but {', '.join(missing)} not set: launch with torchrun "
                           "(it sets them), or initialise torch.distributed yourself before fit()")
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        backend = "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend)
    atexit.register(teardown)
    return dist.get_rank(), dist.get_world_size()


def teardown() -> None:
    """Destroy the default process group, if there is one (registered at exit by `setup`)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def default_device() -> torch.device:
    """This rank's device under torchrun: its own GPU (cuda:LOCAL_RANK) when there are GPUs."""
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


@torch.no_grad()
def broadcast_model(model: torch.nn.Module) -> None:
    """Give every rank rank 0's parameters and buffers (all of them, trainable or not)."""
    for tensor in model.state_dict(keep_vars=False).values():
        dist.broadcast(tensor, src=0)


class LossCall(torch.nn.Module):
    """forward(loss, *batch, generator) = loss(*batch, generator=generator), for DDP to wrap.

    DDP averages gradients only for what runs through its forward, while models are trained
    through `model.loss` (or a player's loss), not `forward`. Wrapping this adapter around the
    player's module (DDP(LossCall(player.module))) routes any loss through DDP's forward: DDP
    registers the module's parameters, prepares the gradient reduction in forward and all-reduces
    during backward, without touching the model's code. One wrapper per player, so a frozen
    opponent is simply outside it; find_unused_parameters=True because a player's loss may leave
    some of its parameters unused (phased models such as VAR train one part at a time)."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module

    def forward(self, loss: Callable, *batch: torch.Tensor, generator: torch.Generator | None = None):
        return loss(*batch, generator=generator)


def wrap(module: torch.nn.Module, device: torch.device) -> DistributedDataParallel:
    """DDP around LossCall(module): call it as wrapped(player.loss, *batch, generator=...)."""
    return DistributedDataParallel(LossCall(module), device_ids=[device.index] if device.type == "cuda" else None,
                                   find_unused_parameters=True)


def rank_batches(data, batch_size: int, generator: torch.Generator, loss_generator: torch.Generator,
                 rank: int, world_size: int) -> Callable[[], tuple[torch.Tensor, ...]]:
    """This rank's slice of each global batch (drawn with the shared `generator`, which advances as
    in one process); then reseeds this rank's `loss_generator` with a hash of (the shared
    generator's state, rank): the next loss's noise differs across ranks and across updates, the
    shared generator's state alone fixes the run (and resumes it), and the batches stay those
    one process would draw."""
    draw = batches(data, batch_size, generator, part=(rank, world_size))

    def next_batch():
        batch = draw()
        digest = hashlib.blake2b(generator.get_state().numpy().tobytes() + rank.to_bytes(4, "little"), digest_size=8)
        loss_generator.manual_seed(int.from_bytes(digest.digest(), "little") >> 1)  # < 2**63
        return batch
    return next_batch


def mean_over_ranks(loss: torch.Tensor) -> float:
    """The loss averaged over the ranks (their batches are equally large): the global batch's loss."""
    total = loss.detach().float().reshape(1).clone()
    dist.all_reduce(total)
    return total.item() / dist.get_world_size()
