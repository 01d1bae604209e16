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
# # 01 Paradigms: experience, intuition, and the families (VAEs, flows, GANs, diffusion, autoregressive, world models)
#
# *Reading time 95 min, run time 6 to 8 min on a 2-core laptop CPU (quick profile), most of it training.*
#
# **Learning goals.** After this notebook you can
# 1. **generate** with each of the four paradigms (a VAE decoder, a GAN generator, a flow's ODE,
#    a diffusion chain) and **read off** what each costs: network evaluations per sample, and
#    whether it gives a likelihood;
# 2. **explain** the history of the field as a chain of ideas, each removing one limit of the
#    previous one, and name the interface (likelihood, implicit, score, flow) each model offers;
# 3. **measure** the VAE family's trade-offs: importance-weighted bounds that tighten with $k$,
#    the rate-distortion curve of the beta-VAE, and code usage in VQ-VAE and FSQ;
# 4. **compare** four ways to train a flow (coupling layers, a CNF by maximum likelihood, flow
#    matching with independent or optimal-transport couplings, reflow) by quality, cost and
#    straightness of the paths;
# 5. **diagnose** mode collapse in a GAN and show which gradient penalty cures it;
# 6. **choose** a diffusion model's parts (what the network predicts, SDE or ODE sampler, the
#    number of steps, distillation, pixel or latent space) and predict what each choice costs
#    in quality, network evaluations and time;
# 7. **explain** what makes a network autoregressive (causality, checked from gradients), why
#    PixelCNN has a blind spot, why a prior over discrete codes makes a VQ/FSQ autoencoder
#    generate, and what a WaveNet's reach buys on a signal;
# 8. **build** the two kinds of world model, latent (JEPA, and the collapse its EMA target
#    avoids) and pixel (an action-conditioned next-frame model rolled out against baselines),
#    and **compare** all six families in one table.
#
# **Prerequisites.** Lecture 00 (the four losses as distances, the quality score $G$ measured
# with $W_2$ against held-out data, `fit` and the zoo). Mathematics: Gaussian densities and the
# KL divergence, the change-of-variables formula for densities, an Euler step for an ODE.
#
# **The story.** Lecture 00 showed four losses as four distances. This lecture takes the
# families apart: first **by hand** (what does each paradigm do to turn noise into data?), then
# **by history** (why did each idea follow the previous one?), then **by interface** (the four
# methods a model can offer), and finally **family by family**: the VAE, flow and GAN families
# and diffusion families here, every 2D model trained live and measured on held-out data, then
# the autoregressive family on digits and signals, and the step from modelling data to modelling
# a world. The lecture closes with one table of all six families.

# %%
import math
import time

import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display
from matplotlib.colors import ListedColormap

from unigm import bench, data, judge, metrics, runtime, samplers, zoo
from unigm.autoregressive import mu_law_compress, mu_law_decode, mu_law_encode, raster_before, receptive_field
from unigm.base import FlowBased, Implicit, LikelihoodBased, ScoreBased
from unigm.bench import check_gate, measure
from unigm.course import checkpoints
from unigm.course.explorers import NoiseScheduleExplorer, TrainingPlayback, record_snapshots
from unigm.course.figures import (check_readable, image_rows, markdown_table, moving_average, plot_idea_chain,
                                  plot_pairs, plot_training_curves, scatter2d, segment_crossings, use_course_style)
from unigm.course.widgets import show_source
from unigm.data import GaussianMixture
from unigm.diffusion import ConsistencyDistillation, ConsistencyModel
from unigm.flows import AffineCoupling, OTFlowMatching, straightness
from unigm.gan.r3gan import pairing_loss
from unigm.train import Job, TrainingQueue, fit
from unigm.vae import VQVAE, code_perplexity
from unigm.world import (copy_last_frame, effective_rank, embedding_std, few_label_probe, linear_probe,
                         rollout_errors)
from unigm.world import env as world_env
from unigm.world.transfusion import WORDS

setup = runtime.setup(seed=0)
use_course_style()
moons = data.toy("two_moons")
gaussians = data.toy("eight_gaussians")
setup

# %% [markdown]
# **What this lecture trains.** Sections 1 to 7 train 35 small models on 2D data with their zoo
# recipes. They are all queued here, in the order the sections need them: two worker processes (one
# per core, one thread each) train through the list while this notebook reads, measures and plots,
# and each section collects its models with `train(...)`, waiting only for those not finished yet.
# Each list is explained where it is used; the jobs only have to exist before training can start.

# %% tags=["helpers"]
hands_on_jobs = [Job("vae", moons), Job("gan", moons), Job("flow_matching", moons), Job("ddpm", moons)]  # section 1
betas = [0.25, 0.5, 1.0, 1.5]  # section 4.2: a beta-VAE for each
beta_vae_jobs = [Job("beta_vae", moons, steps=runtime.by_profile(1000, 4000), config=dict(beta=beta, kl_warmup_steps=300),
                     label=f"beta_vae {beta}") for beta in betas]
flow_jobs = [Job("realnvp", moons), Job("ot_flow_matching", moons), Job("cnf", moons), Job("cnf_hutchinson", moons)]
gan_variants = [("gan", {}), ("minimax_gan", {}), ("wgan_clip", {}), ("wgan_gp", {}), ("wgan_sn", {})]  # section 6.1
gan_variants += [("f_gan", dict(divergence=d)) for d in ("kl", "reverse_kl", "jensen_shannon", "pearson", "total_variation")]
gan_variants += [("stylegan", {}), ("r3gan", {})]
gan_jobs = [Job(name, gaussians, config=config, label=name if not config else f"{name} ({config['divergence']})")
            for name, config in gan_variants]
narrow = GaussianMixture("eight_gaussians_narrow", gaussians.means, std=0.02)  # section 6.2: narrow modes
collapse_variants = [("gan", dict(r1_gamma=0.0), "non-saturating, no penalty"), ("minimax_gan", {}, "minimax, no penalty"),
                     ("gan", {}, "non-saturating + R1"), ("r3gan", {}, "R3GAN (R1 + R2)")]
collapse_seeds = (0, 1, 2)  # a GAN on narrow modes hits a mode or two more or fewer from seed to seed
collapse_jobs = [Job(name, narrow, config=config, seed=seed, label=label if seed == 0 else f"{label}, seed {seed}")
                 for seed in collapse_seeds for name, config, label in collapse_variants]
diffusion_jobs = [Job("ddpm_x0", moons, config={"precondition": False}, label="ddpm_x0 (plain)"), Job("ddpm_v", moons),
                  Job("score_sde_vp", moons), Job("score_sde_ve", moons), Job("consistency_training", moons)]  # section 7
training = TrainingQueue(hands_on_jobs + beta_vae_jobs + flow_jobs + gan_jobs + collapse_jobs + diffusion_jobs)
moons_ref, gaussians_ref = metrics.reference(moons), metrics.reference(gaussians)  # held-out sets, W2 floors
trained = {}  # title -> (model, history) of every model this lecture trains, filled as we go


def train(*jobs):
    """The trained models of these jobs, in order, from the training queue (a job not queued is trained
    now, in a worker); remembers each (model, history) by title."""
    results = training.collect(*jobs)
    for job, (model, history) in zip(jobs, results):
        key = job.title
        trained[key if key not in trained else f"{key} ({job.dist.name})"] = (model, history)  # a second "gan" keeps both
    return [model for model, _ in results]


def paradigm_of(model):
    """The name of the paradigm base class (unigm.base) that a model derives from."""
    return next(base.__name__ for base in (LikelihoodBased, Implicit, ScoreBased, FlowBased) if isinstance(model, base))


def histories(*titles):
    """The training histories of trained models, by title, for plot_training_curves."""
    return {title: trained[title][1] for title in titles}


# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Hands-on: four ways to turn noise into data
#
# **The story.** All four models below start from the same thing, a draw of Gaussian noise, and
# must end with a point on two moons. They differ in how many steps they take and in what the
# network is asked to do at each step:
#
# - a **VAE** decodes a latent $z \sim \mathcal N(0, I)$ in one step into a *distribution* over
#   points, $x \sim p_\theta(x \mid z)$: one network evaluation, plus the decoder's own noise;
# - a **GAN** pushes $z$ through a generator, $x = G(z)$: one step, no noise added, and no
#   likelihood at all;
# - a **flow** integrates an ODE $\dot x = v_\theta(x, t)$ from noise at $t = 1$ to data at
#   $t = 0$: many small deterministic steps;
# - **diffusion** runs a stochastic reverse chain of many small denoising steps, each adding a
#   little fresh noise.
#
# One model per paradigm, trained on two moons with its zoo recipe: the same `fit` call as in
# lecture 00, run by the training queue's two worker processes. Models this small spend their time
# in per-operation overhead rather than arithmetic, so two one-thread processes train two models
# faster than one process with two threads.

# %%
vae, gan, fm, ddpm = train(*hands_on_jobs)
# section 7.5 distils this DDPM into a one-step student; queue that training now, behind the others
distillation = Job("consistency_distillation", moons, steps=runtime.by_profile(quick=2000, full=8000),
                   teacher=(Job("ddpm", moons), ddpm.state_dict()), label="consistency distillation (teacher: ddpm)")
training.submit(distillation, first=True)  # ahead of the jobs still waiting
for name in ("vae", "gan", "flow_matching", "ddpm"):
    print(f"{name:>14}: {trained[name][1].steps} steps in {trained[name][1].seconds:.1f} s")

# %% [markdown]
# **Predict.** You saw these four training curves in lecture 00. Before looking again: which
# curve does not fall at all, and which two flatten *above* zero however long you train? Why?

# %%
fig_hands_on_curves = plot_training_curves(histories("vae", "gan", "flow_matching", "ddpm"), ncols=4)
plt.show()

# %% [markdown]
# *Figure: training loss against training step (moving average over 50 steps), one panel per
# model. Look at the GAN: its two players' losses level off instead of falling, because each
# player's gain is the other's loss; the discriminator's settles near $\log 4 \approx 1.39$, its
# value when it cannot tell real from fake. The flow-matching and DDPM losses flatten well above
# zero: their regression targets (a velocity, a noise) are random given the noisy input, so even
# the best network leaves that variance. The VAE's curve dips and climbs back during its KL
# warm-up (the first 1,000 steps phase the prior term in) and is its negative ELBO only after.*
#
# **Predict.** The VAE's decoder is a smooth function of a 2D latent. Where will it send the
# latents that lie between the two regions it maps onto the moons? And will the flow's ODE
# paths from noise to data be straight lines?

# %%
torch.manual_seed(0)
fig_paradigms, ((ax_vae, ax_gan), (ax_flow, ax_diffusion)) = plt.subplots(2, 2, figsize=(13, 9.5))
view = (3.5, 2.5)  # half-widths of the plotted window in x1 and x2

# VAE: random latents z ~ N(0, I), each decoded to its decoder mean, coloured by the angle of z
z = torch.randn(2000, 2)
with torch.no_grad():
    mean, _ = vae.decode(z)
scatter2d(ax_vae, mean, "VAE: decoder means of random z", lim=view, c=torch.atan2(z[:, 1], z[:, 0]), cmap="hsv")

# GAN: the image of 21 straight lines of the latent plane (other latent coordinates 0)
with torch.no_grad():
    for offset in torch.linspace(-2, 2, 21):
        line = torch.zeros(200, gan.config.noise_dim)
        line[:, 0], line[:, 1] = torch.linspace(-2, 2, 200), offset
        image = gan.generator(line)
        ax_gan.plot(image[:, 0], image[:, 1], lw=0.7, color="C1")
ax_gan.set(title="GAN: G bends straight latent lines", xlim=(-view[0], view[0]), ylim=(-view[1], view[1]),
           xlabel="$x_1$", ylabel="$x_2$", aspect="equal")

# Flow: 60 ODE paths, t = 1 (noise) -> t = 0 (data), and where 300 of them end
trajectory = []
samplers.heun(fm.velocity, torch.randn(300, 2), steps=32, trajectory=trajectory)
path = torch.stack(trajectory)  # (steps + 1, 300, 2), from t = 1 down to t = 0
ax_flow.plot(path[:, :60, 0], path[:, :60, 1], lw=0.6, color="C2", alpha=0.7)
scatter2d(ax_flow, path[-1], "flow: ODE paths, noise to data", lim=view, color="k")

# Diffusion: snapshots of DDPM.sample's own states along the reverse chain
torch.manual_seed(0)
chain = []
ddpm.sample(1000, trajectory=chain)  # T + 1 states, from t = 1 down to t = 0
T = ddpm.config.num_steps
for t_show, colour in [(0.5, "C4"), (0.2, "C5"), (0.0, "k")]:
    scatter2d(ax_diffusion, chain[round((1 - t_show) * T)], lim=view, color=colour, label=f"t = {t_show}")
ax_diffusion.set_title("diffusion: the reverse chain")
ax_diffusion.legend(markerscale=4)
plt.tight_layout()
plt.show()

# %% [markdown]
# *Figure: how each paradigm turns Gaussian noise into two moons (axes: the two data
# coordinates). Top left: each dot is the decoder mean of one random latent, coloured by the
# latent's angle; the colours change continuously, so nearby latents land nearby, and the
# decoded means fill the gap between the moons as well as the moons: a continuous map of a
# Gaussian cannot jump the gap. Top right: each orange curve is the image of one straight latent
# line; the generator bends every line into the same S along both moons, squeezing the latent
# plane onto a thin band in one step (the bridge between the moons is its trace of the gap).
# Bottom left: ODE paths of flow
# matching from noise to their black end points; they curve. Bottom right: the diffusion chain's
# states at three times; the cloud is still wide at t = 0.5 and settles onto the moons only near
# the end of the chain.*
#
# The four paradigms compared on held-out data. Every entry is measured in this run: training
# seconds, network evaluations per sample (NFE), sampling time, $W_2$ and the fraction $G$ of
# the Gaussian-to-fresh-data gap closed, and the negative log-likelihood where the model has
# one (next to its floor, the entropy of the data).
#
# **Predict.** Order the four models by NFE. Which of them will report no NLL at all?

# %%
rows = []
for name in ["vae", "gan", "flow_matching", "ddpm"]:
    model, history = trained[name]
    r = measure(model, moons, moons_ref, history)
    rows.append(dict(model=name, paradigm=paradigm_of(model), train_s=r.train_seconds, NFE=r.nfe,
                     sample_ms_per_1k=r.sample_ms_per_1000, W2=r.w2, W2_floor=r.w2_floor, G=r.gap_closed,
                     NLL=r.nll, NLL_floor=r.data_entropy))
hands_on = {r["model"]: r for r in rows}
display(Markdown(markdown_table(rows, ["model", "paradigm", "train_s", "NFE", "sample_ms_per_1k", "W2", "W2_floor", "G",
                                       "NLL", "NLL_floor"])))

# %% [markdown]
# The one-step models (VAE, GAN) pay one network evaluation per sample; the flow pays two per
# Heun step, and DDPM one per step of its chain, which is why the NFE column spans orders of
# magnitude. The GAN is the one model without an NLL: it is *implicit*, it can only sample.
#
# The quality gate of each model on two moons is its recipe's (`zoo.recipe(name).min_quality`,
# the table the test suite asserts too; `check_gate` also asserts that no NLL beats the data's
# entropy, which only a bug could do):

# %% tags=["checks"]
for name, row in hands_on.items():
    g_min = check_gate(Job(name, moons), row["G"], row["NLL"], row["NLL_floor"])
    print(f"{name:>14}: G = {row['G']:.3f} (must be >= {g_min})")
for figure in (fig_hands_on_curves, fig_paradigms):
    check_readable(figure)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Intuition: a history in which each idea answers the previous one's limit
#
# **The story.** No idea in this course came from nowhere. Normalizing flows gave exact
# likelihoods but forced every layer to be invertible. Energy-based models dropped that
# constraint and paid with an intractable normaliser. Score matching learned the gradient of
# the log-density, in which the normaliser vanishes, but is blind where there is no data.
# Adding noise at many levels (DDPM) filled those empty regions, at the price of a long chain,
# and so on. Read the map below top to bottom: each box is an idea, the text beside it what the
# idea gave and the limit that the next box removes.
#
# **Predict.** The NFE column of section 1 already showed you one limit of DDPM. Which is it,
# and which later boxes of the map would you expect to attack it?

# %%
history_map = [
    ("normalizing flows (NICE 2014, RealNVP 2017)", "exact likelihood, but invertible layers restrict the network"),
    ("energy-based models", "any network, but the normaliser is intractable"),
    ("score matching (Hyvarinen 2005, NCSN 2019)", "learns grad log p without the normaliser, but is poor where data are rare"),
    ("DDPM (Ho et al. 2020)", f"noise at many levels fills those regions, but sampling takes {ddpm.config.num_steps} steps"),
    ("score SDE (Song et al. 2021)", "one continuous time, and an ODE with likelihoods, but its paths are curved"),
    ("flow matching (2022-23)", "simulation-free regression and straighter paths, but pixels are many"),
    ("latent diffusion (2022)", "diffuse in a VAE's latent space, but still many steps"),
    ("consistency models (2023)", "one or a few steps; the next question: act in a world"),
    ("world models (2023-24): predict the next state of an environment", ""),
]
fig_history = plot_idea_chain(history_map)
plt.show()

# %% [markdown]
# *Figure: the history map, read top to bottom; beside each idea, what it gave and (after the
# "but") the limit the next idea removes. Look for the pattern: each step keeps what worked
# before it (a likelihood, a regression loss, a Gaussian path) and removes one cost. The number
# of DDPM steps is read from this lecture's DDPM configuration.*
#
# Three questions run through the course; lecture 02 answers them with proofs checked by
# sympy and by the library's code:
#
# 1. **Is diffusion a VAE?** Yes: a hierarchical VAE with a fixed encoder (the forward noising)
#    whose ELBO, reweighted, is the DDPM noise-prediction loss. Lecture 02, section *Two
#    questions from lecture 01*, derives it.
# 2. **Is flow matching diffusion?** For Gaussian paths, with the noise drawn independently of
#    the data, yes, up to a change of time and scale through the signal-to-noise ratio: the same
#    marginals, the same probability-flow ODE. Pairing noise with data (minibatch OT in section
#    5.3, where the pairs' correlation is measured, reflow in 5.4) breaks the equivalence.
#    Lecture 02, section 3, *Flow matching and diffusion are one model*, checks 3.1 to 3.8 and
#    3.16.
# 3. **Are GANs and diffusion related?** Both follow a difference of scores: the optimal GAN
#    logit is $\log p_\text{data} - \log p_g$, whose gradient is the score difference that
#    score-difference flows (DiffFlow) follow. Lecture 02, section *Two questions from
#    lecture 01* (building on its section 4, *The optimal GAN discriminator estimates a
#    density ratio*).
#
# ## 3. Four interfaces
#
# **The story.** There are four questions you can ask a generative model: *how likely is this
# point?* (a likelihood), *give me a new point* (every model; for an implicit model it is the
# only question), *which way is more likely from here?* (a score, $\nabla_x \log p$), and *which
# way should this point move at time $t$?* (a velocity). Every model of the library is a
# `GenerativeModel` with `loss`, `sample` and (where it exists) `log_prob`; each paradigm adds
# what defines it. The table is read off the trained objects, not typed.
#
# **Predict.** Which of the four trained models raises `NotImplementedError` when asked for
# `log_prob`? Which offer a score, and which a velocity?

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


display(Markdown(markdown_table([interface(m) for m in (vae, gan, fm, ddpm)],
                                ["model", "paradigm", "log_prob", "score", "velocity"])))

# %% [markdown]
# The interfaces are what the samplers consume. A score is a compass that points uphill in
# log-density; **Langevin dynamics** walks along it with a little noise,
# $x \leftarrow x + \epsilon \nabla \log p(x) + \sqrt{2\epsilon}\, z$, and in the long run
# visits every region in proportion to $p$. It needs no ODE and no normaliser, only the score:
# here DDPM's `score` at a small time $t = 0.02$, whose target is the data plus a little
# Gaussian noise of standard deviation $\sqrt{1 - \bar\alpha_t}$. The flow paradigm gives
# samples with any ODE solver applied to `velocity`.
#
# **Predict.** How much noise is left in the Langevin target at $t = 0.02$? And will 500
# Langevin steps on DDPM's score reach the quality of 50 Euler steps on flow matching's velocity?

# %%
t_small = 0.02
noise_std = math.sqrt(1 - ddpm.alpha_bar(torch.tensor(t_small)).item())
print(f"noise of the Langevin target at t = {t_small}: sqrt(1 - alpha_bar) = {noise_std:.3f}")
torch.manual_seed(0)
langevin = samplers.langevin(ddpm.score, torch.randn(2000, 2) * 2, steps=500, step_size=1e-3, t=t_small)
euler_fm = samplers.euler(fm.velocity, torch.randn(2000, 2), steps=50)
g_langevin, g_euler = (moons_ref.gap_closed(w2) for w2 in metrics.wasserstein2_many([(langevin, moons_ref.test),
                                                                                      (euler_fm, moons_ref.test)]))
print(f"Langevin with DDPM's score (500 steps): G = {g_langevin:.2f};  Euler on FM's velocity (50 steps): G = {g_euler:.2f}")

# %%
fig_samplers, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharex=True, sharey=True)
scatter2d(axes[0], langevin, f"Langevin on DDPM's score: G = {g_langevin:.2f}", lim=view)
scatter2d(axes[1], euler_fm, f"Euler on FM's velocity: G = {g_euler:.2f}", lim=view)
plt.tight_layout()
plt.show()

# %% [markdown]
# *Figure: 2,000 samples from two samplers that use only one interface each. Compare the moons:
# Langevin's are a little thicker, since it samples a slightly noised target (the noise level
# printed above) with a discretised chain, and its mass is less even along them, since 500 small
# steps do not finish moving mass between distant parts of the moons. The Euler steps follow the
# flow's own ODE to thinner moons.*

# %% tags=["checks"]
print(f"Langevin G = {g_langevin:.3f} (must be > 0.5); Euler G = {g_euler:.3f} (must be > 0.8)")
assert g_langevin > 0.5 and g_euler > 0.8
for figure in (fig_history, fig_samplers):
    check_readable(figure)

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Check your understanding
#
# 1. The VAE and the GAN both sample with one network evaluation. What does the VAE give you
#    that the GAN cannot, and what does its decoder noise cost in sample quality?
# 2. The flow and the GAN both map noise to data deterministically. Why does the flow need many
#    network evaluations per sample and the GAN one?
# 3. Langevin dynamics uses only the score $\nabla_x \log p$. Why does it never need the
#    normalising constant of $p$?
# 4. Pick one arrow of the history map and state, in your own words, the limit it removes.
#
# ## 4. The VAE family
#
# **The story.** A VAE is a compressor with a noisy channel: the encoder writes each point as a
# fuzzy code $q(z \mid x)$, the decoder reads a code back as a distribution over points, and the
# prior $p(z) = \mathcal N(0, I)$ is what we sample codes from at generation time. Training
# trades two costs, how badly the decoder reconstructs and how far the codes stray from the
# prior. The family varies the channel: its price (beta-VAE), the likelihood of the decoder
# (Bernoulli), and a discrete alphabet of codes (VQ-VAE, FSQ).
#
# ### 4.1 Bounds on the likelihood
#
# **Intuition.** To score a point $x$, the VAE asks its encoder *which codes could have produced
# $x$?* and averages how well those codes explain it. With one guess (the ELBO) the score is
# pessimistic; averaging $k$ guesses *inside* the logarithm is less so, and the bound tightens
# towards $\log p_\theta(x)$ as $k$ grows.
#
# **Algebra.** The VAE maximises the ELBO $\mathbb E_q[\log p(x\mid z)] - \mathrm{KL}(q(z\mid
# x)\,\|\,p(z)) \le \log p(x)$. With $k$ importance samples the bound
# $\mathbb E \log \frac1k \sum_i p(x, z_i)/q(z_i\mid x)$ tightens monotonically in $k$
# (Burda et al. 2016). Measured on held-out points, next to the true $\log p_\text{data}$.
#
# **Predict.** Order the five numbers: the ELBO, the bound with $k = 8$, 64 and 512, and the
# true mean $\log p_\text{data}$. Will $k = 512$ reach the true value?

# %%
x_test = moons_ref.test[:1000]
torch.manual_seed(0)
with torch.no_grad():
    bounds = {"ELBO (k=1)": vae.elbo(x_test).mean().item()}
    for k in (8, 64, 512):
        bounds[f"IWAE k={k}"] = vae.log_prob(x_test, k=k).mean().item()
bounds["true log p_data"] = moons.log_prob(x_test).mean().item()
values = list(bounds.values())
display(Markdown(markdown_table([dict(bound=k, nats=v) for k, v in bounds.items()], ["bound", "nats"])))

# %%
ks = [1, 8, 64, 512]
fig_bounds, ax = plt.subplots(figsize=(7, 4.2))
ax.plot(ks, values[:-1], "o-", label="VAE bound ($k = 1$: ELBO)")
ax.axhline(values[-1], color="k", ls="--", label="true mean log $p_\\mathrm{data}$")
ax.set_xscale("log")
ax.set_xticks(ks, [str(k) for k in ks])
ax.set_xlabel("importance samples $k$ (log scale)")
ax.set_ylabel("mean log-likelihood (nats)")
ax.legend()
plt.show()

# %% [markdown]
# *Figure: the VAE's bound on held-out points against the number of importance samples. Look
# at the gap to the dashed line: every increase of $k$ closes part of it, the first eight samples
# most of what $k$ can close, and most of the gap stays. What is left is the VAE's own error,
# $\mathrm{KL}(p_\text{data}\,\|\,p_\theta)$ on average, plus what $k = 512$ guesses still miss.*
#
# ### 4.2 beta-VAE and the rate-distortion curve
#
# **Intuition.** Put a price $\beta$ on every nat the code carries about $x$. A cheap channel
# (small $\beta$) carries a detailed code and the decoder reconstructs well; an expensive one
# carries little and the decoder has to guess.
#
# **Algebra.** Split the negative ELBO into **distortion** $D = -\mathbb E_q \log p(x\mid z)$
# and **rate** $R = \mathrm{KL}(q(z\mid x)\,\|\,p(z))$ (Alemi et al. 2018). A beta-VAE
# (Higgins et al. 2017) minimises $D + \beta R$: small $\beta$ buys low distortion with a high
# rate, large $\beta$ the opposite. Each $\beta$ is a point on the model's rate-distortion
# frontier.
#
# **Predict.** As $\beta$ grows from 0.25 to 1.5, which way do $R$ and $D$ move, and is either
# change linear in $\beta$?

# %%
rd_rows = []
beta_vaes = train(*beta_vae_jobs)  # beta in betas = [0.25, 0.5, 1.0, 1.5], 1,000 steps each, KL warm-up 300
for beta, model in zip(betas, beta_vaes):
    history = trained[f"beta_vae {beta}"][1]
    torch.manual_seed(0)
    with torch.no_grad():
        reconstruction, kl = model.elbo_terms(x_test)
    rd_rows.append(dict(beta=beta, rate=kl.mean().item(), distortion=-reconstruction.mean().item(), train_s=history.seconds))
display(Markdown(markdown_table(rd_rows, ["beta", "rate", "distortion", "train_s"])))

# %%
fig_rd, ax = plt.subplots(figsize=(7, 4.8))
ax.plot([r["rate"] for r in rd_rows], [r["distortion"] for r in rd_rows], "o-")
for r in rd_rows:
    ax.annotate(f"β = {r['beta']}", (r["rate"], r["distortion"]), textcoords="offset points", xytext=(6, 6))
ax.set_xlabel("rate R (nats)")
ax.set_ylabel("distortion D (nats)")
ax.set_title("beta-VAE on two moons")
plt.show()

# %% [markdown]
# *Figure: each point is one trained beta-VAE, its rate (nats of information the code carries)
# against its distortion (nats of reconstruction error; negative because it is a negative
# log-density of continuous data), both on held-out points. Read it from right to left: every
# nat of rate given up is paid for in distortion, roughly nat for nat here. Look at the jump
# between $\beta = 0.5$ and $\beta = 1$: the rate does not fall evenly as $\beta$ grows.*
#
# ### 4.3 A Bernoulli decoder for binary images
#
# **Intuition.** A binary image is a grid of coin flips. The decoder reads a code and outputs
# one coin bias per pixel; the pixels are independent *given the code*, but the code ties them
# together, so strokes come out as strokes.
#
# **Algebra.** The decoder likelihood is a product of Bernoullis, $\log p(x\mid z) =
# \sum_i x_i \log \sigma(\ell_i) + (1 - x_i)\log(1 - \sigma(\ell_i))$, all terms kept, so the
# bound is in real nats. On the 8x8 digits binarised at half intensity, we report bits per
# pixel next to the baseline that models each pixel independently (the entropy of its
# training marginal).
#
# **Predict.** Will the VAE need more or fewer bits per pixel than independent pixels, and by
# how much?
#
# *The image models of this lecture are course checkpoints.* They were trained by
# `make checkpoints` with the recipes in `unigm.course.checkpoints.SPECS` (zoo model, data,
# steps, batch size, learning rate, seed); the file's SHA-256 is checked against the committed
# manifest before loading, and its provenance (commit, training time, loss curve, metrics) lies
# beside it in `checkpoints/`. Every number below is measured now, on the loaded model; the
# checks cell compares it with the recorded one. `UNIGM_RETRAIN=1` trains them here instead
# (about a minute on two CPU cores); the 2D models are always trained live.

# %%
binary_train, binary_test = checkpoints.digits_binary("train"), checkpoints.digits_binary("test")
bvae, bvae_history = checkpoints.load("bernoulli_vae")  # a course checkpoint (UNIGM_RETRAIN=1 trains it here)
trained["bernoulli_vae"] = (bvae, bvae_history)
bvae_bits = metrics.bits_per_dim(bvae.log_prob(binary_test, k=256, generator=torch.Generator().manual_seed(0)), dims=64)
p_pixel = binary_train.mean(0).clamp(1e-3, 1 - 1e-3)
independent_bits = metrics.bits_per_dim(torch.distributions.Bernoulli(p_pixel).log_prob(binary_test).sum((1, 2, 3)), dims=64)
print(f"Bernoulli VAE: {bvae_bits:.3f} bits/pixel (IWAE, k=256); independent pixels: {independent_bits:.3f} bits/pixel; "
      f"{bvae_history.steps} training steps, {bvae_history.seconds:.1f} s")

# %%
torch.manual_seed(0)
fig_bvae = image_rows({"Bernoulli VAE samples": bvae.sample(16)}, ncols=16, panel_width=0.75, row_height=1.4)
plt.show()

# %% [markdown]
# *Figure: 16 binary 8x8 digits sampled from the Bernoulli VAE (black = 1). Look for strokes:
# pixels that are on together, which independent pixels could never produce.* (This model is
# measured by its likelihood, above; the image metrics of section 4.4 use a judge trained on
# grey-level digits, and binary images are another data set.)
#
# ### 4.4 Discrete latents: VQ-VAE and FSQ
#
# **Intuition.** Give the code an alphabet: a palette of 512 vectors. The encoder's output is
# painted with its nearest palette vector, and the decoder only ever sees palette vectors. A
# discrete code is what lets a later model (an autoregressive prior, a transformer) treat images
# as sequences of tokens. Two problems follow: rounding has no gradient, and palette vectors
# that no one picks never move.
#
# **Algebra.** A VQ-VAE (van den Oord et al. 2017) snaps each encoder output $z_e$ to its nearest
# codebook vector $e$. Rounding has no gradient, so the decoder reads $z_q = z_e + \mathrm{sg}[e -
# z_e]$ (equal to $e$ forwards, the identity backwards: the straight-through estimator), and two
# extra terms train what reconstruction cannot reach:
# $\|\mathrm{sg}[z_e] - e\|^2$ moves the **codebook** toward the encoder outputs and
# $\beta\|z_e - \mathrm{sg}[e]\|^2$ **commits** the encoder to its codes. Codes that no encoder
# output chooses receive no gradient and die; restarting them on the encoder outputs farthest
# from every code (farthest-first traversal, the deterministic form of k-means++ seeding;
# Łańcucki et al. 2020) revives them. FSQ (Mentzer et al. 2023) removes the codebook altogether:
# each latent channel is bounded and rounded to exactly $L_i$ levels, an implicit codebook of
# $\prod_i L_i$ codes.
#
# **The code.** The library's quantizer, line for line the formulas above:

# %%
show_source(VQVAE.quantize)

# %% [markdown]
# The two claims of the straight-through estimator, checked on an untrained VQ-VAE: forwards the
# decoder sees exactly the code vector $e$ (up to float rounding), backwards the gradient reaches
# $z_e$ unchanged. And FSQ's implicit codebook has $\prod_i L_i$ codes.

# %%
digits_train, digits_test = checkpoints.digits_dequantized("train"), checkpoints.digits_dequantized("test")
runtime.seed_everything(0)
vq_demo = zoo.make("vqvae", (1, 8, 8), codebook_size=512)
z_e = vq_demo.encode(digits_test[:16]).detach().requires_grad_(True)
z_q, indices, _ = vq_demo.quantize(z_e)
upstream = torch.randn_like(z_q)  # any gradient arriving from the decoder
(z_q * upstream).sum().backward()
forward_gap = (z_q - vq_demo.codebook(indices)).abs().max().item()
backward_gap = (z_e.grad - upstream).abs().max().item()
fsq_codes = zoo.make("fsq_vae", (1, 8, 8), levels=(8, 8, 8)).num_codes
print(f"forwards  max |z_q - e|             = {forward_gap:.1e}")
print(f"backwards max |dL/dz_e - dL/dz_q|   = {backward_gap:.1e}")
print(f"FSQ levels (8, 8, 8): {fsq_codes} codes = 8 * 8 * 8 = {math.prod((8, 8, 8))}")
assert forward_gap < 1e-5 and backward_gap == 0.0 and fsq_codes == math.prod((8, 8, 8))

# %% [markdown]
# Three models on the 8x8 digits, each with 512 codes for each of its 4 latent positions:
# VQ-VAE without restarts, VQ-VAE with restarts, and FSQ with levels (8, 8, 8). Code usage is
# counted on the training set (a dead code is one no training image uses); reconstruction
# error on the test set, next to the error of always predicting the mean training image.
#
# **Predict.** Which of the three will use the most of its 512 codes, and which the fewest?
# Will reviving dead codes improve the reconstructions?

# %%
mean_image_mse = (digits_test - digits_train.mean(0)).pow(2).mean().item()
quantized = {"VQ-VAE, no restarts": "vqvae_plain", "VQ-VAE, restarts": "vqvae_restarts", "FSQ (8, 8, 8)": "fsq_vae"}
q_rows, reconstructions = [], {}
for label, checkpoint in quantized.items():
    model, history = checkpoints.load(checkpoint)  # trained by `make checkpoints`; see the note in 4.3
    trained[label] = (model, history)
    _, train_indices = model.reconstruct(digits_train)
    recon, _ = model.reconstruct(digits_test)
    reconstructions[label] = recon
    q_rows.append(dict(model=label, test_mse=(recon - digits_test).pow(2).mean().item(),
                       perplexity=code_perplexity(train_indices, model.num_codes),
                       codes_used=len(torch.unique(train_indices)),
                       restarts=int(model.restarts) if hasattr(model, "restarts") else None,  # FSQ has no codebook to restart
                       train_s=history.seconds))
display(Markdown(markdown_table(q_rows, ["model", "test_mse", "perplexity", "codes_used", "restarts", "train_s"])))
print(f"baseline: predicting the mean training image gives test MSE {mean_image_mse:.4f}")

# %%
fig_recon = image_rows({"data": digits_test, **reconstructions})
plt.show()

# %% [markdown]
# *Figure: twelve test digits (top row) and their reconstructions through each discrete
# bottleneck. Every reconstruction is decoded from 4 code indices per image; compare the rows
# with the `codes_used` column above, which counts how much of the alphabet each model really
# uses.*
#
# **Samples, measured.** Reconstructions say how good the code is, not how good the generative
# model is. To sample, each model draws its 4 code positions *independently*, each with the
# frequency it had on the training set (a crude prior; section 8.4 replaces it with an
# autoregressive one), and decodes them. `metrics.image_quality` scores 270 samples with the
# course's judge network (a small classifier trained on the training digits) against the 270 test
# digits:
# Fréchet distance (FD) in the judge's feature space, precision (are samples near real digits?),
# recall and coverage (are all real digits near some sample?), density, 1-NN accuracy (0.5 when
# samples and data cannot be told apart), a judge-based inception score and the digit classes
# covered. Each number comes with its floor in brackets: 270 training digits scored the same
# way. Lecture 04 shows what each of them measures.
#
# **Predict.** Four independently drawn codes: will the decoded images look like digits? Which
# will suffer more, precision (fidelity) or recall (diversity)?

# %%
sample_quality_rows, code_samples = {}, {}
for label in quantized:
    model = trained[label][0]
    code_samples[label] = model.sample(270, generator=torch.Generator().manual_seed(0)).clamp(0, 1)  # decoder outputs may overshoot
    sample_quality_rows[label] = metrics.image_quality(code_samples[label])
display(Markdown("\n".join([metrics.ImageQuality.header("model (floor)")]
                           + [q.row(label) for label, q in sample_quality_rows.items()])))

# %%
fig_code_samples = image_rows({f"{label}: FD {sample_quality_rows[label].model.frechet_distance:.0f} "
                               f"(data {sample_quality_rows[label].floor.frechet_distance:.0f})": images
                               for label, images in code_samples.items()})
plt.show()

# %% [markdown]
# *Figure: twelve samples of each model, codes drawn independently per position. Look for
# strokes that belong to different digits in one image: the four positions do not agree on which
# digit they draw, which is what a prior over codes that ignores their dependence produces. The
# Fréchet distance in each title, next to the data's, says the same in one number.*
#
# **Training curves of the VAE family.** Every model of this section, one panel each.

# %%
fig_vae_curves = plot_training_curves(histories(*[f"beta_vae {b}" for b in betas], "bernoulli_vae", *quantized), ncols=4)
plt.show()

# %% [markdown]
# *Figure: training loss against step (moving average over 50 steps). The beta-VAE curves are
# $D + \beta R$, so their levels differ with $\beta$ by construction; compare shapes, not
# heights. They dip during the KL warm-up (the first 300 steps phase the rate in) and then
# climb to their level; at $\beta = 0.25$ and $0.5$ they are still falling when training stops,
# so these short quick-profile runs give points of the runs, not of the converged frontier. The
# Bernoulli VAE's loss is its negative ELBO in nats per image; the VQ-VAE and FSQ losses add the
# squared reconstruction error (summed over the 64 pixels) to their quantizer terms.*

# %% tags=["checks"]
print("bounds (nats):", ", ".join(f"{k} {v:.3f}" for k, v in bounds.items()))
assert all(a < b for a, b in zip(values[:-2], values[1:-1])), "IWAE bounds must grow with k"
assert values[-2] < values[-1], "a bound above the true log-likelihood would be a bug"
rates, distortions = [r["rate"] for r in rd_rows], [r["distortion"] for r in rd_rows]
assert all(a > b for a, b in zip(rates, rates[1:])), "rate must fall as beta grows"
assert all(a < b for a, b in zip(distortions, distortions[1:])), "distortion must rise as beta grows"
print(f"Bernoulli VAE {bvae_bits:.3f} bits/pixel, must be < 0.85 x {independent_bits:.3f}")
assert bvae_bits < 0.85 * independent_bits
vq_plain, vq_restart, fsq_row = q_rows
if not checkpoints.retrain_requested() and runtime.profile() == "quick":  # loaded: the numbers must be the recorded ones
    assert abs(bvae_bits - checkpoints.provenance("bernoulli_vae")["metrics"]["test_bits_per_pixel"]) < 1e-4
    for r, name in zip(q_rows, quantized.values()):
        assert abs(r["test_mse"] - checkpoints.provenance(name)["metrics"]["test_mse"]) < 1e-6, name
for r in q_rows:
    assert r["test_mse"] < 0.25 * mean_image_mse, r
assert vq_restart["restarts"] > 0 and vq_restart["codes_used"] > vq_plain["codes_used"], "restarts must revive dead codes"
assert fsq_row["codes_used"] > 0.5 * 512
for label, q in sample_quality_rows.items():  # independent codes: measurably worse than data, yet digit-like
    print(f"{label}: FD {q.model.frechet_distance:.1f} (floor {q.floor.frechet_distance:.1f}), "
          f"precision {q.model.precision:.2f}, classes {q.model.classes_covered}/10")
    assert q.model.frechet_distance > q.floor.frechet_distance and q.model.classes_covered >= 8, label
for figure in (fig_bounds, fig_rd, fig_bvae, fig_recon, fig_code_samples, fig_vae_curves):
    check_readable(figure)

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Check your understanding
#
# 1. Why can the importance-weighted bound never exceed $\log p_\theta(x)$ on average, and why
#    does it still fall short of $\log p_\text{data}(x)$ however large $k$ is?
# 2. Train a beta-VAE with $\beta \to 0$. What happens to the rate, and what do samples from the
#    prior look like?
# 3. Why does a codebook vector that no encoder output selects receive no gradient, and how does
#    FSQ avoid the problem altogether?
# 4. The straight-through estimator hands the decoder's gradient at $e$ to $z_e$ unchanged.
#    Why is that gradient only approximately right, and how does the commitment term help?
#
# ## 5. The flow family
#
# **The story.** A flow is a reversible machine: noise goes in, data come out, and you can run it
# backwards to ask how likely a data point is, by tracking how much the machine stretches or
# squeezes space. The family varies how the machine is built (a few big invertible layers, or
# an ODE of infinitely many small steps) and how it is trained (maximum likelihood, which
# simulates the machine, or regression on chosen paths, which does not).
#
# ### 5.1 Coupling flows: exact likelihood by construction
#
# **Intuition.** Split the coordinates into two halves. Keep one half as it is, and stretch and
# shift the other by amounts computed *from the kept half*. You can always undo this (you still
# know the kept half, so you can recompute the stretch), and the change of volume is just the
# product of the stretches.
#
# **Algebra.** RealNVP (Dinh et al. 2017) stacks affine couplings
# $y_B = x_B \odot e^{s(x_A)} + b(x_A)$, $y_A = x_A$: the Jacobian is triangular, so
# $\log|\det \partial y/\partial x| = \sum s$ and the inverse is exact. The library's layer:

# %%
show_source(AffineCoupling)

# %% [markdown]
# **Predict.** Encode 500 test points with the trained flow and decode them again: will the
# round trip be exact to the last bit, or off by float rounding? And how close will its NLL come
# to the entropy of the data?

# %%
# the flow family's four trainings run here, two at a time, the longest first (measured: 27, 24, 18 and
# 12 s); sections 5.2 and 5.3 use the others
realnvp, ot_fm, cnf, cnf_hutchinson = train(*flow_jobs)
realnvp_history = trained["realnvp"][1]
x = moons_ref.test[:500]
with torch.no_grad():
    z, _ = realnvp.forward_with_log_det(x)
    inversion_error = (realnvp.inverse(z) - x).abs().max().item()
realnvp_r = measure(realnvp, moons, moons_ref, realnvp_history)
print(f"RealNVP: inversion error {inversion_error:.1e}; NLL {realnvp_r.nll:.3f} nats "
      f"(data entropy {realnvp_r.data_entropy:.3f}); G = {realnvp_r.gap_closed:.2f}; "
      f"trained in {realnvp_r.train_seconds:.1f} s")
flow_rows = [dict(model="realnvp", train_s=realnvp_r.train_seconds, G=realnvp_r.gap_closed, NLL=realnvp_r.nll,
                  NFE=realnvp_r.nfe)]

# %% [markdown]
# The log-determinant the flow reports is the sum of its log-scales. Checked against the full
# Jacobian, computed by autograd, at five test points:

# %%
jacobian_gap = 0.0
for point in moons_ref.test[:5]:
    jacobian = torch.autograd.functional.jacobian(lambda v: realnvp.forward_with_log_det(v[None])[0][0], point)
    _, log_det = realnvp.forward_with_log_det(point[None])
    jacobian_gap = max(jacobian_gap, abs(torch.linalg.slogdet(jacobian).logabsdet - log_det[0]).item())
print(f"max |log|det J| (autograd) - sum of log-scales| = {jacobian_gap:.1e}")
assert jacobian_gap < 1e-4

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### 5.2 Continuous normalizing flows: maximum likelihood through an ODE
#
# **Intuition.** Replace a few big invertible layers by infinitely many small ones: an ODE.
# Any smooth velocity field gives an invertible map (run the ODE backwards), so the network is
# unconstrained; the density changes along the way at a rate set by how much the field spreads
# points apart, its divergence.
#
# **Algebra.** A CNF (Chen et al. 2018) defines $x_1 = x_0 + \int_0^1 v_\theta(x_t, t)\,dt$ and
# $\log p(x_0) = \log \mathcal N(x_1) + \int_0^1 \mathrm{tr}\, \partial v/\partial x\, dt$.
# Training differentiates through the solver. The trace costs $D$ vector-Jacobian products
# exactly, or one with Hutchinson's estimator $\epsilon^\top (\partial v/\partial x)\, \epsilon$
# with a random probe $\epsilon$ (FFJORD, Grathwohl et al. 2019); in 2D the saving is small, in
# images it is everything. Note the price of simulation-based training: each step solves the ODE.
#
# **Predict.** In 2D, how much cheaper per training step will Hutchinson's estimator be than the
# exact trace? And will its noisier gradient cost quality?

# %%
cnf_results = {}
for name, model in (("cnf", cnf), ("cnf_hutchinson", cnf_hutchinson)):
    cnf_results[name] = r = measure(model, moons, moons_ref, trained[name][1])
    flow_rows.append(dict(model=name, train_s=r.train_seconds, ms_per_step=1000 * r.train_seconds / r.steps,
                          G=r.gap_closed, NLL=r.nll, NFE=r.nfe))
display(Markdown(markdown_table(flow_rows[1:], ["model", "train_s", "ms_per_step", "G", "NLL", "NFE"])))

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### 5.3 Flow matching, with independent and with optimal-transport couplings
#
# **Intuition.** Flow matching skips the simulation. It pairs each data point $x_0$ with a noise
# draw $x_1$, draws the straight line between them, $x_t = (1 - t)\,x_0 + t\,x_1$, and asks the
# network for the velocity along it, $x_1 - x_0$. Who is paired with whom is a choice, the
# **coupling**. With independent pairs, lines from nearby points head off in unrelated
# directions and cross; near a crossing the network is shown different velocities for nearly
# the same input and learns their average, which bends the flow. Pairing each minibatch by
# exact optimal transport (Tong et al. 2024; Pooladian et al. 2023), the pairing with the least
# total squared length, makes crossings rare.
#
# **Predict.** The same 64 data points and the same 64 noise draws, paired two ways. How many
# pairs of lines cross under independent pairing? Under minibatch OT?

# %%
batch = moons.sample(64, torch.Generator().manual_seed(3))
couplings = {"independent": fm, "minibatch OT": zoo.make("ot_flow_matching", (2,))}  # coupling() needs no training
partners = {label: model.coupling(batch, torch.Generator().manual_seed(4)) for label, model in couplings.items()}
crossings = {label: segment_crossings(batch, x1) for label, x1 in partners.items()}
pair_cost = {label: (x1 - batch).pow(2).sum(1).mean().item() for label, x1 in partners.items()}
fig_couplings, axes = plt.subplots(1, 2, figsize=(13, 6.5))
for ax, (label, x1) in zip(axes, partners.items()):
    plot_pairs(ax, batch, x1, f"{label}: {crossings[label]} crossings")
plt.tight_layout()
plt.show()
same_noise = bool((partners["minibatch OT"][:, None] == partners["independent"][None]).all(-1).any(1).all())
print(f"the same 64 noise draws in both pairings: {same_noise}")
# E[(x0 - mean) . x1]: about 0 when the noise is independent of the data, the premise of the
# Gaussian-path results of lecture 02 (check 3.16); an OT pairing makes the noise depend on the data
dependence = {label: ((batch - batch.mean(0)) * x1).sum(1).mean().item() for label, x1 in partners.items()}
for label in partners:
    print(f"{label:>13}: {crossings[label]} crossing pairs of lines; mean squared length |x1 - x0|^2 = "
          f"{pair_cost[label]:.2f}; E[(x0 - m) . x1] = {dependence[label]:.2f}")

# %% [markdown]
# *Figure: one minibatch of flow matching's conditional paths, each grey segment the straight
# line from a data point (black) to the noise draw it is paired with (blue). Left, independent
# pairing: long lines that cross all over the picture. Right, the optimal-transport pairing of
# the same points: shorter lines, mostly parallel, with the few crossings counted in the title.
# Each crossing is a place where the regression target is ambiguous.*
#
# **Algebra.** We measure how straight a learned flow is by its straightness
# $S = \int_0^1 \mathbb E|(x_1 - x_0) - v(x_t, t)|^2 dt$ along the model's own trajectories
# (Liu et al. 2023): 0 means every trajectory is a straight line walked at constant speed. The
# only change OT flow matching makes to the library's flow matching is its `coupling`:

# %%
show_source(OTFlowMatching.coupling)

# %% [markdown]
# **Predict.** How much straighter will the OT-trained flow be than the flow matching of
# section 1, and will it pay for it in quality $G$?

# %%
torch.manual_seed(0)
probe = torch.randn(2000, 2)
fm_results = {}
for name, model in (("flow_matching", fm), ("ot_flow_matching", ot_fm)):
    fm_results[name] = r = measure(model, moons, moons_ref, trained[name][1])
    flow_rows.append(dict(model=name, train_s=r.train_seconds, G=r.gap_closed, NLL=r.nll, NFE=r.nfe,
                          straightness=straightness(model.velocity, probe)))
display(Markdown(markdown_table(flow_rows, ["model", "train_s", "ms_per_step", "G", "NLL", "NFE", "straightness"])))
s_independent, s_ot = flow_rows[-2]["straightness"], flow_rows[-1]["straightness"]
print(f"straightness: independent {s_independent:.3f}, OT {s_ot:.3f} (ratio {s_ot / s_independent:.2f})")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### 5.4 Rectified flow: reflow makes paths straight, and few steps enough
#
# **Intuition.** A trained flow is itself a coupling: it sends each noise draw to one data point.
# Its ODE trajectories never cross (an ODE cannot be in one place with two velocities), so if we
# take those pairs and draw *straight* lines between them, the lines have far fewer conflicts
# than independent pairs. Train a new flow on them, and repeat.
#
# **Algebra.** Rectified flow (Liu et al. 2023) starts from flow matching (1-RF) and then
# **reflows**: draw noise $z$, follow the current flow to $x_0 = \mathrm{ODE}(z)$, and train a
# new flow on the fixed pairs $(x_0, z)$. The ODE's trajectories never cross, but the straight
# chords between their ends can: the new coupling has far *fewer* crossings and a lower transport
# cost than independent pairs, not none, and in general it is not the optimal-transport coupling
# (Liu et al. prove the cost never increases, not that it reaches the minimum). Each round
# straightens the flow, and a single Euler step gets closer to the data.
#
# **Predict.** One Euler step of the 1-RF flow jumps from noise straight along its initial
# velocity. After one reflow, will that single step land on the moons? Which round changes
# straightness the most?

# %%
rf_rows = []
current = fm  # 1-RF is the flow-matching model of section 1
rectified = [fm]
for round_ in range(3):
    torch.manual_seed(0)
    one_step = samplers.euler(current.velocity, torch.randn(2000, 2), steps=1)
    two_step = samplers.euler(current.velocity, torch.randn(2000, 2), steps=2)
    w2_one, w2_two = metrics.wasserstein2_many([(one_step, moons_ref.test), (two_step, moons_ref.test)])
    rf_rows.append(dict(model=f"{round_ + 1}-RF", straightness=straightness(current.velocity, probe),
                        G_1_step=moons_ref.gap_closed(w2_one), G_2_steps=moons_ref.gap_closed(w2_two)))
    if round_ < 2:
        runtime.seed_everything(round_)
        rf = zoo.make("rectified_flow", (2,))
        rf.load_state_dict(current.state_dict())  # initialise from the previous round
        pairs = rf.reflow_pairs(runtime.by_profile(10_000, 100_000), steps=64, generator=torch.Generator().manual_seed(round_))
        history = fit(rf, pairs, steps=runtime.by_profile(1000, 8000), batch_size=256, lr=1e-3, ema_decay=0.995,
                      desc=f"reflow {round_ + 1}")
        trained[f"reflow {round_ + 1}"] = (rf, history)
        rf_rows[-1]["next_reflow_train_s"] = history.seconds
        current = rf
        rectified.append(rf)
display(Markdown(markdown_table(rf_rows, ["model", "straightness", "G_1_step", "G_2_steps", "next_reflow_train_s"])))

# %% [markdown]
# How much does one reflow untangle the pairs? Take the 64 noise draws of the coupling figure,
# send each through the 1-RF ODE, and count the crossings among the chords (data point, noise)
# that the next round trains on; compare the chords' mean squared length with the smallest one
# possible for the same two point sets, the exact optimal-transport cost $W_2^2$.

# %%
reflow_noise = partners["independent"]  # the coupling figure's 64 noise draws
reflow_data = samplers.heun(fm.velocity, reflow_noise, 64)  # where the 1-RF ODE sends each of them
reflow_crossings = segment_crossings(reflow_data, reflow_noise)
reflow_cost = (reflow_noise - reflow_data).pow(2).sum(1).mean().item()
ot_cost = metrics.wasserstein2(reflow_data, reflow_noise) ** 2  # the minimum over all pairings of these points
print(f"crossings: independent {crossings['independent']}, minibatch OT {crossings['minibatch OT']}, "
      f"reflow pairs {reflow_crossings} (fewer, not necessarily none)")
print(f"reflow pairs: mean |x1 - x0|^2 = {reflow_cost:.3f}; optimal transport of the same points: {ot_cost:.3f}")

# %%
fig_reflow, axes = plt.subplots(1, 3, figsize=(15, 5))
for ax, label, model in zip(axes, ["1-RF", "2-RF", "3-RF"], rectified):
    traj = []
    samplers.euler(model.velocity, probe[:80], steps=32, trajectory=traj)
    path = torch.stack(traj)
    ax.plot(path[:, :, 0], path[:, :, 1], lw=0.6, color="C2")
    ax.set(title=f"{label}: straightness {straightness(model.velocity, probe):.3f}", aspect="equal",
           xlabel="coordinate 1", ylabel="coordinate 2")
plt.tight_layout()
plt.show()

# %% [markdown]
# *Figure: 80 ODE trajectories of each round, from noise to data (32 Euler steps). Look at the
# bends: the 1-RF paths curve as they sort themselves onto the two moons, after one reflow they
# are close to straight lines, which is why one Euler step suffices for them far better
# (the `G_1_step` column).*
#
# **Training curves of the flow family.** Every flow trained in this section (flow matching's
# own curve is in section 1).

# %%
fig_flow_curves = plot_training_curves(histories("realnvp", "cnf", "cnf_hutchinson", "ot_flow_matching", "reflow 1",
                                                 "reflow 2"), ncols=3)
plt.show()

# %% [markdown]
# *Figure: training loss against step (moving average over 50 steps). RealNVP and the two CNFs
# minimise a negative log-likelihood in nats per dimension (the CNFs plus a small penalty on the
# field's kinetic energy); OT flow matching and the reflows minimise squared velocity errors.
# The CNF curves are still falling when their training ends: each step solves an ODE, so the
# quick profile stops them early, which is why their $G$ is low. Compare OT flow matching's
# level with flow matching's in section 1: with OT pairs, $x_t$ nearly determines the target
# velocity, so far less variance is left. On reflow pairs, deterministic by construction, the
# loss falls lower still.*

# %% tags=["checks"]
print(f"RealNVP: inversion error {inversion_error:.1e}, G = {realnvp_r.gap_closed:.3f}, "
      f"NLL - entropy = {realnvp_r.nll - realnvp_r.data_entropy:.3f}")
assert inversion_error < 1e-5 and realnvp_r.nll - realnvp_r.data_entropy < 0.5
for name, r in {"realnvp": realnvp_r, **cnf_results, "ot_flow_matching": fm_results["ot_flow_matching"]}.items():
    print(f"{name}: G = {r.gap_closed:.3f}, NLL - entropy = {r.nll - r.data_entropy:.3f}")
    check_gate(Job(name, moons), r.gap_closed, r.nll, r.data_entropy)  # the recipe's gate
    assert r.nll - r.data_entropy < 1.5, (name, r)
assert same_noise and crossings["minibatch OT"] < crossings["independent"]
assert pair_cost["minibatch OT"] <= pair_cost["independent"], "the OT pairing minimises the total squared length"
assert abs(dependence["independent"]) < 0.5 < dependence["minibatch OT"], "only the OT pairing ties the noise to the data"
assert s_ot < 0.5 * s_independent and flow_rows[-1]["G"] > 0.8
assert rf_rows[1]["straightness"] < 0.5 * rf_rows[0]["straightness"]
assert rf_rows[2]["straightness"] < rf_rows[1]["straightness"]
assert rf_rows[1]["G_1_step"] > rf_rows[0]["G_1_step"] + 0.2, "one Euler step must improve after reflow"
assert reflow_crossings < crossings["independent"] / 5, "reflow pairs must cross far less than independent pairs"
assert ot_cost <= reflow_cost + 1e-6 < pair_cost["independent"], "OT is the least cost; reflow lowers it below independent"
for figure in (fig_couplings, fig_reflow, fig_flow_curves):
    check_readable(figure)

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Check your understanding
#
# 1. Why is the log-determinant of an affine coupling layer a plain sum, and what would it cost
#    for a general dense layer in $D$ dimensions?
# 2. A CNF and flow matching both learn a velocity field. Why does one CNF training step cost
#    so much more than one flow-matching step?
# 3. Two straight conditional paths may cross, yet the trajectories of the learned ODE never
#    do. Why not, and what does the learned field do where the conditional paths cross?
# 4. Reflow trains a new flow on pairs produced by the old one. Why does this straighten the
#    flow instead of simply copying it?
#
# ## 6. The GAN family
#
# **The story.** A forger (the generator) and a detective (the discriminator) play a game. The
# detective learns to tell real from forged; the forger learns from the detective's gradients
# which way to move each forgery to look more real. Different games measure "looks real"
# differently, with a different divergence or distance between the data and the forger's
# distribution, and need different tricks to stay stable: that is the whole family.
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
#   $\mathrm{softplus}(D(G(z)) - D(x))$ with both R1 and R2 penalties. In the library:

# %%
show_source(pairing_loss)

# %% [markdown]
# Beyond $W_2$ we count **modes hit** (modes receiving at least 10% of their fair share of
# samples within $3\sigma$) and the fraction of **high-quality** samples (within $3\sigma$ of
# a mode), as Srivastava et al. (2017) do.
#
# **Predict.** On 8 well-separated but wide modes, which variants will hit all 8? Reverse KL
# punishes samples where the data have no mass; forward KL punishes missing mass. Which of the
# two will put more of its samples close to a mode?

# %%
print([job.title for job in gan_jobs])  # the twelve variants (the jobs were queued at the top)
gan_rows, gan_histories = [], {}
for job, model in zip(gan_jobs, train(*gan_jobs)):
    label, history = job.title, trained[job.title][1]
    gan_histories[label] = history
    torch.manual_seed(1)
    samples = model.sample(2000)
    coverage = metrics.mode_coverage(samples, gaussians.means, gaussians.std)
    gan_rows.append(dict(model=label, train_s=history.seconds, modes=f"{coverage.modes_hit}/8",
                         high_quality=coverage.high_quality, samples=samples))
for row, w2 in zip(gan_rows, metrics.wasserstein2_many((row["samples"], gaussians_ref.test) for row in gan_rows)):
    row["G"] = gaussians_ref.gap_closed(w2)  # the twelve W2 solves run two at a time, in threads
display(Markdown(markdown_table(gan_rows, ["model", "train_s", "G", "modes", "high_quality"])))

# %%
fig_gans, axes = plt.subplots(3, 4, figsize=(16, 13.5), sharex=True, sharey=True)
for ax, r in zip(axes.flat, gan_rows):
    scatter2d(ax, r["samples"], f"{r['model']}\nG = {r['G']:.2f}, {r['modes']} modes", lim=3)
plt.tight_layout()
plt.show()

# %% [markdown]
# *Figure: 2,000 samples of each GAN variant on 8 gaussians, same axes. Look at how each variant
# spreads its samples: the non-saturating GAN and R3GAN show eight distinct blobs, while the
# WGANs and the forward-KL f-GAN smear theirs along the ring and scatter some inside it, which
# costs $G$ without losing a mode. Look at StyleGAN: a thin closed curve through all eight modes,
# as dense between the modes as on them, and still "8/8 modes": a mode count alone would miss
# this.*
#
# **Training curves.** A GAN's curves are not a progress bar: each panel shows the two
# players' losses, and a game in balance keeps both roughly level.

# %%
fig_gan_curves = plot_training_curves(gan_histories, ncols=4)
plt.show()

# %% [markdown]
# *Figure: discriminator (or critic) and generator losses against step, moving average over 50
# steps, one panel per variant. Look at the WGANs: their critic loss is an estimate of $-W_1$ and
# has no fixed scale, unlike the cross-entropy games whose losses sit near constant values at
# balance. None of the curves tells you which variant samples best; the table above does.*
#
# **Explore: the same game, replayed.** The curves above are the end of a story; here is the story. We
# train the non-saturating GAN once more on 8 gaussians (1,000 steps, about 10 s) and keep 1,000
# samples from the same noise every 50 steps. Press play or drag the step slider: left, the samples at
# that step over the data; right, both players' losses with a marker at that step. **Predict** first:
# does the generator find the eight modes one by one, or cover the ring first and then split it? Watch
# the first 200 steps, where the losses swing most. Then compare the late steps with each other: the
# losses sit near their balance values ($2\log 2 \approx 1.39$ for the discriminator, $\log 2 \approx 0.69$
# for the generator). Do the samples keep changing? A flat GAN curve is not a finished model.

# %%
torch.manual_seed(0)
gan_recording = record_snapshots(zoo.make("gan", (2,)), gaussians, steps=1000, every=50, lr=1e-3, seed=0)
gan_playback = TrainingPlayback(gan_recording, lim=3, title="non-saturating GAN")  # samples stored: ~0.1 s a step
gan_playback.show()

# %% tags=["checks"]
late = {name: sum(values[-300:]) / 300 for name, values in gan_recording.history.losses.items()}
print("mean loss over the last 300 steps:", {name: round(value, 3) for name, value in late.items()})
assert abs(late["discriminator"] - 2 * math.log(2)) < 0.1 and abs(late["generator"] - math.log(2)) < 0.1

# %% [markdown]
# Reverse KL, $\mathrm{KL}(p_g\,\|\,p_\text{data})$, is **mode-seeking**: it punishes samples
# where the data has no mass and forgives missing mass, so its samples are precise (a high
# high-quality fraction) while forward KL spreads out to cover everything.

# %%
by_label = {r["model"]: r for r in gan_rows}
print(f"high-quality fraction: reverse KL {by_label['f_gan (reverse_kl)']['high_quality']:.2f}, "
      f"forward KL {by_label['f_gan (kl)']['high_quality']:.2f}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### 6.2 Mode collapse, and what cures it
#
# **Intuition.** With wide modes every variant above covers the ring. Narrow modes (std 0.02,
# as in Metz et al. 2017) are where GANs fail: the discriminator separates real from fake
# almost perfectly, its gradients point the generator toward whichever modes it currently
# favours, and the generator's mass gathers on a few modes. Zero-centred gradient penalties
# (R1, and R2 in R3GAN) keep the discriminator smooth around the data, which is the cure
# measured here.
#
# **Predict.** How many of the 8 narrow modes will the two GANs without a penalty hit? Will R1
# alone bring all the modes back?

# %%
n_samples = 2000  # narrow: 8 gaussians of std 0.02; collapse_jobs: the four GANs above, 3 seeds each (queued at the top)
collapse_rows, collapse_histories, hits_per_seed = [], {}, {label: [] for *_, label in collapse_variants}
for i, (job, model) in enumerate(zip(collapse_jobs, train(*collapse_jobs))):
    variant = collapse_variants[i % len(collapse_variants)][2]  # the jobs run seed by seed, variant by variant
    torch.manual_seed(1)
    coverage = metrics.mode_coverage(model.sample(n_samples), narrow.means, narrow.std)
    hits_per_seed[variant].append(coverage.modes_hit)
    if job.seed == 0:  # the table, the bars and the curves show seed 0
        collapse_histories[variant] = trained[job.title][1]
        collapse_rows.append(dict(model=variant, modes_hit=coverage.modes_hit, high_quality=coverage.high_quality,
                                  per_mode=str(coverage.counts), counts=coverage.counts,
                                  train_s=collapse_histories[variant].seconds))
mean_hits = {variant: sum(hits) / len(hits) for variant, hits in hits_per_seed.items()}
for row in collapse_rows:
    row["hits, seeds 0/1/2"] = " / ".join(map(str, hits_per_seed[row["model"]]))
    row["mean hits"] = round(mean_hits[row["model"]], 2)
display(Markdown(markdown_table(collapse_rows, ["model", "modes_hit", "high_quality", "per_mode", "hits, seeds 0/1/2",
                                                "mean hits", "train_s"])))

# %%
fair_share = n_samples / len(narrow.means)
fig_collapse, axes = plt.subplots(1, 4, figsize=(17, 4.6), sharey=True)
for ax, row in zip(axes, collapse_rows):
    ax.bar(range(len(row["counts"])), row["counts"], color="C0")
    ax.axhline(fair_share, color="k", ls="--", lw=1.2, label="fair share")
    ax.axhline(0.1 * fair_share, color="C3", ls=":", lw=1.5, label="hit threshold")
    ax.set(title=f"{row['model']}\n{row['modes_hit']}/8 modes hit", xlabel="mode (index around the ring)",
           ylabel=f"samples within 3σ (of {n_samples})", xticks=range(len(row["counts"])))
axes[0].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# *Figure: where each GAN's 2,000 samples land on 8 narrow modes (seed 0): the number of samples
# within $3\sigma$ of each mode. The dashed line is the fair share (a perfect model), the dotted one
# the 10% threshold for counting a mode as hit. Look at the two left panels, the GANs without a
# penalty: the non-saturating one piles its precise samples onto some of the modes and misses the
# others (mode collapse), and the minimax one lands almost nothing within $3\sigma$ of any mode
# (compare its `high_quality` fraction in the table). With a zero-centred gradient penalty (right
# panels) the bars spread over more modes. One seed is one draw of a noisy game: the table's mean
# over three seeds is what the checks assert, each penalty at least one mode above either GAN
# without one; R1 alone and R1 with R2 differ by less than the seed-to-seed spread of a mode or two.*
#
# **Training curves** of the four narrow-mode GANs:

# %%
fig_collapse_curves = plot_training_curves(collapse_histories, ncols=4)
plt.show()

# %% [markdown]
# *Figure: discriminator and generator losses of the four GANs on narrow modes (moving average
# over 50 steps; the discriminator's includes its penalty). Without a penalty the
# discriminator's loss keeps falling: it is winning, separating real from fake, and the
# non-saturating generator's loss climbs. With R1 the discriminator's loss stays near
# $\log 4 \approx 1.39$, its value when it cannot tell the two apart. (R3GAN's pairing loss has
# another scale: it is $\log 2 \approx 0.69$ at that point.)*
#
# ### 6.3 StyleGAN's W space
#
# **Intuition.** StyleGAN does not feed $z$ to the generator directly: a mapping network first
# reshapes the Gaussian $Z$ into a learned space $W$, which the generator reads at every layer.
# Because $W$ is learned, it can stretch where the data change slowly and squeeze where they
# change fast, so that walking straight in $W$ changes the output evenly.
#
# **Algebra.** Karras et al. (2019) found straight lines in $W$ give smoother images than
# straight lines in $Z$, and measured it by the **perceptual path length**: the mean squared
# change of the output per unit step along interpolations. Our 2D analogue uses the Euclidean
# change of the sample, over 500 random pairs and 64 steps each. On 2D data the mapping has
# little to disentangle, so expect at most a modest difference, not the large one seen on faces.
#
# **Predict.** Will the path length be shorter in $W$ or in $Z$, and by how much?

# %%
style = trained["stylegan"][0]  # the StyleGAN of section 6.1, on 8 gaussians
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

# %%
fig_style, axes = plt.subplots(1, 2, figsize=(12, 6), sharex=True, sharey=True)
for ax, path, label in ((axes[0], path_z, "Z"), (axes[1], path_w, "W")):
    scatter2d(ax, by_label["stylegan"]["samples"], f"interpolation in {label}", lim=3, color="0.6")
    ax.plot(path[:, :12, 0], path[:, :12, 1], lw=1.5)
plt.tight_layout()
plt.show()

# %% [markdown]
# *Figure: twelve interpolations between random pairs of latents, drawn in data space (coloured
# curves) over the StyleGAN's samples (grey). Left, straight lines in $Z$: the paths run along
# the generator's thin ring. Right, straight lines in $W$: some paths cut across the inside of
# the ring, away from the samples, since a straight line in $W$ need not stay where the mapping
# sends Gaussian latents. The path lengths printed above differ only a little, and which of the
# two comes out shorter is not stable (the same run on two CPUs with different rounding gave
# either): on 2D data there is little for $W$ to disentangle.*

# %% tags=["checks"]
F_GAN_G_MIN = 0.3  # f-GANs with a divergence other than their recipe's, measured with margin
for (name, config), r in zip(gan_variants, gan_rows):
    g_min = check_gate(Job(name, gaussians), r["G"]) if not config else F_GAN_G_MIN  # the recipes' gates
    print(f"{r['model']:>22}: G = {r['G']:.3f} (must be >= {g_min}), modes {r['modes']} (must be 8/8)")
    assert r["G"] >= g_min and r["modes"] == "8/8", (r["model"], r["G"], r["modes"])
assert by_label["f_gan (reverse_kl)"]["high_quality"] > by_label["f_gan (kl)"]["high_quality"]
plain, minimax, with_r1, r3 = (mean_hits[label] for *_, label in collapse_variants)  # over the three seeds
print(f"narrow modes hit, mean of 3 seeds: no penalty {plain:.2f}, minimax {minimax:.2f}, R1 {with_r1:.2f}, R3GAN {r3:.2f}")
assert max(plain, minimax) <= 5, "without a penalty the generator should miss at least three modes on average"
assert min(with_r1, r3) >= max(plain, minimax) + 1, "each gradient penalty must recover modes on average"
assert abs(ppl_w - ppl_z) < 0.25 * ppl_z, "on 2D data the two path lengths differ only a little"
for figure in (fig_gans, fig_gan_curves, fig_collapse, fig_collapse_curves, fig_style):
    check_readable(figure)

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Check your understanding
#
# 1. Why does the minimax generator loss $\log(1 - D(G(z)))$ give the generator almost no
#    gradient early in training, and how does the non-saturating loss fix it?
# 2. Why must a WGAN critic be 1-Lipschitz, and what does each of clipping, the gradient penalty
#    and spectral normalisation do to enforce it?
# 3. Reverse KL is called mode-seeking. Which of the two numbers of the table (modes hit,
#    high-quality fraction) would you expect it to win, and which to risk?
# 4. The R1 penalty is zero-centred: it pushes $|\nabla_x D(x)|$ towards 0 on real data. Why does
#    a flat discriminator around the data help a generator that is stuck on a few modes?

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. The diffusion family
#
# **The story.** Lecture 00 trained one diffusion model; this section takes the family apart.
# All of it rests on **one noising process**, $x_t=\alpha_t x_0+\sigma_t\varepsilon$, which turns
# data into noise with no learning at all. A network learns to undo it, and there are only a few
# choices to make: **what the network predicts** (the noise $\varepsilon$, the clean point $x_0$,
# or the velocity-like $v$), **how time is run backwards** (a stochastic differential equation or
# its deterministic twin, the probability-flow ODE), **how many steps** the sampler takes (from
# 1,000 down to one, with DDIM and consistency models), and **in which space** the process runs
# (pixels, or the latent space of an autoencoder). Every choice is measured below.
#
# ### 7.1 One noising process
#
# **Intuition.** Take the two moons and blur them: shrink every point towards the origin and add
# Gaussian noise. A little noise smears the moons; a lot leaves a Gaussian blob that no longer
# remembers them. The two standard ways to blur differ in the shrinking: **variance preserving**
# (VP, DDPM's $\alpha_t=\sqrt{\bar\alpha_t}$, $\sigma_t=\sqrt{1-\bar\alpha_t}$, the total variance stays
# near 1) and **variance exploding** (VE, $\alpha_t=1$, $\sigma_t$ grows to 10: no shrinking, just
# more and more noise). Both are described by one number per time, the **signal-to-noise
# ratio** $\mathrm{SNR}(t)=\alpha_t^2/\sigma_t^2$.
#
# **Predict.** On the VP path, at what fraction of the time axis are the two moons no longer
# recognisable: around $t=0.1$, $0.3$ or $0.7$?

# %%
vp, ve = zoo.make("score_sde_vp", (2,)), zoo.make("score_sde_ve", (2,))  # untrained: only their paths are used
x_clean = moons_ref.test[:1000]
noise = torch.randn(x_clean.shape, generator=torch.Generator().manual_seed(0))
times = [0.0, 0.1, 0.2, 0.3, 0.5, 1.0]
fig_noising, axes = plt.subplots(2, len(times), figsize=(18, 6.5))
for row, (model, label) in enumerate(((vp, "VP"), (ve, "VE"))):
    for ax, t in zip(axes[row], times):
        x_t = model.gaussian_path.sample(x_clean, noise, torch.tensor(t))
        snr = model.gaussian_path.snr(torch.tensor(max(t, 1e-3), dtype=torch.float64)).item()
        scatter2d(ax, x_t, f"{label}, t = {t}, SNR = {snr:.2g}", lim=3.5 if label == "VP" else 12, size=2)
plt.tight_layout()
check_readable(fig_noising)
plt.show()

# %% [markdown]
# *Figure: the same 1,000 points and the same noise, blurred by the VP path (top) and the VE
# path (bottom, wider axes) at six times. Look at $t=0.3$: the VP moons are gone at an SNR near
# 1 (signal and noise equally strong), while the VE points keep their spread and drown in a
# noise cloud ten times wider by $t=1$. Where the moons dissolve is set by the SNR, not by $t$:
# half of the time axis is spent on nearly pure noise, which is one reason later schedules
# (cosine, the flow-matching line) spread the SNR differently.*
#
# **Explore.** The figure above fixed six times; here you move $t$ yourself and switch between four
# schedules: VP-linear (DDPM), cosine (Nichol & Dhariwal 2021), VE ($\sigma$ up to 10) and the
# flow-matching line $x_t=(1-t)x_0+t\varepsilon$ (right cloud, at the same $t$). **Predict** first: for
# each schedule, at which $t$ are signal and noise equally strong (signal fraction 0.5, log-SNR 0)? Then
# move the slider until the marker crosses zero in the log-SNR panel (the check below the explorer
# finds the crossings), and look at the left cloud each time: at equal SNR the moons are equally
# blurred, whatever the schedule and the time. That is why the SNR, not $t$, is the quantity to think
# in. On a static page you see the default state ($t = 0.3$, VP-linear); the sliders need a running
# notebook.

# %%
noise_explorer = NoiseScheduleExplorer()  # curves precomputed; a slider move redraws in ~0.2 s
noise_explorer.show()

# %% tags=["checks"]
crossing = {}
for name in noise_explorer.curves:  # VP-linear, cosine, VE, linear (flow matching)
    log_snr = noise_explorer.curves[name]["log_snr"]
    crossing[name] = noise_explorer.grid[int(torch.nonzero(log_snr <= 0)[0])].item()
print("log-SNR crosses 0 at t =", {name: round(t, 2) for name, t in crossing.items()})
noise_explorer.update(schedule="VP-linear", t=crossing["VP-linear"])
assert abs(noise_explorer.alpha_bar - 0.5) < 0.02 and crossing["VP-linear"] < 0.35  # VP-linear: equal strength early
noise_explorer.update(schedule="VP-linear", t=0.3)  # back to the default state

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### 7.2 Three things a network can predict
#
# **Intuition.** Given a noisy point $x_t$ and the time $t$, knowing which noise was added is the
# same as knowing the clean point: $x_0=(x_t-\sigma_t\varepsilon)/\alpha_t$. So the network may be asked
# for $\varepsilon$ (DDPM), for $x_0$, or for $v=\alpha_t\varepsilon-\sigma_t x_0$ (Salimans & Ho 2022); any one
# implies the other two. What differs is *which errors are cheap*. Lecture 02 (steps 3.11-3.13)
# derives that the three losses are the $\varepsilon$-loss weighted by $1$, $1/\mathrm{SNR}$ and
# $1+1/\mathrm{SNR}$: the $x_0$-loss hardly cares about the low-noise end, where the last sampling
# steps happen.
#
# **Algebra.** The library converts between the three with the path (`unigm.diffusion.targets`),
# and the loss is a plain regression on the chosen target:

# %%
show_source(zoo.model_class("ddpm").loss)

# %% [markdown]
# The $\varepsilon$-DDPM is the one of section 1 (the same recipe and seed would train the same
# weights, so we reuse it); we train a plain $x_0$-model (the network's output *is* $\hat x_0$, loss
# $|x_0-\hat x_0|^2$) and a $v$-model, the two score SDEs of section 7.3
# and the two consistency models of section 7.5 (one of them distils the DDPM of section 1) at
# once: six trainings, two at a time.
#
# **Predict.** All three DDPMs have the same network, data and number of steps. Will their
# samples (1,000 ancestral steps) be equally good?

# %%
# ddpm_x0 (no preconditioning), ddpm_v, score SDEs (VP, VE), and for section 7.5 consistency training and the
# distilled student (queued in section 1, once its teacher was trained)
ddpm_x0, ddpm_v, sde_vp, sde_ve, consistency_trained, student = train(*diffusion_jobs, distillation)
training.close()  # every queued training is collected: this process gets its two threads back
target_models = {"epsilon": ddpm, "x0": ddpm_x0, "v": ddpm_v}
title_of = {"epsilon": "ddpm", "x0": "ddpm_x0 (plain)", "v": "ddpm_v"}
target_rows, target_samples, ddim_samples = [], {}, {}
for target, model in target_models.items():
    with samplers.count_nfe() as nfe:
        target_samples[target] = model.sample(2000, generator=torch.Generator().manual_seed(1))
    ddim_samples[target] = model.sample(2000, 20, eta=0.0, generator=torch.Generator().manual_seed(1))
    target_rows.append({"target": target, "model": title_of[target], "train s": trained[title_of[target]][1].seconds,
                        "NFE": nfe.count})
quality = metrics.sample_quality_many([*target_samples.values(), *ddim_samples.values()], moons_ref)  # W2s in threads
for row, ancestral, ddim in zip(target_rows, quality[:3], quality[3:]):
    row.update({"G (1000 ancestral steps)": ancestral.gap_closed, "G (20 DDIM steps)": ddim.gap_closed})
display(Markdown(markdown_table(target_rows, list(target_rows[0]), digits=2)))
by_target = {row["target"]: row for row in target_rows}

# %% [markdown]
# No. The $\varepsilon$- and $v$-models match the data; the $x_0$-model does not, and it does better
# with 20 DDIM steps than with 1,000 ancestral ones. Why? Measure each model's error in the noise it
# implies, $\mathbb E|\hat\varepsilon-\varepsilon|^2$, at each noise level, on held-out points.

# %%
t_grid = torch.logspace(-3, 0, 31)
held_out_noise = torch.randn(moons_ref.test.shape, generator=torch.Generator().manual_seed(3))
eps_error = {target: [] for target in target_models}
with torch.no_grad():
    for target, model in target_models.items():
        for t in t_grid:
            t_batch = torch.full((len(moons_ref.test),), t.item())
            x_t = model.noise(moons_ref.test, held_out_noise, t_batch)
            eps_error[target].append((model.predict_eps(x_t, t_batch) - held_out_noise).pow(2).sum(1).mean().item())
fig_targets, axes = plt.subplots(1, 4, figsize=(19, 4.5))
for target, style in (("epsilon", "-"), ("x0", "--"), ("v", ":")):
    axes[0].loglog(t_grid, eps_error[target], style, lw=3, label=f"predicts {target}")
axes[0].set_xlabel("time $t$ (noise level; log scale)")
axes[0].set_ylabel(r"$\mathbb{E}|\hat\varepsilon-\varepsilon|^2$ (held out)")
axes[0].set_title("implied noise error")
axes[0].legend()
for ax, target in zip(axes[1:], target_models):
    g = by_target[target]["G (1000 ancestral steps)"]
    scatter2d(ax, target_samples[target], f"predicts {target}: G = {g:.2f}", lim=(3.5, 2.5))
plt.tight_layout()
check_readable(fig_targets)
plt.show()

# %% [markdown]
# *Figure: left, the error of the implied noise against the noise level (log-log); right, 2,000
# ancestral samples of each model. Look at the left end of the dashed curve: below $t\approx0.05$
# the $x_0$-model's implied noise is wrong by far more than the others' (over ten times more at
# $t=0.001$). There
# $\hat\varepsilon=(x_t-\alpha_t\hat x_0)/\sigma_t$ divides a small error in $\hat x_0$ by a tiny
# $\sigma_t$. The implied noise is too large: the model believes every point is noisier than it is
# and pulls it onto the centre line of its moon, and the long chain takes hundreds of steps in
# that region, each pulling again. Its samples come out too thin, bunched at the tips. Fewer,
# larger steps (20 DDIM steps) spend fewer steps there. The $v$-target has the $\varepsilon$-target's behaviour at low noise and the
# $x_0$-target's at high noise, the reason it is the default of many modern models.*
#
# **Repairing the $x_0$-model.** The trouble is that the plain network must *copy* $x_t$ to within
# $\sigma_t$ at low noise. Karras et al. (2022, "EDM") let a fixed formula do the copying:
# $\hat x_0=c_\text{skip}(t)\,x_t+c_\text{out}(t)\,F_\theta(x_t,t)$, where $c_\text{skip}x_t$ is the
# best linear guess of $x_0$ for data of scale $\sigma_\text{data}$ and $c_\text{out}$ scales the
# network's correction so that its target has unit variance at every noise level; the loss is
# $|x_0-\hat x_0|^2/c_\text{out}^2$. This is the zoo's `ddpm_x0`.
#
# **Predict.** For unit-scale data ($\sigma_\text{data}=1$) on the VP path, $c_\text{skip}=\alpha_t$ and
# $c_\text{out}=\sigma_t$ (lecture 02, check 3.14). Which model that we have already trained is the
# preconditioned $x_0$-model?

# %%
show_source(zoo.model_class("ddpm_x0").network_output)
edm_x0 = zoo.make("ddpm_x0", (2,))  # preconditioned, sigma_data = 1
v_weights = ddpm_v.state_dict()
output_layer = [name for name in v_weights if name.startswith("net.")][-2:]  # the last Linear's weight, bias
edm_x0.load_state_dict({name: -w if name in output_layer else w for name, w in v_weights.items()})  # F = -v
edm_x0.eval()
x0_from_edm, from_v = (model.sample(2000, 20, eta=0.0, generator=torch.Generator().manual_seed(1))
                       for model in (edm_x0, ddpm_v))  # 20 DDIM steps: the comparison needs no more
edm_gap = (x0_from_edm - from_v).abs().max().item()
edm_g = metrics.sample_quality(x0_from_edm, moons_ref).gap_closed
print(f"preconditioned x0-model with the v-model's weights (output layer negated), 20 DDIM steps: G = {edm_g:.3f} "
      f"(the v-model's: {by_target['v']['G (20 DDIM steps)']:.3f}); largest difference between their samples: {edm_gap:.1e}")

# %% [markdown]
# The $v$-model. With $c_\text{skip}=\alpha_t$, $c_\text{out}=\sigma_t$ the network's target
# $(x_0-\alpha_tx_t)/\sigma_t$ is exactly $-v$, and the weight $1/c_\text{out}^2$ turns the $x_0$-loss
# into the $v$-loss: the same weights, with the last layer's sign flipped, give the same samples
# to float precision. Predicting $v$ *is* predicting $x_0$ with a skip connection; for data of
# another scale ($\sigma_\text{data}\ne1$) the preconditioned $x_0$-model is a third weighting,
# $1+1/(\sigma_\text{data}^2\,\mathrm{SNR})$ times the $\varepsilon$-loss.
#
# ### 7.3 Two ways to run time backwards: the SDE and the probability-flow ODE
#
# **Intuition.** The noising process is a random walk with a drift (an SDE). Anderson (1982)
# showed it can be run backwards, as another SDE whose drift needs one extra thing, the
# **score** $\nabla\log p_t(x)$: a force pointing to where the noisy data are denser. Song et al.
# (2021) added that a *deterministic* ODE, the probability-flow ODE, moves a cloud of points
# through exactly the same sequence of densities $p_t$ (lecture 02, result 2, proves it). The SDE
# walk is noisy and forgiving; the ODE is smooth, reversible, and gives an exact likelihood.
#
# **Algebra.** For the forward SDE $dx=f(x,t)\,dt+g(t)\,dW$ (VP: $f=-\tfrac{\beta}{2}x$, $g^2=\beta$;
# VE: $f=0$, $g^2=d\sigma^2/dt$),
# $$dx=\big[f-g^2\nabla\log p_t(x)\big]dt+g\,d\bar W\quad\text{(reverse SDE)},\qquad
# \frac{dx}{dt}=f-\tfrac12 g^2\nabla\log p_t(x)\quad\text{(PF-ODE)},$$
# with the score from the noise prediction, $\nabla\log p_t=-\hat\varepsilon/\sigma_t$. A
# **predictor-corrector** sampler adds Langevin steps at each time, which pull the points back
# toward $p_t$ and correct the predictor's errors.
#
# **Predict.** Start the reverse SDE and the ODE from the *same* noise. Will they end at the
# same points? At the same distribution?

# %%
start = sde_vp.randn(12, 2, generator=torch.Generator().manual_seed(5))
paths = {"ode": [], "sde": []}  # every state of each sampler, from t = 1 to t_min
samplers.heun(sde_vp.probability_flow_velocity, start, 100, 1.0, sde_vp.config.t_min, paths["ode"])
samplers.euler_maruyama(*sde_vp.reverse_sde(), start, 100, 1.0, sde_vp.config.t_min, torch.Generator().manual_seed(6),
                        paths["sde"], denoise=True)
paths = {method: torch.stack(states) for method, states in paths.items()}  # (101, 12, 2)
sde_rows, sde_samples = [], []
for model in (sde_vp, sde_ve):
    for method in ("ode", "sde", "pc"):
        with samplers.count_nfe() as nfe:
            sde_samples.append(model.sample(2000, generator=torch.Generator().manual_seed(1), method=method))
        sde_rows.append({"model": model.name, "sampler": {"ode": "PF-ODE (Heun)", "sde": "reverse SDE (Euler-Maruyama)",
                                                          "pc": "predictor-corrector"}[method], "NFE": nfe.count})
for row, quality in zip(sde_rows, metrics.sample_quality_many(sde_samples, moons_ref)):
    row["G"] = quality.gap_closed
test_points = moons_ref.test[:500]
kl_estimate = {}
for model in (sde_vp, sde_ve):
    gap = moons.log_prob(test_points) - model.log_prob(test_points).detach()  # log p_data - log p_theta, pointwise
    kl_estimate[model.name] = (gap.mean().item(), gap.std().item() / len(gap) ** 0.5)
display(Markdown(markdown_table(sde_rows, ["model", "sampler", "NFE", "G"], digits=2)))
for name, (kl, stderr) in kl_estimate.items():
    print(f"{name}: KL(p_data || p_theta) estimated through the PF-ODE likelihood = {kl:.3f} +- {stderr:.3f} nats")

fig_sde, axes = plt.subplots(1, 2, figsize=(12, 5), sharex=True, sharey=True)
for ax, method, title in ((axes[0], "ode", "probability-flow ODE"), (axes[1], "sde", "reverse SDE")):
    scatter2d(ax, moons_ref.test, title, lim=3.5, color="0.75")
    ax.plot(paths[method][:, :, 0], paths[method][:, :, 1], lw=1.5)
    ax.plot(paths[method][-1, :, 0], paths[method][-1, :, 1], "k.", ms=8)
plt.tight_layout()
check_readable(fig_sde)
plt.show()

# %% [markdown]
# *Figure: twelve trajectories of the trained VP model from the same twelve noise draws, by the
# ODE (left: smooth curves) and by the reverse SDE (right: jagged walks), over the data (grey);
# black dots are where they end. Look at the endpoints: the two methods send the same start to
# different points, yet the table shows both clouds match the data. The samplers agree on
# distributions, not on individual samples. The ODE is also what makes the likelihood exact: the
# KL estimates printed above are small and not negative beyond their noise.*
#
# ### 7.4 Fewer steps: DDIM, and what each sampler buys
#
# **Intuition.** A sampler with 1,000 steps costs 1,000 network evaluations per sample. DDIM
# (Song, Meng & Ermon 2021) takes big deterministic steps along the same model: with $\eta=0$ it
# is the Euler method on the probability-flow ODE in the right variables (lecture 02, result 10),
# with $\eta=1$ it is the ancestral chain on a coarser grid, and values between interpolate the
# noise. All five samplers below use **one** trained network, the $\varepsilon$-DDPM of 7.2.
#
# **Predict.** At 10 network evaluations, which sampler is best: the stochastic ancestral chain,
# deterministic DDIM, or Heun's second-order ODE solver (2 evaluations per step)?

# %%
t_end = 1 / ddpm.config.num_steps  # the smallest noise level the DDPM was trained on
reverse_vp = samplers.reverse_sde_vp(ddpm.score, ddpm.beta)
start_noise = lambda n, g: ddpm.randn(n, 2, generator=g)  # noqa: E731
five_samplers = {
    "ancestral (DDIM eta = 1)": lambda n, k, g: ddpm.sample(n, k, eta=1.0, generator=g),
    "DDIM eta = 0": lambda n, k, g: ddpm.sample(n, k, eta=0.0, generator=g),
    "PF-ODE, Heun": lambda n, k, g: samplers.heun(ddpm.probability_flow_velocity, start_noise(n, g), k, 1.0, t_end),
    "reverse SDE, Euler-Maruyama": lambda n, k, g: samplers.euler_maruyama(*reverse_vp, start_noise(n, g), k, 1.0, t_end,
                                                                           g, denoise=True),
    "predictor-corrector": lambda n, k, g: samplers.predictor_corrector(*reverse_vp, ddpm.score, start_noise(n, g), k,
                                                                        0.05, 1, None, 1.0, t_end, g),
}
moons_ref_1k = metrics.reference(moons, n=1000)  # 1,000 points per measurement: 30 measurements in seconds
one_evaluation = ("ancestral (DDIM eta = 1)", "DDIM eta = 0", "reverse SDE, Euler-Maruyama")
sweep = bench.quality_vs_steps({name: five_samplers[name] for name in one_evaluation}, moons_ref_1k,
                               steps=(5, 10, 20, 50, 200, 1000))  # NFE = steps
sweep += bench.quality_vs_steps({name: fn for name, fn in five_samplers.items() if name not in one_evaluation},
                                moons_ref_1k, steps=(5, 10, 25, 100, 500))  # NFE = 2 steps: 10 to 1,000
fig_steps, ax = plt.subplots(figsize=(10, 5.5))
for (name, marker) in zip(five_samplers, "osD^v"):
    points = [p for p in sweep if p.sampler == name]
    ax.semilogx([p.nfe for p in points], [p.gap_closed for p in points], marker + "-", lw=2, ms=8, label=name)
fresh_1k = metrics.fresh_data_gap_closed(moons, moons_ref_1k, draws=3)
ax.axhspan(fresh_1k.min().item(), fresh_1k.max().item(), color="0.85", label="fresh data (3 draws)")
ax.set_xlabel("network evaluations per sample (NFE, log scale)")
ax.set_ylabel("G on 1,000 held-out points")
ax.set_ylim(-0.5, 1.2)
ax.set_title("one trained DDPM, five samplers")
ax.legend(loc="lower right")
check_readable(fig_steps)
plt.show()
sweep_table = [{"sampler": name, **{f"NFE {p.nfe}": p.gap_closed for p in sweep if p.sampler == name}}
               for name in five_samplers]
print("G at each NFE (1,000 points):")
for row in sweep_table:
    print(f"  {row.pop('sampler'):>28}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()))

# %% [markdown]
# *Figure: G against the network evaluations actually spent, for five samplers of the same
# DDPM; the grey band is where fresh data land at this sample size. Look first at the right half:
# from about 50 evaluations on, all five sit on one plateau. With enough steps the SDE and ODE
# samplers sample the same distribution, and what separates the plateau from the grey band is
# the network's error, not the sampler's. Then at the left end: below 20 evaluations every
# sampler falls apart, and the predictor-corrector is the worst at 10 evaluations, because it
# spends half of them on Langevin corrections at fixed times instead of on moving through time.*

# %% [markdown]
# The issue every practitioner meets: how much quality do 20 DDIM steps give up against the full
# chain? On the 2,000-point reference, averaged over two sampling seeds (one seed's $G$ moves
# by about 0.05); seed 1 is the table of section 7.2:

# %%
seed_2 = metrics.sample_quality_many([ddpm.sample(2000, generator=torch.Generator().manual_seed(2)),
                                      ddpm.sample(2000, 20, eta=0.0, generator=torch.Generator().manual_seed(2))], moons_ref)
ancestral_g = [by_target["epsilon"]["G (1000 ancestral steps)"], seed_2[0].gap_closed]
ddim20_g = [by_target["epsilon"]["G (20 DDIM steps)"], seed_2[1].gap_closed]
ddim20_gap = sum(ancestral_g) / 2 - sum(ddim20_g) / 2
print(f"G, 1,000 ancestral steps: {', '.join(f'{g:.3f}' for g in ancestral_g)}; "
      f"20 DDIM steps: {', '.join(f'{g:.3f}' for g in ddim20_g)}; mean gap {ddim20_gap:+.3f}")


# %% [markdown] slideshow={"slide_type": "subslide"}
# ### 7.5 One step: consistency models
#
# **Intuition.** The probability-flow ODE is deterministic: each noise point has exactly one
# endpoint, and every point along its trajectory shares that endpoint. A **consistency model**
# (Song, Dhariwal, Chen & Sutskever 2023) learns the map "any point on a trajectory $\mapsto$ its
# endpoint" directly, $f_\theta(x_t,t)=x_0$, so one network evaluation turns noise into data. It
# is taught *consistency*: two neighbouring points of the same trajectory must map to the same
# place. With a teacher (**consistency distillation**, CD), the neighbour is one Heun step of a
# trained diffusion model's ODE; without one (**consistency training**, CT), the two points are
# built from the same data point and the *same* noise at adjacent noise levels (lecture 02, check
# 12.9, shows why sharing the noise matters).
#
# **Algebra.** On the path $x=x_0+\sigma(t)z$ the model is
# $f_\theta(x,t)=c_\text{skip}(t)\,x+c_\text{out}(t)\,F_\theta(x,t)$ with $c_\text{skip}(t_\text{min})=1$ and
# $c_\text{out}(t_\text{min})=0$, so $f_\theta(x,t_\text{min})=x$ holds *exactly*, for any network: the
# boundary condition is built in, not learned. The loss compares the student at $t_{n+1}$ with a
# slowly moving copy of itself (an EMA "target network", no gradient) at $t_n$:
# $d\big(f_\theta(x_{t_{n+1}},t_{n+1}),\,f_{\theta^-}(\hat x_{t_n},t_n)\big)$.

# %%
show_source(ConsistencyModel.consistency_function)

# %% [markdown]
# Both were trained in the batch of section 7.2: the student distilled the $\varepsilon$-DDPM of
# section 1 (a frozen copy of it, 2,000 distillation steps), the other learned from data alone.
#
# **Predict.** One network evaluation of the distilled model against 20 of DDIM with its teacher:
# which has the higher G? Will a second step help the student?

# %%
cd_history = trained["consistency distillation (teacher: ddpm)"][1]
print(f"distillation: {cd_history.steps} steps in {cd_history.seconds:.1f} s; consistency training: "
      f"{trained['consistency_training'][1].steps} steps in {trained['consistency_training'][1].seconds:.1f} s")
consistency_models = {"CD student": student, "CT (no teacher)": consistency_trained}
renoise_times = (0.5, 0.6, 0.7, 0.8)  # the one knob of two-step sampling: where to add noise back
one_step_rows, one_step_samples, two_step_g = [], {}, {}
for label, model in consistency_models.items():
    with samplers.count_nfe() as nfe:
        one_step_samples[f"{label}, 1 step"] = model.sample(2000, 1, generator=torch.Generator().manual_seed(1))
    scan = {tau: model.sample(2000, 2, times=[tau], generator=torch.Generator().manual_seed(1)) for tau in renoise_times}
    one_step, *two_step = metrics.sample_quality_many([one_step_samples[f"{label}, 1 step"], *scan.values()], moons_ref)
    one_step_rows.append({"sampler": f"{label}, 1 step", "NFE": nfe.count, "G": one_step.gap_closed})
    two_step_g[label] = [quality.gap_closed for quality in two_step]
    best = max(range(len(renoise_times)), key=two_step_g[label].__getitem__)  # the best re-noising time of the scan
    one_step_samples[f"{label}, 2 steps"] = scan[renoise_times[best]]
    one_step_rows.append({"sampler": f"{label}, 2 steps (tau = {renoise_times[best]})", "NFE": 2, "G": two_step_g[label][best]})
with samplers.count_nfe() as nfe:
    teacher_ode = student.sample_teacher(2000, generator=torch.Generator().manual_seed(1))
one_step_rows += [
    {"sampler": "teacher: its ODE on the student's grid (Heun)", "NFE": nfe.count,
     "G": metrics.sample_quality(teacher_ode, moons_ref).gap_closed},
    {"sampler": "teacher: DDIM, 20 steps", "NFE": 20, "G": sum(ddim20_g) / 2},
    {"sampler": "teacher: ancestral, 1,000 steps", "NFE": 1000, "G": sum(ancestral_g) / 2}]
display(Markdown(markdown_table(one_step_rows, ["sampler", "NFE", "G"], digits=2)))
cd_g = {row["sampler"].split(" (tau")[0]: row["G"] for row in one_step_rows}

fig_consistency, axes = plt.subplots(1, 5, figsize=(22, 4.5))
renoise_sigmas = [sigma.item() for sigma in student.sigma(torch.tensor(renoise_times))]
for (label, g), style in zip(two_step_g.items(), ("o-", "s--")):
    axes[0].plot(renoise_sigmas, g, style, lw=2, ms=8, label=label)
axes[0].set_xscale("log")
axes[0].set_xticks(renoise_sigmas, [f"{sigma:.2g}" for sigma in renoise_sigmas])
axes[0].minorticks_off()
axes[0].set_xlabel(r"re-noising level $\sigma(\tau)$ (data units)")
axes[0].set_ylabel("G, two steps")
axes[0].set_title("where to add noise back")
axes[0].legend()
for ax, name in zip(axes[1:], one_step_samples):
    scatter2d(ax, one_step_samples[name], f"{name}: G = {cd_g[name]:.2f}", lim=(3.5, 2.5))
plt.tight_layout()
check_readable(fig_consistency)
plt.show()

# %% [markdown]
# *Figure: left, G of two-step sampling against the noise level the second step starts from;
# right, 2,000 samples of the distilled student and of the consistency-trained model, with one
# and with two network evaluations (the second at the best level on the left). Look at the
# one-step panels: the moons are there after a single evaluation, blurred at the tips and with a
# few points in the gap. Whether a second step helps depends on where it re-noises: too little
# noise and it cannot fix the first step's errors, too much and it throws the first step away.
# Song et al. choose that level by search as well.* One evaluation of the student is worth about
# 20 of its teacher's DDIM steps; it does not beat its teacher's own ODE, whose endpoints it was
# taught to copy, and the teacher-free model gets close without any diffusion model at all. The
# price moved from sampling to training: distillation needs a trained teacher and a second
# training run.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### 7.6 Latent space makes it cheap
#
# **Intuition.** An 8x8 digit has 64 pixels, but the digits vary in far fewer ways: stroke,
# slant, thickness, which digit. Spending the diffusion's effort on all 64 dimensions wastes most
# of it on pixel-level detail an autoencoder can restore. Latent diffusion (Rombach et al. 2022)
# first trains an autoencoder, then runs the diffusion on the autoencoder's small latent code
# (here 8 numbers, scaled to unit variance) and decodes the result.
#
# **What we compare.** The same DDPM (network, schedule, sampler, 6,000 training steps, batch,
# learning rate, seed) in pixel space and in the latent space of a lightly KL-regularised
# autoencoder, whose 2,000 training steps come out of the same 6,000. Image models follow the
# course's checkpoint rule: they load from `checkpoints/` (trained by `make checkpoints`, recipe
# and metrics recorded beside them; `UNIGM_RETRAIN=1` trains them here instead). Quality is the
# judge's `image_quality` on 1,000 samples, each number next to its data floor.
#
# **Predict.** Which wins on FD at the same number of network evaluations? And which produces
# more samples per second at the same number of evaluations?

# %%
latent_model, latent_history = checkpoints.load("latent_diffusion")
pixel_model, pixel_history = checkpoints.load("pixel_ddpm")
print(f"latent diffusion: trained {latent_history.steps} steps in {latent_history.seconds:.0f} s "
      f"(recorded); pixel DDPM: {pixel_history.steps} steps in {pixel_history.seconds:.0f} s (recorded)")
latent_rows = checkpoints.compare_diffusion(latent_model, pixel_model, n=1000, steps=(100, 20), repeats=1)
display(Markdown(checkpoints.comparison_table(latent_rows)))

# %%
fig_latent = image_rows({
    "data (test)": digits_test,
    "latent diffusion, 100 steps": latent_model.sample(12, 100, generator=torch.Generator().manual_seed(4)),
    "pixel DDPM, 100 steps": pixel_model.sample(12, 100, generator=torch.Generator().manual_seed(4))},
    panel_width=1.33, row_height=1.53)
plt.show()

# %% [markdown]
# *Figure: twelve test digits (top) and twelve samples of each model with 100 steps. Look at the
# strokes: the latent model's digits are clean because its decoder draws them, while the pixel
# model's carry speckle and broken strokes, the pixel-level detail it has to get right itself.*
#
# The table answers the two questions differently. **Per network evaluation** the two cost about
# the same here, within a factor of about 1.5 that changes from run to run (the DDPM's MLP dominates,
# whether it reads 8 or 64 numbers), so latent space is not much faster per step. **Per unit of
# quality** it is much cheaper: its 20-step samples have a lower FD than the pixel model's 100-step
# samples, and it is close to the data floor on FD, recall and
# coverage. On real images the per-step saving also appears, because there the network's cost
# grows with the number of pixels (a convolution over 512x512x3 values against 64x64x4 latents).

# %% tags=["checks"]
# Section 7: what the tables and figures above must show (gates: the recipes' min_quality, measured margins)
G_MIN = {name: zoo.recipe(name).min_quality["two_moons"] for name in ("ddpm", "ddpm_v")}
G_MIN["ddpm_x0 (plain)"] = 0.25  # measured 0.33 (seed 0): the failure the figure explains, not a gate of the zoo
for row in target_rows:
    print(f"{row['model']:>8}: G = {row['G (1000 ancestral steps)']:.3f} (must be >= {G_MIN[row['model']]})")
    assert row["G (1000 ancestral steps)"] >= G_MIN[row["model"]], row
assert min(by_target["epsilon"]["G (1000 ancestral steps)"], by_target["v"]["G (1000 ancestral steps)"]) >= 0.9
assert by_target["x0"]["G (20 DDIM steps)"] > by_target["x0"]["G (1000 ancestral steps)"] + 0.2  # fewer steps help x0
assert eps_error["x0"][0] > 10 * max(eps_error["epsilon"][0], eps_error["v"][0])  # at t = 0.001 (the figure's left end)
assert edm_gap < 1e-3 and edm_g >= zoo.recipe("ddpm_x0").min_quality["two_moons"]  # preconditioned x0 = v
for row in sde_rows:  # score SDEs: every sampler at its default steps
    assert row["G"] >= zoo.recipe(row["model"]).min_quality["two_moons"], row
for name, (kl, stderr) in kl_estimate.items():
    assert -3 * stderr < kl < 0.3, (name, kl, stderr)  # no better than the truth; small
assert (paths["ode"][-1] - paths["sde"][-1]).norm(dim=1).mean() > 0.1  # same start, different endpoints
high_nfe = [p.gap_closed for p in sweep if p.steps >= 100]
assert max(high_nfe) - min(high_nfe) < 0.15, high_nfe  # one plateau with enough steps
assert max(p.gap_closed for p in sweep if p.nfe <= 10) < 0.8  # all fall apart below 20 NFE
at_10 = {p.sampler: p.gap_closed for p in sweep if p.nfe == 10}
assert min(at_10, key=at_10.get) == "predictor-corrector", at_10
print(f"DDIM, 20 steps vs ancestral, 1,000 steps: mean gap {ddim20_gap:+.3f} (must be < 0.08)")
assert ddim20_gap < 0.08
assert cd_g["CD student, 1 step"] >= 0.75 and cd_g["CD student, 2 steps"] >= 0.85, cd_g  # issue 12's targets
assert cd_g["CT (no teacher), 1 step"] >= zoo.recipe("consistency_training").min_quality["two_moons"], cd_g
assert cd_g["CD student, 1 step"] <= cd_g["teacher: its ODE on the student's grid (Heun)"] + 0.05  # no better than its teacher
assert cd_g["CD student, 1 step"] >= cd_g["teacher: DDIM, 20 steps"] - 0.05  # one step ~ 20 DDIM steps of the teacher
latent_100, pixel_100 = (next(r for r in latent_rows if r["model"] == m and r["nfe"] == 100)
                         for m in ("latent diffusion", "pixel DDPM"))
latent_20 = next(r for r in latent_rows if r["model"] == "latent diffusion" and r["nfe"] == 20)
assert latent_100["classes_covered"] == 10 and latent_100["frechet_distance"] < 1.6 * latent_100["frechet_distance_floor"]
assert latent_100["frechet_distance"] < 0.6 * pixel_100["frechet_distance"]
assert latent_20["frechet_distance"] < pixel_100["frechet_distance"]  # 20 latent steps beat 100 pixel steps
for metric in ("recall", "coverage"):  # "close to the data floor on FD, recall and coverage"
    assert latent_100[metric] >= latent_100[f"{metric}_floor"] - 0.05, (metric, latent_100)
for figure in (fig_noising, fig_targets, fig_sde, fig_steps, fig_consistency):
    check_readable(figure)
print("section 7 checks passed")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Check your understanding
#
# 1. A network predicts $\hat x_0$. Write the noise it implies and explain why an error of 0.01 in
#    $\hat x_0$ matters more at $t=0.001$ than at $t=0.5$.
# 2. The reverse SDE and the probability-flow ODE start from the same noise and end at different
#    points. Why do both still count as samplers of the same model?
# 3. Why can the ODE give an exact likelihood, and the SDE not (at least not as directly)?
# 4. A consistency model's boundary condition $f(x,t_\text{min})=x$ is built into its
#    parametrisation. What would go wrong if it had to be learned?
# 5. Latent diffusion was not faster per network evaluation here. Under what conditions is it,
#    and why is it still cheaper for a given quality?

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. The autoregressive family
#
# **The story.** Every joint distribution factorises by the chain rule of probability, in any
# order you choose:
# $$p(x) = \prod_{i=1}^{n} p(x_i \mid x_{<i}).$$
# Nothing is approximated yet. Learn every conditional with one shared network and two things
# come for free: the **exact** log-likelihood, a sum of $n$ log-conditionals, and a sampler that
# draws $x_1$, then $x_2$ given $x_1$, and so on. The price is in the same sentence: sampling
# takes $n$ steps, one per element, and the order is a modelling choice (row by row for pixels,
# coarse to fine for scales, random for masked tokens). All the engineering goes into one
# constraint: the network's output $i$ may depend on inputs before $i$ and **nothing else**.
# Then one forward pass computes all $n$ conditionals of a training image at once.
#
# ### 8.1 Three ways to be causal, and a blind spot
#
# Three ways to make a network causal over the 64 pixels of a binarised 8x8 digit, read in raster
# order (row by row, left to right), each a Bernoulli per pixel:
# - **PixelCNN** (van den Oord, Kalchbrenner & Kavukcuoglu 2016) zeroes part of every convolution
#   kernel: mask A in the first layer hides the centre pixel and everything after it, mask B in
#   later layers hides only what comes after the centre;
# - the **gated PixelCNN** (van den Oord et al. 2016) splits the network into a vertical stack
#   that sees whole rows above and a horizontal stack that sees the row so far, with gated units
#   $\tanh(a)\odot\sigma(b)$;
# - a **causal transformer** (a minimal GPT over pixels, as in Chen et al. 2020) lets every
#   position attend to every earlier one through a triangular attention mask.
#
# The three are course checkpoints (section 4.3 explains the rule): trained by
# `make checkpoints` on the 1,257 training digits, verified and loaded here.
#
# **Predict.** Stack six masked 3x3 convolutions: the receptive field grows by one pixel per
# layer in every allowed direction. Which of the earlier pixels can the output at row 6, column 3
# still *not* see?

# %%
ar_names = {"PixelCNN": "pixelcnn", "gated PixelCNN": "gated_pixelcnn", "pixel transformer": "pixel_transformer"}
ar_models = {}
for label, checkpoint in ar_names.items():
    ar_models[label], history = checkpoints.load(checkpoint)
    trained[label] = (ar_models[label], history)
row, col = 6, 3
allowed = raster_before(8, 8, row, col)
fields = {label: receptive_field(model, row, col) for label, model in ar_models.items()}
fig_fields, axes = plt.subplots(1, 3, figsize=(15, 5))
for ax, (label, seen) in zip(axes, fields.items()):
    picture = allowed.float() + (allowed & ~seen).float()  # 0 after the pixel, 1 seen, 2 allowed but unseen
    ax.imshow(picture, cmap=ListedColormap(["white", "tab:blue", "tab:red"]), vmin=0, vmax=2)
    ax.scatter([col], [row], marker="x", s=200, color="black", linewidths=3)
    ax.set_title(f"{label}: {int((allowed & ~seen).sum())} blind pixels")
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    ax.set_xticks(range(8))
    ax.set_yticks(range(8))
plt.tight_layout()
check_readable(fig_fields)
plt.show()

# %% [markdown]
# *Figure: which input pixels the output at row 6, column 3 (the cross) depends on, measured from
# the gradient of that output with respect to every input pixel (`receptive_field`). Blue: seen;
# red: earlier pixels it is allowed to see but does not; white: the pixel itself and everything
# after it, which it must not see. Look at the red wedge above and to the right in the PixelCNN:
# that is the **blind spot**. Each masked layer extends the field up and to the left, but the mask
# of the centre row stops it from ever moving right above the current row. The gated PixelCNN's
# vertical stack sees whole rows, and attention sees every earlier position from its first layer:
# neither has a blind spot.*
#
# The same gradient test, run on every output of every model of the family, is what the library's
# tests use to prove causality: no output may depend on its own pixel or a later one.
#
# ### 8.2 Exact likelihoods, in bits per pixel
#
# An autoregressive model's likelihood is exact, so models are compared by **bits per pixel** on
# the test digits: $-\log_2 p(x) / 64$. Two references: independent pixels (each pixel on with its
# training frequency, the best model without dependencies) and the Bernoulli VAE of section 4.3,
# whose number is an importance-weighted *bound*.
#
# **Predict.** Rank the five. Will the blind spot cost PixelCNN anything measurable on digits
# this small? Will an exact likelihood beat the VAE's bound?

# %%
ar_rows = [dict(model="independent pixels", test_bits=independent_bits, NFE=1, params=64),  # n/a: not measured
           dict(model="Bernoulli VAE (bound, k = 256)", test_bits=bvae_bits, NFE=1,
                params=sum(p.numel() for p in bvae.parameters()), train_s=bvae_history.seconds)]
for label, model in ar_models.items():
    with torch.no_grad():
        test_bits = metrics.bits_per_dim(model.log_prob(binary_test), dims=64)
        train_bits = metrics.bits_per_dim(model.log_prob(binary_train), dims=64)
    ar_rows.append(dict(model=label, test_bits=test_bits, train_bits=train_bits, NFE=64,
                        params=sum(p.numel() for p in model.parameters()), train_s=trained[label][1].seconds))
ar_bits = {row["model"]: row["test_bits"] for row in ar_rows}
display(Markdown(markdown_table(ar_rows, ["model", "test_bits", "train_bits", "NFE", "params", "train_s"])))

# %% [markdown]
# All three autoregressive models beat independent pixels by a wide margin; among them the gated
# PixelCNN is best and the plain PixelCNN, with its blind spot, the worst. The Bernoulli VAE's
# *bound* is lower still: on 1,257 tiny images a one-step latent-variable model with a good
# decoder is hard to beat, and the exact likelihood of an autoregressive model is no promise of a
# better one. The gap between training and test bits is overfitting: the plain PixelCNN fits the
# training digits best and generalises worst, while the gated model, the smallest of the three,
# has the smallest gap.
# *Train seconds are the recorded ones (provenance beside each checkpoint), measured on the course's
# 2-core CPU; `NFE` counts network evaluations per sample.*
#
# ### 8.3 Sampling: one network evaluation per pixel
#
# **Predict.** The likelihood of a batch took one forward pass. How many does a batch of samples
# take, and does the batch size change that number?

# %%
ar_samples, ar_nfe = {}, {}
for label, model in ar_models.items():
    with samplers.count_nfe() as nfe:
        ar_samples[label] = model.sample(12, generator=torch.Generator().manual_seed(0))
    ar_nfe[label] = nfe.count
print("network evaluations for 12 samples:", ", ".join(f"{label} {n}" for label, n in ar_nfe.items()))
fig_ar = image_rows({"data (test)": binary_test, **ar_samples}, row_height=1.1)
plt.show()

# %% [markdown]
# *Figure: twelve binarised test digits and twelve samples of each model, drawn pixel by pixel.
# Look at how every stroke continues the pixels above it: each pixel was drawn knowing all of
# them. Many samples are recognisable digits; some are plausible strokes that no class owns.*
#
# 64 evaluations for any batch size: the loop runs over pixels, not over samples. Every pixel's
# conditional needs the pixels before it, so the steps cannot run in parallel. That sequential
# cost is what VAR (next scale instead of next pixel) and MAR (many tokens per step, in random
# order) attack; transformers also cache the keys and values of earlier positions so that each
# step costs one position rather than the whole sequence.
#
# ### 8.4 Two stages: an autoregressive prior over discrete codes
#
# Section 4.4 left a promise. Its quantized autoencoders turned a digit into 4 codes, but sampled
# the 4 codes *independently*, and the decoded images mixed strokes of different digits. The
# second stage of the VQ-VAE (van den Oord, Vinyals & Kavukcuoglu 2017) fixes exactly that: fit
# an autoregressive model to the codes of the training images, sample codes from it, decode. Here
# the FSQ autoencoder's 4 codes become 12 tokens (each code is 3 channels of 8 levels), and the
# causal transformer of section 8.1, with a softmax over the 8 levels instead of a Bernoulli, is
# the prior (`CodePrior`, a course checkpoint: trained on the tokens of the training digits).
#
# **Predict.** Same decoder, same code alphabet; only the prior over codes changes. How much of the
# gap in Fréchet distance between section 4.4's independent codes and the data floor will it close?

# %%
fsq_model = trained["FSQ (8, 8, 8)"][0]
code_prior, code_prior_history = checkpoints.load("code_prior_fsq")
trained["code prior (FSQ tokens)"] = (code_prior, code_prior_history)
tokens_train, tokens_test = checkpoints.fsq_tokens("train"), checkpoints.fsq_tokens("test")
with torch.no_grad():
    prior_nll = -code_prior.log_prob(tokens_test).mean().item()
independent_nll = -checkpoints.independent_tokens_log_prob(tokens_train, tokens_test, 8).mean().item()
two_stage = {"independent codes": fsq_model.sample(1000, generator=torch.Generator().manual_seed(0)),
             "transformer prior": checkpoints.decode_fsq_tokens(fsq_model, code_prior.sample(
                 1000, generator=torch.Generator().manual_seed(0)))}
two_stage_quality = {label: metrics.image_quality(images) for label, images in two_stage.items()}
print(f"test NLL of the 12 tokens: transformer prior {prior_nll:.2f} nats, independent tokens {independent_nll:.2f} nats")
display(Markdown("\n".join([metrics.ImageQuality.header("FSQ codes drawn by (floor)")]
                           + [q.row(label) for label, q in two_stage_quality.items()])))

# %%
fig_two_stage = image_rows({f"{label}: FD {two_stage_quality[label].model.frechet_distance:.1f} "
                            f"(data {two_stage_quality[label].floor.frechet_distance:.1f})": images
                            for label, images in two_stage.items()}, panel_width=1.33, row_height=1.7)
plt.show()

# %% [markdown]
# *Figure: the same FSQ decoder fed codes drawn independently per position (top) and by the
# transformer prior (bottom), 1,000 samples each scored against the test digits. Look for
# mixed strokes in the top row and their absence below.* The prior closes nearly all of the gap to
# the data floor in Fréchet distance. Its likelihood gain is modest (about 2 nats per image),
# yet it is the part of the dependence between codes that decides whether the four codes draw
# the same digit. The same recipe, with larger tokenizers and transformers, is how VQ-GAN,
# DALL-E (Esser et al. 2021; Ramesh et al. 2021) and many image and audio models generate.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### 8.5 WaveNet: the chain rule on a signal, and how far back it can look
#
# Sound is a sequence too, only a long one: a second of speech is 16,000 numbers where a digit's
# row has 8. WaveNet (van den Oord et al. 2016) models raw audio with the same chain rule and two
# ideas that make it work:
# - **mu-law quantisation.** Each sample $x \in [-1, 1]$ is compressed by
#   $f(x) = \operatorname{sign}(x)\,\ln(1 + \mu|x|)/\ln(1 + \mu)$ and rounded to one of $\mu + 1$
#   levels (here 64), which are fine near zero, where most samples of a quiet signal lie, and coarse
#   near $\pm 1$. Every conditional is then a **softmax over 64 codes**: no assumption that the next
#   sample is Gaussian, or even unimodal.
# - **Dilated causal convolutions.** Layer $i$ of kernel 2 looks $2^i$ steps back, so $L$ layers
#   see $1 + (2^0 + 2^1 + \dots + 2^{L-1}) = 2^L$ past samples: the reach doubles with each layer,
#   where an undilated stack grows it by one.
#
# The data are `data.sine_mixtures`: sums of two sines with random periods between 8 and 32
# samples, plus a little noise; 4,000 training signals of 128 samples. Two WaveNets are trained
# with the same recipe (500 steps, 16 channels), one with 6 dilated layers (reach 64) and one with
# 2 (reach 4), side by side on the two cores.
#
# **Predict.** The 2-layer model sees only the last 4 samples. Can it still continue a sine of
# period 32? What will its samples look like: noise, or waves of the wrong period? And how many
# bits per sample does the best model *without* any dependence (each code drawn from the overall
# histogram of codes) need?

# %%
levels, length = 64, 128
signals_train = data.sine_mixtures(4000, length, torch.Generator().manual_seed(0))
signals_test = data.sine_mixtures(500, length, torch.Generator().manual_seed(1))
codes_train, codes_test = mu_law_encode(signals_train, levels), mu_law_encode(signals_test, levels)
# the algebra above, checked: f is the companding curve, and every decoded code re-encodes to itself
mu = levels - 1
torch.testing.assert_close(mu_law_compress(signals_test, levels),
                           torch.sign(signals_test) * torch.log1p(mu * signals_test.abs()) / math.log(1 + mu))
assert torch.equal(mu_law_encode(mu_law_decode(codes_test, levels), levels), codes_test)
quantisation_error = (mu_law_decode(codes_test, levels) - signals_test).abs().max().item()
wavenet_jobs = [Job("wavenet", codes_train, event_shape=(length,), task="signal", config=dict(layers=layers),
                    label=f"WaveNet, {layers} layers") for layers in (6, 2)]
wavenets = dict(zip((job.title for job in wavenet_jobs), train(*wavenet_jobs)))
# the reach, measured from gradients: which past inputs move the logits of sample t = 100
reach = {}
for label, model in wavenets.items():
    inputs = model.one_hot(codes_test[:1]).requires_grad_(True)
    (gradient,) = torch.autograd.grad(model(inputs)[0, :, 100].sum(), inputs)
    seen = (gradient[0] != 0).any(0).nonzero().flatten()
    reach[label] = (len(seen), model.receptive_field, int(seen.max()))
    print(f"{label}: logit 100 depends on {len(seen)} past samples (formula 2^L = {model.receptive_field}), "
          f"the latest being sample {int(seen.max())}")
print(f"mu-law with {levels} levels: largest decoding error {quantisation_error:.3f} on signals in [-1, 1]")

# %%
counts = torch.bincount(codes_train.long().flatten(), minlength=levels).double() + 1  # add-one smoothing
independent_code_bits = -(counts / counts.sum()).log2()[codes_test.long()].mean().item()
independent_codes = torch.multinomial(counts / counts.sum(), 100 * length, replacement=True,
                                      generator=torch.Generator().manual_seed(0)).reshape(100, length)
band = (length // 32, length // 8)  # frequency bins of periods 32 .. 8 samples
wavenet_samples = {"independent codes": mu_law_decode(independent_codes.double(), levels)}
wavenet_rows = [dict(model="independent codes", test_bits=independent_code_bits, NFE=0, reach=0)]
wavenet_sample_ms = {}
for label, model in wavenets.items():
    with torch.no_grad():
        test_bits = metrics.bits_per_dim(model.log_prob(codes_test), dims=length)
    with samplers.count_nfe() as nfe:
        start = time.perf_counter()
        wavenet_samples[label] = mu_law_decode(model.sample(100, generator=torch.Generator().manual_seed(0)), levels)
        wavenet_sample_ms[label] = 1000 * (time.perf_counter() - start) * 1000 / 100  # per 1,000 samples
    wavenet_rows.append(dict(model=label, test_bits=test_bits, NFE=nfe.count, reach=model.receptive_field,
                             params=sum(p.numel() for p in model.parameters()), train_s=trained[label][1].seconds))
in_band = {label: metrics.band_power_fraction(signals, *band)
           for label, signals in {"data": signals_test, **wavenet_samples}.items()}
for row in wavenet_rows:
    row["power_in_band"] = in_band[row["model"]]
wavenet_bits = {row["model"]: row["test_bits"] for row in wavenet_rows}
display(Markdown(markdown_table(wavenet_rows, ["model", "test_bits", "NFE", "reach", "params", "train_s", "power_in_band"])))
print(f"data: {in_band['data']:.2f} of the power at periods 8 to 32 samples")

# %%
shown = {"data (test)": signals_test, **{label: wavenet_samples[label] for label in wavenets}}
fig_wavenet, axes = plt.subplots(1, 4, figsize=(17, 3.8), gridspec_kw=dict(width_ratios=[1, 1, 1, 1.1]))
for ax, (label, signals) in zip(axes, shown.items()):
    for i, color in enumerate(("tab:blue", "tab:orange", "tab:green")):
        ax.plot(signals[i], color=color, lw=1.3)
    ax.set_title(label)
    ax.set_xlabel("time step")
    ax.set_ylabel("signal")
    ax.set_ylim(-1.05, 1.05)
frequencies = torch.arange(length // 2 + 1)
for label, signals in {**shown, "independent codes": wavenet_samples["independent codes"]}.items():
    axes[3].semilogy(frequencies[1:], metrics.power_spectrum(signals)[1:], label=label, lw=1.5)  # bin 0 is removed
axes[3].axvspan(*band, color="grey", alpha=0.15)
axes[3].set_xlabel("frequency (cycles per 128 steps)")
axes[3].set_ylabel("mean power")
axes[3].set_title("power spectra")
axes[3].legend(fontsize=12)
plt.tight_layout()
check_readable(fig_wavenet)
plt.show()

# %% [markdown]
# *Figure: three test signals and three samples of each WaveNet (decoded from mu-law codes), and
# the mean power spectrum of 500 test signals and 100 samples of each model and of independent
# codes; the grey band holds the periods of the data (8 to 32 steps). Look at the spectra first:
# the 2-layer model's samples look like waves up close, but they put more of their power outside
# the band, at high frequencies, than the data do.* The 6-layer model sees two full periods of the
# slowest sine and puts nearly as much of its power in the data's band as the data do; the 2-layer
# model knows only the last four samples, enough to continue a slope but not to know where in a
# period of 32 it is, and it pays about a third of a bit for every sample.
# Both are far below independent codes in bits per sample, and the gap between them is what reach
# buys. Each sample costs 128 network evaluations, one per time step, for any batch size; real
# WaveNets, at 16,000 steps per second of audio, were distilled into parallel samplers to be used
# at all (van den Oord et al. 2018).

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### 8.6 Other orders: next scale (VAR) and random order over continuous tokens (MAR)
#
# Raster order is a choice, and two recent models show what else the chain rule allows.
#
# **VAR** (Tian et al. 2024) changes *what* a step predicts: not the next pixel but the next
# **scale**. A multi-scale residual tokenizer describes a digit by a 1x1 token map, then 2x2,
# 3x3 and 4x4 maps, each quantising what the coarser ones left unexplained (the residual); the
# decoder reads the sum of all scales. A transformer then predicts every token of scale $k$ at
# once, given all coarser scales: attention is full within a scale and to coarser ones, and
# blocked to finer ones, so
# $p(\text{tokens}) = \prod_k p(r_k \mid r_1, \dots, r_{k-1})$: exact, and four transformer
# evaluations per image (plus one pass of the decoder) whatever its size. (The paper uses one shared VQ codebook and scales up to
# 16x16; here each scale is quantised by FSQ, which cannot collapse, and the finest map is 4x4.)
#
# **MAR** (Li et al. 2024) changes two things: the order is **random**, and the tokens stay
# **continuous**. A digit is 16 patches of 2x2 grey values. A bidirectional transformer sees the
# patches known so far (the others replaced by a learned mask vector) and outputs a vector $z_i$
# for every unknown patch; a small **per-token diffusion head** then samples the patch's four
# values from $p(x_i \mid z_i)$, trained with the DDPM loss of section 7, so no vector
# quantisation is needed. Sampling reveals the 16 patches in $K = 8$ rounds of a random order
# (few at first, more later), one transformer evaluation per round plus 100 steps of the small
# head. There is no exact likelihood any more: the head's is only a bound.
#
# Both are course checkpoints, scored like the two-stage model of 8.4 on 1,000 samples.
#
# **Predict.** VAR takes 4 transformer evaluations and a decoder pass, MAR 8 big plus 800 small
# ones; PixelCNN took 64. Which will be closest to the data floor?

# %%
var_model, var_history = checkpoints.load("var")
mar_model, mar_history = checkpoints.load("mar")
trained["VAR (next scale)"], trained["MAR (random order)"] = (var_model, var_history), (mar_model, mar_history)
order_samples, order_nfe, order_ms = {}, {}, {}
for label, model in (("VAR (next scale)", var_model), ("MAR (random order)", mar_model)):
    with samplers.count_nfe() as nfe:
        start = time.perf_counter()
        order_samples[label] = model.sample(1000, generator=torch.Generator().manual_seed(0))
        order_ms[label] = 1000 * (time.perf_counter() - start)  # milliseconds for these 1,000 samples
    order_nfe[label] = nfe.count
order_quality = {**{label: metrics.image_quality(images) for label, images in order_samples.items()},
                 "two-stage (FSQ + transformer prior)": two_stage_quality["transformer prior"]}
var_q, mar_q = order_quality["VAR (next scale)"], order_quality["MAR (random order)"]
with torch.no_grad():
    var_tokens = var_model.tokenizer.tokenize(digits_train)
    var_nll = -var_model.token_log_prob(digits_test).mean().item()
print("network evaluations per batch:", ", ".join(f"{label} {n}" for label, n in order_nfe.items()),
      f"(MAR: {mar_model.nfe()['transformer']} of the transformer, {mar_model.nfe()['head']} of the head)")
print(f"VAR: codes in use per scale {[len(torch.unique(t)) for t in var_tokens]} of {var_model.tokenizer.vocab}; "
      f"exact test NLL of the tokens {var_nll:.1f} nats per digit")
recorded_k = {k: checkpoints.provenance("mar")["metrics"][f"fd_k{k}"] for k in checkpoints.MAR_ITERATIONS}
print("MAR, FD against the number of rounds K (recorded with the checkpoint): "
      + ", ".join(f"K = {k}: {fd:.1f}" for k, fd in recorded_k.items()))
display(Markdown("\n".join([metrics.ImageQuality.header("model (floor)")]
                           + [q.row(label) for label, q in order_quality.items()])))
fig_orders = image_rows({f"{label}: FD {q.model.frechet_distance:.1f} (data {q.floor.frechet_distance:.1f})": images
                         for (label, images), q in zip(order_samples.items(), order_quality.values())},
                        panel_width=1.33, row_height=1.7)
plt.show()

# %% [markdown]
# *Figure: twelve samples of each model; the titles give the Fréchet distance of 1,000 samples
# and the data floor. Look at the MAR samples: strokes are there, but blotchy, because each patch
# is drawn by its own small diffusion head and neighbouring patches of one round are drawn
# independently given the transformer's vectors.* VAR comes within twice the floor in four
# transformer evaluations, behind the two-stage model of 8.4 (twelve); coarse-to-fine is a natural
# order for images, and every step refines the whole picture. MAR, at this training budget (1,500
# steps), is the weakest of the three, though it covers every class; more rounds $K$ help
# (recorded above) but most of the gain is reached by $K = 4$. The paper's MAR shines at a scale
# this course cannot train: what survives the toy version is the idea, a diffusion loss in place
# of a codebook, and a cost set by the number of rounds instead of the number of tokens.

# %% tags=["checks"]
# Section 8: what the tables and figures above must show (recorded values in checkpoints/*.json)
blind = {label: int((allowed & ~seen).sum()) for label, seen in fields.items()}
assert blind["PixelCNN"] > 0 and blind["gated PixelCNN"] == 0 and blind["pixel transformer"] == 0, blind
assert all(not (seen & ~allowed).any() for seen in fields.values())  # causal: nothing at or after the pixel
for label in ar_models:
    assert ar_bits[label] < independent_bits - 0.1, (label, ar_bits[label])  # measured 0.38-0.41 vs 0.565
    assert ar_nfe[label] == 64
assert ar_bits["gated PixelCNN"] < ar_bits["PixelCNN"]  # measured 0.381 vs 0.407
assert bvae_bits < min(ar_bits[label] for label in ar_models)  # the VAE's bound is lower still (0.370)
gap = {row["model"]: row["test_bits"] - row["train_bits"] for row in ar_rows if row["model"] in ar_models}
assert max(gap, key=gap.get) == "PixelCNN" and min(gap, key=gap.get) == "gated PixelCNN", gap  # 0.072, 0.039
prior_q, independent_q = two_stage_quality["transformer prior"], two_stage_quality["independent codes"]
assert prior_nll < independent_nll - 0.5, (prior_nll, independent_nll)  # recorded 22.3 vs 24.2 nats
assert prior_q.model.frechet_distance < 0.5 * independent_q.model.frechet_distance, (prior_q.model, independent_q.model)
assert prior_q.model.frechet_distance < 1.5 * prior_q.floor.frechet_distance and prior_q.model.classes_covered == 10
for label, (measured, formula, latest) in reach.items():  # the reach from gradients is 2^L, and causal
    assert measured == formula and latest == 99, (label, reach[label])
deep, shallow = wavenet_bits["WaveNet, 6 layers"], wavenet_bits["WaveNet, 2 layers"]
assert deep < shallow - 0.15 and shallow < independent_code_bits - 2, wavenet_bits  # measured 2.87, 3.20, 5.62
assert all(row["NFE"] == length for row in wavenet_rows[1:])
assert in_band["WaveNet, 6 layers"] > in_band["WaveNet, 2 layers"] + 0.05, in_band  # measured 0.95 vs 0.84
assert in_band["WaveNet, 6 layers"] > in_band["data"] - 0.05, in_band  # data 0.97
assert order_nfe["VAR (next scale)"] == var_model.num_scales + 1 == 5  # one evaluation per scale, one decoder pass
assert order_nfe["MAR (random order)"] == sum(mar_model.nfe().values())  # K transformer + K x head steps
assert var_q.model.frechet_distance < 2.5 * var_q.floor.frechet_distance and var_q.model.classes_covered == 10  # 8.98 vs 4.54
assert mar_q.model.classes_covered == 10 and mar_q.model.frechet_distance < 45, mar_q.model  # 35.2: under-trained
assert var_q.model.frechet_distance < mar_q.model.frechet_distance
assert all(len(torch.unique(t)) > 1 for t in var_tokens)  # every scale carries information (no collapsed codebook)
check_readable(fig_fields)
check_readable(fig_wavenet)
print("section 8 checks passed")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Check your understanding
#
# 1. Why does one forward pass give all 64 conditionals of a training image, but sampling needs 64
#    passes?
# 2. A PixelCNN with 20 layers on an 8x8 image still has a blind spot. Why does depth not remove
#    it, and what does the vertical stack change?
# 3. Which of these orders could a causal transformer use without any change to its architecture:
#    column by column, a random permutation fixed once, a new random permutation per image?
# 4. The code prior improves the NLL of the codes by about 2 nats per image and the FD by a factor
#    of about three. Why can a small likelihood gain give a large gain in sample quality?
# 5. A WaveNet with kernel size 3 and dilations 1, 2, 4, 8: how many past samples does each
#    output see? Check your formula against section 8.5's gradient measurement.
# 6. VAR draws all tokens of one scale at once, independently given the coarser scales. Why is
#    that a smaller approximation than drawing all 64 pixels of a digit at once?
#
# ## 9. World models: from modelling data to modelling a world
#
# **The story.** Every model so far learns $p(x)$: what data look like. An agent needs more: what
# happens next, and what happens *if I act*. A world model predicts the missing part of an
# observation, or the next observation given the past and an action, and it can do so in two
# spaces. In **latent space**, JEPA (Assran et al. 2023) predicts the *embedding* of a hidden part
# of an image from the visible rest and never draws a pixel; in **pixel space**, Genie and Cosmos
# (Bruce et al. 2024; NVIDIA 2025) predict the next video frame given the past frames and an
# action, and roll forward on their own predictions. Both are the chain rule again, with time or
# a mask deciding the order. This section builds one of each at toy scale, then JEPA on video
# (V-JEPA) and a joint model of text and images (Transfusion).
#
# ### 9.1 JEPA: predict what is hidden, in embedding space
#
# Cut a digit into 16 patches of 2x2 pixels and hide one or two rectangular blocks of them. A
# **context encoder** (a small transformer) reads the visible patches; a **target encoder** of
# the same shape reads the whole image; a **predictor** must produce, at each hidden position,
# the target encoder's embedding there. Pixels are never predicted, so the model need not spend
# capacity on details it cannot know.
#
# The catch is in the same sentence: if both encoders map every image to one constant vector,
# the prediction is perfect and the loss is exactly zero. I-JEPA avoids this **collapse** with an
# asymmetry (as BYOL did, Grill et al. 2020): the target encoder gets no gradient, and its weights
# are an exponential moving average (EMA) of the context encoder's,
# $\bar\theta \leftarrow d\,\bar\theta + (1 - d)\,\theta$ with $d = 0.99$. The counter-example,
# `SharedTargetJEPA`, uses the context encoder itself as the target, gradients flowing through
# both sides. Both are course checkpoints trained with the same recipe (1,000 steps).
#
# How good is a representation that generates nothing? The standard test is a **linear probe**:
# freeze the encoder, embed the digits (32 numbers each), and fit a logistic regression on the
# labels, which JEPA never saw. With all 1,257 labels and with only 10 per class (the regime
# where a representation matters most), next to a randomly initialised encoder of the same
# architecture and to the raw pixels. Two collapse measures need no labels: the spread (the mean
# standard deviation of the normalised embeddings, 0 for a constant encoder) and the effective
# rank (the exponential of the entropy of the normalised singular values: 1 if all embeddings lie
# on one line, 32 if they use every direction equally).
#
# **Predict.** Which of the two models will reach the *lower* training loss? And which will be
# the better representation?

# %%
jepa_models = {}
for label, checkpoint in (("JEPA (EMA target)", "jepa_ema"), ("shared target", "jepa_shared")):
    jepa_models[label], history = checkpoints.load(checkpoint)
    trained[label] = (jepa_models[label], history)
runtime.seed_everything(0)
jepa_models["random encoder"] = zoo.make("jepa", (1, 8, 8))  # the same architecture, untrained (torch seed 0)
digit_labels = {split: data.digits(split).labels for split in ("train", "test")}
# the collapse argument, checked: a constant encoder's predictions are exact, so its loss is zero
constant = zoo.make("jepa_shared", (1, 8, 8))
for parameter in constant.parameters():
    torch.nn.init.zeros_(parameter)
assert constant.loss(digits_train[:64], generator=torch.Generator().manual_seed(0)).item() == 0.0
jepa_rows, jepa_features = [], {}
for label, model in {**jepa_models, "raw pixels": None}.items():
    with torch.no_grad():
        features = {split: images.flatten(1) if model is None else model.embed(images)
                    for split, images in (("train", digits_train), ("test", digits_test))}
    jepa_features[label] = features["test"]
    row = dict(model=label, probe_all=linear_probe(features["train"], digit_labels["train"], features["test"],
                                                   digit_labels["test"]),
               probe_10_per_class=few_label_probe(features["train"], digit_labels["train"], features["test"],
                                                  digit_labels["test"], per_class=10))
    if model is not None:
        row.update(spread=embedding_std(features["test"]), effective_rank=effective_rank(features["test"]))
    if label in trained:
        row.update(final_loss=trained[label][1].losses["loss"][-1], train_s=trained[label][1].seconds)
    jepa_rows.append(row)
jepa = {row["model"]: row for row in jepa_rows}
ema, shared, untrained = jepa["JEPA (EMA target)"], jepa["shared target"], jepa["random encoder"]
shown_rows = [{**row, **{key: f"{row[key]:.2g}" for key in ("final_loss", "spread") if key in row}} for row in jepa_rows]
display(Markdown(markdown_table(shown_rows, ["model", "final_loss", "probe_all", "probe_10_per_class", "spread",
                                             "effective_rank", "train_s"])))

# %%
fig_jepa, (ax_loss, ax_spectrum) = plt.subplots(1, 2, figsize=(14, 4.8))
for label in ("JEPA (EMA target)", "shared target"):
    losses = torch.tensor(trained[label][1].losses["loss"])
    ax_loss.semilogy(moving_average(losses, 20), label=label, lw=2)
ax_loss.set(xlabel="training step", ylabel="prediction loss (log scale)", title="the lower loss is the collapse")
ax_loss.legend()
for label in jepa_models:
    s = torch.linalg.svdvals(jepa_features[label].double())  # as effective_rank: exp(entropy of s / sum s)
    ax_spectrum.semilogy(range(1, len(s) + 1), s / s.sum(), "o-", label=label, lw=2, ms=5)
ax_spectrum.set(xlabel="singular value rank", ylabel="share of the spectrum (log scale)",
                title="how many directions the test embeddings use")
ax_spectrum.legend()
plt.tight_layout()
check_readable(fig_jepa)
plt.show()

# %% [markdown]
# *Figure: left, the two training losses (moving average over 20 steps); right, the singular
# values of the 540 test embeddings, each as a share of their sum, largest first (the
# distribution whose entropy gives the effective rank). Look at the shared-target model: its
# loss falls by four orders of magnitude, and its embeddings put almost everything on one
# direction. It has found the constant solution, up to tiny differences.* The EMA model's loss stays high, because what is hidden is genuinely uncertain,
# and its embeddings spread over many directions.
#
# Read the table with care. The EMA JEPA beats the random encoder of the same architecture by
# a wide margin, most clearly with 10 labels per class, so it learned something about digits
# from images alone. The collapsed model's spread is a couple of hundred times smaller and its
# effective rank close to 1, yet its probe is not at chance: the probe standardises every
# feature, which blows the tiny leftover differences back up. Collapse is a matter of degree,
# and a probe alone would hide it; the spread and the rank show it. And at this scale the raw
# pixels beat every encoder: 64 pixels of a centred digit are already a good linear
# representation. JEPA pays off where pixels are not one, on large images and video, where
# predicting pixels would spend the model's capacity on texture and noise.
#
# ### 9.2 An action-conditioned world model
#
# A world the library defines in closed form (`unigm.world.env`): an 8x8 grid with an **agent**
# (the blue 2x2 square) that the actions move (stay, up, down, left, right; walls stop it) and a
# **ball** (orange) that moves diagonally and bounces off the walls whatever the agent does. One
# frame shows where the ball is but not where it goes, so the model sees the last **two** frames
# and the action, and outputs a Bernoulli probability for every pixel of the next frame (a
# convolutional net with the action injected into every layer by FiLM, Perez et al. 2018). It is
# trained on 15,000 transitions of random play (a course checkpoint), then **rolled out**: each
# prediction becomes the newest context frame of the next step, with no access to the true
# world, as Genie does with its frames.
#
# Two baselines tell what the model had to learn: **copy the last frame** (nothing moves), and
# the same network trained identically but **blind to the action** (`action_blind=True`).
#
# **Predict.** Over five steps of rollout, which baseline gets the ball right and the agent
# wrong? Which gets both wrong? Will the world model's errors grow with the horizon?

# %%
world_models = {}
for label, checkpoint in (("world model", "world_model"), ("action-blind", "world_model_action_blind")):
    world_models[label], history = checkpoints.load(checkpoint)
    trained[label] = (world_models[label], history)
horizon = 5
episodes, episode_actions = world_env.rollouts(1000, world_env.CONTEXT + horizon - 1, torch.Generator().manual_seed(1))
rollout_fns = {"world model": world_models["world model"].rollout,
               "action-blind": world_models["action-blind"].rollout, "copy last frame": copy_last_frame}
world_errors = {label: rollout_errors(fn, episodes, episode_actions, horizon) for label, fn in rollout_fns.items()}
mse5 = {label: errors["mse"][-1].item() for label, errors in world_errors.items()}  # the 5-step errors
world_rows = [{"model": label, **{f"MSE k={k}": errors["mse"][k - 1].item() for k in (1, 3, 5)},
               "agent px k=5": errors["agent"][-1].item(), "ball px k=5": errors["ball"][-1].item()}
              for label, errors in world_errors.items()]
display(Markdown(markdown_table([{key: f"{value:.2g}" if isinstance(value, float) else value for key, value in row.items()}
                                 for row in world_rows], list(world_rows[0]))))

# %%
start = world_env.CONTEXT
context, true_actions = episodes[:1, :start], episode_actions[:1, start - 1:start - 1 + horizon]
strips = {"truth": episodes[0, start:start + horizon],
          **{name: fn(context, true_actions)[0] for name, fn in rollout_fns.items()}}
for action in ("right", "up"):  # the same start, other actions: the world model imagines other futures
    other = torch.full((1, horizon), world_env.ACTIONS.index(action))
    strips[f"world model, always {action}"] = world_models["world model"].rollout(context, other)[0]
fig_world, axes = plt.subplots(len(strips), horizon + 1, figsize=(2.0 * (horizon + 1) + 3, 2.0 * len(strips)))
for i, (label, frames) in enumerate(strips.items()):
    for j, frame in enumerate([context[0, -1], *frames]):
        axes[i, j].imshow(world_env.to_rgb(frame))
        axes[i, j].set_xticks([])
        axes[i, j].set_yticks([])
        if i == 0:
            axes[i, j].set_title("last context frame" if j == 0 else f"step {j}")
    axes[i, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=13)
plt.tight_layout()
plt.show()

# %%
fig_rollout, ax = plt.subplots(figsize=(8, 4.5))
for label, errors in world_errors.items():
    ax.semilogy(range(1, horizon + 1), errors["mse"], "o-", lw=2, ms=7, label=label)
ax.set(xlabel="rollout step k", ylabel="MSE per pixel (log scale)", title="error of a k-step rollout, 1,000 episodes")
ax.set_xticks(range(1, horizon + 1))
ax.legend()
check_readable(fig_rollout)
plt.show()

# %% [markdown]
# *Figures: above, one held-out episode: the last context frame, the true next five frames, the
# rollouts of the three predictors under the true actions, and the world model's rollouts of two
# other action sequences from the same start; below, the per-pixel error of a k-step rollout,
# averaged over 1,000 held-out episodes. Look at the action-blind rows: the ball is right, the
# agent is a smear over the places the agent might have gone, because without the action the
# best prediction is an average.* Copying the last frame gets both objects wrong; the blind
# model learned the ball's physics but cannot know the agent's move; the world model gets the
# agent exactly and the ball nearly so, and its error grows with the horizon only slowly, as its
# own small errors feed back. Given other actions, the same model imagines other futures, with
# the ball unchanged: that is what makes it usable for planning (choose the actions whose
# imagined future you like), the idea behind learning to act inside a world model.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### 9.3 V-JEPA: the same idea on video
#
# V-JEPA (Bardes et al. 2024) moves JEPA from images to clips. The tokens become **tubelets**
# (here 2 frames x 2x2 pixels of a 4-frame clip of the toy world of 9.2), and each hidden block
# is hidden in **every** frame, so the predictor cannot copy a patch from the frame next to it:
# it must know how things move. What it should learn is exactly what one frame cannot show: the
# ball's **velocity**. Three frozen encoders are probed on 1,000 held-out clips, for the ball's
# position in the last frame (ridge regression, $R^2$) and its velocity (four directions,
# logistic regression): V-JEPA, a random encoder of the same architecture, and the image JEPA of
# 9.1 trained on single frames of the same world (a course checkpoint), which sees only the last
# frame. Even a perfect one-frame model can guess the velocity only where a wall gives it away.
#
# **Predict.** Which encoder will know the velocity? Which the position?

# %%
vjepa_model, vjepa_history = checkpoints.load("vjepa")
trained["V-JEPA"] = (vjepa_model, vjepa_history)
trained["one-frame JEPA"] = checkpoints.load("vjepa_one_frame")
video = checkpoints.video_representation_metrics(vjepa_model, "world_clips")  # probes of the three encoders
video_rows = [dict(model=label, position_R2=video[f"{prefix}position_r2"],
                   velocity_accuracy=video[f"{prefix}velocity_accuracy"],
                   spread=video.get(f"{prefix}std"), effective_rank=video.get(f"{prefix}effective_rank"))
              for label, prefix in (("V-JEPA", ""), ("random encoder", "random_"),
                                    ("one-frame JEPA (last frame)", "one_frame_"), ("raw pixels of the clip", "pixels_"))]
display(Markdown(markdown_table(video_rows, ["model", "position_R2", "velocity_accuracy", "spread", "effective_rank"])))
print(f"the best any function of the last frame can do for velocity: {video['one_frame_best_velocity_accuracy']:.3f} "
      "(chance: 0.25)")

# %% [markdown]
# The one-frame model is stuck at the ceiling that one frame allows, and V-JEPA's features carry
# the velocity above it: only prediction through time can teach that. Its margin over the random
# encoder is clear for the position and modest for the velocity. Two surprises, both measured
# and both worth a minute: the one-frame JEPA's pooled features do not expose the ball's
# position linearly at all ($R^2 \approx 0$; a plausible reason, not verified here, is that its
# hidden blocks rarely contain the one-pixel ball, so nothing asks it to encode where the ball
# is), and the raw pixels of the clip solve both probes exactly (the ball is a single pixel, so
# its position and its last move are linear functions of the pixels). Toy video is easy for
# pixels; what the experiment isolates is the *kind* of knowledge that masking in time forces
# into a representation.
#
# ### 9.4 Transfusion: one transformer for text and images
#
# Transfusion (Zhou et al. 2024) trains **one** transformer on sequences that mix discrete text
# tokens and continuous image patches, with two losses: next-token cross-entropy on the text, as
# a language model, and the diffusion (noise-prediction) loss of section 7 on the patches of a
# noised image. The attention mask is causal across the sequence and **bidirectional inside an
# image**, since an image is not generated patch by patch. Here the text is a caption naming the
# digit ("seven"), the image is 16 patches of 2x2 pixels, and sequences come in both orders:
# caption then image (learn to draw) and clean image then caption (learn to read). Sampling a
# digit runs 100 reverse diffusion steps over the image block after the caption, each step one
# pass of the transformer (with classifier-free guidance, weight 3, Ho & Salimans 2022);
# captioning is greedy next-token decoding after the image.
#
# **Predict.** The course's judge (the digit classifier behind `metrics.image_quality`)
# classifies the generated digits. For what fraction of them will it agree with the caption? And will the same network read test digits as
# well as it writes them?

# %%
transfusion, transfusion_history = checkpoints.load("transfusion")
trained["Transfusion"] = (transfusion, transfusion_history)
per_caption = 20
captions = torch.arange(10).repeat_interleave(per_caption)
with samplers.count_nfe() as nfe:
    start = time.perf_counter()
    written = transfusion.sample(len(captions), captions, generator=torch.Generator().manual_seed(0))
    transfusion_ms = 1000 * (time.perf_counter() - start) * 1000 / len(captions)  # per 1,000 digits
transfusion_nfe = nfe.count
digit_judge = judge.load("digits")
judged = digit_judge.predict_proba(digit_judge.prepare(written)).argmax(1)
judge_accuracy = {word: (judged[captions == k] == k).float().mean().item() for k, word in enumerate(WORDS)}
with torch.no_grad():
    read = transfusion.caption_labels(digits_test)
caption_accuracy = (read == digit_labels["test"]).float().mean().item()
print(f"caption -> digit: the judge agrees with the caption for {sum(judge_accuracy.values()) / 10:.0%} of "
      f"{len(captions)} digits ({transfusion_nfe} network evaluations per batch); per caption: "
      + ", ".join(f"{word} {acc:.0%}" for word, acc in judge_accuracy.items()))
print(f"digit -> caption: {caption_accuracy:.1%} of the 540 test digits captioned with their label "
      f"(e.g. {transfusion.caption(digits_test[:4])} for labels {digit_labels['test'][:4].tolist()})")
recorded = checkpoints.provenance("transfusion")["metrics"]
print(f"recorded with the checkpoint (100 digits per caption): judge accuracy {recorded['judge_accuracy']:.3f}, "
      f"FD {recorded['frechet_distance']:.1f} (data floor {recorded['frechet_distance_floor']:.1f})")
fig_transfusion = image_rows({f'"{word}"': written[captions == k][:12] for k, word in enumerate(WORDS)},
                             row_height=1.05)
plt.show()

# %% [markdown]
# *Figure: twelve digits drawn for each caption. Look at the captions the judge disagrees with
# most (printed above): their digits are recognisable to us but blotchy, thick strokes that a
# small classifier can read as another digit.* One set of
# weights both writes and reads: text and pixels live in one sequence, each with the loss that
# suits it. The same recipe, with a large language model and an image autoencoder's latents in
# place of pixels, is how recent models generate text and images in one network.

# %% tags=["checks"]
# Section 9: what the tables and figures above must show (recorded values in checkpoints/*.json)
assert ema["probe_10_per_class"] > untrained["probe_10_per_class"] + 0.08, (ema, untrained)  # 0.602 vs 0.434
assert ema["probe_all"] > untrained["probe_all"] + 0.04, (ema, untrained)  # 0.774 vs 0.689
assert shared["spread"] < 0.05 * ema["spread"] and shared["effective_rank"] < 2 < 5 < ema["effective_rank"], (shared, ema)
assert shared["final_loss"] < 0.01 * ema["final_loss"], (shared, ema)  # the lowest loss is the collapsed model
assert mse5["world model"] < 0.2 * min(mse5["action-blind"], mse5["copy last frame"]), mse5  # 8.9e-4, 0.033, 0.059
assert bool((world_errors["world model"]["mse"] < world_errors["action-blind"]["mse"]).all())
assert world_errors["world model"]["agent"][-1] < 0.2 < world_errors["action-blind"]["agent"][-1]  # 0 px vs 1.6
assert world_errors["action-blind"]["ball"][-1] < 0.2 * world_errors["copy last frame"]["ball"][-1]  # the ball: learned
assert video["velocity_accuracy"] > video["one_frame_best_velocity_accuracy"] + 0.15, video  # 0.694 vs 0.407
assert video["one_frame_velocity_accuracy"] <= video["one_frame_best_velocity_accuracy"] + 0.02, video  # 0.392
assert video["position_r2"] > video["random_position_r2"] + 0.1, video  # 0.551 vs 0.396
assert video["velocity_accuracy"] > video["random_velocity_accuracy"] + 0.02, video  # 0.694 vs 0.646
assert transfusion_nfe == transfusion.config.sample_steps
assert sum(judge_accuracy.values()) / 10 >= 0.8, judge_accuracy  # the issue's target; recorded 0.928
assert caption_accuracy > 0.9, caption_accuracy  # recorded 0.944
for figure in (fig_jepa, fig_rollout):
    check_readable(figure)
print("section 9 checks passed")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Check your understanding
#
# 1. Why does JEPA need an asymmetry between its two encoders, when a masked autoencoder
#    predicting pixels does not?
# 2. The collapsed JEPA reached the lowest loss. What does that say about judging a
#    self-supervised model by its training loss?
# 3. The world model sees two frames. What would go wrong, and for which object, with one?
# 4. The action-blind model's agent is a smear. Would sampling each pixel from its Bernoulli
#    (instead of showing the probabilities) fix that, or make it worse?
# 5. Why must V-JEPA hide a block in every frame of the clip, not in one frame only?
# 6. In Transfusion, why is attention bidirectional inside the image but causal across the
#    sequence? What would go wrong with a fully causal mask over the patches?
#
# %% [markdown] slideshow={"slide_type": "slide"}
# ## 10. Six families side by side
#
# One row per family, every number measured in this run or recorded with its checkpoint. Three
# columns compare directly: whether the model gives a likelihood, how many network evaluations
# (NFE) one sample costs, and how long 1,000 samples take on this CPU. Quality is measured where
# each model was trained, so it is stated with its own yardstick: $G$ on two moons (section 1),
# bits per pixel next to independent pixels, the 5-step rollout error next to copying the last
# frame, and the 10-labels-per-class probe next to a random encoder.
#
# **Predict.** Which family's sampling cost grows with the *size* of the data rather than with a
# number of steps you choose?

# %%
def ms_per_1000(draw, n):
    """Wall-clock milliseconds per 1,000 samples of draw(n), measured once here."""
    start = time.perf_counter()
    draw(n)
    return 1000 * (time.perf_counter() - start) * 1000 / n


gated = ar_models["gated PixelCNN"]
world = world_models["world model"]
family_rows = [
    dict(family="VAE", model="vae", data="two moons", likelihood="bound (ELBO, IWAE)"),
    dict(family="flow", model="flow_matching", data="two moons", likelihood="exact, through the ODE"),
    dict(family="GAN", model="gan", data="two moons", likelihood="none (implicit)"),
    dict(family="diffusion", model="ddpm", data="two moons", likelihood="through the PF-ODE"),
]
for row in family_rows:
    r = hands_on[row["model"]]
    row.update(NFE=r["NFE"], ms_per_1k=r["sample_ms_per_1k"], quality=f"G = {r['G']:.2f}")
with samplers.count_nfe() as nfe:
    gated_ms = ms_per_1000(lambda n: gated.sample(n, generator=torch.Generator().manual_seed(0)), 256)
family_rows += [
    dict(family="autoregressive", model="gated PixelCNN", data="binary digits", likelihood="exact, one pass",
         NFE=nfe.count, ms_per_1k=gated_ms,
         quality=f"{ar_bits['gated PixelCNN']:.3f} bits/px (independent {independent_bits:.3f})"),
    dict(family="autoregressive", model="VAR (next scale)", data="digits", likelihood="exact, of its tokens",
         NFE=order_nfe["VAR (next scale)"], ms_per_1k=order_ms["VAR (next scale)"],
         quality=f"FD {var_q.model.frechet_distance:.1f} (data {var_q.floor.frechet_distance:.1f})"),
    dict(family="autoregressive", model="MAR (random order)", data="digits", likelihood="none (a bound per token)",
         NFE=f"{mar_model.nfe()['transformer']} + {mar_model.nfe()['head']} (head)", ms_per_1k=order_ms["MAR (random order)"],
         quality=f"FD {mar_q.model.frechet_distance:.1f} (data {mar_q.floor.frechet_distance:.1f})"),
    dict(family="autoregressive", model="WaveNet, 6 layers", data="signals", likelihood="exact, one pass",
         NFE=length, ms_per_1k=wavenet_sample_ms["WaveNet, 6 layers"],
         quality=f"{wavenet_bits['WaveNet, 6 layers']:.2f} bits/sample (independent {independent_code_bits:.2f})"),
    dict(family="world model", model="next frame (2 frames + action)", data="toy world",
         likelihood="exact per frame", NFE=1,
         ms_per_1k=ms_per_1000(lambda n: world.rollout(episodes[:n, :2], episode_actions[:n, 1:2]), 1000),
         quality=f"5-step MSE {mse5['world model']:.1e} (copying {mse5['copy last frame']:.1e})"),
    dict(family="world model", model="JEPA (embeddings)", data="digits", likelihood="none (no generator)",
         NFE=1, ms_per_1k=ms_per_1000(lambda n: jepa_models["JEPA (EMA target)"].embed(digits_test[:n]), 540),
         quality=f"probe {ema['probe_10_per_class']:.2f} (random encoder {untrained['probe_10_per_class']:.2f})"),
    dict(family="world model", model="Transfusion (caption -> digit)", data="captioned digits",
         likelihood="exact for text, none for images", NFE=transfusion_nfe, ms_per_1k=transfusion_ms,
         quality=f"judge agrees {sum(judge_accuracy.values()) / 10:.0%} (chance 10%)"),
]
display(Markdown(markdown_table(family_rows, ["family", "model", "data", "likelihood", "NFE", "ms_per_1k", "quality"],
                                digits=3)))

# %% [markdown]
# *Table: NFE is per sample (per frame for the world model, per image embedded for JEPA); the
# milliseconds are for 1,000 samples drawn in one batch.* The one-step generators (VAE, GAN) are
# the fastest to sample; flows and diffusion pay for their quality with tens to a thousand
# evaluations, a number *you* choose (sections 5.4, 7.4, 7.5); the
# autoregressive models pay one evaluation per element, a number the *data* choose: 64 for an
# 8x8 image, 128 for the signal, and millions for a photograph, which is why VAR and MAR change
# the order rather than the network. Exact likelihoods come from the flows and the
# autoregressive models, a bound from the VAE, none from the GAN and from JEPA, which is not a
# generator at all. No single row wins: each family buys one property with another.

# %% tags=["checks"]
# Section 10: the cost structure the table states
nfe_of = {row["model"]: row["NFE"] for row in family_rows}
assert nfe_of["vae"] == nfe_of["gan"] == 1 < nfe_of["flow_matching"] and nfe_of["ddpm"] > 1
assert nfe_of["gated PixelCNN"] == 64 and nfe_of["WaveNet, 6 layers"] == length  # one per element of the data
assert all(row["ms_per_1k"] > 0 for row in family_rows)
print("section 10 checks passed")

# %% [markdown]
# What this run cost:

# %%
total_train_s = sum(h.seconds for _, h in trained.values())
print(f"{len(trained)} models trained in {total_train_s:.0f} s of training in total")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# - **Four paradigms, four prices.** A VAE and a GAN sample in one network evaluation; a flow
#   and a diffusion model take many small steps. In exchange, flows give exact likelihoods, a
#   VAE a bound, diffusion a likelihood through its probability-flow ODE, and a GAN none. What a
#   model offers is its interface: likelihood, sample only, score, or velocity.
# - **The history is a chain of fixes.** Each family keeps what worked before it and removes one
#   limit: invertibility, the normaliser, empty regions, the long chain, curved paths, the size
#   of pixels.
# - **The VAE family trades information for reconstruction.** Its likelihood bound tightens with
#   importance samples but stays below the truth; the price $\beta$ on the code's information
#   traces a rate-distortion curve; discrete codes need a straight-through gradient and a way to
#   keep codes alive, or, as in FSQ, a fixed grid with no codebook to collapse (whose codes can
#   still go unused: lecture 02, check 12.14).
# - **Flows differ in how much they simulate while training.** Coupling layers get exact
#   Jacobians by construction, CNFs pay an ODE solve per step for an unconstrained network, and
#   flow matching regresses on straight conditional paths with no simulation. The coupling of
#   data and noise decides how straight the learned flow is: optimal-transport pairs and
#   reflow straighten it, and straight flows need few steps.
# - **GANs are games, and their failures are games lost.** The loss chooses the divergence or
#   distance; stability needs a Lipschitz critic or a zero-centred gradient penalty; without one,
#   on narrow modes, the generator collapses onto some of them. Training curves show balance,
#   not quality: quality is measured on samples.
# - **Diffusion is one noising process and a few choices.** The network may predict the noise,
#   the clean point or $v$: one loss up to an SNR weight, but the $x_0$-target starves the
#   low-noise end that long samplers depend on. The reverse SDE and the probability-flow ODE
#   sample the same distribution; the ODE also gives the likelihood and tolerates big steps
#   (DDIM), while stochastic samplers need many. Consistency models distil the ODE into one or
#   two steps, and an autoencoder's latent space makes every step cheaper.
# - **Autoregressive models are the chain rule, made causal.** Exact likelihoods in one pass,
#   samples in one pass per element. Masks, two stacks or attention enforce the order; masks
#   alone leave a blind spot. A prior over an autoencoder's discrete codes is what turns a VQ or
#   FSQ autoencoder into a generator. On signals, dilations double the reach per layer, and reach
#   is measurable in bits and in the spectrum of the samples. The order is a choice: coarse to
#   fine scales (VAR, four evaluations) or random rounds of continuous tokens drawn by a small
#   diffusion head (MAR).
# - **World models predict what is hidden or what comes next.** JEPA predicts embeddings, not
#   pixels, and needs an asymmetry (a stop-gradient and an EMA target) because the constant
#   encoder is a perfect predictor: its collapse shows in the spread and rank of the embeddings,
#   not in its loss. A next-frame model conditioned on actions, rolled out on its own
#   predictions, beats both copying and an action-blind twin, and imagines other futures for
#   other actions. Masking in time makes a video JEPA learn motion that no single frame shows,
#   and one transformer with two losses (Transfusion) both writes and reads digits.
# - **Six families, six prices** (section 10): one step or many, a likelihood exact, bounded or
#   absent, a cost set by the sampler or by the size of the data.
# - **Next:** lecture 02 proves the equivalences promised in section 2.
#
# ## References
#
# - Alemi, Poole, Fischer, Dillon, Saurous & Murphy (2018). Fixing a Broken ELBO. arXiv:1711.00464.
# - Anderson (1982). Reverse-time diffusion equation models. Stochastic Processes and their Applications 12(3) (no arXiv version).
# - Arjovsky, Chintala & Bottou (2017). Wasserstein GAN. arXiv:1701.07875.
# - Assran et al. (2023). Self-Supervised Learning from Images with a Joint-Embedding Predictive Architecture. arXiv:2301.08243.
# - Bardes, Garrido, Ponce, Chen, Rabbat, LeCun, Assran & Ballas (2024). Revisiting Feature Prediction for Learning Visual Representations from Video. arXiv:2404.08471.
# - Bruce et al. (2024). Genie: Generative Interactive Environments. arXiv:2402.15391.
# - Burda, Grosse & Salakhutdinov (2016). Importance Weighted Autoencoders. arXiv:1509.00519.
# - Chen, Radford, Child, Wu, Jun, Luan & Sutskever (2020). Generative Pretraining from Pixels. ICML 2020 (no arXiv version).
# - Chen, Rubanova, Bettencourt & Duvenaud (2018). Neural Ordinary Differential Equations. arXiv:1806.07366.
# - Dinh, Krueger & Bengio (2014). NICE: Non-linear Independent Components Estimation. arXiv:1410.8516.
# - Dinh, Sohl-Dickstein & Bengio (2017). Density estimation using Real NVP. arXiv:1605.08803.
# - Du & Mordatch (2019). Implicit Generation and Generalization in Energy-Based Models. arXiv:1903.08689.
# - Esser, Rombach & Ommer (2021). Taming Transformers for High-Resolution Image Synthesis. arXiv:2012.09841.
# - Garrido, Balestriero, Najman & LeCun (2023). RankMe: Assessing the Downstream Performance of Pretrained Self-Supervised Representations by Their Rank. arXiv:2210.02885.
# - Goodfellow et al. (2014). Generative Adversarial Networks. arXiv:1406.2661.
# - Grathwohl, Chen, Bettencourt, Sutskever & Duvenaud (2019). FFJORD: Free-form Continuous Dynamics for Scalable Reversible Generative Models. arXiv:1810.01367.
# - Grill et al. (2020). Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning. arXiv:2006.07733.
# - Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville (2017). Improved Training of Wasserstein GANs. arXiv:1704.00028.
# - Higgins et al. (2017). beta-VAE: Learning Basic Visual Concepts with a Constrained Variational Framework. ICLR 2017 (no arXiv version; openreview.net/forum?id=Sy2fzU9gl).
# - Ho, Jain & Abbeel (2020). Denoising Diffusion Probabilistic Models. arXiv:2006.11239.
# - Huang, Gokaslan, Kuleshov & Tompkin (2024). The GAN is dead; long live the GAN! A Modern GAN Baseline. arXiv:2501.05441.
# - Ho & Salimans (2022). Classifier-Free Diffusion Guidance. arXiv:2207.12598.
# - Hyvärinen (2005). Estimation of Non-Normalized Statistical Models by Score Matching. JMLR 6 (no arXiv version).
# - Karras, Laine & Aila (2019). A Style-Based Generator Architecture for Generative Adversarial Networks. arXiv:1812.04948.
# - Karras, Aittala, Aila & Laine (2022). Elucidating the Design Space of Diffusion-Based Generative Models. arXiv:2206.00364.
# - Kingma & Welling (2014). Auto-Encoding Variational Bayes. arXiv:1312.6114.
# - Łańcucki et al. (2020). Robust Training of Vector Quantized Bottleneck Models. arXiv:2005.08520.
# - Li, Tian, Li, Deng & He (2024). Autoregressive Image Generation without Vector Quantization. arXiv:2406.11838.
# - Lipman, Chen, Ben-Hamu, Nickel & Le (2023). Flow Matching for Generative Modeling. arXiv:2210.02747.
# - Liu, Gong & Liu (2023). Flow Straight and Fast: Learning to Generate and Transfer Data with Rectified Flow. arXiv:2209.03003.
# - Mentzer, Minnen, Agustsson & Tschannen (2023). Finite Scalar Quantization: VQ-VAE Made Simple. arXiv:2309.15505.
# - Mescheder, Geiger & Nowozin (2018). Which Training Methods for GANs do actually Converge? arXiv:1801.04406.
# - Metz, Poole, Pfau & Sohl-Dickstein (2017). Unrolled Generative Adversarial Networks. arXiv:1611.02163.
# - Miyato, Kataoka, Koyama & Yoshida (2018). Spectral Normalization for Generative Adversarial Networks. arXiv:1802.05957.
# - NVIDIA (2025). Cosmos World Foundation Model Platform for Physical AI. arXiv:2501.03575.
# - Nichol & Dhariwal (2021). Improved Denoising Diffusion Probabilistic Models. arXiv:2102.09672.
# - Nowozin, Cseke & Tomioka (2016). f-GAN: Training Generative Neural Samplers using Variational Divergence Minimization. arXiv:1606.00709.
# - Perez, Strub, de Vries, Dumoulin & Courville (2018). FiLM: Visual Reasoning with a General Conditioning Layer. arXiv:1709.07871.
# - Pooladian, Ben-Hamu, Domingo-Enrich, Amos, Lipman & Chen (2023). Multisample Flow Matching: Straightening Flows with Minibatch Couplings. arXiv:2304.14772.
# - Ramesh et al. (2021). Zero-Shot Text-to-Image Generation. arXiv:2102.12092.
# - Rombach, Blattmann, Lorenz, Esser & Ommer (2022). High-Resolution Image Synthesis with Latent Diffusion Models. arXiv:2112.10752.
# - Salimans & Ho (2022). Progressive Distillation for Fast Sampling of Diffusion Models. arXiv:2202.00512.
# - Song & Ermon (2019). Generative Modeling by Estimating Gradients of the Data Distribution. arXiv:1907.05600.
# - Song, Meng & Ermon (2021). Denoising Diffusion Implicit Models. arXiv:2010.02502.
# - Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole (2021). Score-Based Generative Modeling through Stochastic Differential Equations. arXiv:2011.13456.
# - Song, Dhariwal, Chen & Sutskever (2023). Consistency Models. arXiv:2303.01469.
# - Srivastava, Valkov, Russell, Gutmann & Sutton (2017). VEEGAN: Reducing Mode Collapse in GANs using Implicit Variational Learning. arXiv:1705.07761.
# - Tian, Jiang, Yuan, Peng & Wang (2024). Visual Autoregressive Modeling: Scalable Image Generation via Next-Scale Prediction. arXiv:2404.02905.
# - Tong et al. (2024). Improving and Generalizing Flow-Based Generative Models with Minibatch Optimal Transport. arXiv:2302.00482.
# - van den Oord, Kalchbrenner & Kavukcuoglu (2016). Pixel Recurrent Neural Networks. arXiv:1601.06759.
# - van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu (2016). Conditional Image Generation with PixelCNN Decoders. arXiv:1606.05328.
# - van den Oord, Dieleman, Zen, Simonyan, Vinyals, Graves, Kalchbrenner, Senior & Kavukcuoglu (2016). WaveNet: A Generative Model for Raw Audio. arXiv:1609.03499.
# - van den Oord, Vinyals & Kavukcuoglu (2017). Neural Discrete Representation Learning. arXiv:1711.00937.
# - van den Oord et al. (2018). Parallel WaveNet: Fast High-Fidelity Speech Synthesis. arXiv:1711.10433.
# - Vaswani et al. (2017). Attention Is All You Need. arXiv:1706.03762.
# - Weber (2023). The Score-Difference Flow for Implicit Generative Modeling. arXiv:2304.12906.
# - Zhang, Shi, Yu, Xie & Li (2023). DiffFlow: A Unified SDE Framework for Score-Based Diffusion Models and Generative Adversarial Networks. arXiv:2307.02159.
# - Zhou et al. (2024). Transfusion: Predict the Next Token and Diffuse Images with One Multi-Modal Model. arXiv:2408.11039.
#
# ## Exercise
#
# The graded exercise for this lecture is [exercises/01_paradigms.py](../exercises/01_paradigms.py)
# (open it with `make lab`; grading: see the README). It asks you to write the pieces this
# lecture's models rest on: the importance-weighted bound, an affine coupling layer, the VQ
# straight-through gradients, FSQ's levels and indices, and the WGAN-GP penalty.
