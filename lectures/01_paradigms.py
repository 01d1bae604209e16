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

# %% [markdown]
# # 01 Paradigms: experience, intuition, and the families (part 1: VAEs, flows, GANs)
#
# *Reading time 25 min, run time about 4 min on a 2-core laptop CPU (quick profile).*
#
# Lecture 00 showed four losses as four distances. This lecture takes the families apart:
# first **by hand** (what does each paradigm do to turn noise into data?), then **by history**
# (why did each idea follow the previous one?), then **by interface** (the four methods a
# model can offer), and finally **family by family**: the VAE, flow and GAN families here,
# every model trained live and measured on held-out data. Diffusion, autoregressive and world
# models follow in part 2 (marked places at the end).

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

from unigm import data, metrics, runtime, samplers, zoo
from unigm.base import FlowBased, Implicit, LikelihoodBased, ScoreBased
from unigm.bench import measure, train as train_2d
from unigm.data import GaussianMixture
from unigm.flows import straightness
from unigm.train import fit
from unigm.vae import code_perplexity

setup = runtime.setup(seed=0)
print(setup)
moons = data.toy("two_moons")
moons_ref = metrics.reference(moons)
gaussians = data.toy("eight_gaussians")
gaussians_ref = metrics.reference(gaussians)
trained = {}  # name -> (model, history), filled as we go


def train(name, dist=moons, label=None, steps=None, seed=0, **config):
    """Build a zoo model, train it with its 2D recipe (optionally fewer steps), remember it."""
    model, history = train_2d(name, dist, seed=seed, steps=steps, progress=True, desc=label or name, **config)
    trained[label or name] = (model, history)
    return model, history


def table(rows, columns):
    """Show a list of dicts as a Markdown table."""
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)
    def fmt(v):
        return f"{v:.3f}" if isinstance(v, float) else ("n/a" if v is None else str(v))
    body = "\n".join("| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows)
    display(Markdown(head + "\n" + body))


def scatter(ax, points, title, lim=3.5):
    ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5)
    ax.set_title(title, fontsize=9)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


# %% [markdown]
# ## 1. Hands-on: four ways to turn noise into data
#
# One model per paradigm, trained on two moons with the same `fit` call:
#
# - a **VAE** decodes a latent $z \sim \mathcal N(0, I)$ in one step, $x \sim p_\theta(x \mid z)$;
# - a **GAN** pushes $z$ through a generator, $x = G(z)$, one step and no likelihood;
# - a **flow** integrates an ODE $\dot x = v_\theta(x, t)$ from noise at $t = 1$ to data at $t = 0$;
# - **diffusion** runs a stochastic reverse chain of many small denoising steps.

# %%
vae, _ = train("vae")
gan, _ = train("gan")
fm, _ = train("flow_matching")
ddpm, _ = train("ddpm")

torch.manual_seed(0)
fig, axes = plt.subplots(1, 4, figsize=(16, 4))
# VAE: a grid of latents, decoded (the decoder mean), coloured by latent angle
z = torch.randn(2000, 2)
with torch.no_grad():
    mean, _ = vae.decode(z)
axes[0].scatter(mean[:, 0], mean[:, 1], c=torch.atan2(z[:, 1], z[:, 0]), s=2, cmap="hsv")
axes[0].set_title("VAE: decoder mean of z ~ N(0, I)\n(colour: angle of z)", fontsize=9)
# GAN: the generator warps a latent grid
with torch.no_grad():
    g = torch.linspace(-2, 2, 21)
    for i in range(21):
        line = torch.zeros(200, gan.config.noise_dim)
        line[:, 0], line[:, 1] = torch.linspace(-2, 2, 200), g[i]
        out = gan.generator(line)
        axes[1].plot(out[:, 0], out[:, 1], lw=0.5, color="C1")
axes[1].set_title("GAN: G maps latent lines to curves", fontsize=9)
# Flow: ODE trajectories from noise to data
trajectory = []
samplers.heun(fm.velocity, torch.randn(300, 2), steps=32, trajectory=trajectory)
path = torch.stack(trajectory)  # (steps + 1, 300, 2)
for k in range(60):
    axes[2].plot(path[:, k, 0], path[:, k, 1], lw=0.5, color="C2", alpha=0.7)
axes[2].scatter(path[-1, :, 0], path[-1, :, 1], s=3, color="k")
axes[2].set_title("flow: ODE paths, t = 1 (noise) -> 0 (data)", fontsize=9)
# Diffusion: the reverse chain, snapshots of DDPM.sample's own states
torch.manual_seed(0)
chain = []
ddpm.sample(1000, trajectory=chain)  # T + 1 states, from t = 1 down to t = 0
T = ddpm.config.num_steps
for t_show, colour in [(0.5, "C4"), (0.2, "C5"), (0.0, "k")]:
    pts = chain[round((1 - t_show) * T)]
    axes[3].scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5, color=colour, label=f"t = {t_show}")
axes[3].legend(fontsize=8, markerscale=4)
axes[3].set_title("diffusion: the reverse chain at t = 0.5, 0.2, 0", fontsize=9)
for ax in axes:
    ax.set_xlim(-3.5, 3.5)
    ax.set_ylim(-2.5, 2.5)
    ax.set_aspect("equal")
plt.tight_layout()
plt.show()

# %% [markdown]
# The four paradigms compared on held-out data. Every entry is measured in this run: training
# seconds, network evaluations per sample (NFE), sampling time, $W_2$ and the fraction $G$ of
# the Gaussian-to-fresh-data gap closed, and the negative log-likelihood where the model has
# one (next to its floor, the entropy of the data).

# %%
def paradigm_of(model):
    return next(base.__name__ for base in (LikelihoodBased, Implicit, ScoreBased, FlowBased) if isinstance(model, base))


rows = []
for name in ["vae", "gan", "flow_matching", "ddpm"]:
    model, history = trained[name]
    r = measure(model, moons, moons_ref, history)
    rows.append(dict(model=name, paradigm=paradigm_of(model), train_s=r.train_seconds, NFE=r.nfe,
                     sample_ms_per_1k=r.sample_ms_per_1000, W2=r.w2, W2_floor=r.w2_floor, G=r.gap_closed,
                     NLL=r.nll, NLL_floor=r.data_entropy))
table(rows, ["model", "paradigm", "train_s", "NFE", "sample_ms_per_1k", "W2", "W2_floor", "G", "NLL", "NLL_floor"])
hands_on = {r["model"]: r for r in rows}
for name in hands_on:  # each model's quality gate on two moons (the recipes' table, also used by the tests)
    assert hands_on[name]["G"] >= zoo.recipe(name).min_quality["two_moons"], (name, hands_on[name]["G"])

# %% [markdown]
# ## 2. Intuition: a history in which each idea answers the previous one's limit
#
# The map below is the story of the course. Each arrow is labelled with the limitation that
# the next idea removes.

# %%
steps_in_history = [
    ("normalizing flows\n(NICE 2014, RealNVP 2016)", "exact likelihood,\nbut invertible layers\nlimit the architecture"),
    ("energy-based models", "any architecture,\nbut the normaliser\nis intractable"),
    ("score matching\n(Hyvarinen 2005, NCSN 2019)", "learn grad log p:\nno normaliser;\nbut low-density regions"),
    ("DDPM (Ho et al. 2020)", "noise at many levels;\nbut 1000 steps"),
    ("score SDE (Song et al. 2021)", "one continuous time;\nODE gives likelihood;\nbut curved paths"),
    ("flow matching (2022-23)", "simulation-free\nregression, straighter\npaths; but pixels are big"),
    ("latent diffusion (2022)", "diffuse in a VAE latent;\nbut still many steps"),
    ("consistency models (2023)", "one or few steps;\nnext: act in the world"),
    ("world models (2023-24)", "predict the next state\nof an environment"),
]
fig, ax = plt.subplots(figsize=(16, 3.2))
for i, (name, note) in enumerate(steps_in_history):
    ax.text(i, 0.62, name, ha="center", va="center", fontsize=8,
            bbox=dict(boxstyle="round", facecolor="#e8f0fe", edgecolor="#4a72b0"))
    ax.text(i + 0.5, 0.15, note, ha="center", va="center", fontsize=7, color="#555") if i < len(steps_in_history) - 1 else None
    if i < len(steps_in_history) - 1:
        ax.annotate("", xy=(i + 0.62, 0.62), xytext=(i + 0.38, 0.62), arrowprops=dict(arrowstyle="->"))
ax.set_xlim(-0.6, len(steps_in_history) - 0.4)
ax.set_ylim(-0.1, 0.9)
ax.axis("off")
plt.show()

# %% [markdown]
# Three questions run through the course; lecture 02 answers them with proofs checked by
# sympy and by the library's code:
#
# 1. **Is diffusion a VAE?** Yes: a hierarchical VAE with a fixed encoder (the forward noising)
#    whose ELBO, reweighted, is the DDPM noise-prediction loss.
# 2. **Is flow matching diffusion?** For Gaussian paths, yes, up to a change of time and scale
#    through the signal-to-noise ratio: the same marginals, the same probability-flow ODE.
# 3. **Are GANs and diffusion related?** Both follow a difference of scores: the optimal GAN
#    logit is $\log p_\text{data} - \log p_g$, whose gradient is the score difference that
#    score-difference flows (DiffFlow) follow.
#
# ## 3. Four interfaces
#
# Every model is a `GenerativeModel` with `loss`, `sample` and (where it exists) `log_prob`;
# each paradigm adds what defines it. The table is read off the trained objects, not typed.

# %%
def interface(model):
    x = moons_ref.test[:4]
    try:
        model.log_prob(x)
        log_prob = "yes"
    except NotImplementedError:
        log_prob = "raises NotImplementedError"
    return dict(model=model.name, paradigm=paradigm_of(model), log_prob=log_prob,
                score="yes" if isinstance(model, ScoreBased) else "-",
                velocity="yes" if isinstance(model, FlowBased) else "-")


table([interface(m) for m in (vae, gan, fm, ddpm)], ["model", "paradigm", "log_prob", "score", "velocity"])

# %% [markdown]
# The interfaces are what the samplers consume. The score paradigm needs no ODE at all:
# Langevin dynamics $x \leftarrow x + \epsilon \nabla \log p(x) + \sqrt{2\epsilon}\, z$ at a
# small noise level samples the (slightly noised) data with DDPM's `score` alone; the flow
# paradigm gives samples with any ODE solver applied to `velocity`.

# %%
torch.manual_seed(0)
t_small = 0.02  # noise level of the target: sqrt(1 - alpha_bar) ~ 0.06
langevin = samplers.langevin(ddpm.score, torch.randn(2000, 2) * 2, steps=500, step_size=1e-3, t=t_small)
euler_fm = samplers.euler(fm.velocity, torch.randn(2000, 2), steps=50)
g_langevin = moons_ref.gap_closed(metrics.wasserstein2(langevin, moons_ref.test))
g_euler = moons_ref.gap_closed(metrics.wasserstein2(euler_fm, moons_ref.test))
print(f"Langevin with DDPM's score (500 steps): G = {g_langevin:.2f};  Euler on FM's velocity (50 steps): G = {g_euler:.2f}")
assert g_langevin > 0.5 and g_euler > 0.8

# %% [markdown]
# ## 4. The VAE family
#
# ### 4.1 Bounds on the likelihood
#
# The VAE maximises the ELBO $\mathbb E_q[\log p(x\mid z)] - \mathrm{KL}(q(z\mid x)\,\|\,p(z))
# \le \log p(x)$. With $k$ importance samples the bound
# $\mathbb E \log \frac1k \sum_i p(x, z_i)/q(z_i\mid x)$ tightens monotonically in $k$
# (Burda et al. 2016). Measured on held-out points, next to the true $\log p_\text{data}$:

# %%
x_test = moons_ref.test[:1000]
torch.manual_seed(0)
with torch.no_grad():
    bounds = {"ELBO (k=1)": vae.elbo(x_test).mean().item()}
    for k in (8, 64, 512):
        bounds[f"IWAE k={k}"] = vae.log_prob(x_test, k=k).mean().item()
bounds["true log p_data"] = moons.log_prob(x_test).mean().item()
table([dict(bound=k, nats=v) for k, v in bounds.items()], ["bound", "nats"])
values = list(bounds.values())
assert all(a < b for a, b in zip(values[:-2], values[1:-1])), "IWAE bounds must grow with k"
assert values[-2] < values[-1], "a bound above the true log-likelihood would be a bug"

# %% [markdown]
# ### 4.2 beta-VAE and the rate-distortion curve
#
# Split the negative ELBO into **distortion** $D = -\mathbb E_q \log p(x\mid z)$ and **rate**
# $R = \mathrm{KL}(q(z\mid x)\,\|\,p(z))$ (Alemi et al. 2018). A beta-VAE minimises
# $D + \beta R$: small $\beta$ buys low distortion with a high rate, large $\beta$ the
# opposite. Each $\beta$ is a point on the model's rate-distortion frontier.

# %%
betas = [0.25, 0.5, 1.0, 1.5]
rd_rows = []
for beta in betas:
    model, history = train("beta_vae", label=f"beta_vae {beta}", steps=runtime.by_profile(1000, 4000), beta=beta,
                           kl_warmup_steps=300)
    torch.manual_seed(0)
    with torch.no_grad():
        reconstruction, kl = model.elbo_terms(x_test)
    rd_rows.append(dict(beta=beta, rate=kl.mean().item(), distortion=-reconstruction.mean().item(), train_s=history.seconds))
table(rd_rows, ["beta", "rate", "distortion", "train_s"])
fig, ax = plt.subplots(figsize=(4.5, 3.5))
ax.plot([r["rate"] for r in rd_rows], [r["distortion"] for r in rd_rows], "o-")
for r in rd_rows:
    ax.annotate(f"beta={r['beta']}", (r["rate"], r["distortion"]), fontsize=8)
ax.set_xlabel("rate R (nats)")
ax.set_ylabel("distortion D (nats)")
ax.set_title("beta-VAE on two moons")
plt.show()
rates, distortions = [r["rate"] for r in rd_rows], [r["distortion"] for r in rd_rows]
assert all(a > b for a, b in zip(rates, rates[1:])), "rate must fall as beta grows"
assert all(a < b for a, b in zip(distortions, distortions[1:])), "distortion must rise as beta grows"

# %% [markdown]
# ### 4.3 A Bernoulli decoder for binary images
#
# For binary data the decoder likelihood is a product of Bernoullis, $\log p(x\mid z) =
# \sum_i x_i \log \sigma(\ell_i) + (1 - x_i)\log(1 - \sigma(\ell_i))$, all terms kept, so the
# bound is in real nats. On the 8x8 digits binarised at half intensity, we report bits per
# pixel next to the baseline that models each pixel independently (the entropy of its
# training marginal).

# %%
binary_train = (data.digits("train").images >= 8).float()
binary_test = (data.digits("test").images >= 8).float()
runtime.seed_everything(0)
bvae = zoo.make("bernoulli_vae", (1, 8, 8))
bvae_history = fit(bvae, binary_train, steps=runtime.by_profile(3000, 12000), batch_size=128, lr=2e-3, desc="bernoulli_vae")
torch.manual_seed(0)
bvae_bits = metrics.bits_per_dim(bvae.log_prob(binary_test, k=256), dims=64)
p_pixel = binary_train.mean(0).clamp(1e-3, 1 - 1e-3)
independent_bits = metrics.bits_per_dim(torch.distributions.Bernoulli(p_pixel).log_prob(binary_test).sum((1, 2, 3)), dims=64)
print(f"Bernoulli VAE: {bvae_bits:.3f} bits/pixel (IWAE, k=256); independent pixels: {independent_bits:.3f} bits/pixel; "
      f"trained in {bvae_history.seconds:.1f} s")
fig, axes = plt.subplots(1, 16, figsize=(12, 1))
torch.manual_seed(0)
for ax, img in zip(axes, bvae.sample(16)):
    ax.imshow(img[0], cmap="gray_r")
    ax.axis("off")
plt.show()
assert bvae_bits < 0.85 * independent_bits

# %% [markdown]
# ### 4.4 Discrete latents: VQ-VAE and FSQ
#
# A VQ-VAE (van den Oord et al. 2017) snaps each encoder output $z_e$ to its nearest codebook
# vector $e$. Rounding has no gradient, so the decoder reads $z_q = z_e + \mathrm{sg}[e - z_e]$
# (equal to $e$ forwards, the identity backwards: the straight-through estimator), and two
# extra terms train what reconstruction cannot reach:
# $\|\mathrm{sg}[z_e] - e\|^2$ moves the **codebook** toward the encoder outputs and
# $\beta\|z_e - \mathrm{sg}[e]\|^2$ **commits** the encoder to its codes. Codes that no encoder
# output chooses receive no gradient and die; restarting them on the encoder outputs farthest
# from every code (farthest-first traversal, the deterministic form of k-means++ seeding) revives
# them. FSQ (Mentzer et al. 2023) removes the codebook altogether: each latent channel is
# bounded and rounded to exactly $L_i$ levels, an implicit codebook of $\prod_i L_i$ codes.
#
# Three models on the 8x8 digits, each with 512 codes for each of its 4 latent positions:
# VQ-VAE without restarts, VQ-VAE with restarts, and FSQ with levels (8, 8, 8). Code usage is
# counted on the training set (a dead code is one no training image uses); reconstruction
# error on the test set, next to the error of always predicting the mean training image.

# %%
digits_train = data.dequantize(data.digits("train").images, data.DIGIT_LEVELS, torch.Generator().manual_seed(0))
digits_test = data.dequantize(data.digits("test").images, data.DIGIT_LEVELS, torch.Generator().manual_seed(1))
mean_image_mse = (digits_test - digits_train.mean(0)).pow(2).mean().item()
quantized = {"VQ-VAE, no restarts": ("vqvae", dict(codebook_size=512, restart_every=0)),
             "VQ-VAE, restarts": ("vqvae", dict(codebook_size=512, restart_every=200)),
             "FSQ (8, 8, 8)": ("fsq_vae", dict(levels=(8, 8, 8)))}
q_rows, reconstructions = [], {}
for label, (name, config) in quantized.items():
    runtime.seed_everything(0)
    model = zoo.make(name, (1, 8, 8), **config)
    history = fit(model, digits_train, steps=runtime.by_profile(2000, 10000), batch_size=128, lr=2e-3, desc=label)
    _, train_indices = model.reconstruct(digits_train)
    recon, _ = model.reconstruct(digits_test)
    reconstructions[label] = recon
    q_rows.append(dict(model=label, test_mse=(recon - digits_test).pow(2).mean().item(),
                       perplexity=code_perplexity(train_indices, model.num_codes),
                       codes_used=len(torch.unique(train_indices)), restarts=int(model.restarts) if hasattr(model, "restarts") else None,  # FSQ has no codebook to restart
                       train_s=history.seconds))
table(q_rows, ["model", "test_mse", "perplexity", "codes_used", "restarts", "train_s"])
print(f"baseline: predicting the mean training image gives test MSE {mean_image_mse:.4f}")
fig, axes = plt.subplots(4, 12, figsize=(12, 4.2))
for row, (label, images) in zip(axes, [("data", digits_test)] + list(reconstructions.items())):
    for ax, img in zip(row, images[:12]):
        ax.imshow(img[0], cmap="gray_r", vmin=0, vmax=1)
        ax.axis("off")
    row[0].set_title(label, fontsize=8, loc="left")
plt.tight_layout()
plt.show()
vq_plain, vq_restart, fsq_row = q_rows
for r in q_rows:
    assert r["test_mse"] < 0.25 * mean_image_mse, r
assert vq_restart["restarts"] > 0 and vq_restart["codes_used"] > vq_plain["codes_used"], "restarts must revive dead codes"
assert fsq_row["codes_used"] > 0.5 * 512

# %% [markdown]
# ## 5. The flow family
#
# ### 5.1 Coupling flows: exact likelihood by construction
#
# RealNVP (Dinh et al. 2017) stacks affine couplings $y_B = x_B \odot e^{s(x_A)} + b(x_A)$,
# $y_A = x_A$: triangular Jacobians, so $\log|\det| = \sum s$ and the inverse is exact.

# %%
realnvp, realnvp_history = train("realnvp")
x = moons_ref.test[:500]
with torch.no_grad():
    z, _ = realnvp.forward_with_log_det(x)
    inversion_error = (realnvp.inverse(z) - x).abs().max().item()
r = measure(realnvp, moons, moons_ref, realnvp_history)
print(f"RealNVP: inversion error {inversion_error:.1e}; NLL {r.nll:.3f} nats (data entropy {r.data_entropy:.3f}); "
      f"G = {r.gap_closed:.2f}; trained in {r.train_seconds:.1f} s")
assert inversion_error < 1e-5 and r.gap_closed >= zoo.recipe("realnvp").min_quality["two_moons"]
assert r.nll - r.data_entropy < 0.5
flow_rows = [dict(model="realnvp", train_s=r.train_seconds, G=r.gap_closed, NLL=r.nll, NFE=r.nfe)]

# %% [markdown]
# ### 5.2 Continuous normalizing flows: maximum likelihood through an ODE
#
# A CNF (Chen et al. 2018) defines $x_1 = x_0 + \int_0^1 v_\theta(x_t, t)\,dt$ and
# $\log p(x_0) = \log \mathcal N(x_1) + \int_0^1 \mathrm{tr}\, \partial v/\partial x\, dt$.
# Training differentiates through the solver. The trace costs $D$ vector-Jacobian products
# exactly, or one with Hutchinson's estimator $v^\top (\partial v/\partial x) v$ (FFJORD);
# in 2D the saving is small, in images it is everything. Note the price of simulation-based
# training: each step solves the ODE.

# %%
for name in ("cnf", "cnf_hutchinson"):
    model, history = train(name)
    r = measure(model, moons, moons_ref, history)
    flow_rows.append(dict(model=name, train_s=r.train_seconds, ms_per_step=1000 * r.train_seconds / r.steps,
                          G=r.gap_closed, NLL=r.nll, NFE=r.nfe))
    assert r.gap_closed >= zoo.recipe(name).min_quality["two_moons"] and r.nll - r.data_entropy < 1.5, (name, r)

# %% [markdown]
# ### 5.3 Flow matching, with independent and with optimal-transport couplings
#
# Flow matching regresses $v_\theta(x_t, t)$ on $x_1 - x_0$ along straight lines between a
# data point and a noise draw: no ODE during training. With **independent** pairs, lines from
# nearby points cross and the learned (averaged) field bends; pairing each minibatch by exact
# optimal transport (Tong et al. 2024; Pooladian et al. 2023) makes crossings rare, and the
# flow straighter. We measure straightness $S = \int_0^1 \mathbb E|(x_1 - x_0) - v(x_t, t)|^2
# dt$ along each model's own trajectories (0 means straight).

# %%
ot_fm, ot_history = train("ot_flow_matching")
torch.manual_seed(0)
probe = torch.randn(2000, 2)
for name, model in (("flow_matching", fm), ("ot_flow_matching", ot_fm)):
    r = measure(model, moons, moons_ref, trained[name][1])
    flow_rows.append(dict(model=name, train_s=r.train_seconds, G=r.gap_closed, NLL=r.nll, NFE=r.nfe,
                          straightness=straightness(model.velocity, probe)))
table(flow_rows, ["model", "train_s", "ms_per_step", "G", "NLL", "NFE", "straightness"])
s_independent, s_ot = flow_rows[-2]["straightness"], flow_rows[-1]["straightness"]
assert s_ot < 0.5 * s_independent and flow_rows[-1]["G"] > 0.8

# %% [markdown]
# ### 5.4 Rectified flow: reflow makes paths straight, and few steps enough
#
# Rectified flow (Liu et al. 2023) starts from flow matching (1-RF) and then **reflows**:
# draw noise $z$, follow the current flow to $x_0 = \mathrm{ODE}(z)$, and train a new flow on
# the fixed pairs $(x_0, z)$. The new coupling has no crossings, so each round straightens
# the flow, and a single Euler step gets closer to the data.

# %%
rf_rows = []
current = fm  # 1-RF is the flow-matching model of section 1
rectified = [fm]
for round_ in range(3):
    torch.manual_seed(0)
    one_step = samplers.euler(current.velocity, torch.randn(2000, 2), steps=1)
    two_step = samplers.euler(current.velocity, torch.randn(2000, 2), steps=2)
    rf_rows.append(dict(model=f"{round_ + 1}-RF", straightness=straightness(current.velocity, probe),
                        G_1_step=moons_ref.gap_closed(metrics.wasserstein2(one_step, moons_ref.test)),
                        G_2_steps=moons_ref.gap_closed(metrics.wasserstein2(two_step, moons_ref.test))))
    if round_ < 2:
        runtime.seed_everything(round_)
        rf = zoo.make("rectified_flow", (2,))
        rf.load_state_dict(current.state_dict())  # initialise from the previous round
        pairs = rf.reflow_pairs(runtime.by_profile(20_000, 100_000), steps=64, generator=torch.Generator().manual_seed(round_))
        history = fit(rf, pairs, steps=runtime.by_profile(2000, 8000), batch_size=256, lr=1e-3, ema_decay=0.995,
                      desc=f"reflow {round_ + 1}")
        rf_rows[-1]["next_reflow_train_s"] = history.seconds
        current = rf
        rectified.append(rf)
table(rf_rows, ["model", "straightness", "G_1_step", "G_2_steps", "next_reflow_train_s"])
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
for ax, label, model in zip(axes, ["1-RF", "2-RF", "3-RF"], rectified):
    traj = []
    samplers.euler(model.velocity, probe[:80], steps=32, trajectory=traj)
    path = torch.stack(traj)
    ax.plot(path[:, :, 0], path[:, :, 1], lw=0.6, color="C2")
    ax.set_title(f"{label}: straightness {straightness(model.velocity, probe):.3f}", fontsize=9)
    ax.set_aspect("equal")
plt.show()
assert rf_rows[1]["straightness"] < 0.5 * rf_rows[0]["straightness"]
assert rf_rows[2]["straightness"] < rf_rows[1]["straightness"]
assert rf_rows[1]["G_1_step"] > rf_rows[0]["G_1_step"] + 0.2, "one Euler step must improve after reflow"

# %% [markdown]
# ## 6. The GAN family
#
# ### 6.1 One benchmark for the variants
#
# The same generator and discriminator MLPs, trained on 8 gaussians with different games:
#
# - **non-saturating** (Goodfellow et al. 2014) with an **R1** penalty (Mescheder et al. 2018);
#   **minimax**: the generator minimises $\log(1 - D(G(z)))$, which saturates when $D$ wins;
# - **WGAN** (Arjovsky et al. 2017): a critic estimates $W_1$ by Kantorovich-Rubinstein
#   duality and must be 1-Lipschitz: weight **clipping**, a **gradient penalty** (Gulrajani et
#   al. 2017) or **spectral normalisation** (Miyato et al. 2018). $W_1$ is an integral
#   probability metric, not an f-divergence;
# - **f-GAN** (Nowozin et al. 2016): $D_f(P\|Q) \ge \sup_T \mathbb E_P[T] - \mathbb E_Q[f^*(T)]$
#   with the Fenchel conjugate $f^*$ and an output activation mapping into its domain
#   (lecture 02 derives each conjugate);
# - a toy **StyleGAN** (Karras et al. 2019): a mapping network $z \to w$ and a generator
#   whose layers are modulated by AdaIN$(w)$;
# - **R3GAN** (Huang et al. 2024): the relativistic pairing loss
#   $\mathrm{softplus}(D(G(z)) - D(x))$ with both R1 and R2 penalties.
#
# Beyond $W_2$ we count **modes hit** (modes receiving at least 10% of their fair share of
# samples within $3\sigma$) and the fraction of **high-quality** samples (within $3\sigma$ of
# a mode).

# %%
gan_variants = [("gan", {}), ("minimax_gan", {}), ("wgan_clip", {}), ("wgan_gp", {}), ("wgan_sn", {})]
gan_variants += [("f_gan", dict(divergence=d)) for d in ("kl", "reverse_kl", "jensen_shannon", "pearson", "total_variation")]
gan_variants += [("stylegan", {}), ("r3gan", {})]
gan_rows = []
for name, config in gan_variants:
    label = name if not config else f"{name} ({config['divergence']})"
    model, history = train(name, dist=gaussians, label=label, **config)
    torch.manual_seed(1)
    samples = model.sample(2000)
    coverage = metrics.mode_coverage(samples, gaussians.means, gaussians.std)
    gan_rows.append(dict(model=label, train_s=history.seconds, G=gaussians_ref.gap_closed(metrics.wasserstein2(samples, gaussians_ref.test)),
                         modes=f"{coverage.modes_hit}/8", high_quality=coverage.high_quality, samples=samples))
table(gan_rows, ["model", "train_s", "G", "modes", "high_quality"])
fig, axes = plt.subplots(2, 6, figsize=(16, 5.6))
for ax, r in zip(axes.flat, gan_rows):
    scatter(ax, r["samples"], f"{r['model']}  G={r['G']:.2f}", lim=3)
plt.tight_layout()
plt.show()
F_GAN_G_MIN = 0.3  # f-GANs with a divergence other than their recipe's, measured with margin
for (name, config), r in zip(gan_variants, gan_rows):
    g_min = F_GAN_G_MIN if config else zoo.recipe(name).min_quality["eight_gaussians"]  # the recipes' gates
    assert r["G"] >= g_min and r["modes"] == "8/8", (r["model"], r["G"], r["modes"])

# %% [markdown]
# Reverse KL, $\mathrm{KL}(p_g\,\|\,p_\text{data})$, is **mode-seeking**: it punishes samples
# where the data has no mass and forgives missing mass, so its samples are precise (a high
# high-quality fraction) while forward KL spreads out to cover everything.

# %%
by_label = {r["model"]: r for r in gan_rows}
print(f"high-quality fraction: reverse KL {by_label['f_gan (reverse_kl)']['high_quality']:.2f}, "
      f"forward KL {by_label['f_gan (kl)']['high_quality']:.2f}")
assert by_label["f_gan (reverse_kl)"]["high_quality"] > by_label["f_gan (kl)"]["high_quality"]

# %% [markdown]
# ### 6.2 Mode collapse, and what cures it
#
# With wide modes every variant above covers the ring. Narrow modes (std 0.02, as in Metz et
# al. 2017) are where GANs fail: the discriminator separates real from fake almost perfectly,
# its gradients point the generator toward whichever modes it currently favours, and the
# generator's mass gathers on a few modes. Zero-centred gradient penalties (R1, and R2 in
# R3GAN) keep the discriminator smooth around the data, which is the cure measured here.

# %%
narrow = GaussianMixture("eight_gaussians_narrow", gaussians.means, std=0.02)
collapse_rows = []
for label, name, config in [("non-saturating, no penalty", "gan", dict(r1_gamma=0.0)),
                            ("minimax, no penalty", "minimax_gan", {}),
                            ("non-saturating + R1", "gan", {}),
                            ("R3GAN (R1 + R2)", "r3gan", {})]:
    model, history = train(name, dist=narrow, label=label, **config)
    torch.manual_seed(1)
    coverage = metrics.mode_coverage(model.sample(2000), narrow.means, narrow.std)
    collapse_rows.append(dict(model=label, modes_hit=coverage.modes_hit, high_quality=coverage.high_quality,
                              per_mode=str(coverage.counts), train_s=history.seconds))
table(collapse_rows, ["model", "modes_hit", "high_quality", "per_mode", "train_s"])
plain, minimax, with_r1, r3 = (r["modes_hit"] for r in collapse_rows)
assert max(plain, minimax) <= 4, "without a penalty the generator should collapse onto few modes"
assert min(with_r1, r3) >= max(plain, minimax) + 2, "the gradient penalties must recover modes"

# %% [markdown]
# ### 6.3 StyleGAN's W space
#
# The mapping network reshapes the Gaussian $Z$ into a learned $W$; Karras et al. (2019)
# found straight lines in $W$ give smoother images than straight lines in $Z$, and measured it
# by the **perceptual path length**: the mean squared change of the output per unit step along
# interpolations. Our 2D analogue uses the Euclidean change of the sample, over 500 random
# pairs and 64 steps each. On 2D data the mapping has little to disentangle, so expect a modest
# difference, not the large one seen on faces.

# %%
style = trained["stylegan"][0]
torch.manual_seed(0)
z_a, z_b = torch.randn(500, style.config.noise_dim), torch.randn(500, style.config.noise_dim)
ts = torch.linspace(0, 1, 65)
with torch.no_grad():
    w_a, w_b = style.generator.mapping(z_a), style.generator.mapping(z_b)
    path_z = torch.stack([style.generator((1 - t) * z_a + t * z_b) for t in ts])  # (65, 500, 2)
    path_w = torch.stack([style.generator.synthesize((1 - t) * w_a + t * w_b) for t in ts])
step = ts[1] - ts[0]
ppl_z = ((path_z[1:] - path_z[:-1]).pow(2).sum(-1) / step**2).mean().item()
ppl_w = ((path_w[1:] - path_w[:-1]).pow(2).sum(-1) / step**2).mean().item()
print(f"path length (mean squared change per unit step): interpolating in Z {ppl_z:.1f}, in W {ppl_w:.1f}")
fig, axes = plt.subplots(1, 2, figsize=(8, 4))
for ax, path, label in ((axes[0], path_z, "Z"), (axes[1], path_w, "W")):
    scatter(ax, by_label["stylegan"]["samples"], f"interpolation in {label}", lim=3)
    ax.plot(path[:, :12, 0], path[:, :12, 1], lw=1)
plt.show()
assert ppl_w < ppl_z

# %% [markdown]
# ## 7. Coming in part 2
#
# <!-- PART 2: diffusion family -->
# **Diffusion family** (to follow): DDPM with epsilon, x0 and v prediction; DDIM; the score
# SDE (VP and VE), the reverse SDE and the probability-flow ODE; latent diffusion;
# consistency models.
#
# <!-- PART 2: autoregressive family -->
# **Autoregressive family** (to follow): PixelCNN and its blind spot, WaveNet's dilated
# causal convolutions, a causal transformer, VAR and MAR.
#
# <!-- PART 2: world models -->
# **World models** (to follow): JEPA, V-JEPA on a toy video, Transfusion, and an
# action-conditioned next-frame model on a toy environment.
#
# ## Summary of what this run measured

# %%
summary = [dict(model=k, train_s=h.seconds) for k, (m, h) in trained.items()]
print(f"{len(summary)} models trained in {sum(r['train_s'] for r in summary):.0f} s of training in total")
