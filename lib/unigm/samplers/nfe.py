"""Counting network function evaluations (NFE), the cost unit of every sampler.

`count_nfe()` needs nothing from the model or the field: while it is active, every call of a
torch.nn.Module that is not nested inside another module's call counts once. A Heun step of a
flow-matching network counts 2, a GAN sample 1, a RealNVP sample 1 (one pass through its stack
of couplings), an analytic field 0 (wrap it in a Module to count it).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from torch.nn.modules import module as torch_module


@dataclass
class NFECounter:
    count: int = 0


@contextmanager
def count_nfe():
    """with count_nfe() as nfe: model.sample(1000)   ->   nfe.count network evaluations."""
    counter, depth = NFECounter(), [0]

    def enter(module, args):
        if depth[0] == 0:
            counter.count += 1
        depth[0] += 1

    def leave(module, args, output):
        depth[0] -= 1

    handles = [torch_module.register_module_forward_pre_hook(enter),
               torch_module.register_module_forward_hook(leave, always_call=True)]
    try:
        yield counter
    finally:
        for handle in handles:
            handle.remove()
