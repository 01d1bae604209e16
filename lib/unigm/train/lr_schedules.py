"""Learning-rate schedules: functions of the training progress in [0, 1] -> factor of the peak lr."""
from __future__ import annotations

import math


def constant_lr(progress: float) -> float:
    return 1.0


def cosine_lr(progress: float, warmup: float = 0.02, final: float = 0.05) -> float:
    """Linear warm-up for the first 2% of steps, then cosine decay to 5% of the peak
    (Loshchilov & Hutter 2017, SGDR, without restarts)."""
    if progress < warmup:
        return (progress + 1e-3) / warmup
    p = (progress - warmup) / (1 - warmup)
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * p))
