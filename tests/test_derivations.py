"""Every machine-checked derivation of lecture 02 must pass (the same checks the notebook shows),
and the checking machinery must be able to fail: each helper is tested on a false statement."""

import math

import pytest
import sympy as sp
import torch

from unigm import derivations
from unigm.derivations import core, report


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


def test_the_eleven_misstatements_have_boxes():
    boxes = [c for c in derivations.REGISTRY.values() if c.kind == "misstatement"]
    assert len(boxes) == 11


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


def test_mmd_permutation_test_accepts_same_and_rejects_different_distributions():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(300, 2, generator=g), torch.randn(300, 2, generator=g)
    shifted = torch.randn(300, 2, generator=g) + 0.5
    assert core.mmd_permutation_test(a, b)[1] > 0.05
    assert core.mmd_permutation_test(a, shifted)[1] <= 0.01


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


def test_show_raises_on_a_failing_check(failing_check, capsys):
    with pytest.raises(AssertionError, match="deliberately false"):
        derivations.show(failing_check)
    derivations.show("1.2 score is scaled noise")
    assert "PASS" in capsys.readouterr().out


def test_unknown_check_name_is_a_clear_error():
    with pytest.raises(KeyError, match="no check named"):
        derivations.run("not a check")
