"""Start training now, collect the models later: `TrainingQueue`.

`train_many` trains a list of jobs and waits for all of them, so the cores idle twice: at the end of
each list (the last job runs alone) and while the caller measures and plots what came back. A
notebook that trains in many sections can instead queue every job of those sections at the top;
the worker processes (one per core, one thread each: see parallel.py) then train through the list
in order while the notebook goes on computing, and each section collects the models it needs:

    queue = TrainingQueue([Job("vae", moons), Job("gan", moons), ...])   # starts training
    ...                                                                  # read, plot, measure
    vae, gan = queue.collect(Job("vae", moons), Job("gan", moons))       # waits only if not done yet
    queue.close()

Jobs run first-queued first (list them in the order they are needed), and only as many are handed to
the workers as there are workers: the rest wait here, so that a job asked for by collect(), or
submitted with first=True, goes next instead of behind the whole list. A job not queued is submitted
when collected (a model that needs another's weights, such as a distilled student, can only be built
once the other is collected; submit it with first=True as soon as it can be). The same jobs give the same models as train_many and train_job: each job is trained
alone in its worker from its own seed, so where and when it ran changes nothing.

While the queue is open this process computes on `main_threads` threads (default 1): two workers
and a two-thread caller would put three or four busy threads on two cores, where OpenMP's waiting
threads slow matrix products down many times. The thread count is set when the queue opens and
restored by close(), at fixed places in the caller's code, so the caller's own numbers do not depend
on how fast the workers happen to be. Without several cores, or on a GPU, nothing runs in the
background: collect() trains the jobs it is asked for, here.
"""
from __future__ import annotations

import threading
from concurrent.futures import Future

import torch
from tqdm.auto import tqdm

from .parallel import Job, _pool, _rebuild, _train_in_worker, train_job, workers_available


class TrainingQueue:
    def __init__(self, jobs, workers: int | None = None, main_threads: int = 1):
        jobs = list(jobs)
        if not all(isinstance(job, Job) for job in jobs):
            raise TypeError("TrainingQueue takes a list of Job(name, dist, ...)")
        keys = [_key(job) for job in jobs]
        if len(set(keys)) != len(keys):
            raise ValueError(f"queued jobs need distinct titles on each data set (give each a label), got {keys}")
        if not isinstance(main_threads, int) or main_threads < 1:
            raise ValueError(f"main_threads must be a positive int, got {main_threads!r}")
        self.workers = workers or workers_available()
        self._jobs: list[Job] = []
        self._futures: dict[tuple, Future] = {}  # _key(job) -> Future of (state, history, None), set once trained
        self._waiting: list[tuple[Job, Future]] = []  # queued jobs not yet handed to a worker, the next first
        self._running = 0  # jobs handed to the workers and not finished
        self._lock = threading.RLock()  # the workers' done-callbacks feed the next job from another thread
        self._collected: set[tuple] = set()
        self._threads = None
        if self.workers > 1:
            self._threads = torch.get_num_threads()
            torch.set_num_threads(min(main_threads, self._threads))
        self.submit(*jobs)

    @property
    def background(self) -> bool:
        """Whether jobs train in worker processes (else collect() trains them here)."""
        return self.workers > 1

    def submit(self, *jobs: Job, first: bool = False) -> None:
        """Queue more jobs behind those already queued, or ahead of every job still waiting (first=True)."""
        for job in jobs:
            if self._find(job) is not None:
                raise ValueError(f"a job titled {job.title!r} on this data set is already queued")
            self._jobs.append(job)
        if self.background:
            with self._lock:
                entries = [(job, Future()) for job in jobs]
                self._futures.update({_key(job): promise for job, promise in entries})
                self._waiting[0:0] = entries if first else []
                self._waiting.extend([] if first else entries)
            self._feed()

    def _feed(self) -> None:
        """Hand waiting jobs to the workers until each has one."""
        with self._lock:
            while self._waiting and self._running < self.workers:
                job, promise = self._waiting.pop(0)
                self._running += 1
                _pool(self.workers).submit(_train_in_worker, job).add_done_callback(
                    lambda trained, promise=promise: self._settle(trained, promise))

    def _settle(self, trained: Future, promise: Future) -> None:
        """A worker finished a job: pass its result (or error) on and feed the next job."""
        with self._lock:
            self._running -= 1
            if promise.cancelled():  # the queue was closed meanwhile
                return
            if trained.cancelled():
                promise.cancel()
            elif trained.exception() is not None:
                promise.set_exception(trained.exception())
            else:
                promise.set_result(trained.result())
        self._feed()

    def collect(self, *jobs: Job, progress: bool = True) -> list[tuple]:
        """(model, history) of each job, in order, waiting for those still training; jobs never
        queued are submitted first. Each job is collected once (its weights travel once)."""
        for job in jobs:
            if _key(job) in self._collected:
                raise ValueError(f"{job.title!r} was already collected from this queue")
            queued = self._find(job)
            if queued is not None and _recipe(queued) != _recipe(job):
                raise ValueError(f"the job titled {job.title!r} differs from the one queued under that title: "
                                 f"queued {_recipe(queued)}, asked for {_recipe(job)}")
        self.submit(*[job for job in jobs if self._find(job) is None])
        with self._lock:  # what is needed now goes next, in the order asked
            asked = {_key(job) for job in jobs}
            self._waiting = ([entry for entry in self._waiting if _key(entry[0]) in asked]
                             + [entry for entry in self._waiting if _key(entry[0]) not in asked])
        results = []
        pending = sum(not self._futures[_key(job)].done() for job in jobs) if self.background else len(jobs)
        with tqdm(total=len(jobs), desc=f"collecting {len(jobs)} models ({pending} still training)", unit="model",
                  disable=not progress or pending == 0, leave=False) as bar:
            for job in jobs:
                if self.background:
                    state, history, _ = self._futures.pop(_key(job)).result()
                    results.append((_rebuild(job, state), history))
                else:
                    results.append(train_job(job, progress))
                self._collected.add(_key(job))
                bar.update()
        return results

    def close(self) -> None:
        """Cancel what was never collected and give this process its threads back."""
        with self._lock:
            self._waiting.clear()
            for future in self._futures.values():
                future.cancel()
            self._futures.clear()
        if self._threads is not None:
            torch.set_num_threads(self._threads)
            self._threads = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _find(self, job: Job) -> Job | None:
        return next((queued for queued in self._jobs if _key(queued) == _key(job)), None)


def _key(job: Job) -> tuple:
    """A job's identity in the queue: its title and its data set (a "gan" on two data sets is two jobs)."""
    return job.title, getattr(job.dist, "name", None) or id(job.dist)


def _recipe(job: Job) -> tuple:
    """What decides the trained model, short of the data and a teacher's weights (tensors do not compare)."""
    return job.name, job.seed, job.steps, job.config, job.event_shape, job.task
