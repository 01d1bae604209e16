"""DiffFlow (unigm.frontier.diffflow): the KDE score against its closed form, W2 against
unigm.metrics, stationarity of p_data under the score-difference flow and Langevin (and its loss
under gradient ascent and mis-set noise), and convergence to two moons from a Gaussian fit."""
import math

import pytest
import torch

from unigm import data, metrics
from unigm.frontier.diffflow import (discriminator_flow, kde_score, score_difference_flow, smoothed_toy,
                                     stationarity_table, toy_score, wasserstein2)


def test_kde_score_is_the_gradient_of_the_kde_log_density():
    g = torch.Generator().manual_seed(0)
    particles, x = torch.randn(50, 2, generator=g, dtype=torch.float64), torch.randn(7, 2, generator=g, dtype=torch.float64)
    h = 0.3
    xx = x.clone().requires_grad_(True)
    log_q = torch.logsumexp(-torch.cdist(xx, particles).pow(2) / (2 * h**2), dim=1)
    (expected,) = torch.autograd.grad(log_q.sum(), xx)
    torch.testing.assert_close(kde_score(x, particles, h), expected)


def test_smoothed_toy_score_is_the_gaussian_mixture_closed_form():
    dist = data.toy("eight_gaussians")
    x = torch.randn(20, 2, generator=torch.Generator().manual_seed(1))
    var = dist.std**2 + 0.2**2
    w = torch.softmax(-torch.cdist(x, dist.means).pow(2) / (2 * var), dim=1)
    torch.testing.assert_close(toy_score(smoothed_toy(dist, 0.2))(x), (w @ dist.means - x) / var, rtol=1e-4, atol=1e-4)


def test_wasserstein2_matches_metrics():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g) + 1
    assert wasserstein2(x, y) == pytest.approx(metrics.wasserstein2(x, y), rel=1e-9)


def test_stationarity_of_p_data():
    """From particles already at p_data: the smoothed-score KDE flow and sqrt(2)-Langevin keep them there,
    gradient ascent collapses them onto the modes and noise 1 instead of sqrt(2) samples p^2 (excess log p
    0.5 nats in 2D for narrow Gaussian modes: each coordinate's variance halves)."""
    rows = {r["method"]: r for r in stationarity_table("eight_gaussians", n=500, steps=150, methods=(
        "score-difference (KDE)", "gradient ascent", "Langevin, sqrt(2) noise", "Langevin, noise 1"))}
    assert abs(rows["score-difference (KDE)"]["log_p_excess"]) < 0.15
    assert abs(rows["Langevin, sqrt(2) noise"]["log_p_excess"]) < 0.15
    assert rows["gradient ascent"]["log_p_excess"] > 0.8  # (0.9)^150: almost all of the spread is gone (1 nat)
    assert rows["Langevin, noise 1"]["log_p_excess"] == pytest.approx(0.5, abs=0.15)
    assert rows["gradient ascent"]["w2"] > rows["score-difference (KDE)"]["w2"]


def test_score_difference_flow_with_kde_moves_a_gaussian_toward_two_moons():
    dist = data.toy("two_moons")
    ref = metrics.reference(dist, n=500)
    x0 = metrics.gaussian_fit_samples(dist.sample(500, torch.Generator().manual_seed(5)), 500,
                                      torch.Generator().manual_seed(0))
    x = score_difference_flow(x0, toy_score(smoothed_toy(dist, 0.15, nodes=128)), step=0.01, steps=200, bandwidth=0.15)
    start, end = metrics.sample_quality_many([x0, x], ref)
    assert end.gap_closed > KDE_G_MIN and end.gap_closed > start.gap_closed + 0.2, (start, end)


def test_discriminator_flow_moves_a_gaussian_toward_two_moons():
    dist = data.toy("two_moons")
    ref = metrics.reference(dist, n=500)
    x0 = metrics.gaussian_fit_samples(dist.sample(500, torch.Generator().manual_seed(5)), 500,
                                      torch.Generator().manual_seed(0))
    x = discriminator_flow(x0, dist, steps=80, step=0.04, disc_steps=4, batch_size=256,
                           generator=torch.Generator().manual_seed(0))
    assert metrics.sample_quality(x, ref).gap_closed > DISC_G_MIN


KDE_G_MIN = 0.35  # measured 0.49 (from -0.03), seeded, 2-core CPU
DISC_G_MIN = 0.5  # measured 0.67, seeded, 2-core CPU
