"""Fixtures shared by several test files."""
import shutil

import pytest

from unigm.course import checkpoints


@pytest.fixture
def copy_of_checkpoints(tmp_path, monkeypatch):
    """A private copy of the committed checkpoints, which a test may damage."""
    target = tmp_path / "checkpoints"
    shutil.copytree(checkpoints.ROOT / "checkpoints", target)
    monkeypatch.setenv("UNIGM_CHECKPOINTS", str(target))
    monkeypatch.delenv("UNIGM_RETRAIN", raising=False)
    return target


def pytest_collection_modifyitems(session, config, items):
    """Run the quality gates after the lectures' notebooks (when both are collected): the gates a
    lecture asserts on a recipe's own job (bench.check_gate, logged to $UNIGM_GATE_LOG) are then not
    trained a second time by tests/test_quality.py."""
    last = [item for item in items if item.nodeid.startswith("tests/test_quality.py")]
    if last and len(last) < len(items):
        moved = set(map(id, last))
        items[:] = [item for item in items if id(item) not in moved] + last
