"""Run one submitted notebook in a process and kernel of its own, under limits, then its tests.

`run_isolated` copies the submission into a fresh temporary folder and starts a worker process
(worker.py) with a scrubbed environment: HOME and TMPDIR inside that folder, private IPython and
Jupyter folders, one CPU thread, the quick profile on CPU. The worker limits itself (address
space, CPU time, file size; the kernel inherits the limits), executes the notebook with
nbclient, then sends each test into the same kernel. It reports over a pipe of its own, one
JSON line per event, so that what it finished before being stopped is kept. This side enforces
a wall-clock deadline and kills the worker's and the kernels' process groups at the end.

This isolates accidents (loops, memory, crashes, stray files, output floods), not an attacker:
the code runs as your user. For exams, run the grader under an account that cannot write the
course files, or in a container.
"""
from __future__ import annotations

import json
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .source import Test

MAX_RESTARTS = 2
PROBE_SECONDS = 5  # how long an interrupted kernel has to answer again before it is killed
STOP_SECONDS = 30  # allowance for stopping one step that timed out: interrupt, probe, restart
WORKER_ENTRY = "from unigm.course.grading.worker import main; raise SystemExit(main())"


@dataclass(frozen=True)
class Limits:
    timeout: float = 60.0  # seconds, for each cell and each test
    total: float | None = None  # seconds for all of the notebook's own cells (default 5 x timeout)
    memory_mb: int = 2048  # address space of each process (worker, kernel)

    def __post_init__(self):
        if not self.timeout > 0 or (self.total is not None and not self.total > 0):
            raise ValueError(f"timeouts must be positive seconds, got timeout={self.timeout}, total={self.total}")
        if self.memory_mb < 512:
            raise ValueError(f"memory_mb={self.memory_mb} is too small to start a kernel; use 512 or more")

    @property
    def notebook_seconds(self) -> float:
        return self.total if self.total is not None else 5 * self.timeout

    def deadline(self, n_tests: int) -> float:
        """Wall-clock seconds after which the parent kills the worker: a safety net that allows
        every cell and test its time, the replays after restarts, and the cost of stopping each
        step that can time out (interrupt, probe, restart)."""
        work = self.notebook_seconds + n_tests * self.timeout
        steps_that_can_time_out = math.ceil(self.notebook_seconds / self.timeout) + n_tests
        return (1 + MAX_RESTARTS) * work + steps_that_can_time_out * STOP_SECONDS + 60


@dataclass
class Outcome:
    """What a worker reported: test results by name, notes for the student, a fatal reason."""

    results: dict[str, dict] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    fatal: str | None = None
    seconds: float = 0.0


def kernel_environment(home: Path, private: Path) -> dict[str, str]:
    """The environment of the worker and the kernel: nothing of the grader's but PATH and locale."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONPATH")}
    env.update(
        HOME=str(home), TMPDIR=str(home / ".tmp"), IPYTHONDIR=str(private / "ipython"),
        JUPYTER_PATH=str(private / "jupyter"), JUPYTER_DATA_DIR=str(private / "jupyter"),
        JUPYTER_CONFIG_DIR=str(private / "jupyter-config"), JUPYTER_RUNTIME_DIR=str(private / "runtime"),
        JUPYTER_PLATFORM_DIRS="1", MPLCONFIGDIR=str(private / "matplotlib"), MPLBACKEND="Agg",
        OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MALLOC_ARENA_MAX="2",
        UNIGM_PROFILE="quick", UNIGM_DEVICE="cpu", PYTHONDONTWRITEBYTECODE="1",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    return env


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _remove_tree(path: Path) -> None:
    """Delete a submission's temporary copy, even where the submission made parts of it read-only;
    never touches anything outside it (the copy's own parent is the shared temporary folder)."""
    root = Path(path).absolute()

    def make_writable_and_retry(function, name, _):
        try:
            parent = Path(name).absolute().parent
            if parent == root or root in parent.parents:
                os.chmod(parent, 0o700)
            os.chmod(name, 0o700)
            function(name)
        except OSError:
            pass

    shutil.rmtree(path, onerror=make_writable_and_retry)


def run_isolated(submission, tests: list[Test], limits: Limits = Limits()) -> Outcome:
    """Execute `submission` and run `tests` in its namespace, in a worker process under limits."""
    submission = Path(submission)
    start = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="unigm-grade-work-"))
    private = Path(tempfile.mkdtemp(prefix="unigm-grade-"))
    outcome, pgids = Outcome(), []
    try:
        pristine = private / ("submission" + submission.suffix.lower())
        shutil.copyfile(submission, pristine)
        spec = {"notebook": str(pristine), "name": submission.name, "home": str(home), "private": str(private),
                "tests": [t.__dict__ for t in tests], "timeout": limits.timeout,
                "notebook_seconds": limits.notebook_seconds}
        deadline = limits.deadline(len(tests))
        read_end, write_end = os.pipe()
        try:
            with open(private / "worker.log", "wb") as log:
                worker = subprocess.Popen(
                    [sys.executable, "-c", WORKER_ENTRY, "--events-fd", str(write_end),
                     "--memory-mb", str(limits.memory_mb), "--cpu-seconds", str(math.ceil(deadline))],
                    stdin=subprocess.PIPE, stdout=log, stderr=log, pass_fds=(write_end,),
                    start_new_session=True, env=kernel_environment(home, private), cwd=private)
            pgids.append(worker.pid)
            os.close(write_end)
            write_end = None
            try:
                worker.stdin.write(json.dumps(spec).encode())
                worker.stdin.close()
            except BrokenPipeError:  # the worker died at once; its log says why
                pass
            ending = _collect(read_end, outcome, pgids, start + deadline)
        finally:
            os.close(read_end)
            if write_end is not None:
                os.close(write_end)
        if ending == "deadline":
            outcome.notes.append(f"grading of this notebook was stopped after {deadline:.0f} s")
            for pgid in pgids:
                _kill_group(pgid)
        try:
            code = worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        if ending == "crash":
            log_tail = (private / "worker.log").read_text(errors="replace").strip().splitlines()[-1:]
            problem = f"the grader's worker stopped ({code}): {' '.join(log_tail)[:300]}"
            if outcome.results:
                outcome.notes.append(problem)
            else:
                outcome.fatal = outcome.fatal or problem
    finally:
        for pgid in pgids:
            _kill_group(pgid)
        _remove_tree(home)
        _remove_tree(private)
    outcome.seconds = round(time.monotonic() - start, 2)
    return outcome


def _collect(fd: int, outcome: Outcome, pgids: list[int], deadline: float) -> str:
    """Read events until the worker closes the pipe; return 'done', 'crash' (closed before its
    last event) or 'deadline'."""
    buffer, done = b"", False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "deadline"
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return "done" if done else "crash"
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            event = json.loads(line)
            kind = event.pop("event")
            if kind == "kernel":
                pgids.append(int(event["pgid"]))
            elif kind == "test":
                outcome.results[event["name"]] = event
            elif kind == "note":
                outcome.notes.append(event["text"])
            elif kind == "fatal":
                outcome.fatal = event["text"]
            elif kind == "done":
                done = True
