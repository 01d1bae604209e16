"""The project's promises: pins agree, CI runs the README's command, lectures are sources only."""
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def test_environment_yml_installs_exactly_the_lock():
    text = (ROOT / "environment.yml").read_text()
    pip_lines = re.findall(r"^\s+- ([A-Za-z0-9_.\-\[\]]+==[^\s]+)\s*$", text, flags=re.M)
    env = {name.lower(): version for name, version in (p.split("==") for p in pip_lines)}
    assert env == lock_pins()
    assert re.search(r"^\s+- python=3\.11\s*$", text, flags=re.M)


def test_the_installed_torch_is_the_pinned_one_and_cpu_only_without_a_gpu():
    import torch

    assert torch.__version__.split("+")[0] == lock_pins()["torch"]
    if not torch.cuda.is_available():  # the pin must not have pulled a multi-GB CUDA build onto a CPU machine
        assert torch.version.cuda is None, f"torch {torch.__version__} is a CUDA build (CUDA {torch.version.cuda})"


def test_pyproject_dependencies_are_all_locked():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = lock_pins()
    for requirement in project["dependencies"]:
        name = re.split(r"[=<>!~ ]", requirement)[0].lower()
        assert name in pins, f"{name} is a dependency but not in requirements.lock"


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, flags=re.M)


@pytest.mark.parametrize("source", sorted((ROOT / "lectures").glob("[0-9][0-9]_*.py")), ids=lambda p: p.name)
def test_lectures_are_jupytext_percent_sources(source):
    text = source.read_text()
    assert "format_name: percent" in text and "# %%" in text
    assert "import *" not in text
