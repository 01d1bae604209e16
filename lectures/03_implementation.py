# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] slideshow={"slide_type": "slide"}
# # 03 Implementation: one API for every model
#
# *Reading time about 50 minutes, run time 1 to 1.5 minutes on a 2-core CPU (quick profile; 68 s
# measured alone on the course machine, 75 s in the test suite, up to 92 s while other jobs ran). Two models train in background
# processes while the first sections run; the two-process `torchrun` run of section 7 takes 10-15 s,
# most of it three Python processes starting up.*
#
# **Learning goals.** After this notebook you can
# 1. read the library's design from its code: the class diagram and the contract of each paradigm,
#    both generated here by walking the classes rather than drawn by hand;
# 2. add a new model (a score model trained by denoising score matching at many noise levels) in
#    about forty lines and train it with the unchanged `fit`, and explain how the same trainer runs
#    a two-player GAN;
# 3. measure the order of a sampler (Euler, Heun, RK4, DDIM, DPM-Solver-2) on an ODE whose solution
#    is known exactly, and explain why the order does not decide which sampler wins at 8 network
#    evaluations;
# 4. time the plain sampling loop against its compiled fast path, and run the same training script
#    in one process and in two `torchrun` processes and check that they train the same model;
# 5. profile a training step with `torch.profiler` and explain why small models are limited by
#    per-operation overhead rather than arithmetic.
#
# **Prerequisites.** Lecture 00 (the quality score $G$ and its noise floor), lecture 01 (the
# families), lecture 02 results 1-3 (denoising score matching, the probability-flow ODE, DDIM as an
# Euler step). Python classes and inheritance; what an ODE solver's step size is; what a gradient
# and an optimiser step are in PyTorch. No prior experience with distributed training.
#
# **The story.** The course's library `unigm` holds about forty models. A reader who opens it for
# the first time wants to know three things: what does every model promise, who calls those
# promises, and how fast do the callers run? This lecture answers them in that order. Part I draws
# the class hierarchy from the code, states the contract of each paradigm, adds a new model in the
# notebook and trains it, and shows why a GAN needs nothing special from the trainer. Part II
# treats samplers as plain functions of a callable: their order is measured on an exact problem,
# then they meet a trained network, then the loop itself is made fast. Part III leaves the single
# process: gradient accumulation, exact resume, a real two-process `torchrun` run, and a profile
# that says where a training step's time goes.

# %%
import copy
import inspect
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import networkx as nx
import torch
from IPython.display import Markdown, display
from torch.profiler import ProfilerActivity, profile

from unigm import base, bench, data, metrics, paths, runtime, samplers, schedules, zoo
from unigm.bench_samplers import break_even, matmul_peak_gflops, time_pair
from unigm.course.explorers import SamplerExplorer
from unigm.course.figures import check_readable, markdown_table, plot_losses, scatter2d, use_course_style
from unigm.course.widgets import show_source
from unigm.densities import GaussianMixtureOnPath
from unigm.nets import MLP
from unigm.registry import Recipe, register
from unigm.samplers.fast import UnrolledLoop
from unigm.tensors import per_example, rand, randn_like
from unigm.train import Hook, Job, TrainingQueue, ddp_demo, fit, loop

setup = runtime.setup(seed=0)
use_course_style()
moons = data.toy("two_moons")
ref = metrics.reference(moons)  # held-out data, the data-vs-data floor and the Gaussian baseline of G
# Two zoo models this lecture needs later start training now, in worker processes (one thread each),
# while the first sections run: a GAN for section 4, a DDPM for sections 5 and 6.
queue = TrainingQueue([Job("gan", moons), Job("ddpm", moons)])
setup

# %% [markdown] slideshow={"slide_type": "slide"}
# # Part I. The design
#
# ## 1. The design in one picture
#
# **Intuition.** A generative model in this library is a promise, not a procedure. Whatever it is
# inside, a model promises a training loss and a way to draw samples, and some models promise more:
# a log-likelihood, a score, a velocity. Everything else in the library (the trainer, the samplers,
# the metrics, the benchmark) is written against those promises and never asks which family it is
# talking to. So the first picture a reader needs is the tree of promises: which class promises what,
# and which models sit under each. We generate it from the code, by walking every registered
# model's method resolution order (`__mro__`, the list of classes Python searches for a method), so
# the picture cannot drift away from the library.

# %%
def library_classes() -> set[type]:
    """The classes of unigm.base (the contract) and every class a zoo model inherits from inside unigm."""
    classes = {c for _, c in inspect.getmembers(base, inspect.isclass)
               if c.__module__ == "unigm.base" and c is not base.Player}
    for name in zoo.names():
        classes |= {c for c in zoo.model_class(name).__mro__ if c.__module__.startswith("unigm.")}
    return classes


classes = library_classes()
hierarchy = nx.DiGraph()  # an edge child -> parent for every direct base class inside the library
hierarchy.add_nodes_from(classes)
hierarchy.add_edges_from((c, parent) for c in classes for parent in c.__bases__ if parent in classes)
registered = {zoo.model_class(name) for name in zoo.names()}
print(f"{len(zoo.names())} registered models, {len(classes)} classes, {hierarchy.number_of_edges()} inheritance edges; "
      f"acyclic: {nx.is_directed_acyclic_graph(hierarchy)}")

# %% tags=["helpers"]
# Drawing helpers of this notebook only (collapsed on the site): a left-to-right tree layout.
PARADIGMS = (base.LikelihoodBased, base.Implicit, base.ScoreBased, base.FlowBased, base.Representation)
MIXINS = (base.Adversarial, base.Conditional)
COLOURS = dict(zip(PARADIGMS, ("#cfe3f7", "#fde2c8", "#d5efd0", "#eadcf5", "#eeeeee")))


def paradigm_of(cls: type) -> type | None:
    return next((p for p in PARADIGMS if issubclass(cls, p)), None)


def tree_layout(graph: nx.DiGraph, root: type) -> dict:
    """x = depth below `root` along each class's first base that descends from root; y = leaves in
    depth-first order, a parent at the mean height of its children; the mixins under everything."""
    children: dict[type, list[type]] = {}
    for c in graph:
        if c is not root and issubclass(c, root):
            primary = next(b for b in c.__bases__ if isinstance(b, type) and issubclass(b, root))
            children.setdefault(primary, []).append(c)
    pos, row = {}, [0]

    def place(node, depth):
        kids = children.get(node, [])
        kids = sorted(kids, key=lambda c: (PARADIGMS.index(c) if c in PARADIGMS else 0, c.__name__))
        if kids:
            heights = [place(kid, depth + 1) for kid in kids]
            y = sum(heights) / len(heights)
        else:
            y, row[0] = row[0], row[0] + 1
        pos[node] = (depth, -y)
        return y

    place(root, 0)
    for i, mixin in enumerate(MIXINS):
        pos[mixin] = (1, -(row[0] + 1 + i))
    return pos


def draw_hierarchy(graph: nx.DiGraph, pos: dict, registered: set):
    rows = 1 - min(y for _, y in pos.values())
    fig, ax = plt.subplots(figsize=(16, 0.34 * rows + 1))
    for child, parent in graph.edges:
        (x0, y0), (x1, y1) = pos[child], pos[parent]
        dashed = parent in MIXINS
        ax.annotate("", xy=(x1 + 0.42, y1), xytext=(x0 - 0.42, y0),
                    arrowprops=dict(arrowstyle="-|>", color="#c0504d" if dashed else "0.55", lw=1,
                                    ls="--" if dashed else "-", shrinkA=0, shrinkB=0))
    for cls, (x, y) in pos.items():
        colour = COLOURS.get(paradigm_of(cls), "white")
        ax.text(x, y, cls.__name__, ha="center", va="center", fontsize=12,
                weight="bold" if cls in registered else "normal", style="normal" if cls in registered else "italic",
                bbox=dict(boxstyle="round,pad=0.25", fc=colour, ec="0.3" if cls in registered else "0.7"))
    ax.set_xlim(-0.5, max(x for x, _ in pos.values()) + 0.5)
    ax.set_ylim(min(y for _, y in pos.values()) - 1, 1)
    ax.axis("off")
    ax.set_title("unigm's classes, generated from the code: an arrow points from a class to its base; "
                 "bold = registered in the zoo, italic = shared base; red dashed = mixin", fontsize=13)
    return fig


# %%
fig = draw_hierarchy(hierarchy, tree_layout(hierarchy, base.GenerativeModel), registered)
check_readable(fig)
plt.show()

# %% [markdown]
# *Figure: every class between `GenerativeModel` (left) and the registered models (bold), drawn
# from `__mro__`. Column 2 holds the five paradigms, one colour each; italic classes are shared
# bases that hold a family's common code (`GAN`, `FlowMatching`, `ScoreSDE`, `BinaryImageAR`, ...).
# Look at the depth: no chain is longer than four steps, and a variant is usually one subclass that
# overrides one hook (`DDPMv` changes the network's target, `OTFlowMatching` the coupling). The two
# mixins at the bottom add a capability across paradigms: `Adversarial` (the model declares players)
# and `Conditional` (loss and sample take a condition).*
#
# **Predict.** Which paradigm holds the most registered models? Is there a registered model that is
# not a subclass of any of the five paradigms?

# %%
census = [{"base class": p.__name__, "registered models": sum(issubclass(c, p) for c in registered),
           "examples": ", ".join(sorted(zoo_name for zoo_name in zoo.names()
                                        if issubclass(zoo.model_class(zoo_name), p))[:4]) + ", ..."}
          for p in (*PARADIGMS, *MIXINS)]
display(Markdown(markdown_table(census, ["base class", "registered models", "examples"])))
unclassified = [c.__name__ for c in registered if paradigm_of(c) is None]
print("registered models outside the five paradigms:", unclassified or "none")

# %% [markdown]
# The census answers the question from the code. Paradigms partition the zoo (every registered class
# sits under exactly one of the five), while the mixins cut across them: the GANs are
# `Adversarial` and `Implicit`, the next-frame world model is `Conditional` and `LikelihoodBased`.
#
# The same walk gives a table a user actually wants before picking a model: for each model with a
# 2D recipe, its family (the subpackage it lives in), its paradigm, whether it defines a
# log-likelihood, how many network evaluations (NFE) one sample costs, and its size. The NFE is
# *measured*: `samplers.count_nfe()` counts the calls of top-level modules while one sample is drawn.
#
# **Predict.** Which 2D model spends the most network evaluations on one sample, and which the
# fewest? Does any model that is not `LikelihoodBased` still define `log_prob`?

# %%
def defines_log_prob(cls: type) -> bool:
    """Whether `cls` implements log_prob itself or inherits it from a model (not from the contract's stubs)."""
    return cls.log_prob.__qualname__.split(".")[0] not in {"GenerativeModel", "LikelihoodBased", "Representation"}


table = []
for name in zoo.names_2d():
    torch.manual_seed(0)
    model = zoo.make(name, (2,)).eval()
    with samplers.count_nfe() as nfe:
        model.sample(1, generator=torch.Generator().manual_seed(0))
    cls = type(model)
    table.append({"model": name, "family": cls.__module__.split(".")[1], "paradigm": paradigm_of(cls).__name__,
                  "log_prob": "yes" if defines_log_prob(cls) else "no", "NFE per sample": nfe.count,
                  "parameters": f"{sum(p.numel() for p in model.parameters()):,}"})
display(Markdown(markdown_table(table, ["model", "family", "paradigm", "log_prob", "NFE per sample", "parameters"])))

# %% [markdown]
# Three things to read off the table. The DDPMs spend 1,000 evaluations per sample (one per step of
# the training chain) where a GAN, a VAE or RealNVP spends one: that gap is what Part II attacks.
# The ODE models (flow matching, the CNFs) spend 64: 32 Heun steps of two evaluations each. And
# `log_prob` is not owned by one paradigm: the diffusion models are `ScoreBased`, yet they define a
# likelihood through their probability-flow ODE (lecture 02, result 8), while the GANs and
# consistency models, `Implicit`, have none.

# %% tags=["checks"]
assert nx.is_directed_acyclic_graph(hierarchy)
assert all(nx.has_path(hierarchy, c, base.GenerativeModel) for c in registered)  # every model honours the contract
assert not unclassified  # the paradigms partition the zoo
assert all(sum(issubclass(c, p) for p in PARADIGMS) == 1 for c in registered)
nfe_of = {row["model"]: row["NFE per sample"] for row in table}
assert nfe_of["ddpm"] == 1000 and nfe_of["flow_matching"] == 64 and nfe_of["gan"] == 1 and nfe_of["realnvp"] == 1
assert {row["model"] for row in table if row["log_prob"] == "yes"} >= {"ddpm", "flow_matching", "realnvp", "vae"}
assert all(row["log_prob"] == "no" for row in table if row["paradigm"] == "Implicit")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. The contract per paradigm
#
# **Intuition.** A base class is a list of questions a model agrees to answer. `GenerativeModel`
# asks two, *what is your training loss on this batch?* and *give me n samples*, and allows a third,
# *what is the log-density of these points?* Each paradigm adds the one question its samplers and
# proofs need. The table below is generated by listing, for each base class, the methods it
# declares with a body that only raises `NotImplementedError`: the slots a subclass fills in.

# %%
def declared_slots(cls: type) -> list[str]:
    """Methods `cls` defines itself whose body raises NotImplementedError: what a subclass must fill in."""
    return [name for name, f in vars(cls).items()
            if inspect.isfunction(f) and "raise NotImplementedError" in inspect.getsource(f)]


contract = [{"base class": c.__name__, "declares": ", ".join(declared_slots(c)),
             "meaning": inspect.getdoc(c).splitlines()[0]}
            for c in (base.GenerativeModel, *PARADIGMS, *MIXINS)]
display(Markdown(markdown_table(contract, ["base class", "declares", "meaning"])))

# %% [markdown]
# Read it row by row. `GenerativeModel` declares `loss`, `sample` and `log_prob`; `log_prob` is
# *optional* (its stub raises with a message naming the model), which is why the table in section
# 1 could ask every model for it. `ScoreBased` adds `score(x, t)` and `FlowBased` adds
# `velocity(x, t)`: these two are what the samplers of Part II consume. `Implicit` adds nothing:
# a sampling process is all it promises. `Representation` answers `sample` and `log_prob` with a
# permanent refusal (a JEPA learns features, not a distribution). `Adversarial` adds `players()`;
# `Conditional` adds a condition argument to `loss` and `sample`, a contract stated in its docstring
# rather than in a stub. The whole contract of a score model is a few lines:

# %%
show_source(base.ScoreBased)

# %% [markdown]
# **The time convention.** Every model with a time axis uses one: $t\in[0,1]$, $t=0$ is data,
# $t=1$ is noise, and samplers run from 1 down to 0. The diffusion, flow and consistency models
# store their noising process as a `GaussianPath`, $x_t=\alpha_t x_0+\sigma_t\varepsilon$, so the
# convention can be checked rather than trusted: $\alpha_0=1$, $\sigma_0=0$ (no noise at
# data time) and a small signal-to-noise ratio $\alpha_1^2/\sigma_1^2$ at $t=1$.
#
# **Predict.** DDPM's VP path, the VE path of a score SDE and flow matching's straight line differ
# at $t=1$. Which of them reaches *exactly* zero signal there?

# %%
one = torch.tensor([0.0, 1.0], dtype=torch.float64)
convention = []
for name in zoo.names_2d():
    path = getattr(zoo.make(name, (2,)), "gaussian_path", None)
    if path is not None:
        alpha, sigma = path.alpha(one).tolist(), path.sigma(one).tolist()
        convention.append({"model": name, "path": path.name, "alpha(0)": alpha[0], "sigma(0)": sigma[0],
                           "alpha(1)": alpha[1], "sigma(1)": sigma[1], "SNR(1)": alpha[1] ** 2 / sigma[1] ** 2,
                           "SNR at t = 1": f"{alpha[1] ** 2 / sigma[1] ** 2:.1e}"})
columns = ["model", "path", "alpha(0)", "sigma(0)", "alpha(1)", "sigma(1)", "SNR at t = 1"]
display(Markdown(markdown_table(convention, columns, digits=4)))

# %% [markdown]
# Only the linear path of flow matching ends at exactly zero signal ($\alpha_1=0$). The VP path
# keeps $\alpha_1\approx0.0066$ (a signal-to-noise ratio of about $4\cdot10^{-5}$) and the VE paths
# never scale the data down at all: they drown it in noise of standard deviation 10 or 20, a
# signal-to-noise ratio of at most 0.01. All of them agree on what the two ends *mean*, which is what
# lets one sampler serve every family.

# %% tags=["checks"]
assert [row["base class"] for row in contract if "loss" in row["declares"]] == ["GenerativeModel"]
assert declared_slots(base.ScoreBased) == ["score"] and declared_slots(base.FlowBased) == ["velocity"]
assert declared_slots(base.Implicit) == [] and declared_slots(base.Adversarial) == ["players"]
assert len(convention) >= 10
for row in convention:
    assert row["alpha(0)"] == 1.0 and row["sigma(0)"] == 0.0, row
    assert row["SNR(1)"] < 0.011, row  # at most a tenth of the noise's amplitude is signal at t = 1
assert [row["model"] for row in convention if row["alpha(1)"] == 0.0] == [
    r["model"] for r in convention if r["path"] == "linear"]

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. A new model in a few lines
#
# **Intuition.** Blur the data with Gaussian noise of size $\sigma$. For one blurred point, the
# arrow back to the clean point it came from is known: it is the noise we added, reversed and
# divided by $\sigma$. Averaged over all clean points that could have produced the blurred one,
# that arrow is the score of the blurred data (Vincent 2011). One network that learns this arrow at
# every $\sigma$ from large (the blurred data is almost a Gaussian) to small (almost the data) is a
# *noise-conditional score network* (Song & Ermon 2019). To sample, start from the broad Gaussian
# and follow the arrows while shrinking $\sigma$. The zoo already holds score SDEs; writing this
# model from scratch shows how little the library asks of a new one.
#
# **The algebra.** Let $\sigma(t)=\sigma_\text{min}(\sigma_\text{max}/\sigma_\text{min})^t$, geometric
# in $t$, so that $t=0$ is nearly the data ($\sigma_\text{min}=0.01$) and $t=1$ is broad noise
# ($\sigma_\text{max}=3$): the course's time convention. Blur $\tilde x=x+\sigma\varepsilon$.
# - **Step 3.1.** $\nabla_{\tilde x}\log\mathcal N(\tilde x;x,\sigma^2I)=-(\tilde x-x)/\sigma^2=-\varepsilon/\sigma$.
# - **Step 3.2.** Denoising score matching with Song & Ermon's weight $\lambda(\sigma)=\sigma^2$:
#   $\sigma^2\,\|s_\theta(\tilde x,t)+\varepsilon/\sigma\|^2=\|\sigma s_\theta(\tilde x,t)+\varepsilon\|^2$, a loss of
#   order one at every noise level.
# - **Step 3.3.** The blur is the forward SDE $dx=g(t)\,dW$ with $g(t)^2=\frac{d}{dt}\sigma(t)^2
#   =2\ln(\sigma_\text{max}/\sigma_\text{min})\,\sigma(t)^2$ (Song et al. 2021, the VE SDE), so the
#   library's reverse-SDE sampler can run it backwards with no new code.
#
# Steps 3.1 and 3.3, checked numerically (autograd for the gradient, a central difference for the
# derivative):

# %%
SIGMA_MIN, SIGMA_MAX = 0.01, 3.0
sigma_of = lambda t: SIGMA_MIN * (SIGMA_MAX / SIGMA_MIN) ** t  # noqa: E731
g = torch.Generator().manual_seed(0)
x, eps = torch.randn(2, 5, 2, generator=g, dtype=torch.float64)  # clean points and their noise
sigma = 0.7
blurred = (x + sigma * eps).requires_grad_()
log_q = (-0.5 * ((blurred - x) / sigma) ** 2).sum()  # log N(blurred; x, sigma^2 I) up to a constant
(grad,) = torch.autograd.grad(log_q, blurred)
print("step 3.1, max |grad log q + eps / sigma|:", (grad + eps / sigma).abs().max().item())
t, h = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64), 1e-6
finite_difference = (sigma_of(t + h) ** 2 - sigma_of(t - h) ** 2) / (2 * h)
closed_form = 2 * math.log(SIGMA_MAX / SIGMA_MIN) * sigma_of(t) ** 2
print("step 3.3, relative error of g^2:", ((finite_difference - closed_form) / closed_form).abs().max().item())


# %% [markdown]
# **The code.** A config dataclass, a network, the four methods of the contract, and a
# registration line with a recipe (steps, learning rate, EMA, and the quality gate the recipe must
# pass). Nothing else in the library changes. The loss is written through `loss_at(x, t, eps)` so
# that we can evaluate it at chosen noise levels below, and so that a variant with another
# objective overrides that one hook: sliced score matching (Song, Garg, Shi & Ermon 2019), for
# instance, replaces the known target $-\varepsilon/\sigma$ by random projections of the network's
# Jacobian and needs no knowledge of how the data was blurred.

# %%
@dataclass
class NCSNConfig:
    hidden: int = 128
    sigma_min: float = SIGMA_MIN  # sigma at t = 0 (nearly the data)
    sigma_max: float = SIGMA_MAX  # sigma at t = 1 (broad noise; the data's std is about 1.7 and 1.0)
    sample_steps: int = 50  # Euler-Maruyama steps of the reverse SDE


# Registering a second class under a taken name is refused: restart the kernel before rerunning this cell.
@register("ncsn", recipes={"2d": Recipe(steps=1500, lr=4e-3, ema_decay=0.995, min_quality={"two_moons": 0.8})})
class NCSN(base.ScoreBased):
    """Denoising score matching at all noise levels sigma(t), geometric in t (Song & Ermon 2019)."""

    Config = NCSNConfig

    def __init__(self, event_shape, config: NCSNConfig | None = None):
        super().__init__(event_shape, config or NCSNConfig())
        self.net = MLP(self.event_dim, self.event_dim, self.config.hidden, time_dim=32)

    def sigma(self, t):  # (B,) -> (B,)
        return self.config.sigma_min * (self.config.sigma_max / self.config.sigma_min) ** t

    def g_squared(self, t):  # d sigma(t)^2 / dt, step 3.3
        return 2 * math.log(self.config.sigma_max / self.config.sigma_min) * self.sigma(t) ** 2

    def score(self, x, t):  # the net sees x scaled to unit variance and predicts sigma * score
        sigma = per_example(self.sigma(t), x)
        return self.unflat(self.net(self.flat(x) / (1 + sigma**2).sqrt(), t)) / sigma

    def loss_at(self, x, t, eps):  # step 3.2: |sigma s(x + sigma eps, t) + eps|^2, averaged
        sigma = per_example(self.sigma(t), x)
        return (sigma * self.score(x + sigma * eps, t) + eps).pow(2).mean()

    def loss(self, x, *, generator=None):
        x = self.check_input(x)
        return self.loss_at(x, rand((x.shape[0],), x, generator), randn_like(x, generator))

    @torch.no_grad()
    def sample(self, n, steps=None, *, generator=None):
        x1 = self.config.sigma_max * self.randn(self.check_n(n), *self.event_shape, generator=generator)
        drift, diffusion = samplers.reverse_sde_ve(self.score, self.g_squared)
        return samplers.euler_maruyama(drift, diffusion, x1, steps or self.config.sample_steps,
                                       generator=generator, denoise=True)


ncsn_lines = sum(len(inspect.getsource(f).splitlines()) for f in vars(NCSN).values() if inspect.isfunction(f))
print(f"NCSN's {sum(inspect.isfunction(f) for f in vars(NCSN).values())} methods take {ncsn_lines} lines; "
      f"the zoo now lists it: {'ncsn' in zoo.names()}")

# %% [markdown]
# The zoo builds it like any other model, and `fit` trains it with its recipe, unchanged:

# %%
torch.manual_seed(0)
ncsn = zoo.make("ncsn", (2,))
ncsn_history = fit(ncsn, moons, seed=0, desc="NCSN on two moons", **zoo.recipe("ncsn").fit_kwargs())
ncsn_samples = ncsn.sample(2000, generator=torch.Generator().manual_seed(1))
ncsn_quality = metrics.sample_quality(ncsn_samples, ref)
print(f"{ncsn_history.steps} steps in {ncsn_history.seconds:.1f} s; NFE per sample {ncsn.config.sample_steps}; "
      f"W2 = {ncsn_quality.w2:.3f} (data floor {ref.w2_floor:.3f}, Gaussian {ref.w2_gauss:.3f}), "
      f"G = {ncsn_quality.gap_closed:.3f}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
scatter2d(axes[0], ref.test, "held-out data")
scatter2d(axes[1], ncsn_samples, f"NCSN samples, G = {ncsn_quality.gap_closed:.2f}")
plot_losses(axes[2], ncsn_history, "NCSN training loss", ylabel="DSM loss (per coordinate)")
fig.tight_layout()
check_readable(fig)
plt.show()

# %% [markdown]
# *Figure: held-out two moons (left), 2,000 samples of the new model after 50 reverse-SDE steps
# (middle) and its training loss, smoothed over 50 steps (right). The samples trace both moons, with a
# sprinkle of points left between them; the loss falls quickly and then flattens well above zero.*
#
# **Predict.** Why does the loss flatten well above zero, and at which noise level is the trained
# loss largest: near the data ($t=0$, $\sigma=0.01$) or at broad noise ($t=1$, $\sigma=3$)?
# Think about how well the added noise $\varepsilon$ can be guessed from the blurred point in each case.

# %%
levels = torch.linspace(0, 1, 5)
g = torch.Generator().manual_seed(2)
clean, noise = moons.sample(4000, g), torch.randn(4000, 2, generator=g)
with torch.no_grad():
    loss_by_level = [ncsn.loss_at(clean, torch.full((4000,), t.item()), noise).item() for t in levels]
display(Markdown(markdown_table([{"t": t.item(), "sigma(t)": ncsn.sigma(t).item(), "trained DSM loss": v}
                                 for t, v in zip(levels, loss_by_level)], ["t", "sigma(t)", "trained DSM loss"])))

# %% [markdown]
# The loss never reaches zero because a single blurred point does not reveal which noise was added,
# only its average given the point; the leftover spread is a floor no network can beat. Near the
# data the floor is almost the whole loss: at $\sigma=0.01$ the noise is far smaller than the moons'
# own thickness, so it is nearly unguessable and the loss stays near 1 per coordinate. At
# $\sigma=3$ the blurred point is mostly noise, so the noise is easy to guess and the loss is small.
# So a large loss at one level does not mean the network is bad there: the loss measures how
# guessable the noise is, and the training curve can only approach the average of these floors.

# %% tags=["checks"]
# the recipe's gate, with a margin a wrong sign or a missing sigma in the loss does not survive
assert ncsn_quality.gap_closed >= zoo.recipe("ncsn").min_quality["two_moons"], ncsn_quality
assert loss_by_level[0] > 0.8 and loss_by_level[-1] < 0.3 and loss_by_level[0] > 3 * loss_by_level[-1], loss_by_level
assert ncsn_lines <= 30, ncsn_lines

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Adversarial models in the same trainer
#
# **Intuition.** A GAN is two networks with two losses, each updated while the other is held still.
# A trainer that knew about GANs would need a special loop; ours does not. A model that subclasses
# `Adversarial` lists its *players* (a module, its loss, how many updates per step, its optimiser
# settings); any other model is treated as a game with one player whose loss is `model.loss`. The
# loop then gives every player its turn:

# %%
show_source(loop.players)

# %%
show_source(zoo.model_class("gan").players)

# %% [markdown]
# During a player's turn only its own parameters require gradients, so the other player's weights
# act as constants in its loss and only its own Adam optimiser steps. The loop is short enough to
# read whole:

# %%
show_source(loop.run)

# %% [markdown]
# **Predict.** In one training step of the GAN, how many optimiser steps happen, in which order,
# and how many parameters are trainable during each? (The GAN's generator and discriminator are both
# three-layer MLPs of width 128.)
#
# A *hook* answers without touching the loop: `before_optimizer_step` sees the trainer's state just
# before each update.

# %%
class TurnRecorder(Hook):
    """Records, before each optimiser step: the training step, the moving player, its trainable parameters."""

    def __init__(self):
        self.turns = []

    def before_optimizer_step(self, state):
        trainable = sum(p.numel() for p in state.model.parameters() if p.requires_grad)
        self.turns.append({"step": state.step, "player": state.player.name, "trainable parameters": trainable})


recorder = TurnRecorder()
torch.manual_seed(0)
probe_gan = zoo.make("gan", (2,))
fit(probe_gan, moons, steps=2, hooks=[recorder], progress=False)
display(Markdown(markdown_table(recorder.turns, ["step", "player", "trainable parameters"])))

# %% [markdown]
# Two optimiser steps per training step, discriminator first, and each sees only its own
# parameters as trainable. The GAN trained in the background with its zoo recipe is now collected
# and measured the same way as every other model.

# %%
((gan, gan_history),) = queue.collect(Job("gan", moons))
gan_samples = gan.sample(2000, generator=torch.Generator().manual_seed(1))
gan_quality = metrics.sample_quality(gan_samples, ref)
final_losses = {player: gan_history.smoothed(player, 100) for player in gan_history.losses}
print(f"GAN: {gan_history.steps} steps in {gan_history.seconds:.1f} s (in a worker), G = {gan_quality.gap_closed:.3f}, "
      f"gate {zoo.recipe('gan').min_quality['two_moons']}")
print("mean loss over the last 100 steps:", {player: round(value, 3) for player, value in final_losses.items()},
      f"(2 ln 2 = {2 * math.log(2):.3f}, ln 2 = {math.log(2):.3f})")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4.3))
scatter2d(axes[0], gan_samples, f"GAN samples, G = {gan_quality.gap_closed:.2f}")
plot_losses(axes[1], gan_history, "the two players' losses")
fig.tight_layout()
check_readable(fig)
plt.show()

# %% [markdown]
# *Figure: samples of the GAN trained by the unchanged `fit` (left) and both players' losses,
# smoothed over 50 steps (right). Unlike the NCSN's, these curves do not fall to a floor: each
# player's loss is measured against an opponent that keeps moving, so a flat line means a balanced
# game, not a converged model. Only the samples, measured against held-out data, say how good the
# model is. The levels are telling, though: where the discriminator outputs 1/2 everywhere (it cannot
# tell real from fake), its loss is $2\ln2\approx1.386$ and the generator's is $\ln2\approx0.693$.*

# %% tags=["checks"]
gan_parameters = {"discriminator": sum(p.numel() for p in probe_gan.discriminator.parameters()),
                  "generator": sum(p.numel() for p in probe_gan.generator.parameters())}
assert [turn["player"] for turn in recorder.turns] == ["discriminator", "generator"] * 2
assert all(turn["trainable parameters"] == gan_parameters[turn["player"]] for turn in recorder.turns)
assert bench.check_gate(Job("gan", moons), gan_quality.gap_closed)  # the recipe's gate, not a number typed here
assert abs(final_losses["discriminator"] - 2 * math.log(2)) < 0.1 and abs(final_losses["generator"] - math.log(2)) < 0.1

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Check your understanding (Part I)
#
# 1. The class diagram has no edge between `DDPM` and `FlowMatching`, yet lecture 02 proved the two
#    are the same model seen through another clock. Why is that not a contradiction, and which
#    library functions carry the equivalence instead of inheritance?
# 2. You want to add a VAE with a new prior. Which class do you subclass, which methods must you
#    write, and which ones may you leave out?
# 3. In the NCSN, what breaks if `score` forgets to divide by $\sigma$: training, sampling, or both?
# 4. A WGAN updates its critic five times per generator update. Where in the code does that number
#    live, and what in `fit` changes to support it?

# %% [markdown] slideshow={"slide_type": "slide"}
# # Part II. Samplers and the fast path
#
# ## 5. Samplers as functions of a callable
#
# **Intuition.** Every sampler in `unigm.samplers` is a plain function of a callable
# `f(x, t) -> tensor`: a velocity for the ODE solvers (Euler, RK4, and Heun's method, the
# second-order solver Karras et al. 2022 recommend for diffusion ODEs), a noise prediction for DDIM
# (Song, Meng & Ermon 2021) and DPM-Solver.
# The sampler never knows whether `f` is a network or a formula. That is what makes samplers
# *testable*: hand them a field whose exact solution we know, and the error of each solver can be
# measured, not guessed. A solver of global order $p$ has error $\approx C h^p$ for step size
# $h=1/\text{steps}$: doubling the steps divides the error by $2^p$, so on a log-log plot of error
# against steps it is a line of slope $-p$.
#
# **The algebra: an exact problem.** Take Gaussian data $x_0\sim\mathcal N(\mu,s^2I)$ on DDPM's VP
# path $x_t=\alpha_tx_0+\sigma_t\varepsilon$. Every marginal is Gaussian,
# $p_t=\mathcal N(\alpha_t\mu,v_tI)$ with $v_t=\alpha_t^2s^2+\sigma_t^2$, and the probability-flow
# velocity (`GaussianMixtureOnPath.velocity` with one component) is
# $u(x,t)=\alpha_t'\mu+\frac{\alpha_t'\alpha_ts^2+\frac12(\sigma_t^2)'}{v_t}(x-\alpha_t\mu)$.
# - **Step 5.1.** $v_t'=2\alpha_t\alpha_t's^2+(\sigma_t^2)'$, so the fraction is $v_t'/(2v_t)$.
# - **Step 5.2.** Then $y_t=x_t-\alpha_t\mu$ obeys $y'=\frac{v'}{2v}\,y$, whose solution is
#   $y_t=\sqrt{v_t/v_1}\;y_1$.
# - **Step 5.3.** Hence the exact flow map from $t=1$ back to $t$ is
#   $x_t=\alpha_t\mu+\sqrt{v_t/v_1}\,(x_1-\alpha_1\mu)$: an affine map, computable to machine precision.
#
# The check: the map starts at $x_1$, and its time derivative (by autograd) is the library's exact
# velocity at every time we try.

# %%
MU, S, T_END = torch.tensor([1.0, -0.5], dtype=torch.float64), 0.5, 1e-2
VP = paths.vp_path()
gaussian = GaussianMixtureOnPath(MU[None], S, VP)  # one component: data N(MU, S^2 I)


def flow_map(x1, t):
    """Step 5.3: the exact probability-flow solution at time t from x1 at time 1."""
    t, t1 = torch.as_tensor(t, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    v = lambda u: VP.alpha(u) ** 2 * S**2 + VP.sigma(u) ** 2  # noqa: E731
    return VP.alpha(t) * MU + (v(t) / v(t1)).sqrt() * (x1 - VP.alpha(t1) * MU)


x1 = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))  # 64 prior draws
gap_at_start = (flow_map(x1, 1.0) - x1).abs().max().item()
gap_in_derivative = max(
    (torch.autograd.functional.jacobian(lambda u: flow_map(x1, u), torch.tensor(t, dtype=torch.float64))
     - gaussian.velocity(flow_map(x1, t), torch.tensor(t, dtype=torch.float64))).abs().max().item()
    for t in (0.01, 0.1, 0.5, 0.9))
print(f"|flow_map(x1, 1) - x1| = {gap_at_start:.1e};  max |d/dt flow_map - velocity| = {gap_in_derivative:.1e}")

# %% [markdown]
# Now the five solvers, each handed the exact field as a plain function: Euler, Heun and RK4 get
# the velocity; DDIM and DPM-Solver-2 get the exact noise prediction
# $\varepsilon(x,t)=-\sigma_t\nabla\log p_t(x)$. All run from $t=1$ to $t=0.01$ on equal steps in $t$.
# The error is the largest distance to the exact end point over the 64 starting points.
#
# **Predict.** Going from 32 to 64 steps, by what factor does each solver's error shrink? DDIM and
# DPM-Solver-2 take one and two evaluations per step, like Euler and Heun: do you expect the same
# orders as those two?

# %%
exact_eps = lambda x, t: VP.eps_from_score(gaussian.score(x, t), t)  # noqa: E731
alpha_bar = schedules.alpha_bar_vp_linear
SOLVERS = {  # name: (one solve with `steps` steps, evaluations per step, expected order)
    "Euler": (lambda steps: samplers.euler(gaussian.velocity, x1, steps, t_end=T_END), 1, 1),
    "Heun": (lambda steps: samplers.heun(gaussian.velocity, x1, steps, t_end=T_END), 2, 2),
    "RK4": (lambda steps: samplers.rk4(gaussian.velocity, x1, steps, t_end=T_END), 4, 4),
    "DDIM": (lambda steps: samplers.ddim(exact_eps, x1, steps, alpha_bar, t_end=T_END), 1, 1),
    "DPM-Solver-2": (lambda steps: samplers.dpm_solver2(exact_eps, x1, steps, alpha_bar, t_end=T_END), 2, 2),
}
STEPS, FIT_FROM = [4, 8, 16, 32, 64, 128], 2  # the slope is fitted from 16 steps on (past the large-step regime)
exact_end = flow_map(x1, T_END)
errors = {name: [(solve(n) - exact_end).norm(dim=1).max().item() for n in STEPS]
          for name, (solve, _, _) in SOLVERS.items()}
orders = {name: samplers.measured_order(errors[name][FIT_FROM:], STEPS[FIT_FROM:]) for name in SOLVERS}
display(Markdown(markdown_table(
    [{"solver": name, "NFE per step": per_step, "expected order": expected, "measured order": orders[name],
      "error at 32 / 64 steps": errors[name][3] / errors[name][4]}
     for name, (_, per_step, expected) in SOLVERS.items()],
    ["solver", "NFE per step", "expected order", "measured order", "error at 32 / 64 steps"], digits=2)))

# %%
fig, axes = plt.subplots(1, 2, figsize=(14, 5))
for name, (_, per_step, _) in SOLVERS.items():
    axes[0].loglog(STEPS, errors[name], "o-", label=f"{name} (slope {orders[name]:.2f})")
    axes[1].loglog([per_step * n for n in STEPS], errors[name], "o-", label=name)
axes[0].set(xlabel="steps", ylabel="max error at t = 0.01", title="error against steps")
axes[1].set(xlabel="network evaluations (NFE)", ylabel="max error at t = 0.01", title="error against cost")
axes[0].legend()
axes[1].legend()
fig.tight_layout()
check_readable(fig)
plt.show()

# %% [markdown]
# *Figure: the five solvers on the exact Gaussian probability-flow ODE, error against steps (left;
# the slope is minus the order) and against network evaluations (right; the same lines shifted by
# each solver's evaluations per step). Look at the slopes on the left: 1, 2 and 4 for the
# Runge-Kutta family, 1 for DDIM and 2 for DPM-Solver-2. On the right, compare at equal cost: from
# 16 evaluations on RK4 is by far the most accurate, but at 8 evaluations plain Euler is.*
#
# Euler's slope starts shallow: its first steps, near $t=1$ where the VP schedule's $\beta(t)$ is
# largest, are in a large-step regime that higher step counts leave behind. DDIM is an Euler step
# in rescaled variables (lecture 02, result 10): first order like Euler, with another error constant
# (larger on this problem), and DPM-Solver-2 (Lu et al. 2022) adds one evaluation per step to reach
# second order in the same variables. An order is a statement about small steps; at a budget of 8
# evaluations, it is the error constant and the first large steps that decide.

# %%
def error_at_nfe(name: str, nfe: int) -> float | None:
    """The exact problem's error of `name` at a budget of `nfe` evaluations (None if not measured)."""
    steps = nfe // SOLVERS[name][1]
    return errors[name][STEPS.index(steps)] if steps in STEPS and nfe % SOLVERS[name][1] == 0 else None


budgets = (8, 32, 128)
display(Markdown(markdown_table([{"solver": name, **{f"error at {k} NFE": error_at_nfe(name, k) for k in budgets}}
                                 for name in SOLVERS], ["solver", *[f"error at {k} NFE" for k in budgets]], digits=5)))

# %% tags=["checks"]
assert gap_at_start < 1e-12 and gap_in_derivative < 1e-9
for name, (_, _, expected) in SOLVERS.items():
    assert abs(orders[name] - expected) < 0.3, (name, orders[name], errors[name])
at_8 = {name: error_at_nfe(name, 8) for name in SOLVERS if error_at_nfe(name, 8) is not None}
assert min(at_8, key=at_8.get) == "Euler", at_8  # at 8 evaluations the first-order method wins
assert all(error_at_nfe("RK4", k) < min(error_at_nfe(n, k) for n in SOLVERS if n != "RK4") / 10 for k in (32, 128))

# %% [markdown]
# **The same solvers on a trained network.** The DDPM queued at the top has finished training
# with its zoo recipe. It offers both fields: `predict_eps` for DDIM and DPM-Solver-2, and
# `probability_flow_velocity` (its score turned into the probability-flow velocity) for Euler,
# Heun and RK4, so all five integrate the same ODE from $t=1$ to the network's smallest training
# time $t=10^{-3}$. We compare them at equal cost: $G$ at 4, 8, 16 and 32 network evaluations.
#
# **Predict.** Which solver is best at 8 NFE: first-order Euler with 8 steps, RK4 with 2 steps, or
# DPM-Solver-2, the method designed for few-step diffusion sampling, with 4?

# %%
((ddpm, ddpm_history),) = queue.collect(Job("ddpm", moons))
queue.close()  # nothing more trains in the background: this process gets its threads back
T_MIN = 1 / ddpm.config.num_steps
velocity, eps_net = ddpm.probability_flow_velocity, ddpm.predict_eps
prior = lambda n, g: torch.randn(n, 2, generator=g)  # noqa: E731
by_nfe = {  # name: fn(n, NFE, generator) -> n samples, spending NFE network evaluations
    "Euler": lambda n, k, g: samplers.euler(velocity, prior(n, g), k, t_end=T_MIN),
    "Heun": lambda n, k, g: samplers.heun(velocity, prior(n, g), k // 2, t_end=T_MIN),
    "RK4": lambda n, k, g: samplers.rk4(velocity, prior(n, g), k // 4, t_end=T_MIN),
    "DDIM": lambda n, k, g: samplers.ddim(eps_net, prior(n, g), k, ddpm.alpha_bar, t_end=T_MIN),
    "DPM-Solver-2": lambda n, k, g: samplers.dpm_solver2(eps_net, prior(n, g), k // 2, ddpm.alpha_bar, t_end=T_MIN),
}
NFES = (4, 8, 16, 32)
points = bench.quality_vs_steps(by_nfe, ref, steps=NFES, progress=False)
quality = {(p.sampler, p.nfe): p.gap_closed for p in points}
display(Markdown(markdown_table([{"solver": name, **{f"G at {k} NFE": quality[name, k] for k in NFES}}
                                 for name in by_nfe], ["solver", *[f"G at {k} NFE" for k in NFES]], digits=2)))
print(f"DDPM trained {ddpm_history.steps} steps in {ddpm_history.seconds:.1f} s (in a worker)")

# %%
fig, ax = plt.subplots(figsize=(8, 5))
for name in by_nfe:
    ax.plot(NFES, [max(quality[name, k], -1) for k in NFES], "o-", label=name)
ax.axhline(1, color="0.4", ls="--", lw=1, label="fresh data (G = 1)")
ax.axhline(zoo.recipe("ddpm").min_quality["two_moons"], color="0.6", ls=":", lw=1.5, label="DDPM's gate")
ax.set_xscale("log", base=2)
ax.set(xlabel="network evaluations (NFE)", ylabel="quality G (clipped at -1)", ylim=(-1.05, 1.15),
       title="five solvers of one trained DDPM")
ax.legend(loc="lower right")
check_readable(fig)
plt.show()

# %% [markdown]
# *Figure: quality $G$ of 2,000 samples against the number of network evaluations for the five
# solvers of the same trained DDPM and the same starting noise (values below $-1$ drawn at $-1$).
# Look at 8 NFE, where the curves are furthest apart, and at 32, where they have met.*
#
# The ranking at 8 evaluations is not the ranking by order, as on the exact problem. A solver's
# order describes how its error shrinks once the steps are small enough for the field to look
# smooth across each step; at 8 evaluations they are not. A likely culprit is the first step. At
# $t=1$ DDPM's schedule leaves a signal of only $\alpha_1\approx0.0066$, and an update that estimates
# the clean point as $(x-\sigma_t\hat\varepsilon)/\alpha_t$ multiplies any error in the predicted
# noise $\hat\varepsilon$ by a large factor. We can measure that factor on the library's own step
# functions: add a small constant $\delta$ to the network's noise prediction and see how far the
# first step of each solver (at 8 evaluations) moves its output, per unit of $\delta$.
#
# **Predict.** Which solver's first step is the most sensitive to an error in the predicted noise?

# %%
def velocity_from(eps_fn):
    """The probability-flow velocity implied by a noise prediction (paths' conversion, as in DDPM)."""
    return lambda y, t: ddpm.gaussian_path.velocity_from_eps(y, eps_fn(y, t), t)


at = lambda value: torch.tensor(value, dtype=torch.float64)  # noqa: E731
first_step_at_8_nfe = {  # one step from t = 1, as long as the solver's steps at a budget of 8 evaluations
    "Euler": lambda e, x: samplers.euler_step(velocity_from(e), x, at(1.0), at(7 / 8)),
    "Heun": lambda e, x: samplers.heun_step(velocity_from(e), x, at(1.0), at(3 / 4)),
    "RK4": lambda e, x: samplers.rk4_step(velocity_from(e), x, at(1.0), at(1 / 2)),
    "DDIM": lambda e, x: samplers.ddim_step(e, x, 1.0, 7 / 8, ddpm.alpha_bar),
    "DPM-Solver-2": lambda e, x: samplers.dpm_solver2_step(e, x, 1.0, 3 / 4, ddpm.alpha_bar),
}
DELTA, start = 1e-2, prior(2000, torch.Generator().manual_seed(3))
with torch.no_grad():
    sensitivity = {name: ((step(lambda y, t: eps_net(y, t) + DELTA, start) - step(eps_net, start)).norm(dim=1).mean()
                          / (DELTA * math.sqrt(2))).item() for name, step in first_step_at_8_nfe.items()}
display(Markdown(markdown_table([{"solver": name, "first step's sensitivity": sensitivity[name],
                                  "G at 8 NFE": quality[name, 8]} for name in by_nfe],
                                ["solver", "first step's sensitivity", "G at 8 NFE"], digits=2)))

# %% [markdown]
# The two ends of the ranking follow the sensitivity: Euler's first step passes on an error in the
# noise prediction about as it came, DPM-Solver-2's long first step (a quarter of the way, two
# evaluations, the second made at a point the first one moved) multiplies it several times over,
# and the points are thrown far from the data. The middle of the ranking depends on more than the
# first step. With enough evaluations every solver reaches the quality of the model itself: at 32
# the five agree to within about 0.05. Lu et al. place DPM-Solver's steps evenly in
# $\lambda=\log(\alpha/\sigma)$ rather than in $t$ and mix orders for very small budgets; the library's
# `dpm_solver2` accepts any `times` (exercise).

# %% tags=["checks"]
gate = zoo.recipe("ddpm").min_quality["two_moons"]
assert all(p.nfe == p.steps for p in points)  # each sampler spent exactly the NFE it was given
assert all(quality[name, 32] >= gate for name in by_nfe), quality  # with enough steps every solver is good
assert max(quality[name, 8] for name in by_nfe) > quality["DPM-Solver-2", 8] + 0.5, quality  # order is not rank
assert quality["DPM-Solver-2", 8] < quality["DDIM", 8], quality
assert min(sensitivity, key=sensitivity.get) == "Euler" and max(sensitivity, key=sensitivity.get) == "DPM-Solver-2"
at_32 = [quality[name, 32] for name in by_nfe]
assert max(at_32) - min(at_32) < 0.1, at_32  # with enough evaluations the solvers agree

# %% [markdown]
# **Explore.** The table gave one number per solver and budget; here you see where the particles go.
# The explorer solves the same probability-flow ODE of the trained DDPM, from $t = 1$ to $t = 10^{-3}$,
# from 2,000 fixed starting points, draws 16 of their paths in red over the samples and measures $G$ on
# the held-out moons; the right panel fills in $G$ against NFE as you try settings. Try Euler with 1, 2,
# 4 and 8 steps, then RK4 with 1 and 2 steps. **Predict**: at 8 NFE, which ends closer to the moons,
# RK4 with 2 steps or Euler with 8? Then look at the first segment of each red path: where does a
# few-step solver throw points off the data? A new setting takes about a second (a solve plus an exact
# $W_2$); one you have seen before redraws in about 0.1 s.

# %%
sampler_explorer = SamplerExplorer(ddpm, ref, solver="euler", steps=8, t_end=T_MIN)
# each setting is solved on first use, then cached; nothing runs in the background while section 6 times things
sampler_explorer.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. The fast path
#
# **Intuition.** The sampling loop calls a small network many times. On a CPU, each call of a
# 2D MLP is a few dozen tiny operations; each one pays Python's and PyTorch's dispatch cost, which
# does not depend on the batch. At batch 1 that cost *is* the run time. `fast_sampler` removes it:
# it computes the time grid once, unrolls the whole loop into one function, and hands it to a graph
# backend once per input shape (on the CPU, `torch.jit.trace`, which fuses element-wise operations;
# on a GPU, `torch.compile` with CUDA graphs; Ansel et al. 2024). The unrolled loop is the plain
# loop's arithmetic, operation for operation:

# %%
show_source(UnrolledLoop.forward)

# %% [markdown]
# **Predict.** Will the speedup be larger at batch 1 or at batch 64? And how many samples must you
# draw before the time spent building the graph has paid for itself?
#
# We time Euler with 16 steps of the trained DDPM's probability-flow velocity, the plain loop against
# the fast sampler. The first call of the fast sampler for a shape builds the graph, runs the plain
# loop once and compares the two (a backend that differs by more than $10^{-4}$ is dropped, with a
# warning). Times are medians of interleaved repeats, measured side by side in this run.

# %%
FAST_STEPS, REPEATS = 16, 15
fast_rows = []
for batch in (1, 64):
    x1_batch = torch.randn(batch, 2, generator=torch.Generator().manual_seed(batch))
    fast = samplers.fast_sampler(velocity, FAST_STEPS, "euler", t_end=T_MIN)
    start = time.perf_counter()
    fast(x1_batch)  # build: trace + the plain loop's reference run + the check
    build_s = time.perf_counter() - start
    plain_run = lambda: samplers.euler(velocity, x1_batch, FAST_STEPS, t_end=T_MIN)  # noqa: E731
    difference = (fast(x1_batch) - plain_run()).abs().max().item()
    plain_s, fast_s = time_pair(plain_run, lambda: fast(x1_batch), REPEATS)
    key = (tuple(x1_batch.shape), x1_batch.dtype, x1_batch.device)
    fast_rows.append({"batch": batch, "backend": fast.backend_used[key], "max difference": f"{difference:.1e}",
                      "difference": difference,
                      "plain ms": 1e3 * plain_s, "fast ms": 1e3 * fast_s, "speedup": plain_s / fast_s,
                      "build s": build_s, "break-even samples": break_even(build_s, plain_s, fast_s, batch)})
display(Markdown(markdown_table(fast_rows, ["batch", "backend", "max difference", "plain ms", "fast ms", "speedup",
                                            "build s", "break-even samples"], digits=2)))

# %% [markdown]
# The samples agree to float rounding; the speed does not. The speedups at batch 1 and 64 are close,
# and the plain loop's two rows say why: 64 times more samples cost it nowhere near 64 times the
# time, so even at batch 64 a 2D MLP's sampling run is mostly overhead, which is what the graph
# removes. The build is not free: tracing the unrolled loop of 16 network calls and checking it
# takes about a second (the build column), paid again for every new input shape, so the fast path
# pays off for a service that draws many samples with the same shape (the break-even column), not
# for one call. The full measurement, with Heun and larger batches, the build time and the achieved
# GFLOP/s against this machine's matmul peak, is one command: `python -m unigm.bench samplers`,
# which writes `build/bench_samplers.json` and a Markdown table (about a minute; not run here).

# %% tags=["checks"]
for row in fast_rows:
    assert row["backend"] == "trace" and row["difference"] <= 1e-4, row  # same samples, from the graph
    assert row["speedup"] > 1.3, row  # measured side by side: the graph removes per-step overhead
assert fast_rows[1]["plain ms"] < 8 * fast_rows[0]["plain ms"], fast_rows  # 64x the samples, far from 64x the time

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Check your understanding (Part II)
#
# 1. Heun's error at 64 steps is smaller than Euler's at 128, though both cost 128 evaluations.
#    Which number in the order table predicts this, and would it still hold at 4 steps?
# 2. Why can the order of DDIM be measured with an analytic noise prediction but not with a trained
#    network?
# 3. The fast sampler checks its graph against the plain loop on the first call. What could go
#    wrong without that check when the network is retrained after the graph was built, and how does
#    `FastSampler` notice?
# 4. Would you expect the fast path's speedup at batch 4096 to be larger or smaller than at 64, and
#    why? (`python -m unigm.bench samplers` measures it.)

# %% [markdown] slideshow={"slide_type": "slide"}
# # Part III. Training beyond one process
#
# ## 7. Gradient accumulation, exact resume, torchrun
#
# ### 7.1 Gradient accumulation equals a bigger batch
#
# **Intuition and algebra.** The loss of a batch of $B=kb$ examples is the mean of $k$ micro-batch
# means, $L=\frac1k\sum_{j=1}^kL_j$, so its gradient is $\frac1k\sum_j\nabla L_j$: running backward
# on $L_j/k$ for each micro-batch and stepping once gives exactly the big batch's step, at the memory
# of one micro-batch. `fit(..., accumulate=k)` does this. We check it on the first optimiser step
# of a RealNVP (its loss, the batch's mean negative log-likelihood, draws no noise): a hook records
# the accumulated gradient and the four micro-batches the step used (the trainer hands hooks their
# concatenation), and a copy of the initial model computes the gradient of one big batch of the
# same 256 examples.

# %%
class FirstStep(Hook):
    """Keeps the gradient and the (concatenated) batch of the first optimiser step."""

    def before_optimizer_step(self, state):
        if state.step == 1:
            self.batch = state.batch[0].clone()
            self.grads = [p.grad.clone() for p in state.parameters]


points_400 = moons.sample(400, torch.Generator().manual_seed(1))
torch.manual_seed(0)
accumulating = zoo.make("realnvp", (2,), hidden=16)
big_batch = copy.deepcopy(accumulating)  # the same initial weights
first_step = FirstStep()
fit(accumulating, points_400, steps=1, batch_size=64, accumulate=4, hooks=[first_step], progress=False)
big_batch.loss(first_step.batch).backward()  # one backward pass over all 256 examples
gradient_gap = max((p.grad - g).abs().max().item() for p, g in zip(big_batch.parameters(), first_step.grads))
print(f"{len(first_step.batch)} examples in the step; max |accumulated - big-batch gradient| = {gradient_gap:.1e} "
      f"(largest gradient entry {max(g.abs().max().item() for g in first_step.grads):.2f})")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### 7.2 Exact resume
#
# A run that crashes should continue as if nothing had happened. `fit(checkpoint_path=...,
# checkpoint_every=N)` saves the *whole* training state every N steps: weights, optimiser and
# learning-rate schedule, EMA weights, the random generator that draws every batch and every loss's
# noise, the step and the history. We crash a 40-step run at step 25 (a callback raises), resume it
# from the step-20 checkpoint, and compare with the run that never crashed. A flow-matching model,
# whose loss draws fresh noise every step, is the demanding case: the generator's state must be
# restored too.

# %%
class Crash(RuntimeError):
    pass


def crash_at_25(step, model, history):
    if step == 25:
        raise Crash(f"simulated crash at step {step}")


def flow_matching_run(**options):
    torch.manual_seed(0)
    model = zoo.make("flow_matching", (2,), hidden=32)
    return model, fit(model, moons, steps=40, batch_size=128, ema_decay=0.9, progress=False, **options)


with tempfile.TemporaryDirectory() as folder:
    run_file = Path(folder) / "run.pt"
    uninterrupted, uninterrupted_history = flow_matching_run()
    try:
        flow_matching_run(checkpoint_path=run_file, checkpoint_every=10, callbacks=[crash_at_25], callback_every=1)
    except Crash as error:
        print("first attempt:", error)
    resumed, resumed_history = flow_matching_run(checkpoint_path=run_file, checkpoint_every=10, resume_from=run_file)
identical_weights = all(torch.equal(p, q)
                        for p, q in zip(uninterrupted.state_dict().values(), resumed.state_dict().values()))
print(f"resumed run: {len(resumed_history.losses['loss'])} losses; identical loss curve: "
      f"{resumed_history.losses == uninterrupted_history.losses}; identical weights: {identical_weights}")

# %% [markdown]
# Not close: *identical*, bit for bit, because every source of randomness was restored.
#
# ### 7.3 The same script under torchrun
#
# **Intuition.** Data parallelism puts one copy of the model on each process, gives each process a
# different slice of the global batch, and averages the gradients before every optimiser step, so
# all copies take the same step (Li et al. 2020 describe PyTorch's `DistributedDataParallel`, which
# overlaps that averaging with the backward pass). `fit` does this on its own when it finds itself
# under `torchrun`: rank 0's weights are broadcast, each rank draws the global batch with the shared
# generator and keeps its slice, and each player's loss runs through a DDP wrapper. The script is
# the one-process script. Here it is:

# %%
show_source(ddp_demo.train)

# %% [markdown]
# **Predict.** Two processes, each with half of a batch of 64, against one process with all 64:
# after 20 Adam steps, will the weights be *identical*, equal up to float rounding, or only
# statistically similar? And will two processes be faster than one on this 2-core machine?
#
# We launch `torchrun` (the module `torch.distributed.run`) from the notebook with two CPU processes
# on the gloo backend, one thread each, and compare with the same function called here. Most of the
# wall time is three Python processes importing PyTorch, not training.

# %%
with tempfile.TemporaryDirectory() as folder:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "unigm.train.ddp_demo", folder, "--steps", "20", "--batch-size", "64"]
    start = time.perf_counter()
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)
    torchrun_wall = time.perf_counter() - start
    assert done.returncode == 0, done.stderr[-3000:]
    two_processes = torch.load(Path(folder) / ddp_demo.RESULT, weights_only=True)
print("$", " ".join(["torchrun", *command[3:]]))
threads = torch.get_num_threads()
torch.set_num_threads(1)  # the same thread count as each rank
one_process, one_history = ddp_demo.train(steps=20, batch_size=64)
torch.set_num_threads(threads)
ddp_weight_gap = max((two_processes["state"][k] - v).abs().max().item() for k, v in one_process.state_dict().items())
ddp_loss_gap = max(abs(a - b) for a, b in zip(two_processes["losses"], one_history.losses["loss"]))
print(f"torchrun: world size {two_processes['world_size']}, {torchrun_wall:.1f} s wall, of which fit "
      f"{two_processes['seconds']:.2f} s; one process: fit {one_history.seconds:.2f} s")
print(f"max weight difference {ddp_weight_gap:.1e}, max loss difference {ddp_loss_gap:.1e}")

# %% [markdown]
# Equal up to float rounding, not bit-identical: the averaged gradient is summed in another order
# than one process sums it. And not faster (compare the two `fit` times): each step is well under a
# millisecond of arithmetic, and on every step the two processes must exchange and average their
# gradients, which costs more than the half of the work each one saved. Data parallelism
# pays when one step's computation dwarfs the communication, as with image models on GPUs; for 2D
# models the course trains *different* models in parallel processes instead (`train_many`,
# `TrainingQueue`, as at the top of this notebook).
#
# **Several machines.** The same script runs on several nodes; only the launch changes. On each of
# two nodes with 8 GPUs, run
#
# ```
# torchrun --nnodes 2 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \
#          --rdzv-id my-run-42 -m unigm.train.ddp_demo OUT
# ```
#
# `--rdzv-endpoint` is the address of one node that all of them can reach, where the processes meet
# ("rendezvous"); `--rdzv-id` is a name shared by the processes of one job, so that two jobs on one
# cluster do not join each other. `fit` then picks NCCL instead of gloo and puts each rank on its own
# GPU.
#
# **When DDP is not enough.** DDP keeps a full copy of everything on each device. With float32
# weights and Adam that is 4 bytes for the weight, 4 for its gradient and 8 for Adam's two moment
# estimates: 16 bytes per parameter. We check it on a real optimiser state, then scale it up.

# %%
torch.manual_seed(0)
probe = zoo.make("ddpm", (2,))
optimizer = torch.optim.Adam(probe.parameters())
probe.loss(moons.sample(64)).backward()
optimizer.step()
n_parameters = sum(p.numel() for p in probe.parameters())
state_bytes = sum(t.numel() * t.element_size() for s in optimizer.state.values() for t in s.values() if t.dim() > 0)
weight_bytes = sum(p.numel() * p.element_size() for p in probe.parameters())
grad_bytes = sum(p.grad.numel() * p.grad.element_size() for p in probe.parameters())
bytes_per_parameter = (weight_bytes + grad_bytes + state_bytes) / n_parameters
print(f"weights + gradients + Adam state: {bytes_per_parameter:.2f} bytes per parameter")
display(Markdown(markdown_table(
    [{"parameters": f"{n / 1e9:g} B", "DDP: GB per device": bytes_per_parameter * n / 1e9,
      "FSDP over 8 devices: GB per device": bytes_per_parameter * n / 8 / 1e9} for n in (1e9, 7e9, 70e9)],
    ["parameters", "DDP: GB per device", "FSDP over 8 devices: GB per device"], digits=0)))

# %% [markdown]
# A 7-billion-parameter model needs 112 GB per device for its training state under DDP, more than
# one 80 GB GPU holds, before any activation is stored. Fully sharded data parallelism (FSDP; Zhao
# et al. 2023) splits weights, gradients and optimiser state across the devices, so each keeps an
# eighth on 8 devices, and gathers one layer's full weights only while that layer computes. It costs
# more communication per step; use it when the model's training state does not fit one device.
# `fit` uses DDP; the course's models never need more.

# %% tags=["checks"]
assert len(first_step.batch) == 256 and gradient_gap < 1e-5, gradient_gap
assert identical_weights and resumed_history.losses == uninterrupted_history.losses
assert two_processes["world_size"] == 2
assert ddp_weight_gap < 1e-4 and ddp_loss_gap < 1e-5, (ddp_weight_gap, ddp_loss_gap)
assert abs(bytes_per_parameter - 16) < 0.01, bytes_per_parameter

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. Profiling one training step
#
# **Intuition.** Before making anything faster, measure where the time goes. PyTorch (Paszke et
# al. 2019) runs a model as a sequence of separately dispatched operations, and `torch.profiler`
# records every operation a piece of code runs, with its time and, for matrix products, its
# floating-point operations. We profile 20 training steps of the zoo's DDPM at its recipe's batch
# of 256 (loss, backward, Adam), after a short warm-up.
#
# **Predict.** What fraction of a step's time is spent in the matrix products, the only operations
# that do much arithmetic? And how many PyTorch operations does one step run?

# %%
torch.manual_seed(0)
profiled = zoo.make("ddpm", (2,))
fit(profiled, moons, steps=5, progress=False)  # warm-up: first calls allocate and pick kernels
PROFILED_STEPS = 20
with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
    fit(profiled, moons, steps=PROFILED_STEPS, progress=False)
averages = prof.key_averages()
print(averages.table(sort_by="self_cpu_time_total", row_limit=10, max_name_column_width=40))

# %%
operations = [e for e in averages if e.key.startswith("aten::")]
total_us = sum(e.self_cpu_time_total for e in averages)
matmul_us = sum(e.self_cpu_time_total for e in operations if e.key in ("aten::mm", "aten::addmm", "aten::bmm"))
calls_per_step = sum(e.count for e in operations) / PROFILED_STEPS
flop_per_step = sum(e.flops for e in averages) / PROFILED_STEPS
step_seconds = total_us * 1e-6 / PROFILED_STEPS
peak = matmul_peak_gflops()
print(f"{calls_per_step:.0f} aten operations per step, {step_seconds * 1e3:.2f} ms per step (profiled), "
      f"{matmul_us / total_us:.0%} of it in matrix products")
achieved = flop_per_step / step_seconds / 1e9  # GFLOP/s
print(f"{flop_per_step / 1e6:.1f} MFLOP per step: {achieved:.1f} GFLOP/s, against this machine's float32 "
      f"matmul peak of {peak:.0f} GFLOP/s ({achieved / peak:.0%})")

# %% [markdown]
# The profile gives the composition of a step; a second measurement gives its *scaling*. If a step
# were limited by arithmetic, its time would grow in proportion to the batch. We time steps at batch
# 16, 256 and 4096 (medians of three runs of 20 steps).

# %%
def ms_per_step(batch: int) -> float:
    torch.manual_seed(0)
    model = zoo.make("ddpm", (2,))
    fit(model, moons, steps=3, batch_size=batch, progress=False)
    runs = [fit(model, moons, steps=20, batch_size=batch, progress=False).seconds / 20 for _ in range(3)]
    return 1e3 * sorted(runs)[1]


BATCHES = (16, 256, 4096)
step_ms = {batch: ms_per_step(batch) for batch in BATCHES}
print("ms per step:", {batch: round(ms, 2) for batch, ms in step_ms.items()},
      f"; a 16x smaller batch still costs {step_ms[16] / step_ms[256]:.0%} of a batch-256 step")
fig, ax = plt.subplots(figsize=(7.5, 4.8))
ax.loglog(BATCHES, [step_ms[b] for b in BATCHES], "o-", label="measured")
ax.loglog(BATCHES, [step_ms[256] * b / 256 for b in BATCHES], "--", color="0.5", label="proportional to batch")
ax.set(xlabel="batch size", ylabel="ms per training step", title="a DDPM training step (2D MLP)")
ax.legend()
check_readable(fig)
plt.show()

# %% [markdown]
# *Figure: time per DDPM training step against batch size, measured (blue) and the line a purely
# arithmetic-bound step would follow through the batch-256 point (grey). From 16 to 256 examples,
# sixteen times the work, the step gets only a little slower: that nearly flat part is the fixed
# cost of launching a few hundred small operations. Only at thousands of examples does the time
# grow in step with the batch.*
#
# **What the profile says.** A training step of a 2D model is several hundred small PyTorch
# operations. The matrix products are the largest single entries of the table, but the step as a
# whole runs far below this machine's matrix-product peak, and a batch sixteen times smaller is
# not much cheaper: a large part of the time (at least the share the small batch still costs) goes
# to the fixed cost of each operation (Python, dispatch, memory allocation, the optimiser's
# bookkeeping), not to arithmetic. Three design decisions of the course
# follow. Extra threads barely help one such model, so the course trains *different* models in
# parallel single-threaded processes (`unigm.train.parallel`, the queue at the top). Data
# parallelism on such models cannot pay (section 7.3). And the fast sampling path helps most at
# small batch, where overhead is everything (section 6). On a GPU the same reasoning applies with
# kernel launches in place of Python calls, which is what CUDA graphs remove.

# %% tags=["checks"]
assert calls_per_step > 150, calls_per_step  # many small operations per step
assert achieved < 0.5 * peak, (achieved, peak)  # far from the arithmetic limit
assert step_ms[16] > 0.3 * step_ms[256], step_ms  # 16x fewer examples, nowhere near 16x less time
assert step_ms[4096] > 3 * step_ms[256], step_ms  # large batches do become arithmetic-bound

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Check your understanding (Part III)
#
# 1. With `accumulate=4` and `batch_size=64`, how many examples does each optimiser step average
#    over, and how much activation memory does it need compared with `batch_size=256`?
# 2. The resumed run was bit-identical, the two-process run only equal to rounding. Name the one
#    difference in arithmetic that explains this.
# 3. Why did the flow-matching model test resume harder than RealNVP would have?
# 4. A colleague sees that a 2D model trains at 5% of the matmul peak and wants a bigger CPU. What
#    would you measure first, and what would you suggest instead?
#
# ## Summary
#
# - **One contract, five paradigms.** Every model promises a loss and a sampler; a paradigm adds
#   one question (a likelihood, a score, a velocity) or none (implicit models). The class diagram,
#   generated from `__mro__`, is shallow, and a variant is a subclass that overrides one hook.
#   Adding a model is a config, a class of about forty lines and a registration with a recipe and a
#   quality gate; the trainer, samplers, metrics and zoo take it unchanged.
# - **One trainer for games too.** An adversarial model declares its players; `fit` gives each its
#   turn with only its own parameters trainable. Everything else (EMA, checkpoints, recording what
#   happens) is a hook.
# - **Samplers are functions of a field.** Given an exact field they reveal their order (1, 2, 4 for
#   Euler, Heun, RK4; 1 and 2 for DDIM and DPM-Solver-2). On a trained model at a handful of
#   evaluations the order does not decide the ranking: where the steps fall does.
# - **Small models are overhead-bound.** A 2D training step or sampling step is hundreds of tiny
#   operations. Removing the overhead (a traced graph) speeds sampling up without changing a
#   sample; for training, the course runs several single-threaded processes.
# - **Scaling out is the same script.** Gradient accumulation equals a larger batch, a resumed run
#   equals the uninterrupted one bit for bit, and `torchrun` with DDP trains the model one process
#   trains, to float rounding; FSDP is the next step when 16 bytes per parameter no longer fit.
#
# ## References
#
# - Ansel et al. (2024). PyTorch 2: Faster Machine Learning Through Dynamic Python Bytecode
#   Transformation and Graph Compilation. *ASPLOS 2024* (no arXiv id).
# - Karras, Aittala, Aila & Laine (2022). Elucidating the Design Space of Diffusion-Based Generative
#   Models. arXiv:2206.00364.
# - Li et al. (2020). PyTorch Distributed: Experiences on Accelerating Data Parallel Training.
#   arXiv:2006.15704.
# - Lu, Zhou, Bao, Chen, Li & Zhu (2022). DPM-Solver: A Fast ODE Solver for Diffusion Probabilistic
#   Model Sampling in Around 10 Steps. arXiv:2206.00927.
# - Paszke et al. (2019). PyTorch: An Imperative Style, High-Performance Deep Learning Library.
#   arXiv:1912.01703.
# - Song & Ermon (2019). Generative Modeling by Estimating Gradients of the Data Distribution.
#   arXiv:1907.05600.
# - Song, Garg, Shi & Ermon (2019). Sliced Score Matching: A Scalable Approach to Density and Score
#   Estimation. arXiv:1905.07088.
# - Song, Meng & Ermon (2021). Denoising Diffusion Implicit Models. arXiv:2010.02502.
# - Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole (2021). Score-Based Generative Modeling
#   through Stochastic Differential Equations. arXiv:2011.13456.
# - Vincent (2011). A connection between score matching and denoising autoencoders. *Neural
#   Computation* 23(7) (no arXiv id).
# - Zhao et al. (2023). PyTorch FSDP: Experiences on Scaling Fully Sharded Data Parallel.
#   arXiv:2304.11277.
#
# ## Exercise
#
# The graded exercise for this lecture is
# [exercises/03_implementation.ipynb](../exercises/03_implementation.ipynb) (open it with
# `make lab`; grading: see the README): you write one piece of each layer yourself and check it
# against the library and against closed forms: a Heun step and its measured order, a
# DPM-Solver-2 step, the denoising-score-matching loss of a new score model that `fit` trains
# unchanged, the gradient averaging that DistributedDataParallel does across processes, and a
# prediction of which sampler wins at a fixed budget.
