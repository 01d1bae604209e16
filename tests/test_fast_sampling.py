"""The fast sampling path (unigm.samplers.fast) against the plain loop, a closed form, and its fallbacks;
the `python -m unigm.bench samplers` benchmark end to end in its quick mode."""
import json
import math

import pytest
import torch

from unigm import bench, bench_samplers, samplers, zoo
from unigm.samplers.fast import fast_sampler

PLAIN = {"euler": samplers.euler, "heun": samplers.heun}


def decay(x, t):  # dx/dt = -x (1 + t): an analytic field, no module
    return -x * (1 + t[:, None])


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return zoo.make("flow_matching", (2,)).eval()  # seeded, untrained: the numbers, not the quality, matter


@pytest.mark.parametrize("backend", ["trace", "eager"])
@pytest.mark.parametrize("method", ["euler", "heun"])
def test_fast_equals_plain_on_a_network(model, method, backend):
    sample = fast_sampler(model.velocity, 20, method, backend=backend)
    for batch in (1, 64):
        x = torch.randn(batch, 2, generator=torch.Generator().manual_seed(batch))
        sample(x)  # the first call builds (and returns the plain loop's numbers)
        torch.testing.assert_close(sample(x), PLAIN[method](model.velocity, x, 20), rtol=0, atol=1e-4)
        assert sample.backend_used[(tuple(x.shape), x.dtype, x.device)] == backend


@pytest.mark.parametrize("method", ["euler", "heun"])
def test_fast_equals_plain_on_an_analytic_field(method):
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    sample = fast_sampler(decay, 50, method)
    sample(x)
    torch.testing.assert_close(sample(x), PLAIN[method](decay, x, 50), rtol=0, atol=1e-4)


def test_fast_euler_matches_its_closed_form():
    """dx/dt = -x from t = 1 to 0 in N Euler steps of h = -1/N: x(0) = x(1) (1 + 1/N)^N exactly."""
    x, n = torch.randn(16, 2, dtype=torch.float64), 40
    sample = fast_sampler(lambda x, t: -x, n)
    sample(x)
    torch.testing.assert_close(sample(x), x * (1 + 1 / n) ** n, rtol=1e-12, atol=0)


def test_fast_sampler_rebuilds_after_the_weights_change(model):
    sample = fast_sampler(model.velocity, 10)
    x = torch.randn(8, 2)
    sample(x)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05)  # a training step: in place, as an optimizer does
    try:
        torch.testing.assert_close(sample(x), samplers.euler(model.velocity, x, 10), rtol=0, atol=1e-4)
    finally:
        with torch.no_grad():
            for p in model.parameters():
                p.sub_(0.05)


def test_a_backend_that_disagrees_falls_back_with_a_warning():
    """A field with Python-side state: tracing bakes in the trace run's constants, so the check catches it."""
    calls = [0]

    def counting(x, t):
        calls[0] += 1
        return x * calls[0] / 100

    x = torch.randn(4, 2)
    sample = fast_sampler(counting, 5)
    with pytest.warns(RuntimeWarning, match="differ"):
        sample(x)
    assert sample.backend_used[(tuple(x.shape), x.dtype, x.device)] == "eager"


def test_a_backend_that_fails_falls_back_with_a_warning(monkeypatch):
    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(torch, "compile", no_compiler)
    x = torch.randn(4, 2)
    sample = fast_sampler(decay, 5, backend="compile")
    with pytest.warns(RuntimeWarning, match="failed to build"):
        first = sample(x)
    torch.testing.assert_close(first, samplers.euler(decay, x, 5), rtol=0, atol=0)
    torch.testing.assert_close(sample(x), first, rtol=0, atol=0)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="method"):
        fast_sampler(decay, 5, "rk45")
    with pytest.raises(ValueError, match="backend"):
        fast_sampler(decay, 5, backend="tensorrt")
    with pytest.raises(ValueError, match="steps"):
        fast_sampler(decay, 0)


def test_break_even_by_hand():
    # 2 s to build; a batch of 10 takes 0.1 s plain and 0.05 s fast: 5 ms saved per sample -> 400 samples
    assert bench_samplers.break_even(2.0, 0.1, 0.05, 10) == pytest.approx(400)
    assert bench_samplers.break_even(2.0, 0.05, 0.1, 10) is None  # slower: never pays off


def test_macs_of_the_flow_matching_mlp(model):
    # input 2 + time embedding 32 -> 128 -> 128 -> 128 -> 2 (the zoo's default config)
    assert bench_samplers.macs_per_eval(model) == 34 * 128 + 2 * 128 * 128 + 128 * 2


def test_bench_samplers_quick_run_writes_json(tmp_path):
    assert bench.main(["samplers", "--quick", "--out", str(tmp_path)]) == 0  # through the dispatch
    report = json.loads((tmp_path / "bench_samplers.json").read_text())
    meta, rows = report["meta"], report["rows"]
    assert meta["matmul_peak_gflops"] > 0 and meta["threads"] >= 1 and meta["torch"] == torch.__version__
    assert {(r["method"], r["batch"]) for r in rows} == {(m, b) for m in ("euler", "heun") for b in (1, 8)}
    for r in rows:
        assert r["nfe"] == r["steps"] * (1 if r["method"] == "euler" else 2)
        for key in ("plain_ms", "fast_ms", "speedup", "build_s", "plain_gflops", "fast_gflops"):
            assert math.isfinite(r[key]) and r[key] > 0, key
        if r["break_even_samples"] is not None:  # None when the fast path saved nothing on this run
            saved_per_sample = (r["plain_ms"] - r["fast_ms"]) / 1e3 / r["batch"]
            assert r["break_even_samples"] == pytest.approx(r["build_s"] / saved_per_sample)
