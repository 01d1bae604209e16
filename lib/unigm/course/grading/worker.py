"""The grading worker: one notebook executed cell by cell in a kernel, then its tests there.

Started by runner.run_isolated with the spec on stdin and a pipe for its events. Cells run
one at a time and an error does not stop the notebook (later answers still count). A cell or
test that outlives its time is interrupted; a kernel that ignores the interrupt or dies (exit,
crash, CPU limit) is replaced by a fresh one, in a fresh copy of the folder, into which the cells
that finished before are replayed, without the culprit, at most MAX_RESTARTS times. Only the
results that kernel_side.run_test publishes and the first lines written to stderr are read from
the kernel's output; nothing else is kept, however much a notebook prints.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import subprocess
import sys
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from .kernel_side import RESULT_MIME
from .runner import MAX_RESTARTS, PROBE_SECONDS
from .source import NotANotebook, is_test, read_notebook

TIMEOUT_NAME = "unigm-timeout"  # ename of nbclient's reply for a cell that ran out of time
KERNEL_NAME = "unigm-grader"
MAX_FILE_BYTES = 2**30  # RLIMIT_FSIZE: the largest file a submission may write


@dataclass
class Reply:
    status: str  # ok | error | timeout | lost
    error: str = ""  # "Name: message" of the exception, for errors
    results: list = field(default_factory=list)  # RESULT_MIME payloads published by the code


class GradingClient(NotebookClient):
    """A NotebookClient that keeps only what grading needs of a cell's output: the test results
    and the first lines sent to stderr (nothing accumulates, however much a notebook prints)."""

    def __init__(self, stderr_lines: list[str], **kwargs):
        super().__init__(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("")]), **kwargs)
        self.stderr_lines = stderr_lines
        self.results: list[dict] = []

    def output(self, outs, msg, display_id, cell_index):
        content = msg["content"]
        if msg["msg_type"] == "stream" and content.get("name") == "stderr" and len(self.stderr_lines) < 3:
            self.stderr_lines.extend(line[:200] for line in content.get("text", "").splitlines()[:3] if line.strip())
        elif msg["msg_type"] in ("display_data", "execute_result") and RESULT_MIME in content.get("data", {}):
            self.results.append(content["data"][RESULT_MIME])
        return None


class Kernel:
    """One kernel at a time, started in a fresh copy of the submission's folder."""

    def __init__(self, spec: dict, emit):
        self.spec, self.emit = spec, emit
        self.client, self.stack = None, None
        self.stderr_lines: list[str] = []

    async def start(self) -> None:
        home = Path(self.spec["home"])
        shutil.rmtree(home, ignore_errors=True)  # a fresh working copy every time
        (home / ".tmp").mkdir(parents=True)
        shutil.copyfile(self.spec["notebook"], home / self.spec["name"])
        self.client = GradingClient(
            self.stderr_lines, kernel_name=KERNEL_NAME, allow_errors=True, interrupt_on_timeout=True,
            error_on_timeout={"ename": TIMEOUT_NAME, "evalue": "", "traceback": []},
            shutdown_kernel="immediate", startup_timeout=120)
        self.stack = AsyncExitStack()
        await self.stack.enter_async_context(self.client.async_setup_kernel(
            cwd=str(home), env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.emit("kernel", pgid=self.client.km.provisioner.pgid or self.client.km.provisioner.pid)

    async def stop(self) -> None:
        if self.stack is not None:
            try:
                await self.stack.aclose()
            except Exception:  # a kernel that is already gone
                pass
            self.stack = None

    async def run(self, source: str, timeout: float, store_history: bool = True, probe: bool = False) -> Reply:
        """Execute code. One that runs out of time is interrupted; a kernel that does not answer
        a probe after the interrupt, or that died, is reported as 'lost'."""
        cell = self.client.nb.cells[0] = nbformat.v4.new_code_cell(source)
        self.client.timeout = max(1, math.ceil(timeout))
        self.client.results = []
        replies = []
        self.client.on_cell_executed = lambda cell, cell_index, execute_reply: replies.append(execute_reply)
        try:
            await self.client.async_execute_cell(cell, 0, store_history=store_history)
        except DeadKernelError:
            return Reply("lost", "the kernel died")
        reply = replies[-1]["content"] if replies else {"status": "error", "ename": "", "evalue": ""}
        if reply.get("status") == "ok":
            return Reply("ok", results=self.client.results)
        if reply.get("ename") == TIMEOUT_NAME:
            if probe:
                return Reply("lost")
            answer = await self.run("pass", PROBE_SECONDS, store_history=False, probe=True)
            return Reply("timeout") if answer.status == "ok" else Reply("lost", "it did not stop when interrupted")
        error = ": ".join(part for part in (reply.get("ename"), reply.get("evalue")) if part)
        return Reply("error", error[:300] or "an error", self.client.results)


class Session:
    """The kernel of one submission, the cells that finished in it and the restarts so far."""

    def __init__(self, spec: dict, emit):
        self.spec, self.emit = spec, emit
        self.kernel = Kernel(spec, emit)
        self.history: list[str] = []  # sources that finished, replayed into a replacement kernel
        self.restarts = 0
        self.usable = True

    async def recover(self) -> bool:
        """Replace a lost kernel and replay the cells that had finished; False when that fails
        or the restarts are used up (then no more code runs)."""
        self.restarts += 1
        self.usable = self.restarts <= MAX_RESTARTS and await self._replay()
        return self.usable

    async def _replay(self) -> bool:
        await self.kernel.stop()
        try:
            await self.kernel.start()
        except Exception as err:
            self.emit("note", text=f"a fresh kernel did not start: {err}")
            return False
        for source in self.history:  # each of these finished before, within its timeout
            if (await self.kernel.run(source, self.spec["timeout"])).status in ("lost", "timeout"):
                return False
        return True

    async def run_cells(self, cells: list[tuple[int, str]]) -> None:
        spec, emit = self.spec, self.emit
        spent = 0.0  # seconds charged to the notebook: each cell's run time, at most its timeout
        for number, source in cells:
            remaining = spec["notebook_seconds"] - spent
            if remaining <= 0:
                emit("note", text=f"the notebook ran out of its {spec['notebook_seconds']:.0f} s: "
                                  f"cells from cell {number} on were not run")
                return
            allowed, started = min(spec["timeout"], remaining), time.monotonic()
            reply = await self.kernel.run(source, allowed)
            spent += min(time.monotonic() - started, allowed)
            if reply.status in ("ok", "error"):
                self.history.append(source)
                if reply.status == "error":
                    emit("note", text=f"cell {number} raised {reply.error}")
            elif reply.status == "timeout":
                emit("note", text=f"cell {number} was stopped after {allowed:.0f} s (an endless loop?)")
            else:
                emit("note", text=f"cell {number}: {reply.error or 'the kernel was lost'}; "
                                  "it was skipped and the cells before it were run again in a fresh kernel")
                if not await self.recover():
                    emit("note", text="the notebook could not be restored; its remaining cells were not run")
                    return

    async def run_tests(self, tests: list[dict]) -> None:
        timeout = self.spec["timeout"]
        for test in tests:
            if not self.usable:
                self.emit("test", name=test["name"], status="not run", fraction=0.0,
                          message="the notebook's kernel was lost")
                continue
            code = (f"__import__('unigm.course.grading.kernel_side', fromlist=['run_test']).run_test("
                    f"{test['name']!r}, {test['visible']!r}, {test['hidden']!r})")
            reply = await self.kernel.run(code, timeout, store_history=False)
            if reply.status == "ok" and len(reply.results) == 1:
                self.emit("test", **reply.results[0])
                continue
            why = {"timeout": f"it ran longer than {timeout:.0f} s",
                   "lost": "the kernel died or stopped answering while it ran"}.get(reply.status,
                                                                                   "it reported no result")
            self.emit("test", name=test["name"], status="failed", fraction=0.0, error=reply.status, message=why)
            if reply.status == "lost":
                await self.recover()


async def _work(spec: dict, emit) -> None:
    try:
        notebook = read_notebook(spec["notebook"], spec["name"])
    except NotANotebook as err:
        emit("fatal", text=str(err))
        return
    cells = [(i + 1, c.source) for i, c in enumerate(notebook.cells)
             if c.cell_type == "code" and not is_test(c) and c.source.strip()]
    session = Session(spec, emit)
    try:
        await session.kernel.start()
    except Exception as err:
        emit("fatal", text=f"the kernel did not start: {type(err).__name__}: {err}"[:300])
        return
    try:
        await session.run_cells(cells)
        if session.kernel.stderr_lines:
            emit("note", text="the notebook wrote to stderr: " + " | ".join(session.kernel.stderr_lines[:3]))
        await session.run_tests(spec["tests"])
    finally:
        await session.kernel.stop()
    emit("done")


def _limit_resources(memory_mb: int, cpu_seconds: int) -> None:
    import resource

    def limit(name, value):
        if hasattr(resource, name):
            try:
                resource.setrlimit(getattr(resource, name), (value, value))
            except (ValueError, OSError):  # not supported here (e.g. RLIMIT_AS on macOS)
                pass

    limit("RLIMIT_AS", memory_mb * 2**20)
    limit("RLIMIT_CPU", cpu_seconds)
    limit("RLIMIT_FSIZE", MAX_FILE_BYTES)
    limit("RLIMIT_CORE", 0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="unigm-grade worker", description="grading worker (internal)")
    parser.add_argument("--events-fd", type=int, required=True)
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--cpu-seconds", type=int, required=True)
    args = parser.parse_args(argv)
    _limit_resources(args.memory_mb, args.cpu_seconds)
    os.set_inheritable(args.events_fd, False)  # the kernel must not be able to write results
    events = os.fdopen(args.events_fd, "w", buffering=1)
    spec = json.load(sys.stdin)
    for folder in ("ipython", "runtime", "matplotlib", "jupyter-config"):
        (Path(spec["private"]) / folder).mkdir(parents=True, exist_ok=True)
    kernelspec = Path(spec["private"]) / "jupyter" / "kernels" / KERNEL_NAME
    kernelspec.mkdir(parents=True, exist_ok=True)
    (kernelspec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "unigm grader", "language": "python"}))

    def emit(kind: str, **fields) -> None:
        events.write(json.dumps({"event": kind, **fields}) + "\n")

    asyncio.run(_work(spec, emit))
    return 0
