"""Graded exercises: the format, the generated student version, and the autograder.

- source.py      the format of solutions/NN_topic.py and how exercises/NN_topic.py is made from it
- runner.py      one notebook run in a worker process of its own, under limits (the parent's side)
- worker.py      that worker: the notebook executed cell by cell with nbclient, then the tests
- kernel_side.py the few lines that run a test inside that kernel (and `replaced`, for tests)
- gradebook.py   a class graded into gradebook.csv/.json and one feedback file per student
- cli.py         the `unigm-grade` command: check, grade, release

The README's "Exercises" sections show the workflow for students and for instructors.
Names are imported on first use, so that the kernel under test, which imports only
kernel_side, does not pay for nbformat and jupytext.
"""
import importlib

_WHERE = {"check": "cli", "grade": "gradebook", "Limits": "runner", "run_isolated": "runner",
          "NotANotebook": "source", "SourceError": "source", "Test": "source", "exercise_text": "source",
          "make_exercise": "source", "read_notebook": "source", "release": "source", "tests_of": "source"}
__all__ = sorted([*_WHERE, "main"])


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv=None) -> int:
    """The `unigm-grade` console script."""
    from .cli import main as cli_main

    return cli_main(argv)
