"""The image benchmark (unigm.bench_images): its pieces against closed forms, the committed results
against the README, and the full-profile code path end to end on a tiny synthetic MNIST in IDX format."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from unigm import bench_images, data, judge, zoo

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "bench_images.json"


def test_every_image_capable_model_is_benchmarked_and_exclusions_are_explained():
    names = bench_images.models()
    assert set(zoo.names_2d()) - set(names) == set(bench_images.EXCLUDED)
    assert all(bench_images.EXCLUDED.values())
    for name in bench_images.IMAGE_ONLY:
        assert name in names and name in zoo.names()
    assert {bench_images.family(n) for n in names} == {"diffusion", "flow", "GAN", "VAE", "autoregressive"}


def test_independent_pixel_baseline_equals_a_hand_count():
    train, test = data.digits("train"), data.digits("test")
    bits = 0.0
    for i in range(64):
        counts = np.bincount(train.images.flatten(1)[:, i].numpy(), minlength=17) + 1.0
        p = counts / counts.sum()
        bits += -np.log2(p[test.images.flatten(1)[:, i].numpy()]).mean()
    assert bench_images.independent_pixels_bits("digits") == pytest.approx(bits / 64, rel=1e-9)


def test_fitted_slope_recovers_a_power_law():
    x = np.array([250, 500, 1000, 2000, 4000])
    assert bench_images.fitted_slope(x, 3.0 * x ** -0.7) == pytest.approx(-0.7, abs=1e-9)
    points = [{"steps": s, "hidden": 128, "parameters": 1, "frechet_distance": 4.0 + 100 * s ** -0.5,
               "frechet_distance_floor": 4.0} for s in x]
    assert bench_images.scaling_summary(points)["steps_slope"] == pytest.approx(-0.5, abs=1e-9)


def test_to_images_and_grids_are_in_the_judges_format():
    grey = torch.tensor([[[[0.0, 16.0]]]])
    assert torch.allclose(bench_images.to_images(grey, 17, True), torch.tensor([[[[0.5 / 17, 16.5 / 17]]]]))
    assert bench_images.to_images(torch.tensor([-0.2, 0.5, 1.3]), 17, False).tolist() == [0.0, 0.5, 1.0]
    grid = bench_images.sample_grid(torch.rand(20, 1, 8, 8), 17, False)
    assert np.array(grid).shape == (16, 8, 8) and 0 <= np.min(grid) and np.max(grid) <= 16


def test_replace_block_rewrites_only_the_marked_table():
    text = f"before\n{bench_images.BEGIN_MARK}\nold\n{bench_images.END_MARK}\nafter\n"
    out = bench_images.replace_block(text, "| new |\n")
    assert out == f"before\n{bench_images.BEGIN_MARK}\n| new |\n{bench_images.END_MARK}\nafter\n"
    with pytest.raises(ValueError, match="exactly one"):
        bench_images.replace_block("no markers", "x")


def test_unknown_or_excluded_models_are_refused_before_training(tmp_path):
    with pytest.raises(SystemExit, match="unknown model 'nope'"):
        bench_images.main(["--models", "nope", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="exact-trace CNF"):
        bench_images.main(["--models", "cnf", "--out", str(tmp_path)])


def test_committed_results_are_complete_and_the_readme_table_is_generated_from_them():
    results = json.loads(RESULTS.read_text())
    meta = results["meta"]
    assert meta["dataset"] == "digits" and meta["profile"] == "quick" and meta["commit"] != "unknown"
    assert [r["model"] for r in results["rows"]] == bench_images.models()
    for row in results["rows"]:
        assert row["steps"] == meta["steps"] and row["batch_size"] == meta["batch_size"] and row["seed"] == 0
        assert math.isfinite(row["quality"]["frechet_distance"]) and row["nfe"] >= 1
    likelihood = {r["model"] for r in results["rows"] if r["bits_per_dim"] is not None}
    assert {"vae", "realnvp", "flow_matching", "ddpm", "pixelcnn", "pixel_transformer"} <= likelihood
    assert {(s["model"], s["seed"]) for s in results["seeds"]} == {
        (m, s) for m in bench_images.SPREAD_MODELS for s in bench_images.SEEDS}
    readme = (ROOT / "README.md").read_text()
    block = readme.split(bench_images.BEGIN_MARK)[1].split(bench_images.END_MARK)[0]
    assert block.strip() == bench_images.markdown_table(results).strip()


def _synthetic_mnist(root: Path, n_train: int = 120, n_test: int = 60) -> None:
    """A tiny MNIST-shaped set in IDX format: class c is a bright bar at row 2c + 4 on noise."""
    folder = root / "mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 40, size=(n, 28, 28))
        for i, c in enumerate(labels):
            images[i, 2 * c + 4: 2 * c + 7, 4:24] = 255 - rng.integers(0, 30)
        image_file, label_file = data.MNIST_FILES[split]
        data.write_idx(folder / image_file, images.astype(np.uint8))
        data.write_idx(folder / label_file, labels.astype(np.uint8))


def test_full_profile_runs_the_same_code_path_on_mnist_shaped_idx_files(tmp_path, monkeypatch):
    _synthetic_mnist(tmp_path)
    monkeypatch.setenv("UNIGM_DATA", str(tmp_path))
    monkeypatch.setenv("UNIGM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("UNIGM_PROFILE", "full")
    monkeypatch.setenv("UNIGM_DEVICE", "cpu")
    judge.clear_memory()
    out = tmp_path / "out"
    bench_images.main(["--models", "vae", "realnvp", "gan", "--steps", "5", "--workers", "1", "--seeds", "0",
                       "--no-scaling", "--out", str(out)])
    results = json.loads((out / "bench_images.json").read_text())
    meta = results["meta"]
    assert meta["dataset"] == "mnist" and meta["profile"] == "full" and meta["samples"] == 120
    assert [r["model"] for r in results["rows"]] == ["vae", "realnvp", "gan"]
    for row in results["rows"]:
        assert row["dataset"] == "mnist" and row["steps"] == 5
        assert np.array(row["grid"]).shape == (16, 28, 28) and np.max(row["grid"]) <= 255
        assert row["quality"]["n"] == 120 and math.isfinite(row["quality"]["frechet_distance"])
    bits = {r["model"]: r["bits_per_dim"] for r in results["rows"]}
    assert bits["gan"] is None and math.isfinite(bits["vae"]) and math.isfinite(bits["realnvp"])
    assert 0 < results["independent_pixels_bits_per_dim"] < 8  # 256 levels: at most 8 bits
    assert "images" in json.loads((out / "bench.json").read_text())
    judge.clear_memory()


def test_the_full_profile_without_mnist_files_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("UNIGM_DATA", str(tmp_path))
    monkeypatch.setenv("UNIGM_PROFILE", "full")
    with pytest.raises(FileNotFoundError, match="download=True"):
        bench_images.main(["--models", "vae", "--steps", "5", "--out", str(tmp_path)])
