"""Lecture 05's longer runs, spread over the cores: the schedule experiment of
unigm.frontier.interpolants, one (schedule, seed) per single-threaded worker process.

The frontier modules sit in the model layer and receive the trainer and the metrics as arguments;
this course-level wrapper passes them and runs the independent trainings two at a time (the same
rows, in the same order, as one sequential call, since every run seeds itself)."""
from __future__ import annotations

import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor

import torch

from .. import metrics, runtime
from ..frontier import interpolants
from ..train import fit


def _one_run(schedule: str, seed: int, kwargs: dict) -> list[dict]:
    torch.set_num_threads(1)
    return interpolants.schedule_experiment(fit, metrics, schedules=(schedule,), seeds=(seed,), **kwargs)


def schedule_experiment(schedules=interpolants.DEFAULT_SCHEDULES, seeds=(0, 1), workers: int | None = None,
                        **kwargs) -> list[dict]:
    """interpolants.schedule_experiment over (schedule, seed) pairs in `workers` processes (default: one per
    core); kwargs go to it unchanged (dataset, steps, batch_size, lr, nfes, method, n, config)."""
    workers = workers or runtime.cpu_count()
    cells = [(s, seed) for s in schedules for seed in seeds]
    if workers == 1:
        return [row for s, seed in cells for row in _one_run(s, seed, kwargs)]
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = [pool.submit(_one_run, s, seed, kwargs) for s, seed in cells]
        return [row for future in futures for row in future.result()]
