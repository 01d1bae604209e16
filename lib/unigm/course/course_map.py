"""The course map: every family and the exact equivalences between them, built from the library.

Each edge of the map names its evidence: a machine-checked derivation of unigm.course.derivations
(resolved by name, so a renamed or deleted check breaks the map instead of leaving it stale), or a
lecture section whose cells measure it. Each family node carries its measured row of the image
benchmark (results/bench_images.json: the family's best model by Fréchet distance and its best
bits/dim), so the map cannot drift from the code or the numbers.

    graph = course_map.build(bench_results)     # networkx.Graph
    reports = course_map.verify(graph)           # runs every check the edges name
    course_map.draw(graph, ax)
"""
from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from .derivations import core as derivations

# The nodes: the course's views of one problem. `family` links a node to the benchmark's families.
NODES = {
    "score": dict(label="score matching\n(denoising)", family=None),
    "diffusion": dict(label="diffusion\n(SDE)", family="diffusion"),
    "ode": dict(label="probability-flow\nODE", family=None),
    "flow": dict(label="flows and\nflow matching", family="flow"),
    "likelihood": dict(label="exact likelihood\n(change of variables)", family="autoregressive"),
    "energy": dict(label="energy-based\nmodels", family=None),
    "vae": dict(label="VAE\n(ELBO)", family="VAE"),
    "gan": dict(label="GANs\n(f-divergences, IPMs)", family="GAN"),
    "ot": dict(label="optimal transport,\nWasserstein gradient flows", family=None),
    "interpolant": dict(label="stochastic\ninterpolants", family=None),
}


@dataclass(frozen=True)
class Edge:
    a: str
    b: str
    relation: str  # what is exactly equal, in a few words
    checks: tuple[str, ...] = ()  # names of derivation checks that prove it
    lecture: str | None = None  # or the lecture section that measures it


EDGES = (
    Edge("score", "diffusion", "the DDPM loss is denoising score matching; the noise is the scaled score",
         ("1.5 DDPM loss = DSM loss", "1.2 score is scaled noise")),
    Edge("diffusion", "ode", "the reverse SDE and the PF-ODE have the same marginals (Fokker-Planck)",
         ("2.2 PF-ODE continuity = Fokker-Planck (1D)", "2.4 reverse SDE keeps the marginals")),
    Edge("ode", "flow", "the VP PF-ODE is flow matching's ODE after a change of scale and clock",
         ("3.5 VP velocity is Song's PF-ODE", "3.8 VP and linear trajectories coincide")),
    Edge("flow", "score", "the flow-matching loss is a weighted noise-prediction loss",
         ("3.7 FM loss = weighted eps loss",)),
    Edge("flow", "likelihood", "an ODE flow has an exact likelihood by the instantaneous change of variables",
         ("8.1 instantaneous change of variables", "8.2 FlowMatching.log_prob is exact")),
    Edge("score", "energy", "a score is minus the gradient of an energy; score matching fits it without Z",
         ("6.3 diffusion score = -grad E_t", "6.8 Hyvarinen's integration by parts")),
    Edge("energy", "vae", "the ELBO is a negative free energy", ("6.1 ELBO = -E_q[E] + H[q]",
                                                                  "6.5 the library VAE's ELBO is a negative free energy")),
    Edge("energy", "gan", "the optimal discriminator's logit is an energy difference, log p - log q",
         ("4.3 logit of D* = log p - log q", "6.4 GAN logit = energy difference")),
    Edge("diffusion", "ot", "the forward (OU) process is the Wasserstein gradient flow of a KL; JKO steps track it",
         ("7.2 OU = W2 gradient flow of KL(p||N(0,I))", "7.6 JKO steps = the library's VP forward SDE")),
    Edge("gan", "diffusion", "DiffFlow: grad logit D* is a score difference; the flow has Langevin's marginals",
         lecture="05, section 3"),
    Edge("energy", "flow", "Energy Matching: one time-independent potential, OT flow far and Boltzmann near the data",
         lecture="05, section 4"),
    Edge("interpolant", "flow", "flow matching is the linear interpolant with gamma = 0", lecture="05, section 1"),
    Edge("interpolant", "diffusion", "diffusion is the one-sided interpolant with alpha_t = exp(-1/2 int beta)",
         lecture="05, section 1"),
    Edge("interpolant", "ot", "with an entropic-OT coupling and gamma = sigma sqrt(t(1-t)): the Schrodinger bridge",
         lecture="05, section 1"),
)


def build(bench: dict | None = None) -> nx.Graph:
    """The map as a graph; each check name is resolved now (KeyError if the registry lacks it). With the
    image benchmark's results, each family node gets its best model's FD, its best bits/dim and the floor."""
    graph = nx.Graph()
    for name, node in NODES.items():
        graph.add_node(name, **node, bench=None)
    if bench is not None:
        for name, node in NODES.items():
            rows = [r for r in bench["rows"] if r["family"] == node["family"]]
            if rows:
                best = min(rows, key=lambda r: r["quality"]["frechet_distance"])
                bits = [r for r in rows if r["bits_per_dim"] is not None]
                graph.nodes[name]["bench"] = dict(
                    model=best["model"], frechet_distance=best["quality"]["frechet_distance"],
                    floor=best["quality"]["frechet_distance_floor"],
                    bits_per_dim=min(r["bits_per_dim"] for r in bits) if bits else None,
                    bits_model=min(bits, key=lambda r: r["bits_per_dim"])["model"] if bits else None)
    for edge in EDGES:
        if edge.a not in NODES or edge.b not in NODES:
            raise KeyError(f"edge {edge.a} - {edge.b} names an unknown node")
        if not edge.checks and not edge.lecture:
            raise ValueError(f"edge {edge.a} - {edge.b} has no evidence")
        names = tuple(derivations.resolve(c).name for c in edge.checks)
        graph.add_edge(edge.a, edge.b, relation=edge.relation, checks=names, lecture=edge.lecture)
    return graph


def verify(graph: nx.Graph) -> dict[str, bool]:
    """Run every derivation check the edges name: {check name: passed}."""
    names = sorted({c for _, _, d in graph.edges(data=True) for c in d["checks"]})
    return {name: derivations.run(name).passed for name in names}


POSITIONS = {"score": (0, 1), "diffusion": (1.2, 1.6), "ode": (2.4, 1), "flow": (2.4, -0.3),
             "likelihood": (3.6, -0.9), "energy": (0, -0.3), "vae": (-1.2, -1.0), "gan": (-1.2, 0.7),
             "ot": (1.2, 2.6), "interpolant": (3.6, 1.9)}


def draw(graph: nx.Graph, ax) -> None:
    """The map on a matplotlib axis: nodes with their benchmark numbers, edges labelled by their evidence."""
    pos = POSITIONS
    checked = [(a, b) for a, b, d in graph.edges(data=True) if d["checks"]]
    measured = [(a, b) for a, b, d in graph.edges(data=True) if not d["checks"]]
    nx.draw_networkx_edges(graph, pos, edgelist=checked, ax=ax, width=2.5, edge_color="C0")
    nx.draw_networkx_edges(graph, pos, edgelist=measured, ax=ax, width=2.5, edge_color="C1", style="dashed")
    labels = {}
    for name, node in graph.nodes(data=True):
        text = node["label"]
        if node["bench"]:
            b = node["bench"]
            text += f"\n{b['model']}: FD {b['frechet_distance']:.0f}"
            if b["bits_per_dim"] is not None:
                text += f"\n{b['bits_model']}: {b['bits_per_dim']:.2f} bits/dim"
        labels[name] = text
    nx.draw_networkx_labels(graph, pos, labels, ax=ax, font_size=12,
                            bbox=dict(boxstyle="round", facecolor="white", edgecolor="0.4"))
    edge_labels = {(a, b): ", ".join(c.split(" ", 1)[0] for c in d["checks"]) or f"lecture {d['lecture']}"
                   for a, b, d in graph.edges(data=True)}
    nx.draw_networkx_edge_labels(graph, pos, edge_labels, ax=ax, font_size=12, font_color="0.2")
    ax.set_xlim(-2.0, 4.4)
    ax.set_ylim(-1.5, 3.1)
