"""Runtime: profiles, device choice, seeds."""
import pytest
import torch

from unigm import runtime


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("UNIGM_PROFILE", "full")
    assert runtime.profile() == "full" and runtime.by_profile(quick=1, full=2) == 2
    monkeypatch.setenv("UNIGM_PROFILE", " Quick ")
    assert runtime.profile() == "quick" and runtime.by_profile(quick=1, full=2) == 1
    monkeypatch.delenv("UNIGM_PROFILE")
    assert runtime.profile() == ("full" if torch.cuda.is_available() else "quick")


def test_invalid_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("UNIGM_PROFILE", "fast")
    with pytest.raises(ValueError, match="'fast' is not a profile; use one of quick, full"):
        runtime.profile()


def test_device_choice_and_override(monkeypatch):
    monkeypatch.delenv("UNIGM_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert runtime.device().type == expected
    monkeypatch.setenv("UNIGM_DEVICE", "cpu")
    assert runtime.device() == torch.device("cpu")
    if not torch.cuda.is_available():
        monkeypatch.setenv("UNIGM_DEVICE", "cuda")
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            runtime.device()


def test_seed_everything_makes_draws_repeat():
    runtime.seed_everything(7)
    a = torch.randn(3)
    g = runtime.seed_everything(7)
    assert torch.equal(a, torch.randn(3))
    assert torch.equal(torch.randn(2, generator=g), torch.randn(2, generator=torch.Generator().manual_seed(7)))


def test_threads_follow_the_available_cores_unless_told(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert runtime.set_threads() == runtime.cpu_count() == torch.get_num_threads()
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert runtime.set_threads() == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
