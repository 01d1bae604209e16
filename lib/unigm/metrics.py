"""Measuring a model against data: exact W2 with its noise floor, RBF-MMD, NLL in nats and bits/dim.

The 2D protocol (DESIGN.md): W2 between n model samples and n held-out data points, reported
next to its noise floor (two independent data draws of the same size) and to the best single
Gaussian fit; quality is the fraction of the gap closed,
    G = (W2_gauss - W2_model) / (W2_gauss - W2_floor)
(1: as good as fresh data, 0: no better than a Gaussian).

The image protocol: Fréchet distance, precision/recall/density/coverage, 1-NN two-sample accuracy
and an Inception-style score, all on the features and probabilities of the course's own classifier
(unigm.judge), each next to its data-vs-data floor (`image_quality`); bits/dim of discrete data from
a density of dequantized, rescaled data (`bits_per_dim_discrete`).
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np
import ot
import torch

from . import data
from . import judge as judges
from .data import Toy2D
from .tensors import ShapeError


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


def wasserstein2_many(pairs) -> list[float]:
    """[wasserstein2(x, y) for x, y in pairs], the solves run in threads, one per core: POT's network
    simplex releases the GIL (three draws of 2,000 points: 1.6x faster on 2 cores, the same values)."""
    pairs = list(pairs)
    workers = min(len(pairs), os.cpu_count() or 1)
    if workers <= 1:
        return [wasserstein2(x, y) for x, y in pairs]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda pair: wasserstein2(*pair), pairs))


MMD_BANDWIDTHS = (0.1, 0.2, 0.5, 1.0, 2.0)  # RBF scales for data of unit order (the 2D toys)


def rbf_kernel(a: torch.Tensor, b: torch.Tensor, bandwidths=MMD_BANDWIDTHS) -> torch.Tensor:
    """k(a_i, b_j) = sum_s exp(-|a_i - b_j|^2 / (2 s^2)) over the bandwidths s: (n, m)."""
    d2 = torch.cdist(a, b).pow(2)
    return sum(torch.exp(-d2 / (2 * s**2)) for s in bandwidths)


def rbf_kernel_sum(a: torch.Tensor, b: torch.Tensor, bandwidths=MMD_BANDWIDTHS, skip_diagonal: bool = False):
    """sum_ij k(a_i, b_j) of rbf_kernel without keeping the kernels (in place: 1.7x faster at n = 2000);
    skip_diagonal drops the i = j terms (a is b), each exp(0) = 1 per bandwidth."""
    d2 = torch.cdist(a, b).pow_(2)
    buffer, total = torch.empty_like(d2), 0.0
    for s in bandwidths:
        total = total + torch.mul(d2, -1 / (2 * s**2), out=buffer).exp_().sum()
    return total - len(a) * len(bandwidths) if skip_diagonal else total


def mmd_rbf(x, y, bandwidths=MMD_BANDWIDTHS) -> float:
    """Unbiased estimate of MMD^2 (Gretton et al. 2012) with the multi-scale RBF kernel."""
    a = torch.as_tensor(_numpy2d(x))
    b = torch.as_tensor(_numpy2d(y))
    n, m = len(a), len(b)
    if n < 2 or m < 2:
        raise ValueError("MMD needs at least two points in each sample")
    sum_xx = rbf_kernel_sum(a, a, bandwidths, skip_diagonal=True) / (n * (n - 1))
    sum_yy = rbf_kernel_sum(b, b, bandwidths, skip_diagonal=True) / (m * (m - 1))
    return float(sum_xx + sum_yy - 2 * rbf_kernel_sum(a, b, bandwidths) / (n * m))


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
    return Reference(test, *wasserstein2_many([(fresh, test), (gauss, test)]))


def fresh_data_gap_closed(dist: Toy2D, ref: Reference, draws: int = 3, n: int | None = None,
                          seed: int = 4321) -> torch.Tensor:
    """G of `draws` fresh data sets (a perfect model): their spread is the noise of G itself.

    The floor in G's denominator is one draw of W2(data, data); another draw lands a little above
    or below it, so a perfect model, and a good one, can score G > 1 by chance. Returns (draws,)."""
    g = torch.Generator().manual_seed(seed)
    n = n or len(ref.test)
    draws_ = [dist.sample(n, g) for _ in range(draws)]
    return torch.tensor([ref.gap_closed(w2) for w2 in wasserstein2_many((x, ref.test) for x in draws_)])


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
    return sample_quality_many([samples], ref)[0]


def sample_quality_many(samples: list[torch.Tensor], ref: Reference) -> list[SampleQuality]:
    """[sample_quality(s, ref) for s in samples], the W2 solves in threads (wasserstein2_many)."""
    for s in samples:
        if len(s) != len(ref.test):
            raise ValueError(f"compare equal sample sizes: {len(s)} model samples vs {len(ref.test)} data")
    w2s = wasserstein2_many((s, ref.test) for s in samples)
    return [SampleQuality(w2, ref.w2_floor, ref.w2_gauss, ref.gap_closed(w2), mmd_rbf(s, ref.test))
            for s, w2 in zip(samples, w2s)]


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


def power_spectrum(signals: torch.Tensor) -> torch.Tensor:
    """Mean power |FFT|^2 of 1D signals (N, T) per frequency bin 0 .. T // 2 (cycles per signal
    length), each signal's mean removed first: (T // 2 + 1,)."""
    if signals.dim() != 2 or signals.shape[1] < 2:
        raise ValueError(f"power_spectrum expects signals of shape (N, T) with T >= 2, got {tuple(signals.shape)}")
    centred = signals.double() - signals.double().mean(1, keepdim=True)
    return torch.fft.rfft(centred, dim=1).abs().pow(2).mean(0)


def band_power_fraction(signals: torch.Tensor, low: int, high: int) -> float:
    """The share of the signals' power in frequency bins low .. high (inclusive), of all bins >= 1:
    1 when every component lies in the band, about (high - low + 1) / (T / 2) for white noise."""
    power = power_spectrum(signals)
    if not 1 <= low <= high < len(power):
        raise ValueError(f"need 1 <= low <= high <= {len(power) - 1} (bins of signals of length "
                         f"{signals.shape[1]}), got low = {low}, high = {high}")
    return float(power[low:high + 1].sum() / power[1:].sum())


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


# ------------------------------------------------------------------------------------------------
# Bits per dimension of discrete data from a density on dequantized, rescaled data
# ------------------------------------------------------------------------------------------------
def bits_per_dim_discrete(log_density: torch.Tensor, dims: int, levels: int,
                          interval: tuple[float, float] = (0.0, 1.0)) -> float:
    """Bits/dim of the discrete data v in {0..levels-1}^D from a model's log-density of its
    dequantized, rescaled version x = low + (high - low) (v + u) / levels, u ~ U[0, 1)^D.

    `interval` = (low, high) is the range the model sees: (0, 1) for `data.dequantize`, (-1, 1) for
    x' = 2x - 1. With y = v + u in [0, levels)^D the change of variables x = low + s y, s = (high - low) / levels,
    gives log p_Y(y) = log p_X(x) + D log s, and uniform dequantization bounds the discrete
    likelihood from below (Theis et al. 2016): log P(v) >= E_u log p_Y(v + u). Hence

        bits/dim = -(E log p_X(x) + D log((high - low) / levels)) / (D ln 2),

    an upper bound on the model's discrete cross-entropy; equal to it for a density that is
    constant on each bin. log_density: (B,), the model's log p_X of a batch of dequantized data."""
    log_density = torch.as_tensor(log_density)
    if log_density.dim() != 1 or len(log_density) == 0:
        raise ShapeError(f"log_density must have shape (B,) with B >= 1, got {tuple(log_density.shape)}")
    if not torch.isfinite(log_density).all():
        raise ValueError("log_density contains NaN or inf (a point outside the model's support, or divergence)")
    if not isinstance(dims, int) or dims <= 0 or not isinstance(levels, int) or levels < 2:
        raise ValueError(f"dims must be a positive int and levels an int >= 2, got dims={dims!r}, levels={levels!r}")
    low, high = map(float, interval)
    if not high > low:
        raise ValueError(f"interval must be (low, high) with high > low, got {interval!r}")
    log_jacobian = dims * math.log((high - low) / levels)  # log |dx/dy| for the whole image
    return -(float(log_density.double().mean()) + log_jacobian) / (dims * math.log(2))


# ------------------------------------------------------------------------------------------------
# Feature-space metrics for images (computed on the judge's features, see unigm.judge)
# ------------------------------------------------------------------------------------------------
def _features(x, name: str, min_rows: int = 1) -> np.ndarray:
    """A finite (n, d) float64 array with n >= min_rows, from a tensor or array."""
    a = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] == 0:
        raise ShapeError(f"{name} must be a feature matrix of shape (n, d), got {a.shape}; "
                         "flatten images with x.reshape(len(x), -1) or use judge.features(x)")
    if len(a) < min_rows:
        raise ValueError(f"{name} has {len(a)} rows; this metric needs at least {min_rows}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf; the model has diverged")
    return a


def _pair(a, b, min_rows: int = 1) -> tuple[np.ndarray, np.ndarray]:
    a, b = _features(a, "the first set", min_rows), _features(b, "the second set", min_rows)
    if a.shape[1] != b.shape[1]:
        raise ShapeError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    return a, b


def _sqrtm_psd(c: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix by eigendecomposition (eigenvalues < 0 from
    rounding are set to 0)."""
    w, v = np.linalg.eigh((c + c.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(a, b) -> float:
    """Fréchet distance between Gaussian fits of two feature sets (Heusel et al. 2017, FID):

        FD = |mu_a - mu_b|^2 + tr C_a + tr C_b - 2 tr (C_a^1/2 C_b C_a^1/2)^1/2,

    the squared W2 between N(mu_a, C_a) and N(mu_b, C_b) (Dowson & Landau 1982). In float64; the
    trace term uses eigenvalues of the symmetrised PSD matrix C_a^1/2 C_b C_a^1/2, which equals
    tr (C_a C_b)^1/2 and stays stable when the covariances are nearly singular (fewer samples than
    dimensions). Covariances are unbiased (n - 1). 0 for identical sets, up to rounding."""
    a, b = _pair(a, b, min_rows=2)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False).reshape(a.shape[1], -1), np.cov(b, rowvar=False).reshape(b.shape[1], -1)
    root_a = _sqrtm_psd(cov_a)
    middle = root_a @ cov_b @ root_a
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    fd = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root
    return max(float(fd), 0.0)


def _kth_neighbour_radius(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row of x to its k-th nearest other row (self excluded): (n,)."""
    d = torch.cdist(x, x)
    d.fill_diagonal_(math.inf)
    return d.kthvalue(k, dim=1).values


def prdc(real, fake, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage from k-nearest-neighbour balls in feature space.

    Ball of a point: radius = distance to its k-th nearest neighbour in its own set, self excluded;
    balls are closed (<=). With N real points r_i, M fake points f_j (Kynkäänniemi et al. 2019;
    Naeem et al. 2020, arXiv:2002.09797, eqs. 3-4):
      precision = share of fake points inside some real ball          (fidelity)
      recall    = share of real points inside some fake ball          (diversity)
      density   = (1 / kM) sum_j #{real balls containing f_j}         (~1 when fake ~ real; can exceed 1)
      coverage  = share of real balls that contain at least one fake point
    Needs more than k points in each set; holds the (N, M) distance matrix in memory."""
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    real_np, fake_np = _pair(real, fake, min_rows=k + 1)
    r, f = torch.from_numpy(real_np), torch.from_numpy(fake_np)
    radius_real, radius_fake = _kth_neighbour_radius(r, k), _kth_neighbour_radius(f, k)  # (N,), (M,)
    d = torch.cdist(r, f)  # (N, M)
    in_real_ball = d <= radius_real[:, None]  # [i, j]: fake j inside the ball of real i
    in_fake_ball = d <= radius_fake[None, :]  # [i, j]: real i inside the ball of fake j
    return {
        "precision": in_real_ball.any(dim=0).double().mean().item(),
        "recall": in_fake_ball.any(dim=1).double().mean().item(),
        "density": in_real_ball.sum().item() / (k * len(f)),
        "coverage": (d.min(dim=1).values <= radius_real).double().mean().item(),
    }


def nn1_accuracy(a, b) -> float:
    """Leave-one-out 1-nearest-neighbour two-sample accuracy (Lopez-Paz & Oquab 2017).

    Pool the sets, label each point by its set, and classify every point by the label of its
    nearest other point. About 0.5 when a and b come from one distribution (for equal sizes), near 1
    when they are separable, and below 0.5 when points of b sit on top of points of a (copies:
    memorised training images). Needs at least 2 points in each set."""
    a, b = _pair(a, b, min_rows=2)
    z = torch.from_numpy(np.concatenate([a, b]))
    labels = torch.cat([torch.zeros(len(a), dtype=torch.bool), torch.ones(len(b), dtype=torch.bool)])
    d = torch.cdist(z, z)
    d.fill_diagonal_(math.inf)
    nearest = d.argmin(dim=1)
    return (labels[nearest] == labels).double().mean().item()


def _probabilities(probs, name: str = "probs") -> np.ndarray:
    p = _features(probs, name)
    if np.any(p < 0) or not np.allclose(p.sum(1), 1.0, atol=1e-4):
        raise ValueError(f"{name} must hold class probabilities: rows >= 0 that sum to 1 (use softmax, not logits)")
    return p


def inception_score(probs) -> float:
    """IS = exp E_x KL(p(y|x) || p(y)), with p(y) the mean of p(y|x) over the samples (Salimans
    et al. 2016), from a classifier's probabilities (N, C): here the judge's, not Inception's.
    Between 1 (every sample gets the same prediction) and C (confident and balanced). One split."""
    p = _probabilities(probs)
    marginal = p.mean(0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(marginal)), 0.0)  # 0 log 0 = 0
    return float(np.exp(terms.sum(1).mean()))


def class_histogram(probs_or_labels, num_classes: int) -> np.ndarray:
    """Samples per class, (num_classes,) int64: from labels (N,) or from probabilities (N, C)
    through their argmax. Mode coverage on images: a dropped class shows up as a 0."""
    x = probs_or_labels.detach().cpu().numpy() if isinstance(probs_or_labels, torch.Tensor) else np.asarray(probs_or_labels)
    if x.ndim == 2:
        if x.shape[1] != num_classes:
            raise ShapeError(f"probabilities have {x.shape[1]} columns but num_classes={num_classes}")
        labels = _probabilities(x).argmax(1)
    elif x.ndim == 1:
        if not np.issubdtype(x.dtype, np.integer):
            raise ValueError(f"labels must be integers, got {x.dtype}")
        labels = x
    else:
        raise ShapeError(f"expected labels (N,) or probabilities (N, C), got shape {x.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}")
    return np.bincount(labels, minlength=num_classes).astype(np.int64)


def classes_covered(histogram, min_share: float = 0.1) -> int:
    """Classes with at least min_share of their fair share n / C of the samples (as mode_coverage)."""
    h = np.asarray(histogram)
    return int((h >= min_share * h.sum() / len(h)).sum()) if h.sum() else 0


# ------------------------------------------------------------------------------------------------
# image_quality: every image metric for a batch of samples, next to its data-vs-data floor
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageScores:
    """The image metrics of one set of images against the reference (the dataset's test split)."""

    frechet_distance: float  # in judge-feature space; lower is better
    precision: float
    recall: float
    density: float
    coverage: float
    nn1_accuracy: float  # 0.5 is ideal; 1 separable; < 0.5 copies
    inception_score: float  # judge-based
    classes_covered: int
    class_histogram: tuple[int, ...]


IMAGE_METRICS = ("frechet_distance", "precision", "recall", "density", "coverage", "nn1_accuracy",
                 "inception_score", "classes_covered")
_LABELS = {"frechet_distance": "FD", "precision": "precision", "recall": "recall", "density": "density",
           "coverage": "coverage", "nn1_accuracy": "1-NN acc", "inception_score": "IS",
           "classes_covered": "classes"}


@dataclass(frozen=True)
class ImageQuality:
    """Image metrics of model samples (`model`) and of fresh data of the same size (`floor`)."""

    dataset: str
    n: int  # samples scored
    seed: int
    k: int
    model: ImageScores
    floor: ImageScores  # n train images vs the same test split: what a perfect model scores

    def as_dict(self) -> dict:
        """Flat: {"frechet_distance": ..., "frechet_distance_floor": ..., ...} plus the run's settings."""
        out = {"dataset": self.dataset, "n": self.n, "seed": self.seed, "k": self.k}
        for name in IMAGE_METRICS + ("class_histogram",):
            out[name], out[name + "_floor"] = getattr(self.model, name), getattr(self.floor, name)
        return out

    @staticmethod
    def header(label: str = "model") -> str:
        """The markdown header matching `row`."""
        names = [_LABELS[name] for name in IMAGE_METRICS]
        return f"| {label} | " + " | ".join(names) + " |\n|---|" + "---|" * len(names)

    def row(self, label: str = "model") -> str:
        """One markdown table row: each metric as 'value (floor)'."""
        classes = len(self.model.class_histogram)
        cells = [_format(self.model, name, classes) + f" ({_format(self.floor, name, classes)})"
                 for name in IMAGE_METRICS]
        return f"| {label} | " + " | ".join(cells) + " |"

    def __str__(self) -> str:
        classes = len(self.model.class_histogram)
        lines = [f"image quality on {self.dataset}: {self.n} samples vs the test split, judge features, "
                 f"k = {self.k}, seed = {self.seed}",
                 f"  {'metric':<10} {'samples':>9} {'data floor':>11}"]
        for name in IMAGE_METRICS:
            lines.append(f"  {_LABELS[name]:<10} {_format(self.model, name, classes):>9} "
                         f"{_format(self.floor, name, classes):>11}")
        lines.append(f"  per class: {list(self.model.class_histogram)} (data {list(self.floor.class_histogram)})")
        return "\n".join(lines)


def _format(scores: ImageScores, name: str, classes: int) -> str:
    value = getattr(scores, name)
    if name == "classes_covered":
        return f"{value}/{classes}"
    return f"{value:.2f}" if name in ("frechet_distance", "inception_score") else f"{value:.3f}"


def image_scores(fake_features, fake_probs, real_features, k: int = 5) -> ImageScores:
    """Every image metric of one feature set (and its class probabilities) against the real features."""
    pr = prdc(real_features, fake_features, k)
    histogram = class_histogram(fake_probs, num_classes=fake_probs.shape[1])
    return ImageScores(frechet_distance(real_features, fake_features), pr["precision"], pr["recall"],
                       pr["density"], pr["coverage"], nn1_accuracy(real_features, fake_features),
                       inception_score(fake_probs), classes_covered(histogram), tuple(histogram.tolist()))


_REFERENCES: dict[tuple, tuple[torch.Tensor, ImageScores]] = {}


def _image_reference(dataset: str, n: int, seed: int, k: int) -> tuple[torch.Tensor, ImageScores]:
    """Judge features of the dequantized test split, and the floor: n dequantized train images
    scored against them. Cached in memory per (dataset, n, seed, k)."""
    key = (dataset, n, seed, k)
    if key not in _REFERENCES:
        judge = judges.load(dataset)
        spec = judge.spec
        g = torch.Generator().manual_seed(seed)
        test = data.dequantize(spec.split("test").images, spec.levels, g)
        train = spec.split("train").images
        if n > len(train):
            raise ValueError(f"image_quality scores at most {len(train)} samples on {dataset} (the train split "
                             f"that gives the floor), got {n}")
        fresh = data.dequantize(train[torch.randperm(len(train), generator=g)[:n]], spec.levels, g)
        real_features = judge.features(test)
        floor = image_scores(judge.features(fresh), judge.predict_proba(fresh), real_features, k)
        _REFERENCES[key] = (real_features, floor)
    return _REFERENCES[key]


def image_quality(samples: torch.Tensor, dataset: str = "digits", seed: int = 0, k: int = 5) -> ImageQuality:
    """Every image metric for a batch of model samples, each next to its data-vs-data floor.

    samples: images in the judge's format (see unigm.judge: floats in [0, 1] of shape (N, 1, 8, 8)
    for digits, or integer grey levels). The reference is the dataset's test split (270 digits),
    dequantized with `seed`; the floor scores n train images (drawn with `seed`) against the same
    reference, so model and floor differ only in where the n images come from. Features and
    probabilities are the judge's. The same seed gives the same numbers."""
    judge = judges.load(dataset)
    x = judge.prepare(samples)
    if len(x) <= k:
        raise ValueError(f"image_quality needs more than k = {k} samples, got {len(x)}")
    real_features, floor = _image_reference(dataset, len(x), seed, k)
    scores = image_scores(judge.features(x), judge.predict_proba(x), real_features, k)
    return ImageQuality(dataset, len(x), seed, k, scores, floor)
