"""`python -m unigm.bench samplers`: the plain sampler loop against the fast path (unigm.samplers.fast).

The model is the 2D flow-matching network of the zoo (an MLP of the zoo's default config) with seeded,
untrained weights: timing does not depend on the weights' values (the same ops on the same shapes,
no data-dependent control flow), so training it would cost seconds and change nothing measured here.
For each method and batch size: the median wall time of the plain loop (samplers.euler / heun) and of
the fast sampler, interleaved repeats after a warm-up; the fast sampler's first call (its build: graph
+ the plain loop's reference run + the check; the "compile time"); the break-even number of samples,
build seconds / seconds saved per sample; and the achieved GFLOP/s (2 x the MLP's multiply-adds per
evaluation x NFE x batch / seconds) next to this machine's measured float32 matmul peak (the roofline).
Writes OUT/bench_samplers.json and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from . import runtime, samplers, zoo
from .samplers.fast import fast_sampler

PLAIN = {"euler": samplers.euler, "heun": samplers.heun}


@dataclass
class SamplerRow:
    method: str
    batch: int
    steps: int
    nfe: int
    backend: str  # what the fast path ran on ("eager" after a fallback)
    plain_ms: float  # median per call (a whole batch)
    fast_ms: float
    speedup: float
    build_s: float  # the fast sampler's first call for this batch shape
    break_even_samples: float | None  # None: the fast path saves nothing per sample
    plain_gflops: float
    fast_gflops: float


def break_even(build_s: float, plain_s: float, fast_s: float, batch: int) -> float | None:
    """Samples after which the build has paid for itself: build_s / (seconds saved per sample)."""
    saved = (plain_s - fast_s) / batch
    return build_s / saved if saved > 0 else None


def macs_per_eval(model: torch.nn.Module) -> int:
    """Multiply-adds per sample and network evaluation: every weight matrix's in x out (the MLP's
    Linear layers; the time embedding's sin / cos and the activations are not counted)."""
    return sum(p.numel() for p in model.parameters() if p.dim() == 2)


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_peak_gflops(n: int = 1024, repeats: int = 10) -> float:
    """This machine's float32 matmul throughput: median over repeats of an n x n @ n x n product."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    return 2 * n**3 / median_seconds(lambda: a @ b, repeats) / 1e9


def time_pair(plain, fast, repeats: int) -> tuple[float, float]:
    """Median seconds of plain() and fast(), called alternately (a busy machine slows both alike)."""
    plain(), fast()  # warm-up (the fast sampler is already built)
    plain_times, fast_times = [], []
    for _ in range(repeats):
        plain_times.append(median_seconds(plain, 1))
        fast_times.append(median_seconds(fast, 1))
    return statistics.median(plain_times), statistics.median(fast_times)


def measure(model, method: str, batch: int, steps: int, repeats: int, backend: str | None, seed: int) -> SamplerRow:
    x = torch.randn(batch, *model.event_shape, generator=torch.Generator().manual_seed(seed))
    sampler = fast_sampler(model.velocity, steps, method, backend=backend)
    start = time.perf_counter()
    sampler(x)
    build_s = time.perf_counter() - start
    plain_s, fast_s = time_pair(lambda: PLAIN[method](model.velocity, x, steps), lambda: sampler(x), repeats)
    flops = 2 * macs_per_eval(model) * sampler.nfe * batch
    used = sampler.backend_used[(tuple(x.shape), x.dtype, x.device)]
    return SamplerRow(method, batch, steps, sampler.nfe, used, 1e3 * plain_s, 1e3 * fast_s, plain_s / fast_s,
                      build_s, break_even(build_s, plain_s, fast_s, batch), flops / plain_s / 1e9,
                      flops / fast_s / 1e9)


def markdown_table(rows: list[SamplerRow], peak: float) -> str:
    head = ("| method | batch | NFE | backend | plain ms | fast ms | speedup | build s | break-even samples | "
            "plain GFLOP/s | fast GFLOP/s | % of matmul peak |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        even = f"{r.break_even_samples:,.0f}" if r.break_even_samples is not None else "never"
        lines.append(f"| {r.method} | {r.batch} | {r.nfe} | {r.backend} | {r.plain_ms:.2f} | {r.fast_ms:.2f} | "
                     f"{r.speedup:.2f}x | {r.build_s:.2f} | {even} | {r.plain_gflops:.3f} | {r.fast_gflops:.3f} | "
                     f"{100 * r.fast_gflops / peak:.1f} |")
    return "\n".join(lines) + f"\n\nmatmul peak (float32, 1024^3): {peak:.1f} GFLOP/s\n"


def commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unigm.bench samplers", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build"), help="output folder (default: build)")
    parser.add_argument("--steps", type=int, default=100, help="sampler steps (default: 100)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64, 4096])
    parser.add_argument("--methods", nargs="+", default=["euler"], choices=sorted(PLAIN),
                        help="default: euler (heun doubles the NFE and the run time)")
    parser.add_argument("--backend", default=None, choices=["trace", "compile", "eager"],
                        help="the fast path's backend (default: the device's, see unigm.samplers.fast)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (default: 7, 3 at batch >= 1024)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a smoke run: euler and heun, 5 steps, batches 1 and 8, 2 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.batches, args.repeats, args.methods = 5, [1, 8], 2, ["euler", "heun"]
    if args.steps < 1 or any(b < 1 for b in args.batches):
        parser.error("--steps and --batches must be positive")

    threads = runtime.set_threads()
    runtime.seed_everything(args.seed)
    model = zoo.make("flow_matching", (2,)).eval()  # seeded, untrained weights (see the module doc)
    peak = matmul_peak_gflops(256 if args.quick else 1024, 3 if args.quick else 10)
    rows = []
    for method in args.methods:
        for batch in args.batches:
            repeats = args.repeats or (3 if batch >= 1024 else 7)
            rows.append(measure(model, method, batch, args.steps, repeats, args.backend, args.seed))
            print(f"{method:>5} batch {batch:>5}: {rows[-1].speedup:.2f}x", flush=True)
    meta = {"machine": platform.machine(), "processor": platform.processor(), "python": platform.python_version(),
            "torch": torch.__version__, "threads": threads, "commit": commit(), "device": "cpu",
            "model": "flow_matching (zoo default MLP, seeded untrained weights)",
            "macs_per_eval": macs_per_eval(model), "steps": args.steps, "seed": args.seed, "quick": args.quick,
            "matmul_peak_gflops": peak}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "bench_samplers.json"
    path.write_text(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2))
    print(markdown_table(rows, peak))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
