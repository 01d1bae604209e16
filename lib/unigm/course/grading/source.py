"""The exercise format: one solution source per exercise, the student version generated from it.

A solution (solutions/NN_topic.py) is a jupytext percent script. Answers sit between marker
lines in ordinary code cells; tests are code cells whose header names them:

    # %%
    def kl(mean, log_std):
        ### BEGIN SOLUTION
        return ...
        ### END SOLUTION

    # %% test="q2.kl" points=2
    assert ...                      # visible: the student can run these
    ### BEGIN HIDDEN TESTS
    assert ...                      # hidden: only the grader runs these
    ### END HIDDEN TESTS

Rules (checked here, with the line or test named in the error):
- A test is named QUESTION.PART (or just QUESTION); its question's points are the sum of its
  tests' points (> 0).
- A test earns its points when it runs without an exception. If a part (visible or hidden)
  ends with an expression, its value is the fraction in [0, 1] of the points earned (partial
  credit); the fractions of the two parts multiply. A bool counts as 0 or 1.
- Tests run after the whole notebook, in its namespace, visible part first (so a hidden region
  is top-level code of its own): they may use any name the notebook defines, and must not
  depend on the order of cells. Code that a student writes into a test cell is not run when
  graded; the tests always come from the solution.
- The exercise (exercises/NN_topic.py) is generated: each solution region becomes
  `# YOUR CODE HERE` and `raise NotImplementedError(...)` naming the question of the next test
  cell; each hidden region becomes the line HIDDEN_PLACEHOLDER.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat
from nbformat import NotebookNode

SOLUTION_BEGIN, SOLUTION_END = "### BEGIN SOLUTION", "### END SOLUTION"
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
HIDDEN_PLACEHOLDER = "### HIDDEN TESTS: run only when the notebook is graded"
TEST_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z0-9_.-]+)?$")
MAX_NOTEBOOK_BYTES = 20 * 2**20  # a submission larger than this is refused, not parsed


class SourceError(ValueError):
    """A solution or exercise source breaks the format above (an authoring mistake)."""


class NotANotebook(ValueError):
    """A submitted file cannot be read as a notebook."""


@dataclass(frozen=True)
class Test:
    name: str
    points: float
    visible: str  # code the student sees
    hidden: str = ""  # code only the grader runs
    withheld: bool = False  # an exercise copy: hidden checks exist but were removed

    @property
    def question(self) -> str:
        return self.name.split(".")[0]

    def visible_only(self) -> "Test":
        return Test(self.name, self.points, self.visible, "", self.withheld or bool(self.hidden.strip()))


# -- reading -------------------------------------------------------------------------------------
def read_notebook(path, name: str | None = None) -> NotebookNode:
    """A .ipynb file or a jupytext percent .py file as a notebook; NotANotebook says why not.
    `name` is the file name used in messages (default: the path's)."""
    path = Path(path)
    name = name or path.name
    suffix = path.suffix.lower()
    if suffix not in (".ipynb", ".py"):
        raise NotANotebook(f"{name} is not a notebook: expected a .ipynb file or a jupytext .py file")
    if not path.is_file():
        raise NotANotebook(f"{path} is not a file")
    if path.stat().st_size > MAX_NOTEBOOK_BYTES:
        raise NotANotebook(f"{name} is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB; clear its outputs")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise NotANotebook(f"{name} is not a text file (a PDF, an archive or an image renamed?)") from None
    if not text.strip():
        raise NotANotebook(f"{name} is empty")
    try:
        if suffix == ".py":
            notebook = jupytext.reads(text, fmt="py:percent")
        else:
            notebook = nbformat.reads(text, as_version=4)
    except Exception as err:  # nbformat raises JSON, schema and attribute errors alike
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise NotANotebook(f"{name} is not a valid notebook: {reason}") from None
    if not any(cell.cell_type == "code" for cell in notebook.cells):
        raise NotANotebook(f"{name} has no code cells")
    return notebook


def has_code(source: str) -> bool:
    """True when the source has a line that is neither blank nor a comment."""
    return any(line.strip() and not line.strip().startswith("#") for line in source.splitlines())


def is_test(cell) -> bool:
    return cell.cell_type == "code" and "test" in cell.metadata


def _regions(source: str, begin: str, end: str, where: str) -> list[tuple[int, int]]:
    """(begin line, end line) of every begin/end marker pair, 0-based; markers alone on a line."""
    regions, start = [], None
    for number, line in enumerate(source.splitlines()):
        marker = line.strip()
        if marker == begin:
            if start is not None:
                raise SourceError(f"{where}: '{begin}' at line {number + 1} inside an open region")
            start = number
        elif marker == end:
            if start is None:
                raise SourceError(f"{where}: '{end}' at line {number + 1} without '{begin}'")
            regions.append((start, number))
            start = None
    if start is not None:
        raise SourceError(f"{where}: '{begin}' at line {start + 1} is never closed by '{end}'")
    return regions


def split_hidden(source: str, where: str = "test cell") -> tuple[str, str]:
    """(visible code, hidden code) of a test cell's source."""
    lines = source.splitlines()
    inside = set()
    for start, stop in _regions(source, HIDDEN_BEGIN, HIDDEN_END, where):
        inside.update(range(start, stop + 1))
    visible = [line for i, line in enumerate(lines) if i not in inside]
    hidden = [line for i, line in enumerate(lines) if i in inside and line.strip() not in (HIDDEN_BEGIN, HIDDEN_END)]
    return "\n".join(visible), "\n".join(hidden)


def tests_of(notebook: NotebookNode, where: str = "notebook") -> list[Test]:
    """The test cells of a notebook, in order, validated."""
    tests: list[Test] = []
    for index, cell in enumerate(notebook.cells):
        if not is_test(cell):
            continue
        name, points = cell.metadata["test"], cell.metadata.get("points")
        label = f"{where}, cell {index + 1} (test {name!r})"
        if not isinstance(name, str) or not TEST_NAME.match(name):
            raise SourceError(f"{label}: a test name looks like q1 or q1.shapes")
        if isinstance(points, bool) or not isinstance(points, (int, float)) or not points > 0:
            raise SourceError(f"{label}: points must be a positive number, e.g. points=2; got {points!r}")
        if any(t.name == name for t in tests):
            raise SourceError(f"{label}: two tests are named {name!r}")
        visible, hidden = split_hidden(cell.source, label)
        withheld = any(line.strip() == HIDDEN_PLACEHOLDER for line in visible.splitlines())
        if not withheld and not has_code(visible) and not has_code(hidden):
            raise SourceError(f"{label}: the test has no code, so it would always pass")
        tests.append(Test(name, float(points), visible, hidden, withheld))
    return tests


# -- release: solution -> exercise ----------------------------------------------------------------
def _replace_solutions(source: str, question: str, where: str) -> str:
    lines = source.splitlines()
    for start, stop in reversed(_regions(source, SOLUTION_BEGIN, SOLUTION_END, where)):
        indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
        lines[start:stop + 1] = [f"{indent}# YOUR CODE HERE",
                                 f'{indent}raise NotImplementedError("{question}: replace this line with your answer")']
    return "\n".join(lines)


def _replace_hidden(source: str, where: str) -> str:
    lines = source.splitlines()
    for start, stop in reversed(_regions(source, HIDDEN_BEGIN, HIDDEN_END, where)):
        indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
        lines[start:stop + 1] = [f"{indent}{HIDDEN_PLACEHOLDER}"]
    return "\n".join(lines)


def make_exercise(solution: NotebookNode, where: str = "solution") -> NotebookNode:
    """The student version of a solution notebook (a new notebook; the solution is unchanged)."""
    tests = tests_of(solution, where)  # validates names, points and hidden markers
    if not tests:
        raise SourceError(f"{where}: no test cells (a code cell with a header like # %% test=\"q1\" points=1)")
    exercise = copy.deepcopy(solution)
    waiting: list[tuple[int, NotebookNode]] = []  # answer cells waiting for their question
    for index, cell in enumerate(exercise.cells):
        label = f"{where}, cell {index + 1}"
        has_answer = bool(_regions(cell.source, SOLUTION_BEGIN, SOLUTION_END, label))
        if cell.cell_type != "code":
            if has_answer or _regions(cell.source, HIDDEN_BEGIN, HIDDEN_END, label):
                raise SourceError(f"{label}: answer and hidden-test markers belong in code cells")
            continue
        if is_test(cell):
            if has_answer:
                raise SourceError(f"{label}: a test cell may not hold a solution region")
            question = cell.metadata["test"].split(".")[0]
            for answer_index, answer in waiting:
                answer.source = _replace_solutions(answer.source, question, f"{where}, cell {answer_index + 1}")
            waiting = []
            cell.source = _replace_hidden(cell.source, label)
        else:
            if _regions(cell.source, HIDDEN_BEGIN, HIDDEN_END, label):
                raise SourceError(f"{label}: hidden tests belong in a test cell")
            if has_answer:
                waiting.append((index, cell))
    if waiting:
        raise SourceError(f"{where}, cell {waiting[0][0] + 1}: a solution region must be followed by a "
                          "test cell (its question names the NotImplementedError)")
    return exercise


def exercise_text(solution_path) -> str:
    """The exercise generated from a solution file, as jupytext percent text."""
    solution_path = Path(solution_path)
    notebook = jupytext.read(solution_path, fmt="py:percent")
    return jupytext.writes(make_exercise(notebook, solution_path.name), fmt="py:percent")


def release(solution_path, out_dir) -> Path:
    """Write out_dir/<same name> from a solution file; return its path."""
    solution_path = Path(solution_path)
    target = Path(out_dir) / solution_path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(exercise_text(solution_path), encoding="utf-8")
    return target
