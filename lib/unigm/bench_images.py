"""`python -m unigm.bench images`: every zoo model that samples images, trained and measured alike.

The image half of the benchmark (the 2D half is unigm.bench). Quick profile: the 8x8 digits (1,257
train / 270 test images, 17 grey levels); full profile (UNIGM_PROFILE=full): MNIST (28x28, 256
levels, read from the IDX files in data.data_home(); nothing is downloaded), on a GPU when there is
one, the same code path with 4x the steps.

Matched compute = the same number of gradient steps (STEPS, batch BATCH) for every model, each with
its own learning rate (its 2D recipe's, 2e-3 where it has none) and EMA. Steps, not seconds: a step
count is reproducible on any machine, while wall clock on a shared 2-core VM drifts by +-30%; the
train-seconds column then shows what a step of each family costs. Models that learn from another
model spend extra compute, stated in their row: consistency distillation trains its DDPM teacher
first, rectified flow adds one reflow round on pairs drawn from itself.

Each row: `metrics.image_quality` of N_SAMPLES samples (every metric next to its data-vs-data
floor), bits/dim of the test split where the model has a likelihood (dequantized data through
`metrics.bits_per_dim_discrete`; exact discrete NLL for the grey-level autoregressive models; the
VAE's ELBO and its importance-weighted bound), NFE per sample, samples per second, parameters and
training seconds. Besides the rows: steps-vs-quality curves of the few-step samplers, a bits/dim
table next to the independent-pixel baseline, several seeds of four models for the spread, and a
scaling study of flow matching (quality against training steps and against width).

Writes OUT/bench_images.json (rows, curves, seeds, machine, commit) and OUT/bench_images.md, and
merges the same results into OUT/bench.json under "images"; with --readme FILE it rewrites the table
between BEGIN_MARK and END_MARK in FILE.
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import platform
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import bench, data, metrics, runtime, samplers, zoo
from .registry import FULL_PROFILE_STEP_FACTOR
from .samplers import count_nfe
from .train import fit
from .train.parallel import workers_available

STEPS = 2000  # gradient steps per model, quick profile (x FULL_PROFILE_STEP_FACTOR in the full one)
BATCH = 128
DEFAULT_LR = 2e-3  # for the image models, which have no 2D recipe (their checkpoint recipes use it too)
N_SAMPLES = 1000  # images scored per model (image_quality's floor uses as many train images)
SEEDS = (0, 1, 2)  # the spread, for SPREAD_MODELS
SPREAD_MODELS = ("ddpm", "flow_matching", "gan", "vae")
EXCLUDED = {"cnf": "the exact-trace CNF needs one backward pass per pixel per ODE step (1.3 s per training step "
                   "on 64 pixels); cnf_hutchinson is the same model with a trace estimator"}
IMAGE_ONLY = ("pixel_ddpm", "latent_diffusion", "vqvae", "fsq_vae", "pixelcnn", "gated_pixelcnn",
              "pixel_transformer", "var", "mar")
GREY_LEVEL_MODELS = ("pixelcnn", "gated_pixelcnn", "pixel_transformer")  # categorical pixels: exact discrete NLL
IWAE_K = 64
CURVE_STEPS = (1, 2, 4, 8, 16, 32, 64, 128)
SCALING_STEPS = (250, 500, 1000, 2000, 4000)
SCALING_WIDTHS = (32, 64, 128, 256, 512)
FAMILIES = {"diffusion": "diffusion", "flows": "flow", "gan": "GAN", "vae": "VAE", "autoregressive": "autoregressive"}


def models() -> list[str]:
    """The zoo models the image benchmark trains: every 2D model but EXCLUDED, then the image-only ones."""
    return [name for name in zoo.names_2d() if name not in EXCLUDED] + list(IMAGE_ONLY)


def family(name: str) -> str:
    return FAMILIES[zoo.model_class(name).__module__.split(".")[1]]


def dataset_name() -> str:
    return runtime.by_profile(quick="digits", full="mnist")


def steps_for_profile(steps: int = STEPS) -> int:
    return runtime.by_profile(quick=steps, full=FULL_PROFILE_STEP_FACTOR * steps)


def split(name: str, part: str) -> data.ImageSplit:
    return data.digits(part) if name == "digits" else data.mnist(part)


def n_samples(dataset: str) -> int:
    """Images scored per model: N_SAMPLES, or the train split's size if smaller (the floor draws that many)."""
    return min(N_SAMPLES, len(split(dataset, "train")))


def training_data(name: str, dataset: str) -> torch.Tensor:
    """What `name` trains on: grey levels v (floats 0..L-1) for the categorical pixel models, else the
    uniformly dequantized images (v + u) / L in [0, 1), the format of the course's image models."""
    images = split(dataset, "train")
    if name in GREY_LEVEL_MODELS:
        return images.images.float()
    return data.dequantize(images.images, images.levels, torch.Generator().manual_seed(0))


def test_data(dataset: str) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(grey levels as floats, their dequantized version with seed 1, levels) of the test split (first 1,000)."""
    images = split(dataset, "test")
    v = images.images[:1000]
    return v.float(), data.dequantize(v, images.levels, torch.Generator().manual_seed(1)), images.levels


def recipe(name: str) -> dict:
    """Learning rate and EMA: the model's 2D recipe where it has one, else DEFAULT_LR and no EMA."""
    recipes = zoo.RECIPES.get(name, {})
    if "2d" in recipes:
        r = recipes["2d"]
        return {"lr": r.lr, **({"ema_decay": r.ema_decay} if r.ema_decay is not None else {})}
    return {"lr": DEFAULT_LR}


def config(name: str, dataset: str) -> dict:
    levels = split(dataset, "test").levels
    return {"levels": levels} if name in GREY_LEVEL_MODELS else {}


def train_model(name: str, dataset: str, seed: int = 0, steps: int | None = None, progress: bool = False, **overrides):
    """Build a zoo model for the dataset's images and train it at the benchmark's matched compute:
    (model, history, extra train seconds spent on a teacher or a reflow round)."""
    steps = steps or steps_for_profile()
    x = training_data(name, dataset)
    shape = tuple(x.shape[1:])
    extra = 0.0
    if name == "consistency_distillation":  # distils a DDPM trained exactly like the ddpm row
        teacher, teacher_history, _ = train_model("ddpm", dataset, seed, steps)
        extra = teacher_history.seconds
        runtime.seed_everything(seed)
        model = zoo.model_class(name).from_teacher(teacher)
    else:
        runtime.seed_everything(seed)
        model = zoo.make(name, shape, **{**config(name, dataset), **overrides})
    history = fit(model, x, steps=steps, batch_size=BATCH, seed=seed, progress=progress,
                  desc=f"{name} on {dataset}", **recipe(name))
    if name == "rectified_flow":  # one reflow round (Liu et al. 2023): pairs from the model, half the steps
        start = time.perf_counter()
        student = model.student()
        pairs = student.reflow_pairs(10 * len(x), steps=64, generator=torch.Generator().manual_seed(seed))
        reflow = fit(student, pairs, steps=steps // 2, batch_size=BATCH, seed=seed, progress=progress,
                     desc=f"{name} reflow", lr=1e-3, **{k: v for k, v in recipe(name).items() if k == "ema_decay"})
        extra = time.perf_counter() - start  # drawing the pairs (64 Heun steps each) and the reflow training
        model = student
    return model, history, extra


def to_images(x: torch.Tensor, levels: int, grey_levels: bool) -> torch.Tensor:
    """Model output in the judge's format: grey levels -> centre of their bin; floats clamped to [0, 1]."""
    if grey_levels:
        return ((x + 0.5) / levels).clamp(0, 1)
    return x.clamp(0, 1)


def likelihoods(model, name: str, dataset: str) -> dict:
    """Bits/dim of the test split: {'bits_per_dim': ..., 'bits_kind': ...}; the VAE family adds its ELBO."""
    v, x, levels = test_data(dataset)
    dims = x[0].numel()
    runtime.seed_everything(0)
    g = torch.Generator().manual_seed(0)
    try:
        if name in GREY_LEVEL_MODELS:
            with torch.no_grad():
                nats = -model.log_prob(v).double().mean().item()
            return {"bits_per_dim": nats / (dims * math.log(2)), "bits_kind": "exact (categorical pixels)"}
        if name in ("vae", "beta_vae"):
            with torch.no_grad():
                elbo = torch.cat([model.elbo(chunk, generator=g) for chunk in x.split(250)])
                iwae = torch.cat([model.log_prob(chunk, k=IWAE_K, generator=g) for chunk in x.split(250)])
            return {"bits_per_dim": metrics.bits_per_dim_discrete(iwae, dims, levels),
                    "bits_kind": f"IWAE bound, k = {IWAE_K}",
                    "elbo_bits_per_dim": metrics.bits_per_dim_discrete(elbo, dims, levels)}
        with torch.no_grad():
            log_p = torch.cat([model.log_prob(chunk) for chunk in x.split(250)])
    except NotImplementedError:
        return {"bits_per_dim": None, "bits_kind": None}
    kind = "exact (change of variables)" if name == "realnvp" else "probability-flow ODE"
    return {"bits_per_dim": metrics.bits_per_dim_discrete(log_p, dims, levels), "bits_kind": kind}


def score(samples: torch.Tensor, dataset: str) -> dict:
    quality = metrics.image_quality(samples, dataset, seed=0)
    out = quality.as_dict()
    out["class_histogram"] = list(out["class_histogram"])
    out["class_histogram_floor"] = list(out["class_histogram_floor"])
    return out


def curves(model, name: str, dataset: str, levels: int) -> dict:
    """Steps-vs-quality of the few-step samplers this model has: sampler -> [(steps, nfe, FD, coverage)]."""
    if name == "ddpm":
        fns = {"DDPM ancestral": lambda n, k, g: model.sample(n, k, eta=1.0, generator=g),
               "DDIM (eta = 0)": lambda n, k, g: model.sample(n, k, eta=0.0, generator=g)}
        grid = CURVE_STEPS[1:] + (1000,)
    elif name == "flow_matching":
        fns = {"flow matching, Euler": lambda n, k, g: samplers.euler(model.velocity, model.randn(n, *model.event_shape, generator=g), k),
               "flow matching, Heun": lambda n, k, g: samplers.heun(model.velocity, model.randn(n, *model.event_shape, generator=g), k)}
        grid = CURVE_STEPS
    elif name == "rectified_flow":
        fns = {"rectified flow (1 reflow), Euler": lambda n, k, g: samplers.euler(
            model.velocity, model.randn(n, *model.event_shape, generator=g), k)}
        grid = CURVE_STEPS
    elif name in ("consistency_distillation", "consistency_training"):
        fns = {name.replace("_", " "): lambda n, k, g: model.sample(n, k, generator=g)}
        grid = (1, 2, 4, 8)
    else:
        return {}
    out = {}
    for sampler, fn in fns.items():
        points = []
        for k in grid:
            with torch.no_grad(), count_nfe() as nfe:
                x = fn(n_samples(dataset), k, torch.Generator().manual_seed(1))
            q = metrics.image_quality(to_images(x, levels, False), dataset, seed=0)
            points.append({"steps": k, "nfe": nfe.count, "frechet_distance": q.model.frechet_distance,
                           "coverage": q.model.coverage, "frechet_distance_floor": q.floor.frechet_distance})
        out[sampler] = points
    return out


def sample_grid(x: torch.Tensor, levels: int, grey_levels: bool, n: int = 16) -> list:
    """The first n samples as grey levels (ints), for the lecture's sample grids."""
    images = to_images(x[:n], levels, grey_levels)
    return (images * levels).floor().clamp(0, levels - 1).to(torch.uint8).squeeze(1).tolist()


def measure_model(model, history, name: str, dataset: str, seed: int = 0, extra_seconds: float = 0.0,
                  with_curves: bool = True) -> dict:
    """One benchmark row of a trained model (plus its steps-vs-quality curves where it has some)."""
    model.eval()
    levels = split(dataset, "test").levels
    grey = name in GREY_LEVEL_MODELS
    with torch.no_grad(), count_nfe() as nfe:
        start = time.perf_counter()
        x = model.sample(n_samples(dataset), generator=torch.Generator().manual_seed(seed + 1))
        seconds = time.perf_counter() - start
    row = {"model": name, "family": family(name), "dataset": dataset, "seed": seed, "steps": history.steps,
           "batch_size": BATCH, **recipe(name),
           "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
           "train_seconds": history.seconds, "extra_train_seconds": extra_seconds, "nfe": int(nfe.count),
           "samples_per_second": len(x) / seconds, "final_loss": history.smoothed(next(iter(history.losses)))}
    row.update(likelihoods(model, name, dataset))
    row["quality"] = score(to_images(x, levels, grey), dataset)
    row["grid"] = sample_grid(x, levels, grey)
    row["curves"] = curves(model, name, dataset, levels) if with_curves else {}
    return row


def run_model(name: str, dataset: str, seed: int = 0, steps: int | None = None, with_curves: bool = True,
              progress: bool = False) -> dict:
    """Train one model at matched compute and measure it (one benchmark row, plus its curves)."""
    model, history, extra = train_model(name, dataset, seed, steps, progress)
    return measure_model(model, history, name, dataset, seed, extra, with_curves)


def run_scaling(dataset: str, steps: int, hidden: int, seed: int = 0) -> dict:
    """One point of the scaling study: flow matching of width `hidden` trained `steps` steps."""
    model, history, _ = train_model("flow_matching", dataset, seed, steps, hidden=hidden)
    model.eval()
    levels = split(dataset, "test").levels
    with torch.no_grad():
        x = model.sample(n_samples(dataset), generator=torch.Generator().manual_seed(seed + 1))
    q = metrics.image_quality(to_images(x, levels, False), dataset, seed=0)
    return {"steps": steps, "hidden": hidden, "parameters": sum(p.numel() for p in model.parameters()),
            "frechet_distance": q.model.frechet_distance, "frechet_distance_floor": q.floor.frechet_distance,
            "train_seconds": history.seconds}


def independent_pixels_bits(dataset: str) -> float:
    """The baseline every likelihood model must beat: each pixel an independent categorical over the grey
    levels, fitted on the train split with add-one smoothing; test bits/dim (exact, discrete)."""
    train, test = split(dataset, "train"), split(dataset, "test")
    levels = train.levels
    v = train.images.flatten(1).long()
    counts = torch.zeros(v.shape[1], levels, dtype=torch.float64).scatter_add_(1, v.T, torch.ones_like(v.T, dtype=torch.float64)) + 1
    log_p = (counts / counts.sum(1, keepdim=True)).log()
    t = test.images[:1000].flatten(1).long()
    nats = -log_p.gather(1, t.T).T.sum(1).mean().item()
    return nats / (t.shape[1] * math.log(2))


def fitted_slope(x, y) -> float:
    """Least-squares slope of log y against log x (numpy.polyfit): y ~ x^slope."""
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


def scaling_summary(points: list[dict]) -> dict:
    """Excess FD (FD minus its floor) against steps and against width, with the fitted log-log slopes."""
    by_steps = sorted((p for p in points if p["hidden"] == 128), key=lambda p: p["steps"])
    by_width = sorted((p for p in points if p["steps"] == steps_for_profile()), key=lambda p: p["hidden"])

    def slope(rows, key):
        rows = [r for r in rows if r["frechet_distance"] > r["frechet_distance_floor"]]
        if len(rows) < 2:
            return None
        return fitted_slope([r[key] for r in rows], [r["frechet_distance"] - r["frechet_distance_floor"] for r in rows])

    return {"steps_slope": slope(by_steps, "steps"), "width_slope": slope(by_width, "parameters")}


# -- running it all -----------------------------------------------------------------------------
def _one_thread() -> None:
    torch.set_num_threads(1)


def _call(kind: str, kwargs: dict):
    return kind, kwargs, (run_model if kind == "model" else run_scaling)(**kwargs)


def commit() -> str:
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+uncommitted changes" if dirty else "")


def run(names: list[str], steps: int | None = None, workers: int | None = None, seeds=SEEDS,
        scaling: bool = True, progress: bool = True) -> dict:
    """Train and measure every model in `names` (and the seeds and scaling study): the results dict."""
    dataset = dataset_name()
    split(dataset, "train")  # missing MNIST files fail here, before any training
    steps = steps or steps_for_profile()
    tasks = [("model", dict(name=name, dataset=dataset, seed=0, steps=steps)) for name in names]
    tasks += [("model", dict(name=name, dataset=dataset, seed=s, steps=steps, with_curves=False))
              for name in SPREAD_MODELS if name in names for s in seeds if s != 0]
    if scaling:
        scale = steps / steps_for_profile()
        grid = {(int(s * scale), 128) for s in SCALING_STEPS} | {(steps, w) for w in SCALING_WIDTHS}
        tasks += [("scaling", dict(dataset=dataset, steps=s, hidden=w)) for s, w in sorted(grid)]
    cost = {"mar": 9, "pixel_transformer": 5, "var": 4, "wgan_sn": 3, "wgan_gp": 3, "cnf_hutchinson": 3,
            "gated_pixelcnn": 3}
    tasks.sort(key=lambda t: -cost.get(t[1].get("name", ""), 1))  # longest first: the workers finish together
    workers = workers or workers_available()
    results = []
    bar = tqdm(total=len(tasks), desc=f"image benchmark on {dataset}: {len(tasks)} trainings in {workers} processes",
               disable=not progress)
    if workers == 1:
        for kind, kwargs in tasks:
            results.append(_call(kind, kwargs))
            bar.update()
    else:
        context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread) as pool:
            futures = [pool.submit(_call, kind, kwargs) for kind, kwargs in tasks]
            for future in as_completed(futures):
                results.append(future.result())
                bar.update()
    bar.close()
    order = {name: i for i, name in enumerate(names)}
    rows = sorted((r for kind, _, r in results if kind == "model" and r["seed"] == 0), key=lambda r: order[r["model"]])
    spread = sorted((r for kind, _, r in results if kind == "model"), key=lambda r: (order[r["model"]], r["seed"]))
    spread = [{k: r[k] for k in ("model", "seed", "bits_per_dim", "train_seconds")} | {
        "frechet_distance": r["quality"]["frechet_distance"], "coverage": r["quality"]["coverage"]}
        for r in spread if r["model"] in SPREAD_MODELS]
    points = sorted((r for kind, _, r in results if kind == "scaling"), key=lambda r: (r["hidden"], r["steps"]))
    return {
        "meta": {"dataset": dataset, "profile": runtime.profile(), "steps": steps, "batch_size": BATCH,
                 "samples": n_samples(dataset), "seeds": list(seeds), "spread_models": list(SPREAD_MODELS),
                 "excluded": EXCLUDED, "commit": commit(), "command": "python -m unigm.bench images",
                 "device": str(runtime.device()), "training_processes": workers, "torch": torch.__version__,
                 "machine": platform.machine(), "processor": platform.processor() or platform.platform(),
                 "cpu_count": runtime.cpu_count()},
        "rows": rows,
        "independent_pixels_bits_per_dim": independent_pixels_bits(dataset),
        "seeds": spread,
        "scaling": {"points": points, **scaling_summary(points)} if scaling else None,
    }


# -- tables ---------------------------------------------------------------------------------------
BEGIN_MARK = "<!-- image bench table: generated by `python -m unigm.bench images --readme README.md`; do not edit -->"
END_MARK = "<!-- end of image bench table -->"


def markdown_table(results: dict) -> str:
    """One line per model: the image metrics next to their floors, bits/dim, cost."""
    head = ("| model | family | FD (floor) | precision | recall | coverage | 1-NN (0.5 ideal) | classes | "
            "bits/dim | NFE | samples/s | params | train s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results["rows"]:
        q = r["quality"]
        bits = "n/a" if r["bits_per_dim"] is None else f"{r['bits_per_dim']:.2f}"
        train_s = f"{r['train_seconds']:.0f}" + (f" + {r['extra_train_seconds']:.0f}" if r["extra_train_seconds"] else "")
        lines.append(f"| {r['model']} | {r['family']} | {q['frechet_distance']:.1f} ({q['frechet_distance_floor']:.1f}) | "
                     f"{q['precision']:.2f} | {q['recall']:.2f} | {q['coverage']:.2f} | {q['nn1_accuracy']:.2f} | "
                     f"{q['classes_covered']} | {bits} | {r['nfe']} | {r['samples_per_second']:.0f} | "
                     f"{r['parameters'] / 1000:.0f}k | {train_s} |")
    meta = results["meta"]
    lines.append("")
    lines.append(f"{meta['dataset']}, {meta['steps']} steps of batch {meta['batch_size']} per model, seed 0, "
                 f"{meta['samples']} samples scored against the test split; floors in brackets; independent "
                 f"pixels {results['independent_pixels_bits_per_dim']:.2f} bits/dim; commit {meta['commit'][:12]}.")
    return "\n".join(lines) + "\n"


def replace_block(text: str, table: str) -> str:
    """`text` with the image table between BEGIN_MARK and END_MARK replaced by `table`."""
    return bench.replace_table(text, table, BEGIN_MARK, END_MARK)


def write(results: dict, out: Path, readme: Path | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_images.json").write_text(json.dumps(results, indent=1))
    table = markdown_table(results)
    (out / "bench_images.md").write_text(table)
    combined = out / "bench.json"
    merged = json.loads(combined.read_text()) if combined.exists() else {}
    merged["images"] = results
    combined.write_text(json.dumps(merged, indent=1))
    if readme is not None:
        readme.write_text(replace_block(readme.read_text(), table))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unigm.bench images", description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None, help="zoo names (default: every image-capable model)")
    parser.add_argument("--steps", type=int, default=None, help=f"training steps per model (default {STEPS}, x4 full)")
    parser.add_argument("--out", type=Path, default=Path("build"))
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--no-scaling", action="store_true", help="skip the flow-matching scaling study")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--readme", type=Path, default=None, help="rewrite the generated image table in this file")
    args = parser.parse_args(argv)
    names = args.models or models()
    for name in names:
        if name in EXCLUDED:
            raise SystemExit(f"{name} is not in the image benchmark: {EXCLUDED[name]}")
        if name not in zoo.names():
            raise SystemExit(f"unknown model {name!r}; image models: {', '.join(models())}")
    runtime.set_threads()
    start = time.perf_counter()
    results = run(names, args.steps, args.workers, tuple(args.seeds), not args.no_scaling)
    results["meta"]["wall_seconds"] = time.perf_counter() - start
    write(results, args.out, args.readme)
    print(markdown_table(results))
    print(f"wrote {args.out / 'bench_images.json'} in {results['meta']['wall_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
