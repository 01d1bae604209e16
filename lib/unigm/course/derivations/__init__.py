"""Lecture 02's derivations, every step machine-checked (sympy) and every result checked
numerically against the library's own code. One module per group of results:
dsm (1, 11), dynamics (2, 7), paths and targets (3), adversarial (4, 5), energy (6), likelihood (8, 9),
ddim (10), facts (12); core holds the registry and helpers, report the table and `show`.

    from unigm.course import derivations
    derivations.names()                   # every check, in lecture order
    derivations.run("1.1")                # by number or full name -> Report(check, outcome, seconds)
    derivations.show("1.1", "1.2")        # in a notebook: the checked equations and PASS; raises on FAIL
    python -m unigm.course.derivations    # the table of all checks; exit status 1 if any fails
"""

from __future__ import annotations

# importing a topic module registers its checks
from . import adversarial, ddim, dsm, dynamics, energy, facts, likelihood, paths  # noqa: F401
from . import targets  # noqa: F401  (after paths: checks 3.11-3.14)
from .core import REGISTRY, RESULTS, Outcome, Report, check, run
from .report import main, run_all, show, table

__all__ = ["REGISTRY", "RESULTS", "Outcome", "Report", "check", "run", "run_all", "show", "table", "main", "names"]


def names(result: int | None = None) -> list[str]:
    """Registered check names, ordered by result number, then registration order."""
    ordered = sorted(REGISTRY.values(), key=lambda c: (c.result, int(c.name.split(" ", 1)[0].split(".")[1])))
    return [c.name for c in ordered if result is None or c.result == result]
