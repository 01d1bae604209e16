"""`unigm-grade`: check a notebook, grade a class, release exercises.

    unigm-grade check NOTEBOOK                     run the visible tests, print each result
    unigm-grade grade SOLUTION SUBMISSIONS... --out DIR [--timeout S] [--memory-mb M] [--force] [--workers N]
    unigm-grade release [SOLUTIONS...] [--out exercises] [--check]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .gradebook import explain, grade
from .runner import Limits, run_isolated
from .source import NotANotebook, SourceError, exercise_text, has_code, read_notebook, release, tests_of

SOLUTIONS, EXERCISES = Path("solutions"), Path("exercises")


def check(notebook: Path, limits: Limits, out=print) -> int:
    """Execute a notebook and run its visible tests; 0 when every one passes."""
    notebook = Path(notebook)
    tests = [t.visible_only() for t in tests_of(read_notebook(notebook), notebook.name)]
    if not tests:
        out(f"{notebook} has no test cells (cells whose header says test=\"...\")")
        return 2
    visible = [t for t in tests if has_code(t.visible)]
    out(f"checking {notebook}: executing it, then its {len(visible)} visible tests ...")
    outcome = run_isolated(notebook, visible, limits)
    if outcome.fatal:
        out(f"could not run: {outcome.fatal}")
        return 1
    passed = 0
    for question in dict.fromkeys(t.question for t in tests):  # in order of appearance
        lines, earned, possible, all_passed = [], 0.0, 0.0, True
        for test in (t for t in tests if t.question == question):
            if test not in visible:
                lines.append(f"    {test.name:<22} {'hidden':<8} -/{test.points:g}  (runs only when graded)")
                continue
            result = outcome.results.get(test.name, {"status": "not run", "message": "no result"})
            status = result["status"]
            passed += status == "passed"
            all_passed &= status == "passed"
            points = test.points * float(result.get("fraction", 0.0))
            earned, possible = earned + points, possible + test.points
            line = f"    {test.name:<22} {status if status == 'passed' else status.upper():<8} {points:g}/{test.points:g}"
            if status != "passed":
                line += f"  {explain(result)}"
            lines.append(line + ("  (+ hidden checks when graded)" if test.withheld else ""))
        if possible:
            out(f"  {question:<24} {'passed' if all_passed else 'FAILED':<8} {earned:g}/{possible:g}")
        else:
            out(f"  {question:<24} {'hidden':<8} (all of its tests run only when graded)")
        for line in lines:
            out(line)
    for note in outcome.notes:
        out(f"  note: {note}")
    out(f"{passed} of {len(visible)} visible tests passed in {outcome.seconds:.1f} s. "
        "Grading also runs hidden tests, with other inputs.")
    return 0 if passed == len(visible) else 1


def release_all(sources: list[Path], out: Path, check_only: bool = False) -> int:
    """Write the exercise of every solution, or (check_only) report those that are out of date."""
    if not sources:
        print(f"no solution sources (NN_topic.py) in {SOLUTIONS.resolve()}", file=sys.stderr)
        return 2
    stale = []
    for source in sources:
        target = out / source.name
        if not check_only:
            print(release(source, out))
        elif not target.exists() or target.read_text(encoding="utf-8") != exercise_text(source):
            stale.append(str(target))
    if stale:
        print(f"out of date (run `make exercises`): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="unigm-grade", description="Graded exercises of the unigm course")
    sub = parser.add_subparsers(dest="command", required=True)

    def add_limits(p):
        p.add_argument("--timeout", type=float, default=60, help="seconds for each cell and each test")
        p.add_argument("--total-timeout", type=float, default=None,
                       help="seconds for all of a notebook's own cells (default: 5 x --timeout)")
        p.add_argument("--memory-mb", type=int, default=2048, help="memory (address space) of each process")

    ch = sub.add_parser("check", help="execute a notebook (.py or .ipynb) and run its visible tests")
    ch.add_argument("notebook", type=Path)
    add_limits(ch)
    gr = sub.add_parser("grade", help="grade submissions against a solution source")
    gr.add_argument("solution", type=Path)
    gr.add_argument("submissions", nargs="+", type=Path, help="notebooks, or folders of them")
    gr.add_argument("--out", type=Path, required=True, help="folder for gradebook.csv/.json and feedback/")
    gr.add_argument("--force", action="store_true", help="regrade students whose submission is unchanged")
    gr.add_argument("--workers", type=int, default=1, help="submissions graded at a time, each in its own process")
    add_limits(gr)
    re_ = sub.add_parser("release", help="generate exercises/ from solutions/")
    re_.add_argument("solutions", nargs="*", type=Path)
    re_.add_argument("--out", type=Path, default=EXERCISES)
    re_.add_argument("--check", action="store_true", help="write nothing; exit 1 if an exercise is out of date")
    args = parser.parse_args(argv)

    try:
        if args.command == "release":
            return release_all(args.solutions or sorted(SOLUTIONS.glob("[0-9][0-9]_*.py")), args.out, args.check)
        limits = Limits(timeout=args.timeout, total=args.total_timeout, memory_mb=args.memory_mb)
        if args.command == "check":
            return check(args.notebook, limits)
        grade(args.solution, args.submissions, args.out, limits, force=args.force, workers=args.workers)
        return 0
    except (SourceError, NotANotebook, FileNotFoundError, ValueError) as err:
        print(f"unigm-grade: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
