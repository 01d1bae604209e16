"""Every 2D recipe of the zoo, trained as the recipe says, passes its quality gate.

G is the fraction of the W2 gap between the best single Gaussian and fresh data that the model
closes (metrics.Reference.gap_closed). The gates live in one table, the recipes' `min_quality`
(zoo.quality_gates()), which the lectures read too; measured values are in README.md (make bench).
All recipes are trained once per test session, several at a time (train_many: one process per
core), exactly as bench.run_one trains them one by one.
"""
import functools

import pytest

from unigm import bench, data, metrics, zoo
from unigm.train import Job, train_many

GATES = zoo.quality_gates("2d")


@functools.cache
def reference(dataset):
    return metrics.reference(data.toy(dataset))


@pytest.fixture(scope="module")
def trained(request):
    """The selected (model, dataset) pairs (all of them, or those `-k` keeps), trained at once."""
    selected = [item.callspec.params for item in request.session.items  # notebook cells are items too
                if getattr(item, "originalname", None) == "test_model_reaches_its_quality_gate"]
    pairs = [(p["model"], p["dataset"]) for p in selected]
    jobs = [Job(model, data.toy(dataset), seed=0) for model, dataset in pairs]
    return dict(zip(pairs, train_many(jobs, progress=False)))


def test_every_2d_recipe_has_a_gate_on_both_datasets():
    for name in zoo.names_2d():
        assert {"two_moons", "eight_gaussians"} <= set(zoo.recipe(name).min_quality), name


@pytest.mark.parametrize("model, dataset", list(GATES))
def test_model_reaches_its_quality_gate(trained, model, dataset):
    trained_model, history = trained[model, dataset]
    row = bench.measure(trained_model, data.toy(dataset), reference(dataset), history, seed=1)  # as bench.run_one
    assert row.gap_closed >= GATES[model, dataset], row
    if row.nll is not None:  # NLL >= H(p_data) up to noise; a likelihood better than the truth is a bug
        assert row.nll > row.data_entropy - 0.1, row
