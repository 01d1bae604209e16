"""Train several small models at once: one process per core, one thread per process.

A 2D model (a few MLPs of width 128 on batches of 256) spends most of each step in per-operation
overhead, not in arithmetic, so a second intra-op thread speeds it up by only 0-30% on two cores.
Two processes of one thread each train two models at once instead: measured on the 2-core course
machine, four 2D recipes took 47 s one after the other (2 threads) and 36 s as two pairs in two
1-thread processes, with a longest-first schedule over more jobs closing the remaining gap.

    jobs = [Job("gan", dist), Job("f_gan", dist, config={"divergence": "kl"})]
    results = train_many(jobs)           # [(model, history), ...] in the order of jobs

Each job is trained exactly as `train_job` does in-process (zoo recipe, seeded weights, seeded
fit), so the same jobs give the same models on the same machine. Workers are started once and
reused: forked on Linux, where they set one thread before any work (as DataLoader workers do), so
scripts need no `if __name__ == "__main__"` guard; spawned elsewhere. Without several cores, on a
GPU, or with UNIGM_WORKERS=1 the jobs run here, one after the other.
"""
from __future__ import annotations

import atexit
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from .. import runtime, zoo
from .loop import fit

_POOL: ProcessPoolExecutor | None = None
_POOL_WORKERS = 0


@dataclass(frozen=True)
class Job:
    """One zoo model to train on a data set with its recipe for `task` (by default the 2D one;
    optionally another step count)."""

    name: str
    dist: object  # a unigm.data distribution (anything `fit` accepts as data)
    seed: int = 0
    steps: int | None = None  # None: the recipe's, for the current profile
    config: dict = field(default_factory=dict)  # overrides of the model's config
    label: str | None = None  # a title for progress bars and tables (default: the name)
    event_shape: tuple[int, ...] = (2,)
    task: str = "2d"  # which of the model's recipes (unigm.registry.TASKS)
    teacher: tuple[Job, dict] | None = None  # (the teacher's job, its trained state_dict): a model that
    # learns from another one (consistency distillation) is built by `from_teacher(teacher)`

    @property
    def title(self) -> str:
        return self.label or self.name


def train_job(job: Job, progress: bool = False):
    """Build the zoo model (seeded with job.seed) and fit it with its recipe: (model, history)."""
    fit_kwargs = zoo.recipe(job.name, job.task).fit_kwargs(job.steps)
    model = build(job)
    history = fit(model, job.dist, seed=job.seed, progress=progress,
                  desc=job.label or f"{job.name} on {getattr(job.dist, 'name', 'data')}", **fit_kwargs)
    return model, history


def _train_here(job: Job, progress: bool, evaluate=None):
    model, history = train_job(job, progress)
    return (model, history) if evaluate is None else (model, history, evaluate(job, model, history))


def _train_in_worker(job: Job, evaluate=None):
    """train_job in a worker process; models do not all pickle (some hold functions), so the
    weights travel as a state dict and the model is rebuilt in the parent. With `evaluate`, its
    result on the trained model travels back too (measured here, in parallel with other jobs)."""
    model, history = train_job(job)
    return model.state_dict(), history, None if evaluate is None else evaluate(job, model, history)


def build(job: Job):
    """The untrained model of a job, its weights seeded with job.seed; with a teacher, the zoo class's
    `from_teacher` around the teacher rebuilt from its state dict (which is how it travels to a worker:
    state dicts pickle, some models do not)."""
    if job.teacher is None:
        runtime.seed_everything(job.seed)
        return zoo.make(job.name, job.event_shape, **job.config)
    teacher_job, teacher_state = job.teacher
    cls = zoo.model_class(job.name)
    if not hasattr(cls, "from_teacher"):
        raise TypeError(f"{job.name} does not learn from a teacher (it has no from_teacher)")
    teacher = _rebuild(teacher_job, teacher_state)
    runtime.seed_everything(job.seed)
    return cls.from_teacher(teacher, **job.config)


def _rebuild(job: Job, state: dict):
    model = build(job)  # leaves the global RNG as train_job would
    model.load_state_dict(state)
    return model.eval()


def workers_available() -> int:
    """How many training processes to use: $UNIGM_WORKERS, else one per core (1 on a GPU)."""
    if os.environ.get("UNIGM_WORKERS"):
        n = int(os.environ["UNIGM_WORKERS"])
        if n < 1:
            raise ValueError(f"UNIGM_WORKERS must be a positive integer, got {n}")
        return n
    return 1 if runtime.device().type != "cpu" else runtime.cpu_count()


def _one_thread() -> None:
    torch.set_num_threads(1)


def _pool(workers: int) -> ProcessPoolExecutor:
    global _POOL, _POOL_WORKERS
    if _POOL is None or _POOL_WORKERS != workers:
        shutdown()
        context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
        _POOL = ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread)
        _POOL_WORKERS = workers
    return _POOL


@atexit.register
def shutdown() -> None:
    """Stop the worker processes (they are restarted on the next train_many)."""
    global _POOL
    if _POOL is not None:
        _POOL.shutdown(cancel_futures=True)
        _POOL = None


def train_many(jobs: list[Job], workers: int | None = None, progress: bool = True, desc: str | None = None,
               evaluate=None):
    """Train every job, several at once when there are cores for it: [(model, history), ...] in
    the order of `jobs`. A failing job raises its error here (the others are cancelled).

    evaluate: a function evaluate(job, model, history) (picklable: defined at module level) run on
    each trained model where it was trained, so that measuring, too, runs in parallel; the results
    are then [(model, history, evaluation), ...]."""
    jobs = list(jobs)
    if not all(isinstance(job, Job) for job in jobs):
        raise TypeError("train_many takes a list of Job(name, dist, ...)")
    workers = min(workers or workers_available(), len(jobs))
    if workers <= 1:
        return [_train_here(job, progress, evaluate) for job in jobs]
    pool = _pool(workers)
    futures = {pool.submit(_train_in_worker, job, evaluate): i for i, job in enumerate(jobs)}
    results = [None] * len(jobs)
    bar = tqdm(total=len(jobs), desc=desc or f"training {len(jobs)} models in {workers} processes",
               unit="model", disable=not progress, leave=False)
    try:
        for future in as_completed(futures):
            i = futures[future]
            state, history, evaluation = future.result()
            results[i] = (_rebuild(jobs[i], state), history) + (() if evaluate is None else (evaluation,))
            bar.set_postfix_str(f"{jobs[i].title} done in {results[i][1].seconds:.1f} s", refresh=False)
            bar.update()
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    finally:
        bar.close()
    return results
