"""Every 2D recipe of the zoo, trained as the recipe says, passes its quality gate.

G is the fraction of the W2 gap between the best single Gaussian and fresh data that the model
closes (metrics.Reference.gap_closed). The gates live in one table, the recipes' `min_quality`
(zoo.quality_gates()), which the lectures read too; measured values are in README.md (make bench).
"""
import pytest

from unigm import bench, zoo

GATES = zoo.quality_gates("2d")


def test_every_2d_recipe_has_a_gate_on_both_datasets():
    for name in zoo.names_2d():
        assert {"two_moons", "eight_gaussians"} <= set(zoo.recipe(name).min_quality), name


@pytest.mark.parametrize("model, dataset", list(GATES))
def test_model_reaches_its_quality_gate(model, dataset):
    row = bench.run_one(model, dataset)
    assert row.gap_closed >= GATES[model, dataset], row
    if row.nll is not None:  # NLL >= H(p_data) up to noise; a likelihood better than the truth is a bug
        assert row.nll > row.data_entropy - 0.1, row
