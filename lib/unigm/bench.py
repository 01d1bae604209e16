"""`python -m unigm.bench`: train every zoo model on the 2D datasets and measure it.

For each (model, dataset) pair: train with the zoo's recipe, then measure on held-out data
(2,000 model samples vs 2,000 data points): exact W2 with its noise floor and the single
Gaussian baseline, the gap closed G, RBF-MMD^2, NLL in nats where the model has a likelihood
(next to the data's true entropy), sampling time per 1,000 samples and the NFE actually spent.
The models train, and are measured, several at a time (train_many: one single-threaded process per
core, --workers 1 to train them one by one with every core); train seconds are those of each model's
own process.
`python -m unigm.bench samplers` times the fast sampler path instead (unigm.bench_samplers);
`python -m unigm.bench images` trains and measures every image model (unigm.bench_images).
Writes build/bench.json and build/bench.md; with --readme FILE it also rewrites the table
between the markers BEGIN_MARK and END_MARK in FILE (the README's table is generated, never pasted).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import pickle
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import data, metrics, runtime, zoo
from .base import Implicit
from .samplers import count_nfe
from .train import Job, train_job, train_many
from .train.parallel import workers_available

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
    runtime.seed_everything(seed)  # log_prob of the VAE family draws importance samples
    with count_nfe() as nfe:
        start = time.perf_counter()
        samples = model.sample(N_EVAL, generator=torch.Generator().manual_seed(seed))
        sample_seconds = time.perf_counter() - start
    quality = metrics.sample_quality(samples, ref)
    test = ref.test[:N_NLL]
    try:
        with torch.no_grad():  # ODE likelihoods switch gradients on inside, where they need them
            nll = metrics.nll_nats(model.log_prob(test))
    except NotImplementedError:
        nll = None
    entropy = metrics.nll_nats(dist.log_prob(test))  # same points: a paired comparison with nll
    return BenchRow(model.name, dist.name, history.seconds if history else float("nan"),
                    history.steps if history else 0, quality.w2, quality.w2_floor, quality.w2_gauss,
                    quality.gap_closed, quality.mmd, nll, entropy, 1000 * sample_seconds * 1000 / N_EVAL, nfe.count)


@functools.lru_cache(maxsize=16)
def _reference_of(pickled_dist: bytes) -> metrics.Reference:
    return metrics.reference(pickle.loads(pickled_dist))


def measure_job(job: Job, model, history, seed: int = 1) -> BenchRow:
    """`measure` a model trained from a train_many Job, against its data set's held-out reference
    (metrics.reference(job.dist), built once per process and data set: the same seeded draw as in the
    caller's process). Passed as train_many(jobs, evaluate=measure_job), every model is measured in
    the worker that trained it, two at a time, instead of one by one afterwards."""
    return measure(model, job.dist, _reference_of(pickle.dumps(job.dist)), history, seed)


GATE_LOG_ENV = "UNIGM_GATE_LOG"  # a file: check_gate appends every gate it passes on a recipe's own job


def check_gate(job: Job, gap_closed: float, nll: float | None = None, data_entropy: float | None = None) -> float:
    """Assert a trained job's quality gate, as tests/test_quality.py does: G >= its recipe's
    min_quality on the job's data set and, for a model with a likelihood, an NLL no better than the
    data's entropy (up to noise: a likelihood better than the truth is a bug). Returns the gate.

    When $UNIGM_GATE_LOG names a file, the job is the recipe's own (default config and steps, 2D)
    and everything the test asserts was checked (the NLL too, unless the model is implicit), the
    passed gate is appended to the file (one JSON line): `make test` sets it, so the quality-gate
    test need not train again a model that a lecture trained and gated in the same session."""
    gates = zoo.recipe(job.name).min_quality
    if job.dist.name not in gates:
        raise KeyError(f"{job.name} has no quality gate on {job.dist.name!r} (it has: {', '.join(gates)})")
    gate = gates[job.dist.name]
    if not gap_closed >= gate:  # raised, not asserted: a check that `python -O` cannot switch off
        raise AssertionError(f"{job.title} on {job.dist.name}: G = {gap_closed:.3f} < its gate {gate}")
    if nll is not None and not nll > data_entropy - 0.1:
        raise AssertionError(f"{job.title}: NLL {nll:.3f} below the data entropy {data_entropy:.3f}")
    log = os.environ.get(GATE_LOG_ENV)
    complete = nll is not None or issubclass(zoo.model_class(job.name), Implicit)
    if log and complete and not job.config and job.steps is None and job.teacher is None and job.event_shape == (2,):
        with open(log, "a") as f:
            f.write(json.dumps({"model": job.name, "dataset": job.dist.name, "seed": job.seed, "G": gap_closed,
                                "gate": gate, "nll": nll}) + "\n")
    return gate


def gates_passed_elsewhere(path: str | Path | None = None) -> dict[tuple[str, str, int], dict]:
    """The gates check_gate logged in $UNIGM_GATE_LOG (or `path`): (model, dataset, seed) -> entry."""
    path = path or os.environ.get(GATE_LOG_ENV)
    if not path or not Path(path).exists():
        return {}
    entries = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return {(e["model"], e["dataset"], e["seed"]): e for e in entries}


def train(model_name: str, dist: data.Toy2D, seed: int = 0, steps: int | None = None, progress: bool = False,
          desc: str | None = None, **config):
    """Build a zoo model (with config overrides) and train it on a 2D toy with its recipe
    (optionally another step count): (model, history). The seed fixes both the initial weights
    and the training randomness. (train_many trains several such jobs at once.)"""
    return train_job(Job(model_name, dist, seed, steps, config, label=desc), progress)


def run_one(model_name: str, dataset: str, seed: int = 0, steps: int | None = None,
            progress: bool = False, ref: metrics.Reference | None = None) -> BenchRow:
    """Train one model on one 2D dataset with the zoo recipe and measure it."""
    dist = data.toy(dataset)
    ref = ref or metrics.reference(dist)
    model, history = train(model_name, dist, seed=seed, steps=steps, progress=progress)
    return measure(model, dist, ref, history, seed=seed + 1)


@dataclass
class StepsPoint:
    """One sampler at one step count: the steps asked for, the NFE spent, and G on held-out data."""
    sampler: str
    steps: int
    nfe: int
    gap_closed: float
    w2: float


def quality_vs_steps(sample_fns: dict, ref: metrics.Reference, steps=(5, 10, 20, 50, 100, 200, 1000),
                     seed: int = 1, progress: bool = True) -> list[StepsPoint]:
    """G against the number of steps for several samplers of trained models (the speed-quality curve).

    sample_fns: name -> fn(n, steps, generator) returning n samples; each is drawn with
    n = len(ref.test) (G's floor is only meaningful at the reference's sample size) from a
    generator seeded with `seed`, and its network evaluations are counted (samplers.count_nfe)."""
    if not sample_fns:
        raise ValueError("quality_vs_steps needs at least one sampler")
    if not steps or any(not isinstance(k, int) or k < 1 for k in steps):
        raise ValueError(f"steps must be positive ints, got {steps!r}")
    n = len(ref.test)
    cells = [(name, k) for name in sample_fns for k in steps]
    drawn, nfes = [], []
    for name, k in tqdm(cells, desc="samplers x steps", disable=not progress):
        with torch.no_grad(), count_nfe() as nfe:
            x = sample_fns[name](n, k, torch.Generator().manual_seed(seed))
        if x.shape != ref.test.shape:
            raise ValueError(f"sampler {name!r} returned shape {tuple(x.shape)}, expected {tuple(ref.test.shape)}")
        drawn.append(x)
        nfes.append(nfe.count)
    qualities = metrics.sample_quality_many(drawn, ref)  # the W2 solves, several at a time in threads
    return [StepsPoint(name, k, nfe, quality.gap_closed, quality.w2)
            for (name, k), nfe, quality in zip(cells, nfes, qualities)]


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


BEGIN_MARK = "<!-- bench table: generated by `python -m unigm.bench --readme README.md`; do not edit -->"
END_MARK = "<!-- end of bench table -->"


def replace_table(text: str, table: str, begin: str = BEGIN_MARK, end: str = END_MARK) -> str:
    """`text` with the block between the marker lines `begin` and `end` replaced by `table`."""
    if text.count(begin) != 1 or text.count(end) != 1:
        raise ValueError(f"the file needs exactly one {begin!r} and one {end!r} line")
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    return f"{head}{begin}\n{table}{end}{tail}"


def merge_table(text: str, rows: list[BenchRow]) -> str:
    """The generated table in `text` with the rows of `rows` added or replaced ((model, dataset) as key),
    the other rows kept as they were, ordered by dataset then zoo order: `--merge` re-measures some
    models without retraining all of them."""
    if text.count(BEGIN_MARK) != 1 or text.count(END_MARK) != 1:
        raise ValueError(f"the file needs exactly one {BEGIN_MARK!r} and one {END_MARK!r} line")
    old = text.split(BEGIN_MARK)[1].split(END_MARK)[0].strip().splitlines()[2:]
    lines = {tuple(cell.strip() for cell in line.strip("|").split("|")[:2]): line for line in old}
    lines.update({(r.model, r.dataset): markdown_table([r]).splitlines()[2] for r in rows})
    datasets = list(DEFAULT_DATASETS) + sorted({d for _, d in lines} - set(DEFAULT_DATASETS))
    order = {name: i for i, name in enumerate(zoo.names_2d())}
    keys = sorted(lines, key=lambda k: (datasets.index(k[1]), order.get(k[0], len(order)), k[0]))
    header = "\n".join(markdown_table([]).splitlines()[:2])
    return header + "\n" + "".join(lines[k] + "\n" for k in keys)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["samplers"]:  # `python -m unigm.bench samplers`: plain vs fast sampler loops
        from . import bench_samplers
        return bench_samplers.main(argv[1:])
    if argv[:1] == ["images"]:  # `python -m unigm.bench images`: every image model on the digits (MNIST in full)
        from . import bench_images
        return bench_images.main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m unigm.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=zoo.names_2d(), help="zoo names (default: every 2D model)")
    parser.add_argument("--datasets", nargs="+", default=list(DEFAULT_DATASETS),
                        help=f"2D datasets (default: {' '.join(DEFAULT_DATASETS)}; all: {' '.join(data.toy_names())})")
    parser.add_argument("--steps", type=int, default=None, help="override the recipes' training steps")
    parser.add_argument("--out", type=Path, default=Path("build"), help="output folder (default: build)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None,
                        help="training processes (default: one per core; 1 trains in this process with every core)")
    parser.add_argument("--readme", type=Path, default=None,
                        help="also rewrite the generated table in this Markdown file (e.g. README.md)")
    parser.add_argument("--merge", action="store_true",
                        help="with --readme: add or replace only the measured rows, keep the table's others")
    args = parser.parse_args(argv)
    for name in args.models:
        zoo.recipe(name)  # unknown names (or models without a 2D recipe) fail before any training
    for name in args.datasets:
        data.toy(name)

    runtime.set_threads()
    pairs = [(name, dataset) for dataset in args.datasets for name in args.models]
    jobs = [Job(name, data.toy(dataset), args.seed, args.steps) for name, dataset in pairs]
    workers = args.workers or workers_available()
    trained = train_many(jobs, workers=workers, desc=f"training {len(jobs)} models in {workers} processes",
                         evaluate=functools.partial(measure_job, seed=args.seed + 1))  # seeds as run_one's
    rows = []
    for (name, dataset), (_, _, row) in zip(pairs, trained):
        print(f"{name:>14} on {dataset:<16} G = {row.gap_closed:5.2f}  ({row.train_seconds:.1f} s)", flush=True)
        rows.append(row)
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"profile": runtime.profile(), "device": str(runtime.device()), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "machine": platform.machine(), "processor": platform.processor(),
            "seed": args.seed, "training_processes": workers}
    (args.out / "bench.json").write_text(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2))
    table = markdown_table(rows)
    (args.out / "bench.md").write_text(table)
    print(table)
    print(f"wrote {args.out / 'bench.json'} and {args.out / 'bench.md'}")
    if args.readme is not None:
        text = args.readme.read_text()
        args.readme.write_text(replace_table(text, merge_table(text, rows) if args.merge else table))
        print(f"rewrote the bench table in {args.readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
