"""Data: 2D toy distributions with exact samplers and log-densities, the 8x8 digits, MNIST.

Every 2D toy is a `Toy2D`: `sample(n, generator)` draws exact samples and `log_prob(x)` gives
the true log-density, so a model's NLL can be compared with the truth and its entropy:
- Gaussian mixtures (eight_gaussians, grid25): closed form.
- Checkerboard: uniform on 8 unit squares, log p = -log 8 inside.
- Noisy curves (two_moons, swiss_roll, two_spirals, rings): a point uniform in the curve's
  parameter plus isotropic Gaussian noise. The density is a 1D integral over the parameter,
  p(x) = sum_k w_k int N(x; c_k(s), sigma^2 I) ds / (b_k - a_k), evaluated with Gauss-Legendre
  quadrature on enough nodes that the error is far below float32 resolution (tested against
  scipy.integrate.quad).
"""
from __future__ import annotations

import gzip
import math
import os
import struct
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .densities import isotropic_gaussian_log_prob
from .tensors import check_n

class Toy2D:
    """A 2D distribution with an exact sampler and (where it exists) an exact log-density."""

    name = "toy"

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:  # (n, 2)
        raise NotImplementedError

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:  # (n, 2) -> (n,)
        raise NotImplementedError(f"{self.name} has no closed-form log-density")

    def entropy(self, n: int = 100_000, seed: int = 0) -> tuple[float, float]:
        """Differential entropy H = -E log p in nats, by Monte Carlo: (estimate, standard error).

        It is the floor of any model's NLL on this data (NLL = H + KL(p_data || p_model))."""
        x = self.sample(n, torch.Generator().manual_seed(seed))
        nlp = -self.log_prob(x).double()
        return nlp.mean().item(), (nlp.std() / math.sqrt(n)).item()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _check_points(x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != 2:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"2D toy log_prob expects a tensor of shape (n, 2), got {shape}")
    return x


class GaussianMixture(Toy2D):
    """Equal-weight mixture of isotropic Gaussians N(mu_k, std^2 I)."""

    def __init__(self, name: str, means, std: float):
        self.name = name
        self.means = torch.as_tensor(means, dtype=torch.float32)  # (K, 2)
        self.std = float(std)

    def sample(self, n, generator=None):
        n = check_n(n)
        k = torch.randint(len(self.means), (n,), generator=generator)
        return self.means[k] + self.std * torch.randn(n, 2, generator=generator)

    def log_prob(self, x):
        x = _check_points(x)
        d2 = (x[:, None, :] - self.means[None].to(x)).pow(2).sum(-1)  # (n, K)
        return torch.logsumexp(isotropic_gaussian_log_prob(d2, self.std**2, 2), dim=1) - math.log(len(self.means))


class Checkerboard(Toy2D):
    """Uniform on the 8 'black' unit squares of a 4x4 board covering [-2, 2]^2."""

    name = "checkerboard"

    def sample(self, n, generator=None):
        n = check_n(n)
        u = torch.rand(n, 2, generator=generator)
        col = torch.randint(4, (n,), generator=generator)
        row = 2 * torch.randint(2, (n,), generator=generator) + (col % 2)  # black: row+col even
        return torch.stack([col + u[:, 0], row + u[:, 1]], dim=1) - 2.0

    def log_prob(self, x):
        x = _check_points(x)
        cell = torch.floor(x + 2.0)
        inside = ((cell >= 0) & (cell <= 3)).all(dim=1) & ((cell.sum(dim=1) % 2) == 0)
        out = torch.full((x.shape[0],), -math.inf, dtype=x.dtype, device=x.device)
        return out.masked_fill(inside, -math.log(8.0))

    def entropy(self, n=0, seed=0):
        return math.log(8.0), 0.0  # uniform on area 8


@dataclass(frozen=True)
class Curve:
    """A curve c(s), s ~ Uniform(low, high), chosen with probability `weight`."""

    fn: Callable[[torch.Tensor], torch.Tensor]  # (m,) -> (m, 2)
    low: float
    high: float
    weight: float


class NoisyCurves(Toy2D):
    """x = c_k(s) + noise * N(0, I) with k ~ weights, s ~ U(low_k, high_k)."""

    def __init__(self, name: str, curves: list[Curve], noise: float, nodes: int = 2048):
        self.name = name
        self.curves = curves
        self.noise = float(noise)
        self.nodes = nodes
        total = sum(c.weight for c in curves)
        self.weights = torch.tensor([c.weight / total for c in curves])

    def sample(self, n, generator=None):
        n = check_n(n)
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        u = torch.rand(n, generator=generator)
        out = torch.empty(n, 2)
        for i, c in enumerate(self.curves):
            mask = k == i
            out[mask] = c.fn(c.low + (c.high - c.low) * u[mask])
        return out + self.noise * torch.randn(n, 2, generator=generator)

    @cached_property
    def _quadrature(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Points on the curves and the log of their quadrature weights (mixture weight included)."""
        s, w = np.polynomial.legendre.leggauss(self.nodes)  # nodes on [-1, 1], weights sum to 2
        points, log_w = [], []
        for c, weight in zip(self.curves, self.weights):
            s_k = torch.as_tensor(c.low + (c.high - c.low) * (s + 1) / 2, dtype=torch.float64)
            points.append(c.fn(s_k))
            log_w.append(torch.as_tensor(np.log(w / 2), dtype=torch.float64) + math.log(weight))
        return torch.cat(points), torch.cat(log_w)  # (M, 2), (M,)

    def log_prob(self, x):
        x = _check_points(x)
        points, log_w = self._quadrature
        out = []
        for chunk in x.double().split(4096):
            d2 = torch.cdist(chunk, points).pow(2)  # (c, M)
            out.append(torch.logsumexp(isotropic_gaussian_log_prob(d2, self.noise**2, 2) + log_w, dim=1))
        return torch.cat(out).to(x.dtype)


def _moon_upper(s):
    return 2.0 * torch.stack([torch.cos(s) - 0.5, torch.sin(s) - 0.25], dim=-1)


def _moon_lower(s):
    return 2.0 * torch.stack([0.5 - torch.cos(s), 0.25 - torch.sin(s)], dim=-1)


def _swiss_roll(s):  # s in [1.5 pi, 4.5 pi], as in sklearn's make_swiss_roll, scaled by 1/5
    return torch.stack([s * torch.cos(s), s * torch.sin(s)], dim=-1) / 5.0


def _spiral(sign):
    def fn(s):  # s in [0, 1]; angle grows like sqrt(s) so points are spread along the arm
        theta = 3 * math.pi * torch.sqrt(s)
        return sign * torch.stack([-theta * torch.cos(theta), theta * torch.sin(theta)], dim=-1) / 3.0
    return fn


def _circle(radius):
    def fn(s):
        return radius * torch.stack([torch.cos(s), torch.sin(s)], dim=-1)
    return fn


def _make_toys() -> dict[str, Callable[[], Toy2D]]:
    angles = [k * math.pi / 4 for k in range(8)]
    return {
        "eight_gaussians": lambda: GaussianMixture(
            "eight_gaussians", [[2 * math.cos(a), 2 * math.sin(a)] for a in angles], std=0.1),
        "grid25": lambda: GaussianMixture(
            "grid25", [[i, j] for i in range(-2, 3) for j in range(-2, 3)], std=0.1),
        "two_moons": lambda: NoisyCurves(
            "two_moons", [Curve(_moon_upper, 0.0, math.pi, 1.0), Curve(_moon_lower, 0.0, math.pi, 1.0)],
            noise=0.1),
        "checkerboard": Checkerboard,
        "swiss_roll": lambda: NoisyCurves(
            "swiss_roll", [Curve(_swiss_roll, 1.5 * math.pi, 4.5 * math.pi, 1.0)], noise=0.1),
        "two_spirals": lambda: NoisyCurves(
            "two_spirals", [Curve(_spiral(1.0), 0.0, 1.0, 1.0), Curve(_spiral(-1.0), 0.0, 1.0, 1.0)],
            noise=0.1),
        "rings": lambda: NoisyCurves(
            "rings", [Curve(_circle(1.0), 0.0, 2 * math.pi, 1.0), Curve(_circle(2.0), 0.0, 2 * math.pi, 2.0)],
            noise=0.08),
    }


_TOYS = _make_toys()


def toy_names() -> list[str]:
    return list(_TOYS)


def toy(name: str) -> Toy2D:
    """The 2D distribution called `name` (see `toy_names()`)."""
    if name not in _TOYS:
        raise KeyError(f"unknown 2D dataset {name!r}; available: {', '.join(_TOYS)}")
    return _TOYS[name]()


# --------------------------------------------------------------------------------------------
# scikit-learn's 8x8 digits: 1,797 images with 17 grey levels (0..16)
# --------------------------------------------------------------------------------------------
DIGIT_LEVELS = 17
DIGIT_SPLITS = {"train": slice(0, 1257), "val": slice(1257, 1527), "test": slice(1527, 1797)}


@dataclass(frozen=True)
class ImageSplit:
    images: torch.Tensor  # (N, 1, H, W) uint8 grey levels
    labels: torch.Tensor  # (N,) int64
    levels: int  # number of grey levels: values are 0..levels-1

    def __len__(self) -> int:
        return len(self.labels)


def digits(split: str = "train") -> ImageSplit:
    """The 8x8 digits, split 1257/270/270 (train/val/test) by a fixed permutation (seed 0)."""
    if split not in DIGIT_SPLITS:
        raise KeyError(f"unknown split {split!r}; use one of {', '.join(DIGIT_SPLITS)}")
    from sklearn.datasets import load_digits

    bunch = load_digits()
    order = np.random.default_rng(0).permutation(len(bunch.target))[DIGIT_SPLITS[split]]
    images = torch.as_tensor(bunch.images[order], dtype=torch.uint8).unsqueeze(1)
    return ImageSplit(images, torch.as_tensor(bunch.target[order]), DIGIT_LEVELS)


def sine_mixtures(n: int, length: int = 128, generator: torch.Generator | None = None) -> torch.Tensor:
    """n 1D signals in [-1, 1], shape (n, length): the sum of two sines with random periods (8 to 32
    samples) and phases, amplitudes 0.45 each, plus Gaussian noise of sd 0.02 (clipped to [-1, 1]).
    A signal with structure at two time scales, for WaveNet (lecture 01, part 2b)."""
    if n < 1 or length < 2:
        raise ValueError(f"need n >= 1 signals of length >= 2, got n = {n}, length = {length}")
    g = generator or torch.Generator().manual_seed(0)
    periods = 8 + 24 * torch.rand(n, 2, 1, generator=g)
    phases = 2 * math.pi * torch.rand(n, 2, 1, generator=g)
    t = torch.arange(length, dtype=torch.float32)
    waves = 0.45 * torch.sin(2 * math.pi * t / periods + phases).sum(1)
    return (waves + 0.02 * torch.randn(n, length, generator=g)).clamp(-1, 1)


def dequantize(images: torch.Tensor, levels: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform dequantization (Theis et al. 2016): x = (v + u) / levels, u ~ U[0, 1), in [0, 1).

    A continuous density p(x) on [0, 1)^D then gives a bound on the discrete likelihood:
    log P(v) >= E_u[log p(x)] - D log(levels)."""
    if images.dtype.is_floating_point:
        raise TypeError("dequantize expects integer grey levels (e.g. uint8), got floating-point data")
    if images.numel() and (images.min().item() < 0 or images.max().item() >= levels):  # .item(): uint8 < 256
        raise ValueError(f"grey levels must lie in 0..{levels - 1}")
    u = torch.rand(images.shape, generator=generator)
    return (images.float() + u) / levels


# --------------------------------------------------------------------------------------------
# MNIST from IDX files in a local cache (downloaded only when asked)
# --------------------------------------------------------------------------------------------
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def data_home() -> Path:
    """Where downloaded data lives: $UNIGM_DATA, else ~/.cache/unigm."""
    return Path(os.environ.get("UNIGM_DATA", Path.home() / ".cache" / "unigm"))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format), plain or gzipped."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    data = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim)
    if data.size != math.prod(dims):
        raise ValueError(f"{path}: header says {dims} but the file holds {data.size} values")
    return data.reshape(dims)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (gzipped if the name ends in .gz)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def download_mnist(root: Path | None = None, mirror: str = MNIST_MIRROR) -> Path:
    """Fetch the four MNIST files into root/mnist. Raises a clear error when offline."""
    folder = (root or data_home()) / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    for name in sum(MNIST_FILES.values(), ()):
        target = folder / name
        if target.exists():
            continue
        try:
            with urllib.request.urlopen(mirror + name, timeout=30) as response:
                payload = response.read()
        except (urllib.error.URLError, OSError) as err:
            raise ConnectionError(
                f"could not download {mirror + name} ({err}). You seem to be offline. Copy the MNIST "
                f"IDX files ({', '.join(sum(MNIST_FILES.values(), ()))}) into {folder} by hand, or use "
                "the 8x8 digits (unigm.data.digits), which need no download."
            ) from err
        tmp = target.with_suffix(".part")
        tmp.write_bytes(payload)
        tmp.replace(target)
    return folder


def mnist(split: str = "train", root: Path | None = None, download: bool = False) -> ImageSplit:
    """MNIST (28x28, 256 grey levels) from root/mnist (default: data_home()).

    Nothing is downloaded unless download=True; missing files give a message saying how to
    get them."""
    if split not in MNIST_FILES:
        raise KeyError(f"unknown MNIST split {split!r}; use 'train' or 'test'")
    folder = (root or data_home()) / "mnist"
    paths = [folder / name for name in MNIST_FILES[split]]
    missing = [p for p in paths if not p.exists() and not p.with_suffix("").exists()]
    if missing:
        if not download:
            raise FileNotFoundError(
                f"MNIST {split} files not found in {folder} (missing: {', '.join(p.name for p in missing)}). "
                "Call unigm.data.mnist(..., download=True) or run `python -m unigm.course.cli download-mnist` "
                f"once with network access, or copy the IDX files there (set $UNIGM_DATA to move the cache)."
            )
        download_mnist(root)
    images, labels = (read_idx(p if p.exists() else p.with_suffix("")) for p in paths)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"MNIST files in {folder} have inconsistent shapes {images.shape}, {labels.shape}")
    return ImageSplit(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)), 256)
