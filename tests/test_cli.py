"""The course runner and the benchmark command, on tiny inputs."""
import json

import nbformat
import pytest

from unigm import bench
from unigm.course import cli

TINY_LECTURE = '''# ---
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

# %% [markdown]
# # A tiny lecture

# %%
answer = 6 * 7
print("answer", answer)
'''


def test_course_executes_writes_html_and_timings(tmp_path):
    source = tmp_path / "lectures" / "99_tiny.py"
    source.parent.mkdir()
    source.write_text(TINY_LECTURE)
    timings = cli.course(cli.lecture_sources(source.parent), tmp_path / "build")
    executed = nbformat.read(tmp_path / "build" / "executed" / "99_tiny.ipynb", as_version=4)
    assert executed.cells[1].outputs[0]["text"] == "answer 42\n"
    assert "answer 42" in (tmp_path / "build" / "executed" / "99_tiny.html").read_text()
    on_disk = json.loads((tmp_path / "build" / "timings.json").read_text())
    assert on_disk == timings and on_disk["99_tiny"] > 0


def test_notebooks_are_generated_without_outputs(tmp_path):
    source = tmp_path / "01_tiny.py"
    source.write_text(TINY_LECTURE)
    notebook = nbformat.read(cli.to_notebook(source, tmp_path / "out"), as_version=4)
    assert [c.cell_type for c in notebook.cells] == ["markdown", "code"]
    assert notebook.cells[1].outputs == []


def test_missing_lectures_folder_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="run from the repository root"):
        cli.lecture_sources(tmp_path)


def test_bench_writes_json_and_markdown(tmp_path, capsys):
    assert bench.main(["--models", "gan", "flow_matching", "--datasets", "eight_gaussians",
                       "--steps", "20", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "bench.json").read_text())
    rows = {r["model"]: r for r in result["rows"]}
    assert set(rows) == {"gan", "flow_matching"} and result["meta"]["threads"] >= 1
    assert rows["gan"]["nll"] is None and rows["gan"]["nfe"] == 1
    assert rows["flow_matching"]["nfe"] == 2 * 32 and rows["flow_matching"]["nll"] is not None
    assert rows["flow_matching"]["w2_floor"] < rows["flow_matching"]["w2_gauss"]
    lines = (tmp_path / "bench.md").read_text().splitlines()
    assert lines[:2] == bench.markdown_table([]).splitlines()  # the header, then one row per result
    assert [line.split("|")[1:3] for line in lines[2:]] == [[" gan ", " eight_gaussians "],
                                                            [" flow_matching ", " eight_gaussians "]]


def test_bench_rejects_unknown_names_before_training(tmp_path):
    with pytest.raises(KeyError, match="unknown model"):
        bench.main(["--models", "diffusion", "--out", str(tmp_path)])
    with pytest.raises(KeyError, match="unknown 2D dataset"):
        bench.main(["--datasets", "moons", "--out", str(tmp_path)])
