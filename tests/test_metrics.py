"""Metric oracles: W2 against the assignment problem, MMD against a direct double sum."""
import math

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from unigm import data, metrics


def test_w2_equals_optimal_assignment_for_equal_sized_sets():
    rng = np.random.default_rng(0)
    for n, d in [(7, 1), (40, 2), (60, 3)]:
        x, y = rng.normal(size=(n, d)), rng.normal(size=(n, d)) + 0.5
        cost = ((x[:, None] - y[None]) ** 2).sum(-1)
        rows, cols = linear_sum_assignment(cost)
        assert metrics.wasserstein2(x, y) == pytest.approx(math.sqrt(cost[rows, cols].mean()), rel=1e-9)


def test_w2_of_a_translation_is_its_length_and_w2_is_symmetric():
    x = torch.randn(300, 2, generator=torch.Generator().manual_seed(0))
    shift = torch.tensor([0.3, -0.4])
    assert metrics.wasserstein2(x, x + shift) == pytest.approx(0.5, rel=1e-6)
    y = torch.randn(200, 2)
    assert metrics.wasserstein2(x, y) == pytest.approx(metrics.wasserstein2(y, x), rel=1e-9)


def test_w2_many_in_threads_gives_the_serial_values_and_raises_the_same_errors():
    g = torch.Generator().manual_seed(0)
    pairs = [(torch.randn(400, 2, generator=g), torch.randn(400, 2, generator=g) + k) for k in range(3)]
    assert metrics.wasserstein2_many(pairs) == [metrics.wasserstein2(x, y) for x, y in pairs]
    assert metrics.wasserstein2_many(pairs[:1]) == [metrics.wasserstein2(*pairs[0])] and metrics.wasserstein2_many([]) == []
    with pytest.raises(ValueError, match="NaN"):
        metrics.wasserstein2_many(pairs + [(torch.full((400, 2), float("nan")), pairs[0][1])])


def test_w2_rejects_diverged_samples():
    with pytest.raises(ValueError, match="NaN"):
        metrics.wasserstein2(torch.tensor([[float("nan"), 0.0]]), torch.zeros(1, 2))


def test_mmd_matches_a_direct_double_sum():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(15, 2)), rng.normal(size=(12, 2)) * 1.5
    bandwidths = (0.5, 1.0, 2.0)

    def k(a, b):
        return sum(math.exp(-np.sum((a - b) ** 2) / (2 * s * s)) for s in bandwidths)

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    assert metrics.mmd_rbf(x, y, bandwidths) == pytest.approx(xx + yy - 2 * xy, rel=1e-10)


def test_mmd_is_unbiased_near_zero_for_equal_distributions():
    g = torch.Generator().manual_seed(0)
    values = [metrics.mmd_rbf(torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g)) for _ in range(20)]
    assert abs(np.mean(values)) < 3 * np.std(values) / math.sqrt(20)
    assert metrics.mmd_rbf(torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g) + 1) > 0.1


def test_gaussian_fit_samples_have_the_data_moments():
    g = torch.Generator().manual_seed(0)
    data_points = torch.randn(5000, 2, generator=g) @ torch.tensor([[2.0, 0.0], [1.0, 0.5]]) + torch.tensor([1.0, -1.0])
    fit = metrics.gaussian_fit_samples(data_points, 200_000, g)
    torch.testing.assert_close(fit.mean(0), data_points.mean(0), atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(fit.T), torch.cov(data_points.T), atol=0.03, rtol=0.01)


def test_reference_floor_is_below_the_gaussian_baseline_and_g_is_normalised():
    ref = metrics.reference(data.toy("eight_gaussians"), n=500)
    assert 0 < ref.w2_floor < ref.w2_gauss
    assert ref.gap_closed(ref.w2_floor) == pytest.approx(1.0)
    assert ref.gap_closed(ref.w2_gauss) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="equal sample sizes"):
        metrics.sample_quality(torch.zeros(10, 2), ref)
    g = torch.Generator().manual_seed(3)
    draws = [torch.randn(500, 2, generator=g) * scale for scale in (0.5, 1.0, 2.0)]
    many = metrics.sample_quality_many(draws, ref)
    assert many == [metrics.sample_quality(x, ref) for x in draws]  # threads change nothing
    assert many[0].w2 == metrics.wasserstein2(draws[0], ref.test)
    with pytest.raises(ValueError, match="equal sample sizes"):
        metrics.sample_quality_many(draws + [torch.zeros(10, 2)], ref)


def test_bits_per_dim_of_uniform_dequantized_noise():
    """A uniform density on [0, 1)^D has log p = 0; with L levels the data cost is log2(L) bits/dim."""
    log_prob = torch.zeros(10)
    assert metrics.bits_per_dim(log_prob, dims=64, levels=17) == pytest.approx(math.log2(17))
    assert metrics.bits_per_dim(torch.full((3,), -64 * math.log(2)), dims=64) == pytest.approx(1.0)
    assert metrics.nll_nats(torch.tensor([-1.0, -3.0])) == pytest.approx(2.0)


def test_mode_coverage_counts_modes_and_quality():
    toy = data.toy("eight_gaussians")
    g = torch.Generator().manual_seed(0)
    perfect = metrics.mode_coverage(toy.sample(4000, g), toy.means, toy.std)
    assert perfect.modes_hit == 8 and perfect.high_quality == pytest.approx(1 - math.exp(-4.5), abs=0.01)  # chi2(2) tail
    collapsed = toy.means[[0, 3]].repeat(500, 1) + 0.01 * torch.randn(1000, 2, generator=g)
    result = metrics.mode_coverage(collapsed, toy.means, toy.std)
    assert result.modes_hit == 2 and result.high_quality == 1.0 and sum(result.counts) == 1000
    far = torch.zeros(100, 2)  # the centre of the ring is far from every mode
    assert metrics.mode_coverage(far, toy.means, toy.std).high_quality == 0.0


def test_mmd_permutation_test_accepts_same_and_rejects_different_distributions():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(300, 2, generator=g), torch.randn(300, 2, generator=g)
    shifted = torch.randn(300, 2, generator=g) + 0.5
    assert metrics.mmd_permutation_test(a, b)[1] > 0.05
    assert metrics.mmd_permutation_test(a, shifted)[1] <= 0.01


def test_band_power_fraction_of_sines_is_the_closed_form():
    t = torch.arange(128, dtype=torch.float64)
    pure = torch.sin(2 * math.pi * 8 * t / 128 + torch.rand(5, 1, dtype=torch.float64))  # 8 cycles, any phase
    assert metrics.band_power_fraction(pure, 4, 16) == pytest.approx(1.0, abs=1e-12)
    assert metrics.band_power_fraction(pure, 9, 64) == pytest.approx(0.0, abs=1e-12)
    two = 3.0 * torch.cos(2 * math.pi * 5 * t / 128) + 1.0 * torch.cos(2 * math.pi * 40 * t / 128) + 7.0
    assert metrics.band_power_fraction(two[None], 4, 16) == pytest.approx(9 / 10, abs=1e-12)  # a^2 / (a^2 + b^2)
    spectrum = metrics.power_spectrum(two[None])
    assert spectrum[0] == pytest.approx(0.0, abs=1e-9) and spectrum[5] == pytest.approx((3.0 * 128 / 2) ** 2)
    noise = torch.randn(2000, 128, generator=torch.Generator().manual_seed(0))
    assert metrics.band_power_fraction(noise, 4, 16) == pytest.approx(13 / 64, abs=0.01)
    with pytest.raises(ValueError, match="low <= high"):
        metrics.band_power_fraction(pure, 0, 16)
    with pytest.raises(ValueError, match="shape \\(N, T\\)"):
        metrics.power_spectrum(torch.zeros(128))
