"""The part of the grader that runs inside the kernel, after the submission's own cells.

`run_test(name, visible, hidden)` runs one test in the notebook's namespace and publishes
its result as one display message of type RESULT_MIME, the only output the grader reads.
For the visible part the result carries the exception and the failing line (the student can
read that code anyway); for the hidden part only the class name of a builtin exception
leaves this function, never its message or code. Tests may use `replaced` (below).
"""
from __future__ import annotations

import ast
import builtins
import math
import traceback
from contextlib import contextmanager

RESULT_MIME = "application/vnd.unigm.test-result+json"


class NotAFraction(Exception):
    """A test part ended with a value that is not a fraction in [0, 1]."""


@contextmanager
def replaced(namespace: dict, **names):
    """Bind `names` in the notebook's namespace for the duration of a `with` block, e.g. the
    library's version of an earlier answer, so that one mistake does not cost points twice."""
    missing = object()
    saved = {name: namespace.get(name, missing) for name in names}
    namespace.update(names)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is missing:
                namespace.pop(name, None)
            else:
                namespace[name] = value


def as_fraction(value) -> float:
    """None -> 1 (a test that ends with a statement); a number or a bool in [0, 1] -> itself."""
    if value is None:
        return 1.0
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy or torch scalar
        value = value.item()
    if isinstance(value, (bool, int, float)):
        fraction = float(value)
        if math.isfinite(fraction) and -1e-9 <= fraction <= 1 + 1e-9:
            return min(max(fraction, 0.0), 1.0)
        raise NotAFraction(f"ended with {fraction!r}, outside [0, 1]")
    raise NotAFraction(f"ended with a value of type {type(value).__name__}, not a fraction in [0, 1]")


def _run(code: str, namespace: dict, filename: str):
    """exec `code` in `namespace`; return the value of its last line if that is an expression."""
    tree = ast.parse(code, filename)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, filename, "exec"), namespace)
    if last is not None:
        return eval(compile(ast.Expression(last.value), filename, "eval"), namespace)
    return None


def _failing_line(err: BaseException, code: str, filename: str) -> str:
    lines = code.splitlines()
    for frame in reversed(traceback.extract_tb(err.__traceback__)):
        if frame.filename == filename and 0 < (frame.lineno or 0) <= len(lines):
            return lines[frame.lineno - 1].strip()
    return ""


def _builtin_name(err: BaseException) -> str:
    name = type(err).__name__
    return name if getattr(builtins, name, None) is type(err) else "Exception"


def run_test(name: str, visible: str, hidden: str = "", namespace: dict | None = None) -> dict:
    """Run one test; return {name, status, fraction, part, error, message, line}. Without a
    `namespace` it runs in the kernel's user namespace and also publishes the result there."""
    in_kernel = namespace is None
    if in_kernel:
        from IPython import get_ipython

        namespace = get_ipython().user_ns
    result = {"name": name, "status": "passed", "fraction": 1.0}
    for part, code in (("visible", visible), ("hidden", hidden)):
        if not code.strip():
            continue
        filename = f"<test {name}>"
        try:
            result["fraction"] *= as_fraction(_run(code, namespace, filename))
        except (Exception, SystemExit) as err:
            result.update(status="failed", fraction=0.0, part=part)
            if part == "visible":
                result.update(error=type(err).__name__, message=str(err)[:500],
                              line=_failing_line(err, code, filename))
            else:
                result.update(error="NotAFraction" if isinstance(err, NotAFraction) else _builtin_name(err))
            break
    if result["status"] == "passed" and result["fraction"] < 1:
        result["status"] = "partial" if result["fraction"] > 0 else "failed"
    if in_kernel:
        from IPython.display import display

        display({RESULT_MIME: result}, raw=True)
    return result
