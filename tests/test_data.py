"""Data oracles: exact log-densities against scipy / torch.distributions, samplers against densities."""
import gzip
import math
import urllib.error

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from unigm import data


def test_gaussian_mixture_log_prob_matches_torch_distributions():
    toy = data.toy("eight_gaussians")
    mix = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(torch.ones(8)),
        torch.distributions.Independent(torch.distributions.Normal(toy.means, toy.std), 1))
    x = toy.sample(500, torch.Generator().manual_seed(0)) + 0.3 * torch.randn(500, 2)
    torch.testing.assert_close(toy.log_prob(x), mix.log_prob(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["two_moons", "swiss_roll", "two_spirals", "rings"])
def test_noisy_curve_log_prob_matches_adaptive_quadrature(name):
    """p(x) = sum_k w_k int N(x; c_k(s), sigma^2 I) ds / (b - a), integrated by scipy.quad."""
    toy = data.toy(name)
    x = toy.sample(5, torch.Generator().manual_seed(1))
    for point in x.double():
        total = 0.0
        for curve, weight in zip(toy.curves, toy.weights.tolist()):
            def integrand(s):
                c = curve.fn(torch.tensor([s], dtype=torch.float64))[0]
                return stats.multivariate_normal.pdf(point.numpy(), c.numpy(), toy.noise**2)
            value, _ = integrate.quad(integrand, curve.low, curve.high, limit=500, epsabs=1e-12)
            total += weight * value / (curve.high - curve.low)
        assert toy.log_prob(point[None].float()).item() == pytest.approx(math.log(total), abs=1e-4)


@pytest.mark.parametrize("name", data.toy_names())
def test_density_integrates_to_one_and_matches_sample_moments(name):
    """Grid quadrature of p and of x p(x) against the sampler's mean: density and sampler agree."""
    toy = data.toy(name)
    grid = torch.linspace(-5, 5, 201)
    xx, yy = torch.meshgrid(grid, grid, indexing="xy")
    points = torch.stack([xx.flatten(), yy.flatten()], 1)
    density = toy.log_prob(points).double().exp()
    cell = (grid[1] - grid[0]).item() ** 2
    assert density.sum().item() * cell == pytest.approx(1.0, abs=2e-3)
    samples = toy.sample(200_000, torch.Generator().manual_seed(2)).double()
    mean_grid = (points.double() * density[:, None]).sum(0) * cell
    second_grid = (points.double().pow(2) * density[:, None]).sum(0) * cell
    torch.testing.assert_close(samples.mean(0), mean_grid, atol=0.02, rtol=0)
    torch.testing.assert_close(samples.pow(2).mean(0), second_grid, atol=0.05, rtol=0.02)


def test_checkerboard_is_uniform_on_eight_black_squares():
    toy = data.toy("checkerboard")
    x = toy.sample(10_000, torch.Generator().manual_seed(0))
    assert torch.all(toy.log_prob(x) == -math.log(8))
    assert toy.log_prob(torch.tensor([[0.5, -0.5], [2.5, 0.0]])).isinf().all()  # white square, outside
    cells = torch.floor(x + 2).long()
    counts = torch.bincount(cells[:, 0] * 4 + cells[:, 1], minlength=16)
    assert (counts > 0).sum() == 8
    assert stats.chisquare(counts[counts > 0].numpy()).pvalue > 1e-3
    assert toy.entropy() == (math.log(8), 0.0)


def test_entropy_of_a_single_narrow_mixture_component_is_gaussian_entropy():
    toy = data.GaussianMixture("one", [[0.0, 0.0]], std=0.3)
    value, stderr = toy.entropy(n=50_000)
    exact = 1 + math.log(2 * math.pi) + 2 * math.log(0.3)  # entropy of N(0, 0.09 I) in 2D
    assert abs(value - exact) < 4 * stderr + 1e-3


def test_toys_are_seeded_and_unknown_names_are_explained():
    a = data.toy("two_moons").sample(10, torch.Generator().manual_seed(5))
    b = data.toy("two_moons").sample(10, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    with pytest.raises(KeyError, match="available: eight_gaussians"):
        data.toy("moons")
    with pytest.raises(ValueError, match="shape \\(n, 2\\)"):
        data.toy("two_moons").log_prob(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="positive int"):
        data.toy("rings").sample(0)


def test_digits_split_is_fixed_disjoint_and_complete():
    splits = {s: data.digits(s) for s in ("train", "val", "test")}
    assert [len(s) for s in splits.values()] == [1257, 270, 270]
    assert splits["train"].images.shape[1:] == (1, 8, 8) and splits["train"].images.dtype == torch.uint8
    from sklearn.datasets import load_digits

    all_images = np.concatenate([s.images.numpy().reshape(-1, 64) for s in splits.values()])
    reference = load_digits().data.astype(np.uint8)
    assert sorted(map(bytes, all_images)) == sorted(map(bytes, reference))
    assert torch.equal(data.digits("val").images, splits["val"].images)
    with pytest.raises(KeyError):
        data.digits("validation")


def test_dequantize_stays_in_its_bin():
    images = data.digits("test").images
    x = data.dequantize(images, data.DIGIT_LEVELS, torch.Generator().manual_seed(0))
    assert x.min() >= 0 and x.max() < 1
    assert torch.equal(torch.floor(x * data.DIGIT_LEVELS).to(torch.uint8), images)
    with pytest.raises(TypeError):
        data.dequantize(x, 17)


def test_dequantize_accepts_every_uint8_level_of_256():  # MNIST: 255 < 256, although 256 is no uint8
    images = torch.tensor([[0, 128, 255]], dtype=torch.uint8)
    x = data.dequantize(images, 256, torch.Generator().manual_seed(0))
    assert torch.equal(torch.floor(x * 256).to(torch.uint8), images)
    with pytest.raises(ValueError, match="0..15"):
        data.dequantize(images, 16)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, suffix):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / f"tiny-idx3-ubyte{suffix}"
    data.write_idx(path, array)
    np.testing.assert_array_equal(data.read_idx(path), array)


def test_idx_reader_rejects_other_files(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x03\x04hello")
    with pytest.raises(ValueError, match="not an IDX file"):
        data.read_idx(bad)


def _fake_mnist(root, n=5):
    folder = root / "mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    images_name, labels_name = data.MNIST_FILES["test"]
    data.write_idx(folder / images_name, images)
    with gzip.open(folder / labels_name, "wb") as f:  # the label file written by hand, as IDX
        f.write(bytes([0, 0, 8, 1]) + n.to_bytes(4, "big") + labels.tobytes())
    return images, labels


def test_mnist_reads_the_local_cache(tmp_path):
    images, labels = _fake_mnist(tmp_path)
    split = data.mnist("test", root=tmp_path)
    assert split.images.shape == (5, 1, 28, 28) and split.levels == 256
    np.testing.assert_array_equal(split.images[:, 0].numpy(), images)
    np.testing.assert_array_equal(split.labels.numpy(), labels)


def test_mnist_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        data.mnist("train", root=tmp_path)


def test_mnist_download_offline_gives_a_clear_message(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(data.urllib.request, "urlopen", offline)
    with pytest.raises(ConnectionError, match="offline"):
        data.mnist("train", root=tmp_path, download=True)
