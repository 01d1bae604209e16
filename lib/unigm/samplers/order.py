"""The global order of convergence of a solver, measured: the p in error ~ C h^p (h = 1 / steps)."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def measured_order(errors: Sequence[float], steps: Sequence[int]) -> float:
    """Least-squares slope of log(error) against log(h), h = 1 / steps: p in error ~ C h^p.
    A global order p means that doubling the steps divides the error by about 2^p."""
    errors, steps = [float(e) for e in errors], [float(n) for n in steps]
    if len(errors) != len(steps) or len(errors) < 2:
        raise ValueError(f"need as many errors as step counts, at least two, got {len(errors)} and {len(steps)}")
    if not all(e > 0 and math.isfinite(e) for e in errors):
        raise ValueError(f"errors must be positive and finite to take logs, got {errors}")
    if not all(n > 0 for n in steps) or len(set(steps)) < 2:
        raise ValueError(f"steps must be positive with at least two distinct values, got {steps}")
    slope, _ = np.polyfit(-np.log(steps), np.log(errors), deg=1)  # log e = p log h + log C
    return float(slope)
