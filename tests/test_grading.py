"""The autograder: the exercise format, the generated exercises, and grading real and bad submissions.

Kernel-free tests come first; the tests that execute notebooks use a tiny pure-Python exercise
(fast) except for the course's own exercises, each graded once as the reference solution
(full marks) and as the untouched exercise (zero).
"""
import json
import re
import shutil
from pathlib import Path

import pytest

from unigm.course.grading import cli, gradebook, kernel_side, source
from unigm.course.grading.runner import Limits, Outcome

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.py"))

HEADER = """# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---
"""
TINY_SOLUTION = HEADER + '''
# %%
def double(x):
    ### BEGIN SOLUTION
    return 2 * x
    ### END SOLUTION


# %% test="q1.small" points=1
assert double(2) == 4, "double(2) should be 4"

# %% test="q1.more" points=2
assert double(10) == 20
### BEGIN HIDDEN TESTS
assert double(-3) == -6, "SECRET-HIDDEN-MESSAGE"
### END HIDDEN TESTS

# %%
def half(x):
    ### BEGIN SOLUTION
    return x / 2
    ### END SOLUTION


# %% test="q2" points=2
### BEGIN HIDDEN TESTS
sum(half(v) == v / 2 for v in (1, 2, 3, 4)) / 4
### END HIDDEN TESTS
'''
DOUBLE = "def double(x):\n    return 2 * x\n"
STUBBORN_LOOP = ("import time\nwhile True:\n    try:\n        time.sleep(0.05)\n"
                 "    except KeyboardInterrupt:\n        pass")  # ignores the interrupt
HALF = "def half(x):\n    return x / 2\n"


def submission(*cells: str) -> str:
    return HEADER + "".join(f"\n# %%\n{cell}\n" for cell in cells)


def regions(text: str, begin: str, end: str) -> list[str]:
    """Lines strictly inside begin/end marker lines (an independent parser for the leak test)."""
    pattern = re.compile(rf"^[ \t]*{re.escape(begin)}[ \t]*\n(.*?)^[ \t]*{re.escape(end)}[ \t]*$", re.M | re.S)
    return [line for block in pattern.findall(text) for line in block.splitlines()]


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "01_tiny.py"
    path.write_text(TINY_SOLUTION)
    return path


# == the committed exercises ===========================================================================
def test_there_is_an_exercise_for_the_quickstart():
    assert (ROOT / "solutions" / "00_quickstart.py") in SOLUTIONS


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_exercise_is_in_sync_with_its_solution(solution):
    exercise = ROOT / "exercises" / solution.name
    assert exercise.exists(), f"{exercise} is missing: run `make exercises`"
    assert exercise.read_text() == source.exercise_text(solution), f"{exercise} is out of date: run `make exercises`"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_no_solution_or_hidden_test_text_leaks_into_the_exercise(solution):
    text = solution.read_text()
    secret = regions(text, "### BEGIN SOLUTION", "### END SOLUTION") + regions(
        text, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
    assert secret, "the solution has no answer regions"
    public = set(line.strip() for line in re.sub(
        r"^[ \t]*### BEGIN (SOLUTION|HIDDEN TESTS).*?### END \1[ \t]*$", "", text, flags=re.M | re.S).splitlines())
    exercise_lines = {line.strip() for line in (ROOT / "exercises" / solution.name).read_text().splitlines()}
    leaked = {line.strip() for line in secret if line.strip() and line.strip() not in public} & exercise_lines
    assert not leaked, f"answer or hidden-test lines in the exercise: {sorted(leaked)[:5]}"
    assert "### BEGIN" not in (ROOT / "exercises" / solution.name).read_text()


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_exercise_has_3_to_6_questions_each_with_hidden_tests(solution):
    tests = source.tests_of(source.read_notebook(solution))
    questions = {t.question for t in tests}
    assert 3 <= len(questions) <= 6, sorted(questions)
    for question in questions:
        assert any(t.hidden for t in tests if t.question == question), f"{question} has no hidden test"


RANDOM_DRAW = re.compile(r"\b(randn|rand|randint|randn_like|rand_like|randperm|normal_|uniform_|manual_seed|multinomial)\(")


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_every_test_shows_the_student_what_it_checks(solution):
    """No test is hidden-only: each has visible code the student can run (the hidden part checks
    the same thing on other inputs, or, for a plot-reading answer, its value)."""
    for t in source.tests_of(source.read_notebook(solution)):
        assert source.has_code(t.visible), f"{t.name} has no visible test"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_answers_draw_no_random_numbers(solution):
    """Grading never depends on the order of random draws: the noise an answer needs is an argument."""
    answers = regions(solution.read_text(), "### BEGIN SOLUTION", "### END SOLUTION")
    drawing = [line.strip() for line in answers if RANDOM_DRAW.search(line)]
    assert not drawing, f"reference answers that draw random numbers: {drawing}"


def test_release_check_passes_on_the_repository(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert cli.main(["release", "--check"]) == 0, capsys.readouterr().err


# == the format ==========================================================================================
def test_exercise_replaces_answers_and_hidden_tests(tiny):
    exercise = source.exercise_text(tiny)
    assert exercise.count("# YOUR CODE HERE") == 2
    assert '    raise NotImplementedError("q1: replace this line with your answer")' in exercise
    assert '    raise NotImplementedError("q2: replace this line with your answer")' in exercise
    assert exercise.count(source.HIDDEN_PLACEHOLDER) == 2
    assert "SECRET-HIDDEN-MESSAGE" not in exercise and "return 2 * x" not in exercise
    assert '# %% test="q1.more" points=2' in exercise  # students keep the test names and points
    tests = source.tests_of(source.read_notebook(tiny))
    assert [(t.name, t.points, t.question) for t in tests] == [
        ("q1.small", 1, "q1"), ("q1.more", 2, "q1"), ("q2", 2, "q2")]
    assert tests[1].visible.strip() == "assert double(10) == 20"
    assert tests[1].hidden.strip() == 'assert double(-3) == -6, "SECRET-HIDDEN-MESSAGE"'


@pytest.mark.parametrize("change, message", [
    (("    ### END SOLUTION\n\n\n# %% test=\"q1.small\"", "\n\n\n# %% test=\"q1.small\""), "never closed"),
    (('test="q1.more"', 'test="q1.small"'), "two tests are named"),
    (("points=2\nassert double(10)", "points=0\nassert double(10)"), "points must be a positive number"),
    (('test="q2" points=2', "test=\"2nd question\" points=2"), "a test name looks like"),
    (('# %% test="q2" points=2\n', "# %%\n"), "hidden tests belong in a test cell"),
    (('# %% test="q2" points=2\n### BEGIN HIDDEN TESTS\nsum(half(v) == v / 2 for v in (1, 2, 3, 4)) / 4\n'
      '### END HIDDEN TESTS\n', ""), "must be followed by a test cell"),
    (('sum(half(v) == v / 2 for v in (1, 2, 3, 4)) / 4', "# nothing here"), "has no code"),
])
def test_authoring_mistakes_are_explained(tiny, change, message):
    old, new = change
    assert old in TINY_SOLUTION
    tiny.write_text(TINY_SOLUTION.replace(old, new, 1))
    with pytest.raises(source.SourceError, match=message):
        source.exercise_text(tiny)


@pytest.mark.parametrize("name, content, message", [
    ("a.ipynb", b"this is not a notebook", "not a valid notebook"),
    ("a.ipynb", b'{"a": 1}', "not a valid notebook"),
    ("a.ipynb", b"", "is empty"),
    ("a.ipynb", b"%PDF-1.4\n\xff\xd8\xff\xe0 binary", "not a text file"),
    ("a.pdf", b"%PDF-1.4", "expected a .ipynb file or a jupytext .py file"),
    ("a.ipynb", b'{"cells": [{"cell_type": "markdown", "id": "a1", "metadata": {}, "source": "my answers are below"}], '
                b'"metadata": {}, "nbformat": 4, "nbformat_minor": 5}', "has no code cells"),
])
def test_non_notebooks_are_refused_with_a_reason(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(source.NotANotebook, match=message):
        source.read_notebook(path)


def test_a_test_earns_a_fraction_and_hides_its_hidden_part():
    ns = {"double": lambda x: 2 * x}
    run = kernel_side.run_test
    assert run("a", "assert double(1) == 2", namespace=ns) == {"name": "a", "status": "passed", "fraction": 1.0}
    assert run("b", "x = 3\nx / 4", namespace=ns)["fraction"] == 0.75
    assert run("c", "True", "1 / 2", namespace=ns)["fraction"] == 0.5  # the parts multiply
    assert run("d", "double(1) == 3", namespace=ns)["status"] == "failed"  # a bool counts as 0 or 1
    too_big = run("e", "1.5", namespace=ns)
    assert too_big["status"] == "failed" and "outside [0, 1]" in too_big["message"]
    assert run("f", "'done'", namespace=ns)["error"] == "NotAFraction"
    visible = run("g", "y = 1\nassert double(y) == 3, 'double(1) is 2'", namespace=ns)
    assert (visible["error"], visible["message"], visible["line"]) == (
        "AssertionError", "double(1) is 2", "assert double(y) == 3, 'double(1) is 2'")
    hidden = run("h", "pass", "assert double(1) == 3, 'SECRET'", namespace=ns)
    assert hidden == {"name": "h", "status": "failed", "fraction": 0.0, "part": "hidden", "error": "AssertionError"}

    class Custom(Exception):
        pass

    ns["Custom"] = Custom
    assert run("i", "", "raise Custom('SECRET')", namespace=ns)["error"] == "Exception"  # no student-made names
    with kernel_side.replaced(ns, double=lambda x: 0, extra=1):
        assert ns["double"](5) == 0 and ns["extra"] == 1
    assert ns["double"](5) == 10 and "extra" not in ns


def test_score_never_shows_a_hidden_message():
    tests = [source.Test("q1.a", 2, "pass", "assert False, 'SECRET'"), source.Test("q1.b", 1, "pass"),
             source.Test("q2", 4, "pass")]
    outcome = Outcome(results={
        "q1.a": {"name": "q1.a", "status": "failed", "fraction": 0.0, "part": "hidden", "error": "AssertionError",
                 "message": "SECRET", "line": "assert False, 'SECRET'"},
        "q1.b": {"name": "q1.b", "status": "partial", "fraction": 0.25},
    })
    questions = gradebook.score(tests, outcome)
    assert questions["q1"]["points"] == 0.25 and questions["q1"]["max"] == 3 and questions["q2"]["points"] == 0
    text = json.dumps(questions)
    assert "SECRET" not in text and "a hidden check failed (AssertionError)" in text
    assert questions["q2"]["tests"][0]["status"] == "not run"


def test_student_ids_come_from_file_or_folder_names(tmp_path):
    for relative in ["alice.ipynb", "bob/00_quickstart.ipynb", "carol smith.py", ".hidden.ipynb",
                     "dave/.ipynb_checkpoints/00_quickstart-checkpoint.ipynb", "erin.pdf"]:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("{}")
    found = gradebook.collect([tmp_path], "00_quickstart")
    assert sorted(found) == ["alice", "bob", "carol_smith", "erin"]
    (tmp_path / "alice.py").write_text("")
    with pytest.raises(ValueError, match="two submissions for student 'alice'"):
        gradebook.collect([tmp_path], "00_quickstart")
    with pytest.raises(FileNotFoundError, match="no submission"):
        gradebook.collect([tmp_path / "missing"], "00_quickstart")


def test_bad_command_lines_are_explained(tmp_path, capsys):
    assert cli.main(["grade", str(tmp_path / "missing.py"), str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "missing.py is not a file" in capsys.readouterr().err
    assert cli.main(["check", str(tmp_path / "x.ipynb"), "--timeout", "0"]) == 2
    assert "timeouts must be positive" in capsys.readouterr().err
    with pytest.raises(ValueError, match="too small to start a kernel"):
        Limits(memory_mb=100)


# == executing notebooks ===================================================================================
@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_reference_scores_full_marks_and_untouched_exercise_scores_zero(solution, tmp_path):
    class_folder = tmp_path / "class"
    class_folder.mkdir()
    shutil.copy(solution, class_folder / "reference.py")
    shutil.copy(ROOT / "exercises" / solution.name, class_folder / "untouched.py")
    book = gradebook.grade(solution, [class_folder], tmp_path / "out", Limits(timeout=120), log=lambda _: None,
                           workers=2)  # each kernel is single-threaded (runner.kernel_environment)
    reference, untouched = book["students"]["reference"], book["students"]["untouched"]
    assert reference["score"] == reference["max_score"] == book["max_score"] > 0, json.dumps(reference, indent=1)
    assert reference["status"] == "ok" and reference["notes"] == [], reference["notes"]  # runs cleanly
    assert untouched["score"] == 0, json.dumps(untouched, indent=1)
    for question in untouched["questions"].values():  # it fails because nothing is answered
        assert all("NotImplementedError" in t["message"] or "credit: 0%" in t["message"]
                   for t in question["tests"]), question


def test_wrong_derivations_and_wrong_readings_lose_their_points(tmp_path):
    """The hidden checks tell a right answer from a plausible wrong one: exercise 02 with the common
    misstatement alpha_bar = (1 - t)^2, an unweighted noise loss and the wrong reading of the DDIM
    plot loses exactly those tests' points and keeps the others."""
    solution = ROOT / "solutions" / "02_proofs.py"
    text = solution.read_text()
    wrong = {
        "    return (1 - t) ** 2 / ((1 - t) ** 2 + t**2)\n": "    return (1 - t) ** 2\n",
        "    return (d_sigma - d_alpha * sigma / alpha) ** 2\n": "    return torch.ones_like(t)\n",
        '    return "A", "B"\n': '    return "B", "B"\n',
    }
    for old, new in wrong.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    class_folder = tmp_path / "class"
    class_folder.mkdir()
    (class_folder / "confused.py").write_text(text)
    book = gradebook.grade(solution, [class_folder], tmp_path / "out", Limits(timeout=120), log=lambda _: None)
    tests = {t["name"]: t for q in book["students"]["confused"]["questions"].values() for t in q["tests"]}
    assert tests["q1.alpha_bar"]["points"] == 0 and tests["q1.vp_time"]["points"] > 0
    assert tests["q2.flow_matching"]["points"] == 0 and tests["q2.paths"]["points"] == 0
    assert tests["q3.read"]["points"] == 0.5 and tests["q3.step"]["points"] == 2  # one reading of two right
    assert book["students"]["confused"]["score"] == book["max_score"] - 1 - 3 - 0.5


def test_check_runs_the_visible_tests(tiny, tmp_path):
    exercise = source.release(tiny, tmp_path / "exercises")
    lines = []
    assert cli.check(exercise, Limits(timeout=30), out=lines.append) == 1
    report = "\n".join(lines)
    assert re.search(r"q1\.small +FAILED +0/1 +NotImplementedError: q1: replace this line", report), report
    assert re.search(r"q1\.more +FAILED +0/2 .*\(\+ hidden checks when graded\)", report), report
    assert re.search(r"q2 +hidden +-/2 +\(runs only when graded\)", report), report
    assert "0 of 2 visible tests passed" in report
    answered = exercise.read_text().replace(
        '    # YOUR CODE HERE\n    raise NotImplementedError("q1: replace this line with your answer")',
        "    return 2 * x")
    exercise.write_text(answered)
    assert cli.check(exercise, Limits(timeout=30), out=lines.append) == 0, "\n".join(lines)


CLASS_LIMITS = Limits(timeout=5, memory_mb=1024)  # short enough for the loops, long enough under load


def test_a_class_of_good_partial_and_bad_submissions(tiny, tmp_path):
    """Every kind of bad submission gets a clear note and the points it earned; none stops the run."""
    folder = tmp_path / "class"
    folder.mkdir()
    students = {  # the bad cell sits between the two answers: the answer after it must still count
        "good.py": (submission(DOUBLE, HALF), 5, None),
        "partial.py": (submission(DOUBLE, "def half(x):\n    return x // 2\n"), 4, None),
        "hidden_bug.py": (submission("def double(x):\n    return abs(2 * x)\n", HALF), 3, "a hidden check failed"),
        "loops.py": (submission(DOUBLE, "while True:\n    pass", HALF), 5, "was stopped after 5 s"),
        "ignores_interrupts.py": (submission(DOUBLE, STUBBORN_LOOP, HALF), 5, "did not stop when interrupted"),
        "raises.py": (submission(DOUBLE, "1 / 0", HALF), 5, "raised ZeroDivisionError: division by zero"),
        "memory.py": (submission(DOUBLE, "hog = bytearray(64 * 2**30)", HALF), 5, "raised MemoryError"),
        "stderr.py": (submission(DOUBLE, "import sys\nprint('careful!', file=sys.stderr)", HALF), 5,
                      "wrote to stderr: careful!"),
        "deletes.py": (submission(DOUBLE, "import os, shutil\nshutil.rmtree(os.path.expanduser('~'))", HALF), 5, None),
        "exits.py": (submission(DOUBLE, "import os\nos._exit(3)", HALF), 5, "the kernel died"),
        "slow_answer.py": (submission(DOUBLE, "def half(x):\n    while True:\n        pass"), 3, None),
        "edits_tests.py": (HEADER + '\n# %%\ndef double(x):\n    return 0\n\n# %% test="q1.small" points=1\n'
                           'double = lambda x: 2 * x\n\n# %% test="q1.more" points=2\npass\n'
                           f"\n# %%\n{HALF}", 2, None),
        "garbage.ipynb": ("this is not JSON", 0, "garbage.ipynb is not a valid notebook"),
        "essay.pdf": ("%PDF-1.4 my answers", 0, "essay.pdf is not a notebook"),
    }
    for name, (text, _, _) in students.items():
        (folder / name).write_text(text)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    out = tmp_path / "out"
    book = gradebook.grade(tiny, [folder], out, CLASS_LIMITS, log=lambda _: None, workers=2)  # two at a time

    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # submissions untouched
    assert list(book["students"]) == sorted(Path(name).stem for name in students)  # whatever finished first
    for name, (_, points, note) in students.items():
        record = book["students"][Path(name).stem]
        assert record["score"] == points, (name, json.dumps(record, indent=1))
        if note:
            assert any(note in n for n in record["notes"]) or note in json.dumps(record["questions"]), (name, record)
    assert book["students"]["good"]["status"] == "ok" and book["students"]["garbage"]["status"] == "not graded"
    assert book["students"]["partial"]["questions"]["q2"]["tests"][0]["status"] == "partial"
    slow = book["students"]["slow_answer"]["questions"]["q2"]["tests"][0]
    assert slow["status"] == "failed" and "ran longer than 5 s" in slow["message"]
    feedback = (out / "feedback" / "hidden_bug.json").read_text()
    assert "q1.more" in feedback and "SECRET-HIDDEN-MESSAGE" not in feedback and "double(-3)" not in feedback

    rows = (out / "gradebook.csv").read_text().splitlines()
    assert rows[0].split(",")[:5] == ["student", "score", "max_score", "q1", "q2"] and len(rows) == 1 + len(students)
    assert json.loads((out / "gradebook.json").read_text()) == book

    # a rerun keeps every unchanged submission and grades the changed one again
    (folder / "partial.py").write_text(submission(DOUBLE, HALF))
    log = []
    book = gradebook.grade(tiny, [folder], out, CLASS_LIMITS, log=log.append)
    assert sum("unchanged, kept" in line for line in log) == len(students) - 1, log
    assert book["students"]["partial"]["score"] == 5


def test_a_stopped_run_keeps_finished_grades_and_resumes(tiny, tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    for name in ("ann", "ben"):
        (folder / f"{name}.py").write_text(submission(DOUBLE, HALF))
    out = tmp_path / "out"

    def stop_after_first(line):
        if "/5 in" in line:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        gradebook.grade(tiny, [folder], out, Limits(timeout=30), log=stop_after_first)
    saved = json.loads((out / "gradebook.json").read_text())
    assert list(saved["students"]) == ["ann"] and saved["students"]["ann"]["score"] == 5
    assert (out / "feedback" / "ann.json").exists() and not list(out.glob(".*.tmp"))
    log = []
    book = gradebook.grade(tiny, [folder], out, Limits(timeout=30), log=log.append)
    assert any(line.strip().startswith("ann") and "kept" in line for line in log)
    assert any(line.strip().startswith("ben") and "5/5 in" in line for line in log)
    assert sorted(book["students"]) == ["ann", "ben"]
    with pytest.raises(ValueError, match="holds the gradebook of '01_tiny'"):
        other = tmp_path / "02_other.py"
        other.write_text(TINY_SOLUTION)
        gradebook.grade(other, [folder], out, log=lambda _: None)


def test_removing_a_submissions_copy_never_touches_its_parent(tmp_path):
    """The grader deletes each submission's temporary copy; a failed removal (a copy already gone, a
    read-only folder inside) must not chmod the shared folder that holds it (it once set /tmp to 0700,
    which broke apt and every other user of /tmp)."""
    import stat

    from unigm.course.grading import runner

    parent = tmp_path / "shared"
    parent.mkdir()
    parent.chmod(0o1777)
    runner._remove_tree(parent / "already-gone")
    copy = parent / "copy"
    (copy / "locked").mkdir(parents=True)
    (copy / "locked" / "answer.txt").write_text("42")
    (copy / "locked").chmod(0o500)
    runner._remove_tree(copy)
    assert not copy.exists()
    assert stat.S_IMODE(parent.stat().st_mode) == 0o1777
