"""Measuring a model against data: exact W2 with its noise floor, RBF-MMD, NLL in nats and bits/dim.

The 2D protocol (DESIGN.md): W2 between n model samples and n held-out data points, reported
next to its noise floor (two independent data draws of the same size) and to the best single
Gaussian fit; quality is the fraction of the gap closed,
    G = (W2_gauss - W2_model) / (W2_gauss - W2_floor)
(1: as good as fresh data, 0: no better than a Gaussian).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import ot
import torch

from .data import Toy2D


def _numpy2d(x) -> np.ndarray:
    a = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)
    a = a.reshape(a.shape[0], -1)
    if not np.all(np.isfinite(a)):
        raise ValueError("samples contain NaN or inf; the model has diverged")
    return a


def wasserstein2(x, y) -> float:
    """Exact W2 between the empirical measures of x (n, D) and y (m, D), uniform weights.

    Solves the optimal-transport linear program with POT's network simplex (ot.emd2) on the
    squared Euclidean cost and returns its square root."""
    a, b = _numpy2d(x), _numpy2d(y)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"dimension mismatch: {a.shape[1]} vs {b.shape[1]}")
    cost = ot.dist(a, b, metric="sqeuclidean")
    w2_squared = ot.emd2(np.full(len(a), 1 / len(a)), np.full(len(b), 1 / len(b)), cost, numItermax=10**8)
    return math.sqrt(max(float(w2_squared), 0.0))


MMD_BANDWIDTHS = (0.1, 0.2, 0.5, 1.0, 2.0)  # RBF scales for data of unit order (the 2D toys)


def rbf_kernel(a: torch.Tensor, b: torch.Tensor, bandwidths=MMD_BANDWIDTHS) -> torch.Tensor:
    """k(a_i, b_j) = sum_s exp(-|a_i - b_j|^2 / (2 s^2)) over the bandwidths s: (n, m)."""
    d2 = torch.cdist(a, b).pow(2)
    return sum(torch.exp(-d2 / (2 * s**2)) for s in bandwidths)


def mmd_rbf(x, y, bandwidths=MMD_BANDWIDTHS) -> float:
    """Unbiased estimate of MMD^2 (Gretton et al. 2012) with the multi-scale RBF kernel."""
    a = torch.as_tensor(_numpy2d(x))
    b = torch.as_tensor(_numpy2d(y))
    n, m = len(a), len(b)
    if n < 2 or m < 2:
        raise ValueError("MMD needs at least two points in each sample")
    kxx, kyy, kxy = rbf_kernel(a, a, bandwidths), rbf_kernel(b, b, bandwidths), rbf_kernel(a, b, bandwidths)
    sum_xx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    sum_yy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(sum_xx + sum_yy - 2 * kxy.mean())


def mmd_permutation_test(x, y, permutations: int = 200, bandwidths=MMD_BANDWIDTHS,
                         seed: int = 0) -> tuple[float, float]:
    """Two-sample test (Gretton et al. 2012): the biased MMD^2 with the multi-scale RBF kernel and its
    permutation p-value, p = (1 + #{permuted >= observed}) / (1 + permutations). Returns (mmd2, p)."""
    z = torch.cat([torch.as_tensor(_numpy2d(x)), torch.as_tensor(_numpy2d(y))])
    kernel = rbf_kernel(z, z, bandwidths)  # (N, N)
    n, total = len(x), len(z)
    signs = torch.cat([torch.full((n,), 1.0 / n), torch.full((total - n,), -1.0 / (total - n))]).double()
    g = torch.Generator().manual_seed(seed)
    columns = torch.stack([signs[torch.randperm(total, generator=g)] for _ in range(permutations)], dim=1)
    observed = (signs @ kernel @ signs).item()
    null = ((kernel @ columns) * columns).sum(0)  # (permutations,)
    p_value = (1 + (null >= observed).sum().item()) / (1 + permutations)
    return observed, p_value


def gaussian_fit_samples(data: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n samples from N(mean, cov) fitted to `data` by maximum likelihood: the 'single Gaussian'
    baseline of the quality score."""
    flat = data.reshape(len(data), -1).double()
    mean = flat.mean(0)
    cov = torch.cov(flat.T, correction=0).reshape(flat.shape[1], flat.shape[1])
    chol = torch.linalg.cholesky(cov + 1e-9 * torch.eye(len(mean), dtype=cov.dtype))
    z = torch.randn(n, len(mean), generator=generator, dtype=torch.float64)
    return (mean + z @ chol.T).float()


@dataclass(frozen=True)
class Reference:
    """Held-out data and the two baselines a model's W2 is compared with."""

    test: torch.Tensor
    w2_floor: float  # W2(fresh data, held-out data)
    w2_gauss: float  # W2(best single Gaussian, held-out data)

    def gap_closed(self, w2_model: float) -> float:
        return (self.w2_gauss - w2_model) / (self.w2_gauss - self.w2_floor)


def reference(dist: Toy2D, n: int = 2000, seed: int = 1234) -> Reference:
    """Draw the held-out set, the floor draw and the Gaussian baseline for `dist` (all seeded)."""
    g = torch.Generator().manual_seed(seed)
    test, fresh, fit_data = dist.sample(n, g), dist.sample(n, g), dist.sample(n, g)
    gauss = gaussian_fit_samples(fit_data, n, g)
    return Reference(test, wasserstein2(fresh, test), wasserstein2(gauss, test))


def fresh_data_gap_closed(dist: Toy2D, ref: Reference, draws: int = 3, n: int | None = None,
                          seed: int = 4321) -> torch.Tensor:
    """G of `draws` fresh data sets (a perfect model): their spread is the noise of G itself.

    The floor in G's denominator is one draw of W2(data, data); another draw lands a little above
    or below it, so a perfect model, and a good one, can score G > 1 by chance. Returns (draws,)."""
    g = torch.Generator().manual_seed(seed)
    n = n or len(ref.test)
    return torch.tensor([ref.gap_closed(wasserstein2(dist.sample(n, g), ref.test)) for _ in range(draws)])


@dataclass(frozen=True)
class SampleQuality:
    w2: float
    w2_floor: float
    w2_gauss: float
    gap_closed: float  # G
    mmd: float

    def as_dict(self) -> dict:
        return asdict(self)


def sample_quality(samples: torch.Tensor, ref: Reference) -> SampleQuality:
    """W2, its floor and Gaussian baseline, the gap closed G, and MMD^2 against held-out data."""
    if len(samples) != len(ref.test):
        raise ValueError(f"compare equal sample sizes: {len(samples)} model samples vs {len(ref.test)} data")
    w2 = wasserstein2(samples, ref.test)
    return SampleQuality(w2, ref.w2_floor, ref.w2_gauss, ref.gap_closed(w2), mmd_rbf(samples, ref.test))


def nll_nats(log_prob: torch.Tensor) -> float:
    """Mean negative log-likelihood in nats per example."""
    return float(-log_prob.double().mean())


def bits_per_dim(log_prob: torch.Tensor, dims: int, levels: int | None = None) -> float:
    """Mean NLL in bits per dimension.

    log_prob is the density of x = (v + u) / levels in [0, 1)^dims (see data.dequantize). The
    density of y = v + u in [0, levels)^dims is p(x) / levels^dims, so with `levels` given the
    result is the usual dequantized bits/dim of the integer data: (NLL + dims log levels) / (dims ln 2)."""
    nll = nll_nats(log_prob)
    if levels is not None:
        nll += dims * math.log(levels)
    return nll / (dims * math.log(2))


@dataclass(frozen=True)
class ModeCoverage:
    modes_hit: int  # modes with at least min_share of their fair share of high-quality samples
    modes: int
    high_quality: float  # fraction of samples within k_sigma standard deviations of their nearest mode
    counts: tuple[int, ...]  # high-quality samples per mode


def mode_coverage(samples: torch.Tensor, means: torch.Tensor, std: float, k_sigma: float = 3.0,
                  min_share: float = 0.1) -> ModeCoverage:
    """Mode coverage of a mixture of isotropic Gaussians (Srivastava et al. 2017, VEEGAN):
    a sample is high-quality if it lies within k_sigma * std of its nearest mode; a mode is hit
    if it receives at least min_share * n / K high-quality samples."""
    x = torch.as_tensor(_numpy2d(samples))
    means = torch.as_tensor(means, dtype=x.dtype)
    distance, nearest = torch.cdist(x, means).min(dim=1)
    good = distance <= k_sigma * std
    counts = torch.bincount(nearest[good], minlength=len(means))
    hit = int((counts >= min_share * len(x) / len(means)).sum())
    return ModeCoverage(hit, len(means), good.double().mean().item(), tuple(counts.tolist()))
