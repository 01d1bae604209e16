"""The course map is built from the derivations registry and the benchmark, so it cannot drift."""
import pytest

from unigm.course import course_map
from unigm.course.derivations import core


def test_every_edge_names_registered_checks_or_a_lecture_and_every_node_is_connected():
    graph = course_map.build()
    assert set(graph.nodes) == set(course_map.NODES)
    for a, b, d in graph.edges(data=True):
        assert d["checks"] or d["lecture"], (a, b)
        for name in d["checks"]:
            assert name in core.REGISTRY
    assert all(graph.degree(n) >= 1 for n in graph.nodes)


def test_a_missing_check_breaks_the_map(monkeypatch):
    broken = course_map.EDGES + (course_map.Edge("score", "gan", "nonsense", ("99.9 no such check",)),)
    monkeypatch.setattr(course_map, "EDGES", broken)
    with pytest.raises(KeyError, match="no check named"):
        course_map.build()


def test_family_nodes_carry_their_best_benchmark_row():
    row = lambda model, family, fd, bits: {"model": model, "family": family, "bits_per_dim": bits,
                                           "quality": {"frechet_distance": fd, "frechet_distance_floor": 4.5}}
    bench = {"rows": [row("gan", "GAN", 30.0, None), row("wgan_gp", "GAN", 20.0, None),
                      row("vae", "VAE", 50.0, 3.1), row("beta_vae", "VAE", 60.0, 2.9)]}
    graph = course_map.build(bench)
    assert graph.nodes["gan"]["bench"]["model"] == "wgan_gp" and graph.nodes["gan"]["bench"]["bits_per_dim"] is None
    vae = graph.nodes["vae"]["bench"]
    assert (vae["model"], vae["frechet_distance"], vae["bits_model"], vae["bits_per_dim"]) == ("vae", 50.0, "beta_vae", 2.9)
    assert graph.nodes["score"]["bench"] is None
