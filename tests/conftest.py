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
