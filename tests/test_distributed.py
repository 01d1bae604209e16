"""fit under torchrun: 2 CPU processes (gloo) with global batch B train the model one process trains
with batch B (deterministic loss, to float tolerance), also with gradient accumulation and a
sampled data source; each rank's loss noise differs; only rank 0 writes the checkpoint."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from unigm import data, zoo
from unigm.base import GenerativeModel
from unigm.train import fit

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed with the gloo backend is not available in this build")

STEPS, BATCH = 8, 64
DATASET_SEED = 1

SCRIPT = textwrap.dedent(f"""
    import os, sys, torch
    import torch.distributed as dist
    from unigm import data, zoo
    from unigm.train import fit
    from test_distributed import Noise
    from unigm.train.distributed import setup

    rank, world_size = setup()
    assert world_size == 2 and dist.get_backend() == "gloo"
    out = sys.argv[1]
    dataset = data.toy("two_moons").sample(400, torch.Generator().manual_seed({DATASET_SEED}))
    results = {{}}
    for label, source, accumulate in (("tensor", dataset, 1), ("sampled", data.toy("two_moons"), 2)):
        torch.manual_seed(0 if rank == 0 else 101)  # different inits on purpose: fit must broadcast rank 0's
        model = zoo.make("realnvp", (2,), hidden=16)
        history = fit(model, source, steps={STEPS}, batch_size={BATCH}, accumulate=accumulate, lr=1e-2,
                      progress=False, checkpoint_path=os.path.join(out, f"{{label}}-{{rank}}.pt"))
        results[label] = {{"state": model.state_dict(), "losses": history.losses["loss"]}}

    noisy = Noise()
    fit(noisy, dataset, steps=3, batch_size=8, progress=False)
    gathered = [None, None]
    dist.all_gather_object(gathered, (noisy.noise, noisy.batches))
    results["noise"] = gathered
    if rank == 0:
        torch.save(results, os.path.join(out, "results.pt"))
""")


class Noise(GenerativeModel):
    """Records each batch its loss sees and the first noise value it draws."""

    def __init__(self):
        super().__init__((2,))
        self.w = torch.nn.Parameter(torch.zeros(2))
        self.noise, self.batches = [], []

    def loss(self, x, *, generator=None):
        eps = torch.randn(x.shape, generator=generator)
        self.noise.append(eps[0, 0].item())
        self.batches.append(x.clone())
        return (x + eps - self.w).pow(2).mean()


def launch(tmp_path: Path) -> dict:
    script = tmp_path / "ddp_fit.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(script), str(tmp_path)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"torchrun failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return torch.load(tmp_path / "results.pt", weights_only=True)


def single_process(source, accumulate):
    torch.manual_seed(0)
    model = zoo.make("realnvp", (2,), hidden=16)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        history = fit(model, source, steps=STEPS, batch_size=BATCH, accumulate=accumulate, lr=1e-2, progress=False)
    finally:
        torch.set_num_threads(threads)
    return model.state_dict(), history.losses["loss"]


def test_two_processes_train_the_model_one_process_trains(tmp_path):
    results = launch(tmp_path)
    dataset = data.toy("two_moons").sample(400, torch.Generator().manual_seed(DATASET_SEED))
    for label, source, accumulate in (("tensor", dataset, 1), ("sampled", data.toy("two_moons"), 2)):
        state, losses = single_process(source, accumulate)
        # rank 0's initial weights were broadcast, each rank trained on its half of the global batch,
        # DDP averaged the gradients: the same Adam steps as one process, up to float summation order
        torch.testing.assert_close(results[label]["losses"], losses, rtol=1e-5, atol=1e-6)
        for key, value in state.items():
            torch.testing.assert_close(results[label]["state"][key], value, rtol=1e-4, atol=1e-5, msg=key)
        assert (tmp_path / f"{label}-0.pt").exists() and not (tmp_path / f"{label}-1.pt").exists()
    (noise_rank0, batches_rank0), (noise_rank1, batches_rank1) = results["noise"]
    assert len(noise_rank0) == len(noise_rank1) == 3 and len(set(noise_rank0 + noise_rank1)) == 6  # all distinct
    alone = Noise()
    fit(alone, dataset, steps=3, batch_size=8, progress=False)
    # the first batch is the one process's, split in halves (later ones differ: one process draws
    # the loss noise from the batch generator, torchrun ranks from their own)
    assert len(batches_rank0[0]) == len(batches_rank1[0]) == 4
    assert torch.equal(torch.cat([batches_rank0[0], batches_rank1[0]]), alone.batches[0])


def test_the_global_batch_must_split_evenly():
    from unigm.train import batches

    with pytest.raises(ValueError, match="batch_size=10 is the global batch, split evenly over 4 processes"):
        batches(torch.randn(20, 2), 10, torch.Generator(), part=(0, 4))
