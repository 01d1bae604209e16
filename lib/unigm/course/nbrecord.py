"""A pytest plugin that keeps what nbval executed: each tested notebook, with the outputs its cells
produced in the test run, written to a folder as an executed notebook (the same files `unigm course`
writes), plus the notebook's wall time.

    pytest build/test-notebooks --nbval-lax -p unigm.course.nbrecord --executed-out build/executed

`make test` uses it so that the lectures are executed once: nbval tests them cell by cell, and the
site and the slides (`unigm.course.site`) are built from the very outputs that were tested. A failing
cell keeps its error output, so the executed notebook shows where the lecture broke.
"""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

_RECORDED: dict[Path, dict] = {}  # notebook path -> {"nb": NotebookNode, "seconds": float, "failed": [cell numbers]}


def pytest_addoption(parser):
    parser.addoption("--executed-out", default=None, metavar="DIR",
                     help="write every notebook nbval executed, with its outputs, to DIR (unigm.course.nbrecord)")


def _is_notebook_cell(item) -> bool:
    return type(item).__name__ == "IPyNbCell" and hasattr(item, "cell")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if call.when != "call" or not _is_notebook_cell(item) or not item.config.getoption("executed_out"):
        return
    record = _RECORDED.setdefault(Path(str(item.parent.fspath)), {"nb": item.parent.nb, "seconds": 0.0,
                                                                    "failed": [], "count": 0})
    record["seconds"] += call.duration
    record["count"] += 1
    item.cell.execution_count = record["count"]
    outputs = getattr(item, "test_outputs", None) or []
    for output in outputs:
        if output.get("output_type") == "execute_result":
            output["execution_count"] = record["count"]
    item.cell.outputs = [nbformat.from_dict(dict(o)) for o in outputs]
    if outcome.get_result().failed:
        record["failed"].append(item.cell_num)


def pytest_sessionfinish(session):
    out = session.config.getoption("executed_out")
    if not out or not _RECORDED:
        return
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings_path = out.parent / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    for path, record in sorted(_RECORDED.items()):
        nb = record["nb"]
        nb.metadata.setdefault("unigm", {}).update(seconds=round(record["seconds"], 2), failed_cells=record["failed"],
                                                   executed_by="nbval")
        nbformat.write(nb, out / path.name)
        timings[path.stem] = round(record["seconds"], 2)
    timings_path.write_text(json.dumps(timings, indent=2))
