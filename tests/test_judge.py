"""The judge: accurate on held-out digits, deterministic, cached safely, strict about its inputs."""
import warnings

import pytest
import torch

from unigm import data, judge
from unigm.tensors import ShapeError


def same_weights(a: judge.Judge, b: judge.Judge) -> bool:
    sa, sb = a.net.state_dict(), b.net.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private cache folder and the judge trained into it (about a second on one core)."""
    folder = tmp_path_factory.mktemp("judge-cache")
    judge.clear_memory()
    trained = judge.load("digits", directory=folder)
    yield folder, trained
    judge.clear_memory()


def test_judge_is_accurate_on_the_test_split(cache):
    _, trained = cache
    test = data.digits("test")
    assert trained.test_accuracy >= 0.95
    # the reported number is the test-split accuracy, recomputed here independently
    predicted = trained.predict_proba(test.images).argmax(1)
    assert trained.test_accuracy == pytest.approx((predicted == test.labels).double().mean().item())


def test_probabilities_and_features_have_the_documented_shapes(cache):
    _, trained = cache
    x = data.dequantize(data.digits("val").images[:50], data.DIGIT_LEVELS, torch.Generator().manual_seed(0))
    probs, features = trained.predict_proba(x), trained.features(x)
    assert probs.shape == (50, 10) and features.shape == (50, trained.feature_dim)
    torch.testing.assert_close(probs.sum(1), torch.ones(50))
    assert (features >= 0).all()  # the penultimate layer is taken after its ReLU
    # the features are the penultimate layer: the last Linear maps them to the logits
    torch.testing.assert_close(trained.net[-1](features).softmax(1), probs)


def test_integer_grey_levels_mean_the_centre_of_their_bin(cache):
    _, trained = cache
    v = data.digits("val").images[:20]
    centre = (v.float() + 0.5) / data.DIGIT_LEVELS
    torch.testing.assert_close(trained.features(v), trained.features(centre))
    torch.testing.assert_close(trained.features(v.long()), trained.features(centre))


def test_training_is_deterministic(cache):
    _, trained = cache
    assert same_weights(judge.train("digits"), trained)


def test_the_cache_is_reloaded_without_training(cache, monkeypatch):
    folder, trained = cache
    path = judge.cache_path("digits", directory=folder)
    assert path.exists() and path.suffix == ".safetensors" and trained.path == path
    assert not list(folder.glob("*.part"))  # the atomic write left no temporary file behind
    judge.clear_memory()
    monkeypatch.setattr(judge, "_train_net", lambda *args: pytest.fail("retrained despite a valid cache"))
    reloaded = judge.load("digits", directory=folder)
    assert same_weights(reloaded, trained) and reloaded.test_accuracy == trained.test_accuracy
    assert judge.load("digits", directory=folder) is reloaded  # memoised in this process


def test_a_corrupt_cache_file_is_detected_and_retrained(cache, tmp_path):
    folder, trained = cache
    source = judge.cache_path("digits", directory=folder)
    for damage in ("flip a weight byte", "truncate"):
        path = judge.cache_path("digits", directory=tmp_path)
        raw = bytearray(source.read_bytes())
        if damage == "truncate":
            raw = raw[: len(raw) // 2]
        else:
            raw[-100] ^= 0xFF  # inside the last tensor: the header still parses, the hash does not match
        path.write_bytes(bytes(raw))
        judge.clear_memory()
        with pytest.warns(RuntimeWarning, match="damaged"):
            repaired = judge.load("digits", directory=tmp_path)
        assert same_weights(repaired, trained)
        judge.clear_memory()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the rewritten file is valid: no second warning
            assert same_weights(judge.load("digits", directory=tmp_path), trained)


def test_the_cache_key_follows_config_and_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("UNIGM_CACHE", str(tmp_path))
    assert judge.cache_dir() == tmp_path
    assert judge.cache_path("digits").parent == tmp_path
    other = judge.JudgeConfig(steps=601)
    assert judge.cache_key("digits", other) != judge.cache_key("digits", judge.JudgeConfig())


@pytest.mark.parametrize("bad, error, message", [
    (torch.rand(4, 8, 8), ShapeError, "unsqueeze"),
    (torch.rand(4, 1, 28, 28), ShapeError, r"\(N, 1, 8, 8\)"),
    (torch.rand(0, 1, 8, 8), ShapeError, "N >= 1"),
    (torch.rand(4, 1, 8, 8).numpy(), ShapeError, "torch.Tensor"),
    (torch.full((4, 1, 8, 8), float("nan")), ValueError, "NaN"),
    (torch.full((4, 1, 8, 8), float("inf")), ValueError, "NaN or inf"),
    (torch.rand(4, 1, 8, 8) * 16, ValueError, "grey levels"),
    (torch.rand(4, 1, 8, 8) * 1.2 - 0.1, ValueError, "clamp"),
    (torch.rand(4, 1, 8, 8) * 2 - 1, ValueError, r"\(x \+ 1\) / 2"),
    (torch.full((4, 1, 8, 8), 17, dtype=torch.uint8), ValueError, "0..16"),
    (torch.full((4, 1, 8, 8), -1, dtype=torch.int64), ValueError, "0..16"),
    (torch.ones(4, 1, 8, 8, dtype=torch.bool), ValueError, "bool"),
])
def test_bad_inputs_are_rejected_with_a_clear_message(cache, bad, error, message):
    _, trained = cache
    with pytest.raises(error, match=message):
        trained.features(bad)
    with pytest.raises(error, match=message):
        trained.predict_proba(bad)


def test_unknown_and_unavailable_datasets(tmp_path, monkeypatch):
    monkeypatch.setenv("UNIGM_DATA", str(tmp_path))  # no MNIST files there
    with pytest.raises(FileNotFoundError, match="MNIST train files not found"):
        judge.load("mnist", directory=tmp_path)
    with pytest.raises(KeyError, match="available: digits, mnist"):
        judge.load("cifar10", directory=tmp_path)
