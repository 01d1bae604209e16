"""Running the checks: the table printed by `python -m unigm.course.derivations`, and `show`,
which displays one check in a notebook (the equation it verified, or both halves of a
misstatement)."""

from __future__ import annotations

import argparse
import sys
import textwrap

import sympy as sp

from .core import Report, run


def run_all(names: list[str] | None = None) -> list[Report]:
    from . import names as ordered_names

    return [run(name) for name in (names if names is not None else ordered_names())]


def table(reports: list[Report], proves_width: int = 64) -> str:
    """A fixed-width text table: name, what it proves, PASS/FAIL, seconds."""
    name_width = max([len("check")] + [len(r.check.name) for r in reports])
    header = f"{'check':<{name_width}}  {'what it proves':<{proves_width}}  {'result':<6}  {'seconds':>7}"
    lines = [header, "-" * len(header)]
    for r in reports:
        wrapped = textwrap.wrap(r.check.proves, proves_width) or [""]
        status = "PASS" if r.passed else "FAIL"
        lines.append(f"{r.check.name:<{name_width}}  {wrapped[0]:<{proves_width}}  {status:<6}  {r.seconds:7.2f}")
        lines += [f"{'':<{name_width}}  {more}" for more in wrapped[1:]]
    passed = sum(r.passed for r in reports)
    lines.append("-" * len(header))
    lines.append(f"{passed}/{len(reports)} checks passed in {sum(r.seconds for r in reports):.1f} s")
    return "\n".join(lines)


def _equation(lhs, rhs) -> str:
    if isinstance(lhs, list):
        rows = " \\\\ ".join(f"{sp.latex(left)} &= {sp.latex(right)}" for left, right in zip(lhs, rhs))
        return f"$$\\begin{{aligned}} {rows} \\end{{aligned}}$$"
    return f"$${sp.latex(lhs)} = {sp.latex(rhs)}$$"


def markdown(report: Report) -> str:
    c, o = report.check, report.outcome
    mark = "✔ PASS" if o.passed else "✘ FAIL"
    text = [f"**{mark}** `{c.name}` ({c.kind}, {report.seconds:.2f} s): {c.proves}"]
    if o.wrong is not None:
        text.append(f"- wrong version: {o.wrong.detail} → **{'PASS' if o.wrong.passed else 'FAIL'}**")
        text.append(f"- right version: {o.right.detail} → **{'PASS' if o.right.passed else 'FAIL'}**")
    elif o.lhs is not None:
        text.append(_equation(o.lhs, o.rhs))
        text.append(f"({o.detail})")
    else:
        text.append(f"- {o.detail}")
    return "\n\n".join(text)


def show(*names: str) -> None:
    """Run the named checks, display each (Markdown in Jupyter, text elsewhere), and fail loudly
    (AssertionError) if any did not pass."""
    reports = [run(name) for name in names]
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display

        in_notebook = get_ipython() is not None
    except ImportError:
        in_notebook = False
    for report in reports:
        if in_notebook:
            display(Markdown(markdown(report)))
        else:
            print(markdown(report))
    failed = [r.check.name for r in reports if not r.passed]
    assert not failed, f"checks failed: {failed}: " + "; ".join(r.outcome.detail for r in reports if not r.passed)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m unigm.course.derivations",
        description="Run every machine-checked derivation of lecture 02 and print a table.",
    )
    parser.add_argument("--result", type=int, default=None, help="only the checks of this result (1..12)")
    parser.add_argument("--details", action="store_true", help="also print what each check measured")
    args = parser.parse_args(argv)
    from unigm import runtime

    from . import names

    runtime.set_threads()
    selected = names(args.result)
    if not selected:
        print(f"no checks for result {args.result}", file=sys.stderr)
        return 2
    reports = []
    for name in selected:
        reports.append(run(name))
    print(table(reports))
    if args.details:
        for r in reports:
            print(f"\n{r.check.name}: {r.outcome.detail}")
    return 0 if all(r.passed for r in reports) else 1


