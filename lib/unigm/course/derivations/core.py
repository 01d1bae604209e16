"""The machinery of the machine-checked derivations: a registry of checks, their outcomes,
and the few helpers every check uses (sympy equality, Gaussian moments, a two-sample test).

A check is a function of no arguments that returns an `Outcome`. It is registered with
`@check(name, result, kind, proves)`:
    result  the number of the result in lecture 02 (1..12)
    kind    'sympy' (a derivation step), 'numeric' (the statement against the library's code)
            or 'misstatement' (the wrong version must fail and the right one pass)
    proves  one line saying what passing establishes
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import sympy as sp
import torch

RESULTS = {
    1: "DSM <-> DDPM",
    2: "probability-flow ODE <-> Fokker-Planck",
    3: "flow matching <-> diffusion",
    4: "GAN optimal discriminator and JSD",
    5: "f-divergences and Fenchel conjugates",
    6: "energy-based views",
    7: "Wasserstein gradient flows",
    8: "exact likelihood through the ODE",
    9: "CNF trace and Hutchinson",
    10: "DDIM is Euler on the PF-ODE",
    11: "Tweedie's formula",
    12: "small facts",
}
KINDS = ("sympy", "numeric", "misstatement")


@dataclass
class Outcome:
    """What a check found. `lhs`/`rhs` are the two sides of a symbolic step (shown by `show`);
    `wrong`/`right` are the two halves of a misstatement box; `values` holds measured numbers."""

    passed: bool
    detail: str
    lhs: Any = None
    rhs: Any = None
    values: dict = field(default_factory=dict)
    wrong: "Outcome | None" = None
    right: "Outcome | None" = None


@dataclass(frozen=True)
class Check:
    name: str
    result: int
    kind: str
    proves: str
    fn: Callable[[], Outcome]


@dataclass
class Report:
    check: Check
    outcome: Outcome
    seconds: float

    @property
    def passed(self) -> bool:
        return self.outcome.passed


REGISTRY: dict[str, Check] = {}


def check(name: str, result: int, kind: str, proves: str):
    """Register a check under `name` (unique)."""
    if result not in RESULTS or kind not in KINDS:
        raise ValueError(f"bad check {name}: result {result}, kind {kind}")

    def register(fn):
        if name in REGISTRY:
            raise ValueError(f"check {name!r} is registered twice")
        REGISTRY[name] = Check(name, result, kind, proves, fn)
        return fn

    return register


def resolve(name: str) -> Check:
    """A check by its full name or by its number alone ('1.1' for '1.1 kernel score')."""
    if name in REGISTRY:
        return REGISTRY[name]
    matches = [c for key, c in REGISTRY.items() if key.split(" ", 1)[0] == name]
    if len(matches) != 1:
        raise KeyError(f"no check named {name!r}; see unigm.course.derivations.names()")
    return matches[0]


def run(name: str) -> Report:
    """Run one check (by name or number), timing it. An exception inside a check is reported as a
    FAIL whose detail names the error (values["raised"] holds it), so that a table of checks always
    finishes: a library bug that makes a check crash must not hide the checks after it."""
    c = resolve(name)
    start = time.perf_counter()
    try:
        outcome = c.fn()
        if not isinstance(outcome, Outcome):
            raise TypeError(f"check {name} returned {type(outcome).__name__}, not an Outcome")
    except Exception as error:  # noqa: BLE001  any error of the library or the check is a FAIL
        raised = f"{type(error).__name__}: {error}"
        outcome = Outcome(False, f"the check raised {raised}", values={"raised": raised})
    return Report(c, outcome, time.perf_counter() - start)


# -- helpers ------------------------------------------------------------------------------------
def sympy_equal(lhs, rhs, simplify: Callable = sp.simplify, note: str = "") -> Outcome:
    """PASS iff simplify(lhs - rhs) is exactly 0."""
    difference = simplify(sp.sympify(lhs) - sp.sympify(rhs))
    if isinstance(difference, sp.MatrixBase):
        passed = all(entry == 0 for entry in difference)
    else:
        passed = difference == 0
    detail = note or ("lhs - rhs simplifies to 0" if passed else f"lhs - rhs = {sp.sstr(difference)[:200]}")
    return Outcome(bool(passed), detail, lhs=lhs, rhs=rhs)


def sympy_all(outcomes: list[Outcome], note: str) -> Outcome:
    """Several symbolic equalities that together make one step; shown as a system."""
    passed = all(o.passed for o in outcomes)
    failed = [o.detail for o in outcomes if not o.passed]
    return Outcome(
        passed, note if passed else "; ".join(failed), lhs=[o.lhs for o in outcomes], rhs=[o.rhs for o in outcomes]
    )


def within(measured: float, expected: float, tolerance: float, what: str) -> Outcome:
    """PASS iff |measured - expected| <= tolerance."""
    error = abs(measured - expected)
    ok = bool(error <= tolerance)
    return Outcome(
        ok,
        f"{what}: {measured:.6g} vs {expected:.6g} (|diff| {error:.2e} {'<=' if ok else '>'} {tolerance:.1e})",
        values={"measured": measured, "expected": expected, "error": error, "tolerance": tolerance},
    )


def at_least(measured: float, bound: float, what: str) -> Outcome:
    ok = bool(measured >= bound)
    return Outcome(ok, f"{what}: {measured:.4g} {'>=' if ok else '<'} {bound:.4g}", values={"measured": measured})


def at_most(measured: float, bound: float, what: str) -> Outcome:
    ok = bool(measured <= bound)
    return Outcome(ok, f"{what}: {measured:.4g} {'<=' if ok else '>'} {bound:.4g}", values={"measured": measured})


def positive(measured: float, what: str) -> Outcome:
    ok = bool(measured > 0)
    return Outcome(ok, f"{what}: {measured:.4g} {'>' if ok else '<='} 0", values={"measured": measured})


def claim(holds: bool, detail: str) -> Outcome:
    """A statement whose truth was decided by the caller (e.g. what a misstatement predicts)."""
    return Outcome(bool(holds), detail)


def same_condition(found, expected, detail: str) -> Outcome:
    """PASS iff two sympy conditions (inequalities, And/Or of them) are logically equivalent."""
    return Outcome(bool(sp.simplify(sp.Equivalent(found, expected)) == sp.true), detail, lhs=found, rhs=expected)


def all_of(outcomes: list[Outcome], values: dict | None = None) -> Outcome:
    """PASS iff every part passes; the detail lists the parts."""
    return Outcome(all(o.passed for o in outcomes), "; ".join(o.detail for o in outcomes), values=values or {})


def with_library(step: Outcome, library: Outcome) -> Outcome:
    """A symbolic step together with the numeric check that the library's code follows it: PASS iff
    both pass; shown as the step's equation, with both details."""
    return Outcome(step.passed and library.passed, f"{step.detail}; library: {library.detail}", lhs=step.lhs,
                   rhs=step.rhs, values=library.values)


def misstatement(wrong: Outcome, right: Outcome) -> Outcome:
    """A misstatement box passes iff the wrong version FAILS its check and the right one PASSES."""
    passed = (not wrong.passed) and right.passed
    return Outcome(
        passed,
        f"wrong version {'fails' if not wrong.passed else 'PASSES (bad)'}; "
        f"right version {'passes' if right.passed else 'FAILS (bad)'}",
        wrong=wrong,
        right=right,
    )


def gaussian_expectation(expr, variances: dict):
    """E[expr] for a polynomial in independent centred Gaussians {symbol: variance}:
    E[z^k] = variance^(k/2) (k - 1)!! for even k, 0 for odd k (Isserlis)."""
    symbols = list(variances)
    poly = sp.Poly(sp.expand(expr), *symbols)
    total = 0
    for powers, coefficient in poly.terms():
        term = coefficient
        for symbol, k in zip(symbols, powers):
            term *= 0 if k % 2 else variances[symbol] ** sp.Rational(k, 2) * sp.factorial2(k - 1)
        total += term
    return sp.simplify(total)


def quadrature_1d(low: float, high: float, nodes: int = 20_001):
    """Trapezoid nodes and weights on [low, high], float64 tensors. For smooth integrands that
    decay to zero at both ends (Gaussian mixtures) the trapezoid rule converges exponentially."""
    x = torch.linspace(low, high, nodes, dtype=torch.float64)
    w = torch.full_like(x, (high - low) / (nodes - 1))
    w[0] = w[-1] = w[0] / 2
    return x, w


def linear_sde_variance(drift, diffusion, variance: float, steps: int, t_start: float = 1.0, t_end: float = 0.0) -> float:
    """The exact variance after `steps` Euler(-Maruyama) steps x' = x + dt f(x, t) + g(t) sqrt(|dt|) z of a 1D
    process whose drift is linear in x (f(x, t) = f(1, t) x), started from N(0, variance): Gaussians stay
    Gaussian, so Var' = (1 + dt f(1, t))^2 Var + g(t)^2 |dt| holds exactly, with no sampling noise.
    `drift` and `diffusion` are the library's callables (diffusion None for an ODE)."""
    times = torch.linspace(t_start, t_end, steps + 1, dtype=torch.float64)
    dt = (t_end - t_start) / steps
    gains = (1 + dt * drift(torch.ones(steps, 1, dtype=torch.float64), times[:-1])[:, 0]) ** 2
    noise = torch.zeros(steps, dtype=torch.float64) if diffusion is None else diffusion(times[:-1]) ** 2 * abs(dt)
    for gain, added in zip(gains.tolist(), noise.tolist()):
        variance = gain * variance + added
    return variance


def latex(expr) -> str:
    return sp.latex(expr)


def log_normal_pdf(x, mean, variance):
    """log N(x; mean, variance) for sympy or torch scalars."""
    if isinstance(x, torch.Tensor):
        return -0.5 * (x - mean) ** 2 / variance - 0.5 * torch.log(
            2 * math.pi * torch.as_tensor(variance, dtype=x.dtype)
        )
    return -((x - mean) ** 2) / (2 * variance) - sp.log(2 * sp.pi * variance) / 2
