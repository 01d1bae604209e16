"""`python -m unigm.bench`: train every zoo model on the 2D datasets and measure it.

For each (model, dataset) pair: train with the zoo's recipe, then measure on held-out data
(2,000 model samples vs 2,000 data points): exact W2 with its noise floor and the single
Gaussian baseline, the gap closed G, RBF-MMD^2, NLL in nats where the model has a likelihood
(next to the data's true entropy), sampling time per 1,000 samples and the NFE actually spent.
Writes build/bench.json and build/bench.md.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from . import data, metrics, runtime, zoo
from .train import fit

DEFAULT_DATASETS = ("two_moons", "eight_gaussians")
N_EVAL = 2000  # samples for W2 / MMD (DESIGN.md protocol)
N_NLL = 500  # held-out points for the likelihood (the ODE likelihood costs ~100 x 4 x (D + 1) passes)


@dataclass
class BenchRow:
    model: str
    dataset: str
    train_seconds: float
    steps: int
    w2: float
    w2_floor: float
    w2_gauss: float
    gap_closed: float
    mmd: float
    nll: float | None  # nats per point, None where the model defines no likelihood
    data_entropy: float  # the NLL floor: -mean log p_data on the same held-out points, nats
    sample_ms_per_1000: float
    nfe: int


def measure(model, dist, ref: metrics.Reference, history=None, seed: int = 1) -> BenchRow:
    """Measure a trained 2D model against held-out data (see the module doc)."""
    torch.manual_seed(seed)
    with metrics.count_forward_calls(model) as nfe:
        start = time.perf_counter()
        samples = model.sample(N_EVAL)
        sample_seconds = time.perf_counter() - start
    quality = metrics.sample_quality(samples, ref)
    test = ref.test[:N_NLL]
    try:
        nll = metrics.nll_nats(model.log_prob(test))
    except NotImplementedError:
        nll = None
    entropy = metrics.nll_nats(dist.log_prob(test))  # same points: a paired comparison with nll
    return BenchRow(model.name, dist.name, history.seconds if history else float("nan"),
                    history.steps if history else 0, quality.w2, quality.w2_floor, quality.w2_gauss,
                    quality.gap_closed, quality.mmd, nll, entropy, 1000 * sample_seconds * 1000 / N_EVAL, nfe.count)


def run_one(model_name: str, dataset: str, seed: int = 0, steps: int | None = None,
            progress: bool = False, ref: metrics.Reference | None = None) -> BenchRow:
    """Train one model on one 2D dataset with the zoo recipe and measure it."""
    dist = data.toy(dataset)
    ref = ref or metrics.reference(dist)
    recipe = zoo.recipe(model_name)
    if steps is not None:
        recipe["steps"] = steps
    runtime.seed_everything(seed)
    model = zoo.make(model_name, (2,))
    history = fit(model, dist, seed=seed, progress=progress, desc=f"{model_name} on {dataset}", **recipe)
    return measure(model, dist, ref, history, seed=seed + 1)


def markdown_table(rows: list[BenchRow]) -> str:
    head = ("| model | dataset | train s | W2 | W2 floor | W2 gauss | G | MMD^2 | NLL (nats) | "
            "H(data) | sample ms / 1k | NFE |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        nll = f"{r.nll:.3f}" if r.nll is not None else "n/a"
        lines.append(f"| {r.model} | {r.dataset} | {r.train_seconds:.1f} | {r.w2:.3f} | {r.w2_floor:.3f} | "
                     f"{r.w2_gauss:.3f} | {r.gap_closed:.2f} | {r.mmd:.4f} | {nll} | {r.data_entropy:.3f} | "
                     f"{r.sample_ms_per_1000:.1f} | {r.nfe} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unigm.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=zoo.names_2d(), help="zoo names (default: every 2D model)")
    parser.add_argument("--datasets", nargs="+", default=list(DEFAULT_DATASETS),
                        help=f"2D datasets (default: {' '.join(DEFAULT_DATASETS)}; all: {' '.join(data.toy_names())})")
    parser.add_argument("--steps", type=int, default=None, help="override the recipes' training steps")
    parser.add_argument("--out", type=Path, default=Path("build"), help="output folder (default: build)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in args.models:
        zoo.recipe(name)  # unknown names (or models without a 2D recipe) fail before any training
    for name in args.datasets:
        data.toy(name)

    runtime.set_threads()
    rows = []
    for dataset in args.datasets:
        ref = metrics.reference(data.toy(dataset))
        for name in args.models:
            row = run_one(name, dataset, seed=args.seed, steps=args.steps, progress=True, ref=ref)
            print(f"{name:>14} on {dataset:<16} G = {row.gap_closed:5.2f}  ({row.train_seconds:.1f} s)", flush=True)
            rows.append(row)
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"profile": runtime.profile(), "device": str(runtime.device()), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "machine": platform.machine(), "processor": platform.processor(),
            "seed": args.seed}
    (args.out / "bench.json").write_text(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2))
    table = markdown_table(rows)
    (args.out / "bench.md").write_text(table)
    print(table)
    print(f"wrote {args.out / 'bench.json'} and {args.out / 'bench.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
