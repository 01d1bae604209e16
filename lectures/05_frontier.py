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
# # 05 Frontier: interpolants, particle flows, and the course in one map
#
# *Reading time 60 min, run time about 2-2.5 min on a 2-core laptop CPU (quick profile; 135 s measured alone). Every
# model here is 2D and trains live in seconds; the schedule experiment trains its ten models in
# two worker processes.*
#
# **Learning goals.** After this notebook you can
# 1. write any stochastic interpolant $x_t = \alpha_t x_0 + \beta_t x_1 + \gamma_t z$, check its
#    boundary conditions, and recognise flow matching, the trigonometric path, diffusion (with the
#    right VP coefficient) and the Schrödinger bridge as instances; sample it by the ODE and by
#    SDEs with a tunable noise level;
# 2. run the open question "which schedule is best?" as an experiment at matched compute and say
#    what the numbers support and what they do not;
# 3. state DiffFlow correctly (the optimal discriminator's logit gradient is a score difference;
#    the score-difference flow has Langevin's marginals) and check which particle flows keep
#    $p_\text{data}$ stationary;
# 4. train an Energy Matching potential and explain why a bare $\|\nabla E\|^2$ penalty is not
#    score matching;
# 5. run Wasserstein gradient flows with particles (JKO against Langevin against the closed form)
#    and read an unbalanced transport plan: where mass is created or destroyed;
# 6. draw the course's map of exact equivalences, each edge backed by a check.
#
# **Prerequisites.** Lecture 01 (flow matching, DDPM, GANs, rectified flow), lecture 02 (the
# probability-flow ODE, the JKO step for Gaussians, check 6.9 on score matching), lecture 04 (the
# benchmark). Optimal transport at the level of "a coupling of two distributions and its cost".
#
# **The story.** Five lectures built six families and proved they are views of one problem. The
# frontier of the field is busy *redrawing that picture*: stochastic interpolants put flows and
# diffusion in one formula and leave open which path to take; DiffFlow and Energy Matching put
# GANs and energy-based models on the same particle dynamics as diffusion; gradient flows and
# unbalanced transport say what "moving a distribution" means when mass need not be conserved.
# Each idea below runs here, is measured, and is stated the way the papers prove it, not the way
# it is often retold. The lecture ends with the course's whole map.

# %%
import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import torch
from IPython.display import Markdown, display

from unigm import bench_images, data, metrics, runtime, samplers
from unigm.course import checkpoints, course_map, frontier_runs
from unigm.course.derivations import core as derivations
from unigm.course.explorers import InterpolantExplorer
from unigm.course.figures import check_readable, markdown_table, use_course_style
from unigm.frontier import diffflow, energy_matching, gradient_flows, interpolants
from unigm.train import fit

setup = runtime.setup(seed=0)
use_course_style()
ROOT = Path(bench_images.__file__).resolve().parents[2]  # the repository: results/ and checkpoints/
moons = data.toy("two_moons")
moons_ref = metrics.reference(moons)
setup

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Stochastic interpolants: one formula for flows and diffusion
#
# **Intuition.** Flow matching draws a straight line from a data point to a noise point and
# learns the velocity along it; diffusion adds noise to data along a fixed schedule and learns
# the score. Albergo, Boffi & Vanden-Eijnden (2023) write both as one **interpolant**
# $$x_t = \alpha_t x_0 + \beta_t x_1 + \gamma_t z, \qquad z \sim \mathcal N(0, I),$$
# with $x_0$ a data point (at $t = 0$, the course's convention), $x_1$ a noise draw (at $t = 1$)
# and boundary conditions $\alpha_0 = \beta_1 = 1$, $\alpha_1 = \beta_0 = 0$, $\gamma_0 = \gamma_1 = 0$,
# so that $x_t$ is exactly data at one end and exactly noise at the other. The density of $x_t$
# moves with the velocity $b(t, x) = \mathbb E[\dot\alpha_t x_0 + \dot\beta_t x_1 + \dot\gamma_t z \mid x_t = x]$,
# learned by regression, and the same marginals are produced by a family of SDEs
# $dx = (b - \varepsilon_t s)\,dt + \sqrt{2\varepsilon_t}\,dW$ run from $t = 1$ to $0$, for any
# $\varepsilon_t \ge 0$, where $s$ is the score of $x_t$ (learned by a second regression, the
# "denoiser").
#
# The instances: **linear** $\alpha = 1 - t$, $\beta = t$, $\gamma = 0$ (flow matching);
# **trigonometric** $\alpha = \cos\frac{\pi t}{2}$, $\beta = \sin\frac{\pi t}{2}$; **diffusion** as
# the one-sided case $x_t = a_t x_\text{data} + b_t\varepsilon$ with the VP coefficient
# $a_t = \exp(-\frac12\int_0^t \beta(s)\,ds)$, **not** $\sqrt{1 - \beta(t)}$ (a common slip that
# mixes the continuous schedule with DDPM's discrete $\sqrt{1 - \beta_i}$); any schedule **with
# $\gamma_t = c\sqrt{t(1-t)}$** added, a latent noise that vanishes at both ends.

# %%
schedules = {"linear": interpolants.linear(), "trigonometric": interpolants.trigonometric(),
             "VP (one-sided)": interpolants.vp(), "linear + gamma 0.5": interpolants.with_gamma(interpolants.linear(), 0.5),
             "learnable (at init)": interpolants.Learnable()}
ends = torch.tensor([0.0, 1.0])
boundary_rows = []
for name, s in schedules.items():
    with torch.no_grad():
        a, b, g = (f(ends) for f in (s.alpha, s.beta, s.gamma))
    boundary_rows.append({"schedule": name, "alpha_0": a[0].item(), "beta_0": b[0].item(), "gamma_0": g[0].item(),
                          "alpha_1": a[1].item(), "beta_1": b[1].item(), "gamma_1": g[1].item()})
display(Markdown(markdown_table(boundary_rows, ["schedule", "alpha_0", "beta_0", "gamma_0", "alpha_1", "beta_1", "gamma_1"], digits=4)))
for name, s in schedules.items():
    s.check(tol=1e-2 if name.startswith("VP") else 1e-6)  # raises ValueError naming a broken condition
try:
    schedules["VP (one-sided)"].check()
except ValueError as err:
    print("VP at the default tolerance:", err)

# %% [markdown]
# The VP schedule ends at $a_1 = e^{-5.025} \approx 0.0066$, not 0: diffusion never quite
# reaches pure noise, which is why its check needs a tolerance. Now the VP coefficient, against
# the slip:

# %%
t = torch.linspace(0, 1, 201, dtype=torch.float64)
beta_of = lambda s: 0.1 + (20.0 - 0.1) * s  # the VP-linear beta(t), the course's default
integral = torch.cumulative_trapezoid(beta_of(t), t, dim=0)
a_quadrature = torch.exp(-0.5 * torch.cat([torch.zeros(1, dtype=t.dtype), integral]))
a_library = schedules["VP (one-sided)"].alpha(t)
a_slip = torch.sqrt((1 - beta_of(t)).clamp(min=0))
fig_sched, (ax_c, ax_v) = plt.subplots(1, 2, figsize=(15, 5))
for name, s in schedules.items():
    with torch.no_grad():  # the learnable schedule's coefficients carry gradients
        alpha_t, gamma_t = s.alpha(t), s.gamma(t)
    ax_c.plot(t, alpha_t, label=f"alpha, {name}")
    if gamma_t.abs().max() > 0:
        ax_c.plot(t, gamma_t, ls=":", label=f"gamma, {name}")
ax_c.set(xlabel="t (0 = data, 1 = noise)", ylabel="coefficient", title="data weight alpha_t (solid) and latent noise gamma_t (dotted)")
ax_c.legend(fontsize=12)
ax_v.plot(t, a_library, lw=3, label="library vp(): exp(-1/2 int beta)")
ax_v.plot(t, a_quadrature, "k--", label="quadrature of beta")
ax_v.plot(t, a_slip, "C3", label="the slip: sqrt(1 - beta(t))")
ax_v.set(xlabel="t", ylabel="a_t", title="the VP data coefficient")
ax_v.legend()
fig_sched.tight_layout()
check_readable(fig_sched)
plt.show()

# %% tags=["checks"]
assert torch.allclose(a_library, a_quadrature, atol=1e-4)  # the library's VP coefficient is exp(-1/2 int beta)
assert (a_library - a_slip).abs().max() > 0.5  # and the slip is far from it (it is 0 once beta(t) >= 1)
print("boundary conditions and the VP coefficient checked")

# %% [markdown]
# *Figure: left, the data weight $\alpha_t$ of each schedule and the latent noise $\gamma_t$ where
# there is some; right, the VP coefficient from the library, from a quadrature of $\beta$, and
# the slip $\sqrt{1 - \beta(t)}$, which is not even defined once $\beta(t) > 1$.*
#
# **Explore.** The coefficients above, set in motion. Each dot is one fixed pair (a two-moons point
# $x_0$ and a noise draw $x_1$) plus one fixed $z$, placed at $x_t=\alpha_tx_0+\beta_tx_1+\gamma_tz$ with the
# library's schedule; grey lines are the whole paths of 40 dots. Press play with the linear schedule
# and $\gamma = 0$: every dot runs a straight segment at constant speed. **Predict**, then check: what
# does trigonometric change, with the same two ends? And VP, where by $t = 0.5$ only $a_{1/2} \approx 0.28$
# of the data is left? Then raise the gamma amplitude to 1: the paths bend outwards by $\gamma_t z$ and
# the cloud at $t = 0.5$ widens by $\gamma_{1/2} = 0.5$, yet both ends stay exactly where they were: the
# boundary condition $\gamma_0 = \gamma_1 = 0$ at work (checked below).

# %%
interpolant_explorer = InterpolantExplorer()  # linear, gamma 0, t = 0.5; each change redraws in ~0.13 s
interpolant_explorer.show()

# %% tags=["checks"]
interpolant_explorer.update(schedule="vp", gamma=0.0, t=0.5)
assert abs(interpolant_explorer.coefficients["alpha"] - 0.281) < 0.005
ends = []
for t_end in (0.0, 1.0):
    interpolant_explorer.update(schedule="linear", gamma=1.0, t=t_end)
    ends.append(interpolant_explorer.particles.clone())
interpolant_explorer.update(schedule="linear", gamma=1.0, t=0.5)
assert abs(interpolant_explorer.coefficients["gamma"] - 0.5) < 1e-9
assert torch.allclose(ends[0], interpolant_explorer.x0) and torch.allclose(ends[1], interpolant_explorer.x1)
interpolant_explorer.update(schedule="linear", gamma=0.0, t=0.5)  # back to the default state
print("explorer checks passed: a_1/2 of VP, gamma_1/2 = 0.5, the ends fixed")

# %% [markdown]
# **Predict.** Train one interpolant (linear + $\gamma = 0.5$) with both regressions, the velocity
# and the denoiser, then sample it with the same 32 steps by the ODE ($\varepsilon = 0$) and by
# SDEs with $\varepsilon = 0.2$ and $1$. Which is best? The theory says all share the marginals,
# *given the exact velocity and score and exact integration*: what does a learned score and a
# 32-step Euler-Maruyama scheme do to that promise?

# %%
torch.manual_seed(0)
gamma_model = interpolants.StochasticInterpolant((2,), interpolants.InterpolantConfig(schedule="linear+gamma0.5"))
gamma_history = fit(gamma_model, moons, steps=runtime.by_profile(1000, 6000), batch_size=256, lr=3e-3, ema_decay=0.995,
                    seed=0, progress=False)
sde_rows = []
for eps in (0.0, 0.2, 1.0):
    x = gamma_model.sample(len(moons_ref.test), 32, eps=eps, generator=torch.Generator().manual_seed(1),
                           method="euler")
    sde_rows.append(dict(sampler="ODE (Euler)" if eps == 0 else f"SDE, eps = {eps}", eps=eps,
                         G=metrics.sample_quality(x, moons_ref).gap_closed))
display(Markdown(markdown_table(sde_rows, ["sampler", "eps", "G"])))
print(f"trained in {gamma_history.seconds:.1f} s")

# %% tags=["checks"]
assert max(r["G"] for r in sde_rows) > 0.6  # the interpolant learned two moons
assert sde_rows[0]["G"] - sde_rows[-1]["G"] > 0.03  # with learned fields and 32 steps, the samplers differ
print("interpolant quality gate passed")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### The Schrödinger bridge: an interpolant with an optimal-transport coupling
#
# So far $x_0$ and $x_1$ were drawn **independently**. Choose instead the pairs from the entropic
# optimal-transport plan between a batch of data and a batch of noise (Sinkhorn, POT's
# `ot.sinkhorn`, regularisation $2\sigma^2$) and interpolate with a Brownian bridge,
# $x_t = (1 - t)x_0 + t x_1 + \sigma\sqrt{t(1-t)}\,z$: this is the Schrödinger bridge with a
# Brownian reference, the stochastic counterpart of OT flow matching. Pairs that are close make
# short, nearly straight paths. Note what this breaks: with a coupling, $x_t$ is no longer a
# Gaussian blur of the data, so the "every path is Gaussian, same PF-ODE" results of lecture 02
# (which need the independent coupling: check 3.16 measures how an OT pairing ties the noise to the
# data) do not apply.

# %%
bridge_models, bridge_rows = {}, []
for coupling in ("independent", "sinkhorn"):
    torch.manual_seed(0)
    # the same path law either way: (1 - t) x0 + t x1 + 0.5 sqrt(t (1 - t)) z; only the pairs differ
    schedule = {"schedule": "linear+gamma0.5"} if coupling == "independent" else {}
    config = interpolants.InterpolantConfig(coupling=coupling, sigma=0.5, learn_score=False, **schedule)
    model = interpolants.StochasticInterpolant((2,), config)
    history = fit(model, moons, steps=runtime.by_profile(1000, 6000), batch_size=256, lr=3e-3, ema_decay=0.995,
                  seed=0, progress=False)
    bridge_models[coupling] = model
    x1 = torch.randn(len(moons_ref.test), 2, generator=torch.Generator().manual_seed(1))
    g2, g8 = (metrics.sample_quality(interpolants.ode_sample(model.velocity, x1, k, "euler"), moons_ref).gap_closed
              for k in (2, 8))
    bridge_rows.append(dict(coupling=coupling, G_2_steps=g2, G_8_steps=g8,
                            straightness=interpolants.path_straightness(model, 2000, 64, 0),
                            transport_cost=interpolants.transport_cost(model, 2000, 64, 0),
                            train_s=history.seconds))
display(Markdown(markdown_table(bridge_rows, ["coupling", "G_2_steps", "G_8_steps", "straightness", "transport_cost", "train_s"])))
bridge = {r["coupling"]: r for r in bridge_rows}

# %%
fig_bridge, axes = plt.subplots(1, 2, figsize=(14, 6))
x1 = torch.randn(300, 2, generator=torch.Generator().manual_seed(4))
for ax, (coupling, model) in zip(axes, bridge_models.items()):
    trajectory = []
    samplers.euler(model.velocity, x1, 32, trajectory=trajectory)
    paths = torch.stack(trajectory)  # (steps + 1, n, 2)
    ax.plot(paths[:, :, 0], paths[:, :, 1], color="0.6", lw=0.6, alpha=0.6)
    ax.scatter(*paths[-1].T, s=6, c="C0", label="x_0 (generated data)")
    ax.scatter(*paths[0].T, s=6, c="C3", label="x_1 (noise)")
    ax.set(xlabel="x1", ylabel="x2", title=f"{coupling} coupling: ODE paths, cost {bridge[coupling]['transport_cost']:.2f}")
    ax.legend(loc="lower right")
fig_bridge.tight_layout()
check_readable(fig_bridge)
plt.show()

# %% tags=["checks"]
assert bridge["sinkhorn"]["transport_cost"] < bridge["independent"]["transport_cost"]  # OT pairs: shorter paths
assert bridge["sinkhorn"]["straightness"] < bridge["independent"]["straightness"]
print("Schrodinger-bridge checks passed")

# %% [markdown]
# *Figure: the ODE paths of the two trained models from the same 300 noise points. With the
# Sinkhorn coupling each noise point travels to a nearby part of the moons, along straighter,
# shorter paths; with independent pairs the paths cross and bend.*
#
# ## 2. The open question as an experiment: which schedule is best?
#
# The interpolant framework does not say which $(\alpha, \beta, \gamma)$ to use, and papers
# disagree. We can at least ask our data. Five schedules at **matched compute** (the same net,
# 1,500 gradient steps of batch 256, the same learning rate), two seeds each: linear,
# trigonometric, the VP-equivalent one-sided path, linear with latent noise $\gamma = 0.5\sqrt{t(1-t)}$,
# and a **learnable** monotone schedule $\alpha = 1 - F$, $\beta = F$ ($F$ piecewise linear with 16
# learned increments), trained by the max-min objective of Albergo & Vanden-Eijnden (2023): the
# velocity minimises its regression error while the schedule *maximises* it, which amounts to
# minimising the path's kinetic energy (a schedule cannot win trivially by shrinking the
# regression target). Each is sampled by Euler at 4, 8, 16 and 64 steps and scored by $G$;
# straightness (Liu et al. 2023: 0 for straight paths walked at constant speed) is measured too.
#
# **Predict.** Which schedule wins at 4 steps? At 64?

# %%
experiment = frontier_runs.schedule_experiment(seeds=(0, 1), steps=runtime.by_profile(1500, 6000))
nfes = (4, 8, 16, 64)
summary = []
for name in dict.fromkeys(r["schedule"] for r in experiment):
    runs = [r for r in experiment if r["schedule"] == name]
    row = {"schedule": name}
    for k in nfes:
        values = [r[f"G@{k}"] for r in runs]
        row[f"G@{k}"] = f"{np.mean(values):.2f} ± {np.std(values):.2f}"
        row[f"mean@{k}"] = float(np.mean(values))
    row["straightness"] = float(np.mean([r["straightness"] for r in runs]))
    row["train_s"] = float(np.mean([r["train_seconds"] for r in runs]))
    summary.append(row)
display(Markdown(markdown_table(summary, ["schedule"] + [f"G@{k}" for k in nfes] + ["straightness", "train_s"])))
fig_exp, (ax_g, ax_s) = plt.subplots(1, 2, figsize=(15, 5.5))
for row in summary:
    runs = [r for r in experiment if r["schedule"] == row["schedule"]]
    ax_g.errorbar(nfes, [row[f"mean@{k}"] for k in nfes], yerr=[np.std([r[f"G@{k}"] for r in runs]) for k in nfes],
                  marker="o", capsize=3, label=row["schedule"])
    ax_s.scatter(row["straightness"], row["mean@4"], s=60, label=row["schedule"])
ax_g.set(xscale="log", xlabel="Euler steps = network evaluations (log scale)", ylabel="G (mean of 2 seeds, ± sd)",
         title="quality against steps, matched training compute")
ax_g.legend(fontsize=12)
ax_s.set(xlabel="straightness (lower = straighter)", ylabel="G at 4 steps", title="straight paths pay off at few steps")
ax_s.legend(fontsize=12)
fig_exp.tight_layout()
check_readable(fig_exp)
plt.show()
best = {k: max(summary, key=lambda r: r[f"mean@{k}"])["schedule"] for k in nfes}
print("best schedule by mean G:", best)

# %% [markdown]
# *Figure: left, G against the number of Euler steps for each schedule (mean of two seeds, bars
# one standard deviation); right, G at 4 steps against straightness.*
#
# **What the numbers support.** At 4 and 8 Euler steps the trigonometric schedule wins clearly,
# and it is also by far the straightest path: on two moons, straightness predicts few-step
# quality, as it did for reflow in lecture 01. The learnable schedule, which minimises the kinetic
# energy of the marginal flow, comes second at 4 steps: a lower kinetic energy is not the same as
# straighter particle paths. With 16 or 64 steps the differences shrink to a few hundredths, about
# the spread between seeds, with the linear paths slightly ahead, and the VP-equivalent path is
# the worst at every budget from 16 steps. **The limits:** one 2D data set, two seeds, one sampler
# (Euler), one network and one training budget. A higher-order sampler, another dimension or
# longer training can reorder the table, which is exactly why "which schedule?" is still open; what
# the experiment does support is the mechanism: pick the path for the step budget you will sample
# with.

# %% tags=["checks"]
straightest = min(summary, key=lambda r: r["straightness"])
assert straightest["schedule"] == "trigonometric" and best[4] == best[8] == "trigonometric"
assert all(min(summary, key=lambda r: r[f"mean@{k}"])["schedule"] == "vp" for k in (16, 64))
assert max(r["mean@64"] for r in summary) - min(r["mean@64"] for r in summary if r["schedule"] != "vp") < 0.1
assert min(r["mean@64"] for r in summary) > 0.6  # every schedule learns the moons given enough steps
print("schedule experiment checks passed")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. DiffFlow: GANs and diffusion as particle flows
#
# **Intuition.** Think of a generator's samples as particles. A GAN's discriminator tells each
# particle which way the data is; a diffusion model's score does the same. DiffFlow (Zhang, Shi,
# Yu, Xie & Li 2023) makes this exact. The optimal discriminator (lecture 02, check 4.1) is
# $D^* = p_\text{data} / (p_\text{data} + p_g)$, so its logit is $\log p_\text{data} - \log p_g$
# (check 4.3) and
# $$\nabla \operatorname{logit} D^*(x) = \nabla\log p_\text{data}(x) - \nabla\log p_g(x),$$
# a **score difference**. Moving particles along it is the GAN-like member of the family (the
# paper's $\alpha = 1$, $\beta = -1$); the generator of a non-saturating GAN follows
# $+\nabla\log D$, the same direction weighted by $1 - D$. The score-difference flow is also
# exactly the velocity field of the marginals of Langevin dynamics
# $dx = \nabla\log p_\text{data}\,dt + \sqrt 2\,dW$ (its Fokker-Planck equation written as a
# continuity equation), so **the two have the same marginals**: one deterministic, one noisy.
#
# Stationarity is where the statements are often garbled, so we check it numerically. Start
# 1,000 particles exactly at $p_\text{data}$ (eight Gaussians) and run each flow: which keep them
# there? We measure $\mathbb E_\text{particles}\log p_\text{data} - \mathbb E_\text{data}\log p_\text{data}$
# (nats): about 0 if the distribution is kept, positive if the particles crowd the modes.
#
# **Predict.** Gradient ascent on $\log p_\text{data}$ alone (no $-\nabla\log p_g$, no noise)?
# Langevin with noise $dW$ instead of $\sqrt 2\,dW$?

# %%
stationarity = diffflow.stationarity_table("eight_gaussians", n=1000, steps=200, step=1e-3, bandwidth=0.1)
display(Markdown(markdown_table(stationarity, ["method", "w2", "w2_floor", "log_p_excess"])))
excess = {r["method"]: r["log_p_excess"] for r in stationarity}

# %% tags=["checks"]
assert abs(excess["score-difference (KDE)"]) < 0.2 and abs(excess["Langevin, sqrt(2) noise"]) < 0.2  # stationary
assert excess["gradient ascent"] > 0.6  # collapses toward the modes
assert 0.3 < excess["Langevin, noise 1"] < 0.7  # samples p_data^2: expected excess 1/2 nat per dimension pair
print("stationarity checks passed")

# %% [markdown]
# Only the flows with the $-\nabla\log p_g$ term (estimated by a kernel density of the particles,
# with the data score smoothed by the same kernel so that both sides see the same blur) or with
# the right noise keep $p_\text{data}$. Gradient ascent climbs to the modes, and Langevin with the
# wrong noise level samples $p_\text{data}^2$, a sharper distribution (excess $\frac12$ nat in
# 2D, as the table shows). Now from a Gaussian start toward two moons, with the particle score
# from a kernel density and, GAN-style, from a small classifier retrained as the particles move:

# %%
n_ref = len(moons_ref.test)  # G is measured at the reference's sample size
start = metrics.gaussian_fit_samples(moons_ref.test, n_ref, torch.Generator().manual_seed(5))
data_score = diffflow.toy_score(diffflow.smoothed_toy(moons, 0.2))
kde_flow = diffflow.score_difference_flow(start.clone(), data_score, step=0.015, steps=200, bandwidth=0.2)
disc_flow = diffflow.discriminator_flow(start.clone(), moons, steps=120, step=0.03,
                                        generator=torch.Generator().manual_seed(6))
flow_g = dict(zip(("Gaussian start", "score-difference, KDE", "discriminator flow"),
                  (q.gap_closed for q in metrics.sample_quality_many([start, kde_flow, disc_flow], moons_ref))))

# %%
fig_diffflow, axes = plt.subplots(1, 3, figsize=(16, 5))
for ax, (title, x) in zip(axes, (("Gaussian start", start), ("score-difference, KDE", kde_flow),
                                  ("discriminator flow", disc_flow))):
    ax.scatter(*moons_ref.test.T, s=3, c="0.75", label="data")
    ax.scatter(*x.T, s=3, c="C0", label="particles")
    ax.set(xlabel="x1", ylabel="x2", title=f"{title}: G = {flow_g[title]:.2f}", xlim=(-2.5, 3.5), ylim=(-2, 2.5))
    ax.legend(loc="lower right")
fig_diffflow.tight_layout()
check_readable(fig_diffflow)
plt.show()

# %% tags=["checks"]
assert flow_g["score-difference, KDE"] > flow_g["Gaussian start"] + 0.2
assert flow_g["discriminator flow"] > flow_g["Gaussian start"] + 0.2
print("DiffFlow checks passed")

# %% [markdown]
# *Figure: 2,000 particles from the best single Gaussian (left) moved by the score-difference
# flow with a kernel-density particle score (middle) and by the discriminator flow, where a small
# classifier's logit gradient stands in for the score difference (right). G is measured against
# 2,000 held-out points.*
#
# ## 4. Energy Matching: one potential for the whole path
#
# **Intuition.** Flow matching learns a *time-dependent* velocity; an energy-based model learns a
# *time-independent* potential $E(x)$ whose Boltzmann density $e^{-E/T}$ is the model. Energy
# Matching (Balcerak et al. 2025) learns one scalar potential that does both: far from the data,
# $-\nabla E$ is trained like optimal-transport flow matching (regressed on the straight-line
# targets of minibatch-OT pairs, so gradient descent on $E$ carries noise to data); near the
# data, a contrastive (Boltzmann) term pushes $E$ down on data and up on negatives drawn by
# short Langevin chains. Sampling is gradient descent on $E$ from noise, then Langevin at
# temperature $T$.
#
# Why not simply add a penalty $\mathbb E\|\nabla E\|^2$ and call it score matching? Lecture 02's
# check 6.9 proved it on a one-parameter family: for data $\mathcal N(0, 1)$ and
# $E_\theta = x^2/(2\theta^2)$, $\mathbb E\|\nabla E_\theta\|^2 = \theta^{-4}$ has no minimiser,
# while Hyvärinen's objective $\mathbb E[\frac12\|\nabla E\|^2 - \Delta E] = \frac12\theta^{-4} - \theta^{-2}$
# is minimised at the true $\theta = 1$. Here is the same statement on the library's torch
# potential, by Monte Carlo and autograd, next to the check re-run:

# %%
x_std = torch.randn(20000, 1, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
thetas = np.linspace(0.6, 3.0, 25)
bare, hyv = [], []
for theta in thetas:
    potential = energy_matching.QuadraticEnergy(float(theta)).double()
    bare.append(energy_matching.bare_gradient_penalty(potential, x_std).item())
    hyv.append(energy_matching.hyvarinen_objective(potential, x_std).item())
fig_sm, ax = plt.subplots(figsize=(9, 5))
ax.plot(thetas, bare, "o-", label="bare penalty E|grad E|^2 (Monte Carlo)")
ax.plot(thetas, hyv, "s-", label="Hyvarinen: E[|grad E|^2 / 2 - lap E]")
ax.plot(thetas, thetas**-4, "k:", label="closed forms")
ax.plot(thetas, thetas**-4 / 2 - thetas**-2, "k:")
ax.axvline(1.0, color="0.5", ls="--", label="true theta = 1")
ax.set(xlabel="theta (model E = x^2 / (2 theta^2))", ylabel="objective", title="only Hyvarinen's objective finds theta = 1")
ax.legend()
check_readable(fig_sm)
plt.show()
check_69, check_610 = derivations.run("6.9"), derivations.run("6.10")
print(f"{check_69.check.name}: {'PASS' if check_69.passed else 'FAIL'}; {check_610.check.name}: {'PASS' if check_610.passed else 'FAIL'}")

# %% tags=["checks"]
assert abs(thetas[int(np.argmin(hyv))] - 1.0) <= 0.11 and int(np.argmin(bare)) == len(thetas) - 1
assert np.allclose(bare, thetas**-4, rtol=0.05) and check_69.passed and check_610.passed
print("score-matching checks passed")

# %% [markdown]
# *Figure: the bare gradient penalty keeps falling as $\theta$ grows (flatter potentials always
# score better), so it cannot fit a density; Hyvärinen's objective, which subtracts the Laplacian
# (integration by parts, check 6.8), has its minimum at the data's $\theta = 1$.*
#
# **Predict.** After training, will $-\nabla E$ at a point far above the moons point toward them?
# Will the short contrastive phase and the Langevin refinement improve the samples?

# %%
torch.manual_seed(0)
em = energy_matching.EnergyMatching((2,), energy_matching.EnergyMatchingConfig(phase1_steps=runtime.by_profile(600, 2400)))
em_history = fit(em, moons, steps=runtime.by_profile(750, 3000), batch_size=256, lr=3e-3, seed=0, progress=False)
em_rows = []
for langevin_steps in (0, 50):
    x = em.sample(len(moons_ref.test), generator=torch.Generator().manual_seed(8), langevin_steps=langevin_steps)
    em_rows.append(dict(sampler=f"descent, then {langevin_steps} Langevin steps",
                        G=metrics.sample_quality(x, moons_ref).gap_closed))
display(Markdown(markdown_table(em_rows, ["sampler", "G"])))
grid = torch.stack(torch.meshgrid(torch.linspace(-3, 4, 120), torch.linspace(-3, 3.5, 110), indexing="xy"), -1)
with torch.no_grad():
    landscape = em.energy(grid.reshape(-1, 2)).reshape(grid.shape[:2])
far = torch.tensor([[0.5, 4.0], [0.5, -4.0]])
toward = em.velocity(far).detach()
cosine = torch.nn.functional.cosine_similarity(toward, moons_ref.test.mean(0) - far).tolist()
fig_em, ax = plt.subplots(figsize=(9, 7))
contour = ax.contourf(grid[..., 0], grid[..., 1], landscape, levels=30, cmap="viridis")
ax.scatter(*x[:800].T, s=3, c="w", label="samples")
ax.quiver(far[:, 0], far[:, 1], toward[:, 0], toward[:, 1], color="C3", label="-grad E far away")
fig_em.colorbar(contour, ax=ax, label="E(x)").ax.set_xlabel("energy")
ax.set(xlabel="x1", ylabel="x2", title=f"the learned potential E (trained {em_history.seconds:.0f} s)", ylim=(-4.5, 4.5))
ax.legend(loc="lower right")
check_readable(fig_em)
plt.show()
print(f"cosine of -grad E with the direction to the data at (0.5, +-4): {cosine[0]:.2f}, {cosine[1]:.2f}")

# %% tags=["checks"]
assert max(r["G"] for r in em_rows) > 0.4  # the potential generates two moons
assert em_rows[1]["G"] <= em_rows[0]["G"]  # at this budget the Langevin refinement does not help (see below)
assert min(cosine) > 0.3  # far from the data, -grad E points toward it
print("Energy Matching checks passed")

# %% [markdown]
# *Figure: the learned potential $E$ over the plane (dark is low), samples drawn by descent and
# Langevin, and $-\nabla E$ at two far points. The potential is one function of $x$ alone: the
# same landscape serves the whole trip from noise to data.*
#
# Honestly measured: in runs this short, the contrastive phase and the Langevin refinement do not
# improve $G$ over plain descent (the table above); the paper trains far longer, and the
# Boltzmann phase is what gives the model a usable density $e^{-E/T}$ near the data, which plain
# flow matching does not have.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Wasserstein gradient flows with particles, and transport that may create mass
#
# **Intuition.** Lecture 02 proved that the forward noising process is a gradient flow: it moves a
# density downhill on $\mathrm{KL}(\rho\,\|\,\pi)$ in the Wasserstein geometry, and the JKO scheme
# (Jordan, Kinderlehrer & Otto 1998) is its implicit Euler step,
# $$\rho_{k+1} = \arg\min_\rho\ \mathrm{KL}(\rho\,\|\,\pi) + \frac{W_2^2(\rho, \rho_k)}{2\tau}.$$
# Lecture 02 solved it in closed form for Gaussians. With particles we need no closed form: push
# the particles by a map $T$ and minimise over $T$
# $$J(T) = \mathbb E\big[V(T(x)) - \log|\det \nabla T(x)| + |T(x) - x|^2/(2\tau)\big],$$
# where $V = -\log\pi$ and the log-determinant is the change of variables of $\rho$ under $T$ (no
# density estimate needed). Langevin dynamics $dx = -\nabla V\,dt + \sqrt 2\,dW$ is the explicit,
# stochastic way down the same hill.
#
# **Predict.** From $\rho_0 = \mathcal N(2, 0.5^2)$ toward $\pi = \mathcal N(0, 1)$ with steps of
# $\tau = 0.1$: after time 1, does the implicit JKO step overshoot or undershoot the exact mean
# $2e^{-1} = 0.736$? And Langevin with the same step?

# %%
gauss = gradient_flows.gaussian_energy(0.0, 1.0)
z = torch.randn(4000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
start = 2.0 + 0.5 * (z - z.mean()) / z.std(unbiased=False)  # exactly the moments of N(2, 0.5^2)
jko_rows = []
for tau in (0.1, 0.05):
    steps = round(1 / tau)
    flow = gradient_flows.jko_flow(start, gauss, tau, steps)
    langevin = gradient_flows.langevin_flow(start, gauss, 1.0, steps, generator=torch.Generator().manual_seed(1))
    exact = gradient_flows.fokker_planck_gaussian(2.0, 0.5, 1.0)
    closed = gradient_flows.gaussian_jko_iterates(2.0, 0.5, tau, steps)[-1]
    jko_rows.append(dict(tau=tau, exact_mean=exact[0], jko_particles=flow.particles.mean().item(),
                         jko_closed_form=closed[0], langevin=langevin.mean().item(),
                         jko_error=flow.particles.mean().item() - exact[0], langevin_error=langevin.mean().item() - exact[0]))
display(Markdown(markdown_table(jko_rows, ["tau", "exact_mean", "jko_particles", "jko_closed_form", "langevin",
                                           "jko_error", "langevin_error"])))

# %% tags=["checks"]
for row in jko_rows:  # the particle JKO step is the closed-form step of lecture 02; both are first order
    assert abs(row["jko_particles"] - row["jko_closed_form"]) < 1e-4
    assert row["jko_error"] > 0 > row["langevin_error"]  # implicit overshoots, explicit undershoots
assert 1.6 < jko_rows[0]["jko_error"] / jko_rows[1]["jko_error"] < 2.4  # halving tau halves the error
print("JKO checks passed: particles = closed form, first order in tau")

# %% [markdown]
# Both schemes are first order: the error halves with $\tau$. Now a target with no closed form, a
# 2D double well $V(x) = 2(x_1^2 - 1)^2 + x_2^2/2$, and a map $T(x) = x + \tau\,\mathrm{MLP}(x)$ for
# each step. Each particle carries its log-density through the steps ($\log\rho_{k+1}(T(x)) =
# \log\rho_k(x) - \log|\det\nabla T(x)|$), so the free energy $\mathbb E_\rho[V + \log\rho]$, which
# is $\mathrm{KL}(\rho\,\|\,\pi)$ up to a constant, can be watched going down.

# %%
def double_well(x):
    return 2 * (x[:, 0] ** 2 - 1) ** 2 + x[:, 1] ** 2 / 2


torch.manual_seed(0)  # the MLP maps' initial weights
cloud = torch.randn(600, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 0.3 + torch.tensor([0.0, 1.5], dtype=torch.float64)
cloud_log_density = -(((cloud - torch.tensor([0.0, 1.5], dtype=torch.float64)) / 0.3) ** 2).sum(1) / 2 - math.log(2 * math.pi * 0.09)
well = gradient_flows.jko_flow(cloud, double_well, 0.2, 5, log_density=cloud_log_density,
                               make_map=lambda d: gradient_flows.ResidualMap(d, 0.2))
langevin_well = gradient_flows.langevin_flow(cloud, double_well, 1.0, 200, generator=torch.Generator().manual_seed(3))
fig_jko, axes = plt.subplots(1, 3, figsize=(16, 5))
for ax, (title, x) in zip(axes[:2], [("JKO, 5 steps of tau = 0.2 (MLP maps)", well.particles),
                                     ("Langevin, 200 steps of 0.005", langevin_well)]):
    ax.scatter(*cloud.T, s=4, c="0.7", label="start")
    ax.scatter(*x.T, s=4, label="time 1")
    ax.set(xlabel="x1", ylabel="x2", title=title, xlim=(-2.2, 2.2), ylim=(-2.5, 2.5))
    ax.legend(loc="lower right")
axes[2].plot(range(len(well.free_energy)), well.free_energy, "o-")
axes[2].set(xlabel="JKO step", ylabel="free energy E[V + log rho] (= KL - log Z)", title="KL decreases at every step")
fig_jko.tight_layout()
check_readable(fig_jko)
plt.show()
w2_jko_langevin = metrics.wasserstein2(well.particles.float(), langevin_well.float())
w2_start = metrics.wasserstein2(cloud.float(), langevin_well.float())
print(f"W2(JKO, Langevin) at time 1: {w2_jko_langevin:.3f}; from the start cloud: {w2_start:.3f}")

# %% tags=["checks"]
assert all(b < a for a, b in zip(well.free_energy, well.free_energy[1:]))  # a Lyapunov function
assert w2_jko_langevin < 0.5 * w2_start  # the two schemes reach the same place
print("double-well checks passed")

# %% [markdown]
# *Figure: particles of a narrow cloud flowing for time 1 into the double well, by five JKO steps
# (left) and by fine-step Langevin dynamics (middle); right, the free energy along the JKO steps.
# The implicit step is deterministic and each step is an optimisation; Langevin is cheap per
# step but noisy and, on stiff potentials, unstable at large steps.*
#
# ### Unbalanced optimal transport: when mass should appear, not travel
#
# Optimal transport moves all of one measure onto another of **equal** mass. When the source has
# a cluster the target lacks and the target has a new one, balanced OT is forced to carry mass
# across the plane. Unbalanced OT (Chizat, Peyré, Schmitzer & Vialard 2018) replaces the hard
# marginal constraints by penalties $\rho_m\,\mathrm{KL}(P\mathbf 1\,\|\,a) + \rho_m\,\mathrm{KL}(P^\top\mathbf 1\,\|\,b)$:
# mass that is too expensive to move is destroyed at the source or created at the target. POT's
# `ot.unbalanced.sinkhorn_unbalanced` solves the entropic version.
#
# **Predict.** The source's extra cluster sits 16 squared units from everything in the target.
# With $\rho_m = 2$, what fraction of its mass moves?

# %%
example = gradient_flows.two_cluster_example()
balanced = gradient_flows.balanced_plan(example.a, example.b, example.xs, example.xt)
unbalanced = gradient_flows.unbalanced_plan(example.a, example.b, example.xs, example.xt, reg=0.1, reg_m=2.0)
change = gradient_flows.mass_change(unbalanced, example.a, example.b)
extra_moved = {name: float(plan.plan[example.source_extra].sum() / plan.plan.sum()) for name, plan in
               (("balanced", balanced), ("unbalanced", unbalanced))}
fig_uot, axes = plt.subplots(1, 2, figsize=(16, 6))
for ax, (title, plan) in zip(axes, [("balanced OT (masses normalised)", balanced),
                                    ("unbalanced OT, reg_m = 2", unbalanced)]):
    P = plan.plan / plan.plan.max()
    for i, j in zip(*np.nonzero(P > 0.05)):
        ax.plot(*zip(example.xs[i], example.xt[j]), color="0.5", alpha=float(P[i, j]) * 0.6, lw=1)
    ax.scatter(*example.xs.T, s=12, c="C0", label="source (mass 1)")
    ax.scatter(*example.xt.T, s=12, c="C3", label="target (mass 1.5)")
    ax.set(xlabel="x1", ylabel="x2", title=f"{title}: share of moved mass from the extra cluster "
                                           f"{100 * extra_moved['balanced' if plan is balanced else 'unbalanced']:.0f}%")
    ax.legend(loc="lower right")
sizes = 2000 * np.clip(change.destroyed, 0, None)
axes[1].scatter(*example.xs.T, s=sizes, facecolors="none", edgecolors="C0", label="destroyed")
axes[1].scatter(*example.xt.T, s=2000 * np.clip(change.created, 0, None), facecolors="none", edgecolors="C3",
                label="created")
fig_uot.tight_layout()
check_readable(fig_uot)
plt.show()
print(f"unbalanced: transported {unbalanced.transported:.3f}, destroyed {change.total_destroyed:.3f} "
      f"(the extra cluster holds {example.a[example.source_extra].sum():.3f}), created {change.total_created:.3f} "
      f"(the new cluster holds {example.b[example.target_extra].sum():.3f})")

# %% tags=["checks"]
assert extra_moved["balanced"] > 0.25 and extra_moved["unbalanced"] < 0.01
assert change.destroyed[example.source_extra].sum() > 0.95 * example.a[example.source_extra].sum()
assert change.created[example.target_extra].sum() > 0.95 * example.b[example.target_extra].sum()
assert abs((change.total_created - change.total_destroyed) - (example.b.sum() - example.a.sum())) < 1e-9
print("unbalanced OT checks passed")

# %% [markdown]
# *Figure: left, balanced OT must send the extra source cluster (top left) across the plane to
# the new target cluster (top right); right, unbalanced OT with $\rho_m = 2$ leaves both alone:
# the circles show mass destroyed at the source (blue) and created at the target (red), in
# proportion to their size.*

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. A frontier tour, built earlier in the course
#
# Several methods at the front of the field are already in the course, trained and measured.
# Each line below is read from the course's own runs: the image benchmark of lecture 04 (results
# committed with their commit and machine) or a course checkpoint's provenance (recipe, seed,
# steps and metrics, verified by hash before it is read).

# %%
bench = json.loads((ROOT / "results" / "bench_images.json").read_text())
bench_row = {r["model"]: r for r in bench["rows"]}
cd_curve = bench_row["consistency_distillation"]["curves"]["consistency distillation"]
ddpm_curve = bench_row["ddpm"]["curves"]["DDPM ancestral"]
var_m, mar_m = checkpoints.provenance("var")["metrics"], checkpoints.provenance("mar")["metrics"]
tf_m, wm_m = checkpoints.provenance("transfusion")["metrics"], checkpoints.provenance("world_model")["metrics"]
vj_m = checkpoints.provenance("vjepa")["metrics"]
for name in ("var", "mar", "transfusion", "world_model", "vjepa"):
    checkpoints.verify(name)  # the files these numbers describe are the committed ones
tour = [
    dict(method="consistency distillation (Song et al. 2023)", where="lecture 01, 7.5; lecture 04, section 8",
         result=f"digits FD {cd_curve[0]['frechet_distance']:.1f} in 1 step, against {ddpm_curve[-1]['frechet_distance']:.1f} "
                f"for its DDPM teacher in {ddpm_curve[-1]['nfe']} (floor {cd_curve[0]['frechet_distance_floor']:.1f})"),
    dict(method="VAR, next-scale prediction (Tian et al. 2024)", where="lecture 01, 8.6",
         result=f"FD {var_m['frechet_distance']:.1f} (floor {var_m['frechet_distance_floor']:.1f}) in {var_m['nfe']} network evaluations"),
    dict(method="MAR, masked autoregression with a diffusion head (Li et al. 2024)", where="lecture 01, 8.6",
         result=f"FD {mar_m['frechet_distance']:.1f} (floor {mar_m['frechet_distance_floor']:.1f}): under-trained at 1,500 steps"),
    dict(method="Transfusion, one transformer for text and images (Zhou et al. 2024)", where="lecture 01, 9.4",
         result=f"the judge agrees with the caption for {100 * tf_m['judge_accuracy']:.0f}% of generated digits; "
                f"{100 * tf_m['caption_accuracy']:.0f}% of test digits captioned right"),
    dict(method="an action-conditioned world model (Genie, Cosmos at toy scale)", where="lecture 01, 9.2",
         result=f"5-step rollout MSE {wm_m['mse_k5']:.4f} per pixel against {wm_m['action_blind_mse_k5']:.3f} blind "
                f"to actions and {wm_m['copy_last_mse_k5']:.3f} copying the last frame"),
    dict(method="V-JEPA, prediction in representation space (Bardes et al. 2024)", where="lecture 01, 9.3",
         result=f"velocity probe {vj_m['velocity_accuracy']:.2f} against {vj_m['random_velocity_accuracy']:.2f} for a "
                f"random encoder and {vj_m['one_frame_velocity_accuracy']:.2f} from one frame"),
]
display(Markdown(markdown_table(tour, ["method", "where", "result"])))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. The course in one map
#
# Six lectures ago the course promised that VAEs, flows, GANs, diffusion, autoregressive models
# and energy-based models are views of one problem. Here is the promise kept, as one picture.
# Every solid edge is an **exact equivalence** the course proved: the numbers on it name the
# machine-checked derivations of lecture 02 (`python -m unigm.course.derivations`), which this
# cell resolves in the registry and runs again now. Every dashed edge is a connection this
# lecture measured. Every family node carries its best row of lecture 04's benchmark. The map is
# built by `unigm.course.course_map` from the registry and the results file, so a deleted check
# or a new benchmark run changes the picture, never a hand-drawn copy of it.

# %%
graph = course_map.build(bench)
proofs = course_map.verify(graph)
fig_map, ax = plt.subplots(figsize=(17, 10))
course_map.draw(graph, ax)
ax.set_title(f"one problem, many views: {graph.number_of_edges()} edges, {len(proofs)} derivation checks "
             f"re-run here, all passed: {all(proofs.values())}")
ax.axis("off")
fig_map.tight_layout()
check_readable(fig_map)
plt.show()
edge_rows = [dict(views=f"{graph.nodes[a]['label'].splitlines()[0]} - {graph.nodes[b]['label'].splitlines()[0]}",
                  relation=d["relation"], evidence=", ".join(d["checks"]) or f"lecture {d['lecture']}")
             for a, b, d in graph.edges(data=True)]
display(Markdown(markdown_table(edge_rows, ["views", "relation", "evidence"])))

# %% tags=["checks"]
assert all(proofs.values()), [name for name, ok in proofs.items() if not ok]
assert nx.is_connected(graph)  # one problem: every view reaches every other
print(f"{len(proofs)} derivation checks behind the map passed; the map is connected")

# %% [markdown]
# *Figure: the course map. Solid blue edges are exact equivalences proved by the numbered
# derivation checks; dashed orange edges are connections measured in this lecture; a family node
# shows its best model on the digits benchmark (FD, floor about 4.5) and its best bits/dim.*
#
# ### What each lecture showed
#
# | lecture | what it showed |
# |---|---|
# | 00 quickstart | four families learn two moons through one interface; quality is a distance to fresh data read against its noise floor |
# | 01 paradigms | the six families built and trained, each with its own loss, sampler and failure mode, measured side by side |
# | 02 proofs | the equivalences on this map, proved with sympy and checked against the library's own code |
# | 03 implementation | one contract, one trainer and samplers as functions make forty models one library |
# | 04 experiments | metrics examined before they are trusted; every model benchmarked at matched compute, with its floor and its spread |
# | 05 frontier | interpolants unify flows and diffusion; the best schedule is an open question; GANs, energies and OT meet diffusion as particle flows |
#
# ### The road ahead
#
# - **Scale**: the course's models are small enough for a CPU; the same code runs the full
#   profile on MNIST on a GPU, and the scaling study of lecture 04 is the first measurement of
#   what more compute buys.
# - **Fewer steps**: consistency models, reflow and better solvers (lecture 03) trade training
#   for sampling; the schedule experiment of section 2 asks what the path itself can do.
# - **One model for everything**: Transfusion and world models (lecture 01) generate text,
#   images and futures with one network; prediction in representation space (JEPA) learns
#   without generating pixels at all.
# - **Open questions**: which interpolant is best for which data, how to train energy-based
#   models stably at scale, and how to evaluate models that no metric in lecture 04 was built for.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Check your understanding
#
# 1. Write the interpolant of DDPM's VP path in the form $\alpha_t x_0 + \beta_t x_1 + \gamma_t z$.
#    Which boundary condition does it satisfy only approximately, and by how much?
# 2. The SDE samplers of section 1 share the ODE's marginals "for any $\varepsilon$". Name the two
#    assumptions behind that sentence, and which one the table of section 1 tests.
# 3. The Sinkhorn coupling shortened the paths. Why does it also invalidate lecture 02's result
#    that every Gaussian path gives the same PF-ODE up to a change of clock?
# 4. The learnable schedule maximises the regression error of the velocity. Why is that not
#    absurd, and what would go wrong if it minimised it instead?
# 5. A discriminator outputs $D(x) = 0.8$ at a point. What is the score difference there, and which
#    way does the non-saturating generator's gradient $\nabla\log D$ point compared with it?
# 6. Langevin with noise $dW$ instead of $\sqrt 2\,dW$ samples $p^2$ (normalised). Derive it from
#    the stationary Fokker-Planck equation.
# 7. Why does a bare $\|\nabla E\|^2$ penalty prefer flat potentials, and what does the Laplacian
#    term of Hyvärinen's objective add?
# 8. Unbalanced OT with a tiny $\rho_m$ transports almost nothing. Why, and what does it do
#    instead?
#
# ## Summary
#
# - **Interpolants unify flows and diffusion.** $x_t = \alpha_t x_0 + \beta_t x_1 + \gamma_t z$ with
#   $\alpha_0 = \beta_1 = 1$, $\alpha_1 = \beta_0 = 0$, $\gamma_0 = \gamma_1 = 0$; flow matching is
#   the linear case, diffusion the one-sided case with $a_t = \exp(-\frac12\int_0^t\beta)$ (not
#   $\sqrt{1 - \beta(t)}$). ODE and SDE samplers share the marginals only with the exact velocity
#   and score and exact integration; with learned fields and 32 steps they differ, measurably.
# - **Couplings change the path.** Entropic-OT pairs with a Brownian bridge (the Schrödinger
#   bridge) give shorter, straighter paths than independent pairs, and leave the Gaussian-path
#   equivalences of lecture 02 behind.
# - **Which schedule is best is open.** At matched compute on two moons the answer depends on the
#   step budget, and the straightest path wins at few steps; two seeds and one data set are not
#   a law.
# - **GANs, diffusion and energies are particle flows.** $\nabla\operatorname{logit}D^* = \nabla\log p_\text{data} - \nabla\log p_g$;
#   the score-difference flow has Langevin's marginals and keeps $p_\text{data}$ stationary, gradient
#   ascent and mis-scaled Langevin do not. Energy Matching learns one potential for the whole trip.
# - **Gradient flows are optimisation in the space of distributions.** JKO is the implicit step,
#   Langevin the explicit stochastic one, both first order; unbalanced OT creates and destroys mass
#   where moving it would cost more.
# - **One problem, many views**: the map of section 7, each edge backed by a check.
#
# ## References
#
# - Albergo, Boffi & Vanden-Eijnden (2023). Stochastic Interpolants: A Unifying Framework for Flows and Diffusions. arXiv:2303.08797.
# - Albergo & Vanden-Eijnden (2023). Building Normalizing Flows with Stochastic Interpolants. arXiv:2209.15571.
# - Balcerak et al. (2025). Energy Matching: Unifying Flow Matching and Energy-Based Models for Generative Modeling. arXiv:2504.10612.
# - Bardes et al. (2024). Revisiting Feature Prediction for Learning Visual Representations from Video (V-JEPA). arXiv:2404.08471.
# - Chizat, Peyré, Schmitzer & Vialard (2018). Scaling Algorithms for Unbalanced Optimal Transport Problems. arXiv:1607.05816.
# - Cuturi (2013). Sinkhorn Distances: Lightspeed Computation of Optimal Transport. arXiv:1306.0895.
# - De Bortoli, Thornton, Heng & Doucet (2021). Diffusion Schrödinger Bridge with Applications to Score-Based Generative Modeling. arXiv:2106.01357.
# - Hyvärinen (2005). Estimation of Non-Normalized Statistical Models by Score Matching. JMLR 6.
# - Jordan, Kinderlehrer & Otto (1998). The Variational Formulation of the Fokker-Planck Equation. SIAM J. Math. Anal. 29(1).
# - Li, Tian, Li, Deng & He (2024). Autoregressive Image Generation without Vector Quantization (MAR). arXiv:2406.11838.
# - Liu, Gong & Liu (2023). Flow Straight and Fast: Learning to Generate and Transfer Data with Rectified Flow. arXiv:2209.03003.
# - Song, Dhariwal, Chen & Sutskever (2023). Consistency Models. arXiv:2303.01469.
# - Tian, Jiang, Yuan, Peng & Wang (2024). Visual Autoregressive Modeling: Scalable Image Generation via Next-Scale Prediction. arXiv:2404.02905.
# - Tong et al. (2024). Improving and Generalizing Flow-Based Generative Models with Minibatch Optimal Transport. arXiv:2302.00482.
# - Zhang, Shi, Yu, Xie & Li (2023). Unifying GANs and Score-Based Diffusion as Generative Particle Models (DiffFlow). arXiv:2307.02159.
# - Zhou et al. (2024). Transfusion: Predict the Next Token and Diffuse Images with One Multi-Modal Model. arXiv:2408.11039.
#
# ## Exercise
#
# The graded exercise for this lecture is
# [exercises/05_frontier.ipynb](../exercises/05_frontier.ipynb) (open it with `make lab`;
# grading: see the README): you write the core of each frontier idea yourself and check it against
# `unigm.frontier`, POT and closed forms: a stochastic interpolant, its regression target and the
# exact velocity field of Gaussian data; an entropic OT plan by Sinkhorn's iterations in the log
# domain, and its limit as the blur vanishes; one JKO step for Gaussians in closed form and its
# first order against the exact Ornstein-Uhlenbeck flow; the score-difference drift of DiffFlow from
# a kernel density estimate, the optimal discriminator's version of it, and the rate at which the
# bare data score contracts the data; and where an unbalanced plan destroys and creates mass.
