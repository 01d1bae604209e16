"""A training script that runs unchanged in one process and under torchrun (lecture 03, section 7).

    python -m unigm.train.ddp_demo OUT                                     # one process
    python -m torch.distributed.run --standalone --nproc_per_node 2 \\
        -m unigm.train.ddp_demo OUT                                        # two processes, DDP on gloo

Both train a small RealNVP on a fixed draw of two moons with `fit` and the same global batch; rank 0
writes OUT/ddp_demo.pt (the weights, the losses, the world size and the seconds `fit` took). RealNVP's
loss (the batch's mean negative log-likelihood) draws no noise, so the two runs take the same Adam steps
and must end with the same weights up to float rounding: the equivalence lecture 03 checks. `train()`
is the function both runs call; the notebook calls it directly for the one-process reference.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from .. import data, zoo
from .distributed import setup
from .loop import fit

DATASET_SEED = 1  # the two-moons draw every process trains on (400 points)
RESULT = "ddp_demo.pt"


def train(steps: int = 20, batch_size: int = 64, lr: float = 1e-2, seed: int = 0, hidden: int = 16):
    """Build RealNVP(hidden) with seeded weights and fit it for `steps` steps of global batch `batch_size`
    on 400 fixed two-moons points: (model, history). Under torchrun rank 0's weights are broadcast by fit,
    so the other ranks' seeds do not matter."""
    dataset = data.toy("two_moons").sample(400, torch.Generator().manual_seed(DATASET_SEED))
    torch.manual_seed(seed)
    model = zoo.make("realnvp", (2,), hidden=hidden)
    history = fit(model, dataset, steps=steps, batch_size=batch_size, lr=lr, seed=seed, progress=False)
    return model, history


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unigm.train.ddp_demo", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for ddp_demo.pt (written by rank 0)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64, help="the global batch (split over the processes)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rank, world_size = setup()  # (0, 1) outside torchrun; fit would call it too
    torch.set_num_threads(1)  # one thread per process: two processes share two cores
    model, history = train(args.steps, args.batch_size, seed=args.seed)
    if rank == 0:
        args.out.mkdir(parents=True, exist_ok=True)
        torch.save({"state": model.state_dict(), "losses": history.losses["loss"], "world_size": world_size,
                    "seconds": history.seconds}, args.out / RESULT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
