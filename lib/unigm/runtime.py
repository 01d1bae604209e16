"""Runtime choices made in one place: profile, device, seeds, CPU threads.

Profile: `UNIGM_PROFILE=quick|full`. quick (the default without a GPU) uses 2D toys and the
8x8 digits with small step counts; full (the default with a GPU) trains longer and uses MNIST.
A profile changes sizes and step counts only, never which code runs.

Threads: on the 2-core course machine, small MLP training steps (hidden 128-256, batch
256-512) were as fast or faster with 2 intra-op threads than with 1 (medians of 5x100 steps:
hidden 256 / batch 512: 7.7 ms with 1 thread, 5.2 ms with 2), so we use one thread per
available core. Never run several such processes side by side: they oversubscribe the cores.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

PROFILES = ("quick", "full")


def profile() -> str:
    """The active profile: $UNIGM_PROFILE, else 'full' with a CUDA GPU and 'quick' without."""
    value = os.environ.get("UNIGM_PROFILE", "").strip().lower()
    if not value:
        return "full" if torch.cuda.is_available() else "quick"
    if value not in PROFILES:
        raise ValueError(
            f"UNIGM_PROFILE={os.environ['UNIGM_PROFILE']!r} is not a profile; use one of {', '.join(PROFILES)}"
        )
    return value


def by_profile(quick, full):
    """Pick a size or step count for the active profile: by_profile(quick=2000, full=20000)."""
    return quick if profile() == "quick" else full


def device() -> torch.device:
    """CUDA if available, then Apple MPS, then CPU. $UNIGM_DEVICE overrides (e.g. 'cpu')."""
    forced = os.environ.get("UNIGM_DEVICE", "").strip()
    if forced:
        dev = torch.device(forced)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("UNIGM_DEVICE asks for CUDA but torch sees no CUDA GPU on this machine")
        if dev.type == "mps" and not torch.backends.mps.is_available():
            raise RuntimeError("UNIGM_DEVICE asks for MPS but this machine has no Apple GPU available")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def cpu_count() -> int:
    """Cores this process may run on (respects affinity masks and container limits)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def set_threads(n: int | None = None) -> int:
    """Use one intra-op thread per available core (measured fastest here; see module doc).

    $OMP_NUM_THREADS, when set, wins: use it to share a machine between processes."""
    if n is None:
        n = int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or cpu_count()
    torch.set_num_threads(n)
    return n


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); return a CPU torch.Generator with that seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def setup(seed: int = 0) -> dict:
    """One call at the top of a notebook: threads, seeds; returns what was chosen."""
    threads = set_threads()
    seed_everything(seed)
    return {"profile": profile(), "device": str(device()), "threads": threads, "seed": seed,
            "torch": torch.__version__}
