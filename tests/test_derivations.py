"""Every machine-checked derivation of lecture 02 must pass (the same checks the notebook shows),
and the checking machinery must be able to fail: each helper is tested on a false statement."""

import math

import pytest
import sympy as sp
import torch

from unigm.course import derivations
from unigm.course.derivations import core, report


@pytest.mark.parametrize("name", derivations.names())
def test_check_passes(name):
    result = derivations.run(name)
    assert result.passed, f"{name}: {result.outcome.detail}"
    if result.check.kind == "misstatement":  # the box shows a failing wrong version and a passing right one
        assert result.outcome.wrong is not None and not result.outcome.wrong.passed
        assert result.outcome.right is not None and result.outcome.right.passed


def test_every_result_of_the_syllabus_has_sympy_and_numeric_checks():
    by_result = {}
    for c in derivations.REGISTRY.values():
        by_result.setdefault(c.result, set()).add(c.kind)
    assert sorted(by_result) == list(range(1, 13))
    for result, kinds in by_result.items():
        assert "sympy" in kinds, f"result {result} has no symbolic step"
        assert "numeric" in kinds or "misstatement" in kinds, f"result {result} has no numeric check"


# The misstatements the syllabus names, each of which must have a box that runs the wrong and the
# right version (the parametrized test above checks that the wrong one fails and the right passes).
SYLLABUS_MISSTATEMENTS = {
    "1.6 sqrt(abar) ~ 1 in DSM",                              # result 1: no approximation is needed
    "3.10 abar = (1-t)^2 is not the linear path",           # result 3
    "5.14 JS and TV conjugates",                              # result 5: conjugates stated wrongly
    "6.7 the sign of the entropy",                            # result 6: ELBO = -E_q[E] + H[q]
    "6.10 a bare |grad E|^2 penalty is not score matching",  # lecture 05, energy matching
    "7.7 a DDPM step is not JKO of KL(p||p_data)",            # result 7
    "8.4 'no likelihood for diffusion and flow matching'",    # result 8
    "10.7 DDIM with eta > 0 needs its noise",                 # result 10
    "12.3 receptive field 1025",                              # result 12: 1 + (K-1)(2^L - 1) = 1024
    "12.6 FSQ with 2L+1 levels",                              # result 12: L levels, not 2L + 1
    "12.10 consistency pairs share the noise",                # result 12
    # issue 18: statements that were too strong
    "3.16 'every flow-matching path is a Gaussian path'",     # needs an independent coupling
    "8.5 'the SDE sampler draws from the ODE's density'",     # only with the exact score
    "12.14 'FSQ uses every code'",                            # codes can go unused
}


def test_every_misstatement_of_the_syllabus_has_a_box():
    boxes = {name for name, c in derivations.REGISTRY.items() if c.kind == "misstatement"}
    missing = SYLLABUS_MISSTATEMENTS - boxes
    assert not missing, f"no misstatement box for: {sorted(missing)}"


def test_sympy_equal_rejects_a_false_identity():
    x = sp.Symbol("x", real=True)
    assert core.sympy_equal((x + 1) ** 2, x**2 + 2 * x + 1).passed
    assert not core.sympy_equal((x + 1) ** 2, x**2 + 1).passed
    assert not core.sympy_equal(sp.Matrix([x, 0]), sp.Matrix([x, 1])).passed


def test_misstatement_passes_only_when_the_wrong_version_fails_and_the_right_one_passes():
    ok, bad = core.Outcome(True, "ok"), core.Outcome(False, "bad")
    assert core.misstatement(bad, ok).passed
    assert not core.misstatement(ok, ok).passed
    assert not core.misstatement(bad, bad).passed


def test_gaussian_expectation_matches_the_moments_of_a_normal():
    z, w = sp.symbols("z w", real=True)
    s = sp.Symbol("s", positive=True)
    assert core.gaussian_expectation(z**4, {z: s**2}) == 3 * s**4
    assert core.gaussian_expectation(z**6 + z**3 * w, {z: 1, w: 1}) == 15
    assert core.gaussian_expectation((z + w) ** 2, {z: 2, w: 3}) == 5


def test_quadrature_integrates_a_gaussian_and_its_second_moment():
    x, w = core.quadrature_1d(-10, 10)
    density = torch.exp(-(x**2) / 2) / math.sqrt(2 * math.pi)
    assert (w * density).sum().item() == pytest.approx(1.0, abs=1e-12)
    assert (w * density * x**2).sum().item() == pytest.approx(1.0, abs=1e-12)


@pytest.fixture
def failing_check():
    name = "0.0 deliberately false"
    core.REGISTRY[name] = core.Check(name, 1, "sympy", "1 = 2", lambda: core.sympy_equal(sp.Integer(1), sp.Integer(2)))
    yield name
    del core.REGISTRY[name]


def test_cli_table_lists_each_check_and_exit_code_reports_failure(failing_check, capsys, monkeypatch):
    monkeypatch.setattr(derivations, "names", lambda result=None: [failing_check, "1.1 kernel score"])
    assert report.main([]) == 1
    out = capsys.readouterr().out
    assert "0.0 deliberately false" in out and "FAIL" in out
    assert "1.1 kernel score" in out and "PASS" in out and "seconds" in out
    monkeypatch.setattr(derivations, "names", lambda result=None: ["1.1 kernel score"])
    assert report.main([]) == 0


def test_a_check_that_raises_is_a_fail_and_the_table_still_finishes(capsys, monkeypatch):
    """A library bug that makes a check crash (e.g. a detached loss: no gradient to take) is reported as a
    FAIL with the error, and the checks after it still run."""
    name = "0.1 raises"

    def crash():
        raise RuntimeError("element 0 of tensors does not require grad")

    core.REGISTRY[name] = core.Check(name, 1, "numeric", "raises", crash)
    try:
        result = derivations.run(name)
        assert not result.passed and "RuntimeError" in result.outcome.values["raised"]
        assert "does not require grad" in result.outcome.detail
        monkeypatch.setattr(derivations, "names", lambda result=None: [name, "1.1 kernel score"])
        assert report.main([]) == 1
        out = capsys.readouterr().out
        assert "0.1 raises" in out and "FAIL" in out and "1.1 kernel score" in out and "1/2 checks passed" in out
    finally:
        del core.REGISTRY[name]


def test_names_are_in_lecture_order():
    numbers = [tuple(int(k) for k in name.split(" ", 1)[0].split(".")) for name in derivations.names()]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)


def test_show_raises_on_a_failing_check(failing_check, capsys):
    with pytest.raises(AssertionError, match="deliberately false"):
        derivations.show(failing_check)
    derivations.show("1.2 score is scaled noise")
    assert "PASS" in capsys.readouterr().out


def test_unknown_check_name_is_a_clear_error():
    with pytest.raises(KeyError, match="no check named"):
        derivations.run("not a check")
