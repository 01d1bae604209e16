"""Adding a model is one file: a class with a Config, registered with its recipe. This test is
that file, for a full-covariance Gaussian (the 'single Gaussian' baseline of the quality score),
and checks that the zoo, the trainer and the benchmark take it without any other change: its G
must come out near 0, by the definition of G."""
import math
from dataclasses import dataclass

import pytest
import torch

from unigm import bench, data, registry, zoo
from unigm.base import LikelihoodBased
from unigm.densities import standard_normal_log_prob


@dataclass
class GaussianConfig:
    jitter: float = 1e-4


class Gaussian(LikelihoodBased):
    """x = mean + L z, z ~ N(0, I), L lower triangular with a positive diagonal."""

    Config = GaussianConfig

    def __init__(self, event_shape, config=None):
        super().__init__(event_shape, config or self.Config())
        d = self.event_dim
        self.mean = torch.nn.Parameter(torch.zeros(d))
        self.raw_scale = torch.nn.Parameter(torch.zeros(d, d))

    def scale(self):  # (D, D) lower triangular, positive diagonal
        lower = torch.tril(self.raw_scale, -1)
        return lower + torch.diag(self.raw_scale.diagonal().exp() + self.config.jitter)

    def log_prob(self, x):
        z = torch.linalg.solve_triangular(self.scale(), (self.flat(self.check_input(x)) - self.mean).T, upper=False).T
        return standard_normal_log_prob(z) - self.scale().diagonal().log().sum()

    def loss(self, x, *, generator=None):
        return -self.log_prob(x).mean()

    @torch.no_grad()
    def sample(self, n, steps=None, *, generator=None):
        return self.unflat(self.mean + self.randn(self.check_n(n), self.event_dim, generator=generator) @ self.scale().T)


@pytest.fixture
def registered_gaussian():
    recipe = registry.Recipe(steps=400, lr=3e-2, min_quality={"two_moons": -0.15})
    cls = registry.register("test_gaussian", recipes={"2d": recipe})(Gaussian)
    try:
        yield cls
    finally:
        registry.MODELS.pop("test_gaussian")
        registry.RECIPES.pop("test_gaussian")


def test_a_registered_model_is_built_trained_and_measured_by_the_zoo(registered_gaussian):
    assert "test_gaussian" in zoo.names() and "test_gaussian" in zoo.names_2d()
    assert isinstance(zoo.make("test_gaussian", (2,), jitter=1e-3), Gaussian)
    assert zoo.quality_gates()[("test_gaussian", "two_moons")] == -0.15
    row = bench.run_one("test_gaussian", "two_moons")
    assert abs(row.gap_closed) < 0.15, row  # it IS the single-Gaussian baseline: G ~ 0
    assert row.nfe == 0 and row.steps == 400  # no network: the counter sees none
    # maximum likelihood finds the data's mean and covariance, so its NLL is the entropy of the
    # Gaussian with the data's covariance, 1/2 log det(2 pi e Sigma), above the data's own entropy
    x = data.toy("two_moons").sample(20_000, torch.Generator().manual_seed(5)).double()
    gaussian_entropy = 0.5 * (2 * (1 + math.log(2 * math.pi)) + torch.logdet(torch.cov(x.T)).item())
    assert row.nll == pytest.approx(gaussian_entropy, abs=0.05) and row.nll > row.data_entropy, row


def test_registering_twice_or_without_a_config_or_for_an_unknown_task_fails(registered_gaussian):
    with pytest.raises(ValueError, match="already registered"):
        registry.register("test_gaussian")(type("Other", (Gaussian,), {}))
    with pytest.raises(TypeError, match="Config"):
        registry.register("no_config")(type("NoConfig", (), {}))
    with pytest.raises(ValueError, match="unknown task"):
        registry.register("bad_task", recipes={"video": registry.Recipe(steps=1, lr=1.0)})(Gaussian)


def test_recipes_apply_the_profile_in_one_place(monkeypatch):
    recipe = zoo.recipe("ddpm")
    monkeypatch.setenv("UNIGM_PROFILE", "quick")
    assert recipe.fit_kwargs() == dict(steps=recipe.steps, batch_size=256, lr=recipe.lr, ema_decay=0.995)
    monkeypatch.setenv("UNIGM_PROFILE", "full")
    assert recipe.fit_kwargs()["steps"] == registry.FULL_PROFILE_STEP_FACTOR * recipe.steps
    assert recipe.fit_kwargs(steps=7)["steps"] == 7
    with pytest.raises(KeyError, match="no video recipe"):
        zoo.recipe("ddpm", task="video")
