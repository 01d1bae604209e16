"""Grade a class: every submission of one exercise, into a gradebook and a feedback file each.

    DIR/gradebook.json     {"exercise", "solution_sha256", "max_score", "questions": {q: max points},
                            "students": {id: record}}; the whole truth, read again by a rerun
    DIR/gradebook.csv      one row per student: student, score, max_score, one column per
                            question, status, notes, seconds, sha256, submission
    DIR/feedback/ID.json   the record of one student: points per question and test, and for each
                            test that lost points why: the exception and failing line of a visible
                            test, only the name and the kind of failure of a hidden one; notes on
                            the run (cells that raised, timeouts, output on stderr, ...)

The student id is the file name without its suffix (alice.ipynb -> alice), or the folder's name
when the file is named like the exercise (alice/00_quickstart.ipynb -> alice). Submissions are
graded each in its own worker process (runner.py), one after another or `workers` at a time
(`unigm-grade grade --workers N`: the kernels mostly wait, on start-up and on time limits, so two
at a time on two cores nearly halves a class's grading time); after each one the files above are
replaced atomically (a temporary file, then os.replace), so stopping a run loses nothing that
was finished, and a rerun skips every student whose submission and solution are unchanged
(same SHA-256) and grades the others.
"""
from __future__ import annotations

import csv
import datetime
import hashlib
import io
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from .runner import Limits, Outcome, run_isolated
from .source import Test, read_notebook, tests_of

SKIPPED_FOLDERS = {".ipynb_checkpoints", "__pycache__"}


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_atomic(path: Path, text: str) -> None:
    """Write the whole file or nothing: a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


def student_id(path: Path, exercise: str) -> str:
    stem = path.parent.name if path.stem.lower() == exercise.lower() else path.stem
    return re.sub(r"[^A-Za-z0-9_.@+-]+", "_", stem).strip("._") or "anonymous"


def collect(paths, exercise: str) -> dict[str, Path]:
    """{student id: file} for files and folders of submissions (every file in a folder counts, so
    that a PDF handed in instead of a notebook is reported too)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and not any(
                part.startswith(".") or part in SKIPPED_FOLDERS for part in p.relative_to(path).parts))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"no submission file or folder at {path}")
    by_id: dict[str, Path] = {}
    for file in files:
        sid = student_id(file, exercise)
        if sid in by_id:
            raise ValueError(f"two submissions for student {sid!r}: {by_id[sid]} and {file}; keep one of them")
        by_id[sid] = file
    return by_id


def explain(result: dict) -> str:
    """Why a test lost points, in words a student can read (never a hidden test's text)."""
    if result.get("status") in ("partial", "failed") and not result.get("error") and not result.get("message"):
        return f"partial credit: {result['fraction']:.0%} of the points"  # the test's own fraction
    if result.get("part") == "hidden":  # never the hidden test's message or code
        if result.get("error") == "NotAFraction":
            return "a hidden check did not produce a fraction in [0, 1]"
        return f"a hidden check failed ({result.get('error') or 'Exception'})"
    if result.get("part") == "visible":
        text = f"{result.get('error')}: {result.get('message')}" if result.get("message") else result.get("error", "")
        return text + (f"  [at: {result['line']}]" if result.get("line") else "")
    return result.get("message") or "no result"


def score(tests: list[Test], outcome: Outcome) -> dict:
    """Points per question and test from what the worker reported."""
    questions: dict[str, dict] = {}
    for test in tests:
        result = outcome.results.get(test.name) or {
            "status": "not run", "fraction": 0.0, "message": outcome.fatal or "the test reported no result"}
        earned = round(test.points * float(result.get("fraction", 0.0)), 6)
        entry = {"name": test.name, "points": earned, "max": test.points, "status": result.get("status", "failed")}
        if entry["status"] != "passed":
            entry["message"] = explain(result)
        question = questions.setdefault(test.question, {"points": 0.0, "max": 0.0, "tests": []})
        question["points"] = round(question["points"] + earned, 6)
        question["max"] += test.points
        question["tests"].append(entry)
    return questions


def grade_one(solution_tests: list[Test], submission: Path, limits: Limits) -> dict:
    try:
        outcome = run_isolated(submission, solution_tests, limits)
    except Exception as err:  # the grader's own failure (cannot fork, disk full, ...): retried on rerun
        outcome = Outcome(fatal=f"grader error: {type(err).__name__}: {err}")
        status = "grader error"
    else:
        status = "not graded" if outcome.fatal else ("problems" if outcome.notes else "ok")
    questions = score(solution_tests, outcome)
    notes = ([outcome.fatal] if outcome.fatal else []) + outcome.notes
    return {"score": round(sum(q["points"] for q in questions.values()), 6),
            "max_score": sum(t.points for t in solution_tests), "status": status, "notes": notes,
            "questions": questions, "seconds": outcome.seconds}


def _csv(book: dict) -> str:
    questions = list(book["questions"])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["student", "score", "max_score", *questions, "status", "notes", "seconds", "sha256", "submission"])
    for sid in sorted(book["students"]):
        r = book["students"][sid]
        status = r["status"] + (" (stale: graded with an older solution)" if r.get("stale") else "")
        points = [r["questions"].get(q, {}).get("points", "") for q in questions]
        writer.writerow([sid, r["score"], r["max_score"], *points,
                         status, " | ".join(r["notes"])[:1000], r["seconds"], r["sha256"], r["submission"]])
    return out.getvalue()


def load_book(out: Path, exercise: str, solution_sha: str, questions: dict) -> dict:
    path = out / "gradebook.json"
    fresh = {"exercise": exercise, "solution_sha256": solution_sha, "max_score": sum(questions.values()),
             "questions": questions, "students": {}}
    if not path.exists():
        return fresh
    book = json.loads(path.read_text(encoding="utf-8"))
    if book.get("exercise") != exercise:
        raise ValueError(f"{out} holds the gradebook of {book.get('exercise')!r}, not {exercise!r}; "
                         "use another --out folder")
    if book.get("solution_sha256") != solution_sha:  # the tests changed: every record is stale
        return fresh | {"students": {sid: r | {"stale": True} for sid, r in book["students"].items()}}
    return book


def grade(solution, submissions, out, limits: Limits = Limits(), force: bool = False, log=print,
          workers: int = 1) -> dict:
    """Grade every submission against `solution` into `out`, `workers` submissions at a time (each
    in its own process, with its own limits); return the gradebook."""
    solution, out = Path(solution), Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the gradebook")
    exercise = solution.stem
    tests = tests_of(read_notebook(solution), solution.name)
    if not tests:
        raise ValueError(f"{solution} has no test cells; is it a solution source?")
    questions: dict[str, float] = {}
    for test in tests:
        questions[test.question] = questions.get(test.question, 0.0) + test.points
    book = load_book(out, exercise, sha256(solution), questions)
    by_id = collect(submissions, exercise)
    if workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers}")
    log(f"grading {len(by_id)} submission(s) of {exercise} ({sum(questions.values()):g} points) into {out}")
    to_grade = {}
    for sid, path in by_id.items():
        digest = sha256(path)
        previous = book["students"].get(sid)
        if (not force and previous and previous["sha256"] == digest and not previous.get("stale")
                and previous["status"] != "grader error"):
            log(f"  {sid:<24} unchanged, kept: {previous['score']:g}/{previous['max_score']:g}")
        else:
            to_grade[sid] = (path, digest)

    def grade_student(sid):
        path, digest = to_grade[sid]
        return {"student": sid, "exercise": exercise, "submission": str(path), "sha256": digest,
                **grade_one(tests, path, limits),
                "graded_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}

    # each submission runs in its own worker process (runner.py); `workers` of them at a time
    with ThreadPoolExecutor(workers) as pool:
        futures = {pool.submit(grade_student, sid): sid for sid in to_grade}
        for future in as_completed(futures):
            record = future.result()
            sid = record["student"]
            book["students"][sid] = record
            book["students"] = dict(sorted(book["students"].items()))  # the same file whatever finished first
            write_atomic(out / "feedback" / f"{sid}.json", json.dumps(record, indent=2) + "\n")
            write_atomic(out / "gradebook.json", json.dumps(book, indent=2) + "\n")
            write_atomic(out / "gradebook.csv", _csv(book))
            first_note = f"  {record['notes'][0][:100]}" if record["notes"] else ""
            log(f"  {sid:<24} {record['score']:g}/{record['max_score']:g} in {record['seconds']:.1f} s{first_note}")
    book["students"] = dict(sorted(book["students"].items()))
    write_atomic(out / "gradebook.json", json.dumps(book, indent=2) + "\n")
    write_atomic(out / "gradebook.csv", _csv(book))
    return book
