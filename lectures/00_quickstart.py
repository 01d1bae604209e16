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
# # 00 Quickstart: every generative loss estimates a divergence, or a bound on one
#
# *Reading time 10 min, run time under a minute on a 2-core laptop CPU (quick profile).*
#
# **Learning goals.** After this notebook you can
# 1. write the training loss of a VAE, a GAN, flow matching and DDPM as *distance(prediction, target)*;
# 2. train all four with one `fit` call and read their training curves;
# 3. measure a generative model with $W_2$ against its noise floor and the Gaussian baseline, and
#    explain why the quality score $G$ can exceed 1;
# 4. say which of the four models gives a likelihood $\log p_\theta(x)$, and at what sampling cost.
#
# **Prerequisites.** Python and PyTorch basics; Gaussian densities; the idea of a neural network
# trained by gradient descent. No earlier lecture.
#
# **The story.** A generative model is a distribution $p_\theta$ that we want close to
# $p_\text{data}$. Picture two clouds of points, the data and the model's samples: training pushes
# one onto the other. The families of this course (VAEs, GANs, flows, diffusion, ...) differ in
# **which divergence between the clouds their loss estimates, or bounds**, and **which path
# carries noise to data**, not in the goal. Pointwise, each loss is a distance between a
# prediction and a target; averaged over data, it is a divergence or a bound on one: the negative
# ELBO is $\mathrm{KL}(p_\text{data}\,\|\,p_\theta)$ plus the data's entropy plus a non-negative gap,
# the GAN discriminator's loss at its optimum is $\log4-2\,\mathrm{JSD}$, DDPM's loss is a reweighted
# negative ELBO (lecture 02, results 6, 4 and 1), and for a Lipschitz velocity field flow
# matching's excess error bounds $W_2$ between the flow's samples and the data (Benton,
# Deligiannidis & Doucet 2023, arXiv:2305.16860). Below, four real models from the course
# library are built, their training losses are written out as *distance(prediction, target)* on the
# same batch of data, all four are trained live, and then measured side by side on held-out data.

# %%
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display

from unigm import data, metrics, runtime, samplers, zoo
from unigm.course.figures import check_readable, plot_losses, scatter2d, use_course_style
from unigm.tensors import per_example
from unigm.train import Job, train_many
from unigm.vae import gaussian_log_prob, kl_to_standard_normal

setup = runtime.setup(seed=0)
use_course_style()
setup

# %% [markdown] slideshow={"slide_type": "slide"}
# ## The data and the yardstick
#
# Two moons: a 2D distribution whose exact sampler *and* exact density we know. Quality is
# measured with the exact 2-Wasserstein distance $W_2$ between 2,000 model samples and 2,000
# held-out points. $W_2$ is never zero on finite samples, so it is reported next to its
# **noise floor** (two independent draws of the data) and next to the **best single Gaussian**;
# the fraction of that gap a model closes is
# $G = (W_2^\text{gauss} - W_2^\text{model}) / (W_2^\text{gauss} - W_2^\text{floor})$:
# 1 is as good as fresh data, 0 is no better than a Gaussian.
#
# **Predict.** Two independent draws of 2,000 points from the *same* distribution: is their
# $W_2$ zero? Larger or smaller than $W_2$ between the data and its best Gaussian fit?

# %%
dist = data.toy("two_moons")
ref = metrics.reference(dist)  # held-out set, floor and Gaussian baseline, all seeded
print(f"W2 floor (data vs data)      = {ref.w2_floor:.3f}")
print(f"W2 best single Gaussian      = {ref.w2_gauss:.3f}")
assert ref.w2_floor < ref.w2_gauss

# %% [markdown]
# Not zero: finite samples never match point for point, so $W_2$ has a floor. The floor itself
# is one random draw. **Predict.** If you measure three more fresh draws of the data (a perfect
# model), will their $G$ be exactly 1?

# %%
fresh_g = metrics.fresh_data_gap_closed(dist, ref, draws=3)
print("G of three fresh draws of the data:", ", ".join(f"{g:.3f}" for g in fresh_g))
print(f"their mean {fresh_g.mean().item():.3f}, standard deviation {fresh_g.std().item():.3f}")

# %% [markdown]
# No: perfect samples scatter around a value that is not exactly 1, because the floor in the
# denominator of $G$ is a single draw of $W_2$(data, data), which may come out high or low (the
# mean above tells you which happened here). So a model with $G$ slightly above 1 is not better
# than the data: it is as good as fresh data at this sample size, and the spread of the fresh
# draws is the resolution of $G$.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## One problem, four losses
#
# **Intuition first.** Every model makes a *prediction* from the data and is scored against a
# *target* it should have produced:
# - a **VAE** compresses $x$ to a code $z$ and must give the original $x$ high density when it
#   decodes $z$ (a reconstruction), while keeping its codes close to a standard Gaussian;
# - a **GAN** has a second network, the discriminator, that predicts "real or fake" and is scored
#   by cross-entropy against the true label; the generator is scored by how well it fools it;
# - **flow matching** moves a data point $x_0$ along a straight line towards noise $\varepsilon$
#   and asks a network for the velocity of that motion, $\varepsilon - x_0$;
# - **DDPM** mixes data and noise and asks a network which noise was added.
#
# The table writes the four as formulas:
#
# | model | prediction | target | distance |
# |---|---|---|---|
# | VAE | decoder density $p_\theta(x \mid z)$, $z \sim q_\phi(z \mid x)$ | the data point $x$ | $-\log p_\theta(x\mid z) + \mathrm{KL}(q_\phi(z\mid x)\,\|\,p(z))$ (negative ELBO) |
# | GAN | discriminator logit $D(x)$ | label 1 for data, 0 for $G(z)$ | binary cross-entropy |
# | flow matching | velocity $v_\theta(x_t, t)$, $x_t = (1-t)x_0 + t\,\varepsilon$ | $\varepsilon - x_0$ | squared error |
# | DDPM | noise $\varepsilon_\theta(x_t, t)$, $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$ | $\varepsilon$ | squared error |
#
# (Time runs from $t = 0$, data, to $t = 1$, noise, for every family in this course.)
# The cell below computes each row by hand from the library's own pieces, on one batch, and
# checks that it is exactly the `loss` the trainer minimises. Both draw their randomness from a
# generator seeded the same way, so they see the same noise.
#
# **Predict.** The four losses at initialisation: which is largest? Can you compare a VAE's
# loss with a DDPM's to say which model is better?

# %%
names = ["vae", "gan", "flow_matching", "ddpm"]
models = {name: zoo.make(name, (2,)) for name in names}
x0 = dist.sample(512, torch.Generator().manual_seed(0))


def by_hand(name, model, x0, g):
    """distance(prediction, target), spelled out; the random draws come from the generator g,
    in the order model.loss draws them."""
    if name == "vae":
        mean, log_std = model.encode(x0)
        z = mean + log_std.exp() * torch.randn(mean.shape, generator=g)
        x_mean, x_log_std = model.decode(z)  # the prediction: a Gaussian over x
        kl = kl_to_standard_normal(mean, log_std)
        return -(gaussian_log_prob(x0, x_mean, x_log_std) - kl).mean()
    if name == "gan":
        real, fake = x0, model.generate(len(x0), generator=g)
        logits = model.discriminator(torch.cat([real, fake])).squeeze(-1)
        labels = torch.cat([torch.ones(len(real)), torch.zeros(len(fake))])
        return 2 * F.binary_cross_entropy_with_logits(logits, labels)  # mean over 2B = half the sum of the two means
    if name == "flow_matching":
        eps, t = torch.randn(x0.shape, generator=g), torch.rand(len(x0), generator=g)
        x_t = (1 - per_example(t, x0)) * x0 + per_example(t, x0) * eps  # t (B,) -> (B, 1)
        return F.mse_loss(model.velocity(x_t, t), eps - x0)
    if name == "ddpm":
        T = model.config.num_steps
        t = torch.randint(1, T + 1, (len(x0),), generator=g).float() / T
        eps = torch.randn(x0.shape, generator=g)
        a = per_example(model.alpha_bar(t), x0)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
        return F.mse_loss(model.predict_eps(x_t, t), eps)


rows = ["| model | loss at initialisation (library) | by hand |", "|---|---|---|"]
for name, model in models.items():
    model.eval()  # evaluation mode: the VAE reports its true negative ELBO (no KL warm-up)
    library = model.loss(x0, generator=torch.Generator().manual_seed(1)).item()
    hand = by_hand(name, model, x0, torch.Generator().manual_seed(1)).item()
    assert abs(library - hand) < 1e-5 * max(1.0, abs(library)), (name, library, hand)
    rows.append(f"| {name} | {library:.4f} | {hand:.4f} |")
display(Markdown("\n".join(rows)))

# %% [markdown]
# The numbers differ in scale and meaning (nats per point, a cross-entropy, two mean squared
# errors), so raw losses are **not** comparable across families; samples measured on held-out
# data are. Lecture 04 returns to this.
#
# ## Train all four, live
#
# The same `fit` call trains every model: `fit(model, data, steps=..., batch_size=..., lr=...)`.
# The GAN is a game between two players; the trainer alternates their updates, the model only
# declares them. Recipes (steps, batch size, learning rate) come from the zoo. Models this small
# spend their time in per-operation overhead, not arithmetic, so `train_many` runs the four
# `fit` calls two at a time, in one single-threaded process per core.
#
# **Predict.** Which of the four training curves will *not* go down steadily, and why?

# %%
# Each job is: runtime.seed_everything(0); model = zoo.make(name, (2,)); fit(model, dist, **recipe).
# train_many runs the four jobs two at a time, in one process per core, the longest first.
longest_first = ["vae", "gan", "flow_matching", "ddpm"]  # measured: 19, 15, 13 and 13 s
histories = {}
for name, (model, history) in zip(longest_first, train_many([Job(name, dist) for name in longest_first])):
    models[name], histories[name] = model, history  # fresh weights, seeded, then trained
for name in names:
    print(f"{name:>14}: {histories[name].steps} steps in {histories[name].seconds:.1f} s")

fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
for ax, name in zip(axes, names):
    plot_losses(ax, histories[name], title=name)
plt.tight_layout()
check_readable(fig)  # every axis labelled (training step / loss, x1 / x2), no text under 12 pt
plt.show()

# %% [markdown]
# *Figure: training loss against step (moving average over 50 steps). Look at the GAN: its two
# losses do not fall, they balance, because each player's loss is the other's gain. The VAE's
# curve mixes two objectives: during the KL warm-up (its first 1,000 steps) the prior term is
# only partly counted, so the early values are not yet its negative ELBO. The two regression
# losses (flow matching, DDPM) fall and flatten above 0: their targets are random given $x_t$.*

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Samples beside the data, and the measurements
#
# Each model draws 2,000 samples. We count the network evaluations the sampler really makes
# (NFE), time it, compute $W_2$ against the held-out set, and where the model has a
# likelihood, evaluate $\log p_\theta(x)$ on 500 held-out points: the VAE through its
# importance-weighted bound (a lower bound), flow matching and DDPM exactly (up to ODE
# discretisation) through the probability-flow ODE and the instantaneous change of variables.
# The true $\log p_\text{data}$ of the same points is the ceiling: the average gap is an
# estimate of $\mathrm{KL}(p_\text{data}\,\|\,p_\theta) \ge 0$, where for DDPM $p_\theta$ is the density
# of its probability-flow ODE (more on this below the table).

# %%
PARADIGM = {"vae": "likelihood (bound)", "gan": "implicit", "flow_matching": "flow", "ddpm": "score"}
test_points = ref.test[:500]
true_log_p = dist.log_prob(test_points)
results, samples = {}, {}
for name, model in models.items():
    torch.manual_seed(2)  # the VAE's likelihood bound draws importance samples
    with samplers.count_nfe() as nfe:
        start = time.perf_counter()
        samples[name] = model.sample(2000, generator=torch.Generator().manual_seed(2))
        sample_ms = 1000 * (time.perf_counter() - start) / 2  # per 1,000 samples
    try:
        log_p = model.log_prob(test_points)
    except NotImplementedError:
        log_p = None
    results[name] = dict(nfe=nfe.count, sample_ms=sample_ms, log_p=log_p)
for name, quality in zip(names, metrics.sample_quality_many([samples[n] for n in names], ref)):  # W2s in threads
    results[name]["quality"] = quality

fig, axes = plt.subplots(1, 5, figsize=(17, 3.8), sharex=True, sharey=True)
panels = [("data (held out)", ref.test)] + [(f"{n}  G = {results[n]['quality'].gap_closed:.2f}", samples[n]) for n in names]
for ax, (title, points) in zip(axes, panels):
    scatter2d(ax, points, title, lim=(3.5, 2.5))
plt.tight_layout()
check_readable(fig)  # every axis labelled (training step / loss, x1 / x2), no text under 12 pt
plt.show()

# %% [markdown]
# *Figure: 2,000 samples of each model beside 2,000 held-out data points, same axes. Look at
# the VAE's cloud, which covers the moons but also the space between them (its decoder adds
# Gaussian noise to every sample, and a 2D latent with a Gaussian prior struggles to leave a
# gap), and at the flow-matching and DDPM moons, nearly as thin as the data's, with a few points
# bridging the gap.*
#
# **Predict.** Order the four models by the number of network evaluations (NFE) they need per
# sample, and guess which ones can tell you $\log p_\theta(x)$.

# %%
rows = ["| model | paradigm | train s | NFE | sampling ms / 1k | W2 | W2 floor | G | log p(x) | mean log p (model) | mean log p (true) |",
        "|---|---|---|---|---|---|---|---|---|---|---|"]
for name in names:
    r, q = results[name], results[name]["quality"]
    has_log_p = r["log_p"] is not None
    model_log_p = f"{r['log_p'].mean().item():.3f}" if has_log_p else "n/a"
    rows.append(f"| {name} | {PARADIGM[name]} | {histories[name].seconds:.1f} | {r['nfe']} | {r['sample_ms']:.1f} | "
                f"{q.w2:.3f} | {q.w2_floor:.3f} | {q.gap_closed:.2f} | {'yes' if has_log_p else 'no'} | "
                f"{model_log_p} | {true_log_p.mean().item():.3f} |")
display(Markdown("\n".join(rows)))

# %% [markdown]
# The one-step models (VAE, GAN) cost one network evaluation per sample; flow matching 64
# (32 Heun steps) and DDPM 1,000, which is why they are the slow samplers and why later lectures
# care about few-step samplers. Only the GAN has no likelihood at all.
#
# **One DDPM or two?** The DDPM row mixes two models. Its samples, and so its $W_2$ and $G$, come
# from the ancestral sampler, a stochastic chain; its $\log p(x)$ comes from the probability-flow
# ODE. The two share one distribution only with the exact score and exact integration (lecture 02,
# check 8.5 measures how a slightly wrong score pulls them apart); with a learned score they are two
# models, and the KL estimate below belongs to the ODE one. To measure the samples of the model
# whose density we evaluated, draw them through that same ODE: DDIM with $\eta=0$ is Euler's method
# on it (lecture 02, result 10), here on 100 steps.

# %%
ddpm_ode_samples = models["ddpm"].sample(2000, steps=100, eta=0.0, generator=torch.Generator().manual_seed(2))
ddpm_ode_quality = metrics.sample_quality(ddpm_ode_samples, ref)
print(f"DDPM, ancestral sampler (1,000 steps): G = {results['ddpm']['quality'].gap_closed:.3f}; "
      f"its probability-flow ODE (DDIM eta = 0, 100 steps): G = {ddpm_ode_quality.gap_closed:.3f}")

# %% [markdown]
# **Predict.** Flow matching sampled above with 32 Heun steps. With plain Euler steps, how few
# can it take before the moons visibly blur, and does $G$ fall smoothly or suddenly? Move the
# *steps* slider (and try the solvers): each setting integrates the trained model's ODE from the
# same noise, and the right panel plots the measured $G$ against the network evaluations spent.

# %%
from unigm.course.explorers import SamplerExplorer

flow_explorer = SamplerExplorer(models["flow_matching"], ref, solver="euler", steps=8)
flow_explorer.show()  # a static figure of the default state, then the live explorer (in JupyterLab)

# %% [markdown]
# *Figure: left, the paths of 16 particles from noise ($t = 1$) to samples ($t = 0$) and the 2,000
# samples over the held-out data; right, $G$ against the number of network evaluations for every
# setting tried so far. Look at the paths: they bend, because the learned velocity averages over
# every data point a particle could be heading to. A straight path would be integrated exactly by
# one Euler step; a bent one needs several, and the error of too few shows as blurred moons.
# Lecture 01 straightens the paths (reflow), lecture 03 measures every solver against its steps.*

# %% [markdown] slideshow={"slide_type": "slide"}
# ## What the run must show
#
# These checks fail the notebook (and the course's test suite) if a model regresses. Each
# model's minimum G on this data set is its recipe's quality gate (`zoo.recipe(name).min_quality`,
# the same table the test suite asserts): flow matching and DDPM must close at least 85% of the
# gap between a Gaussian and fresh data, the GAN 70% and the VAE 40%. For the likelihood models the average gap
# $\mathbb{E}[\log p_\text{data} - \log p_\theta]$ on held-out points estimates
# $\mathrm{KL}(p_\text{data}\,\|\,p_\theta)$: it may not be negative beyond its noise (no
# model beats the true density), and it must stay small. The VAE's value is a lower bound on its
# log-likelihood, so its estimated gap is larger. DDPM's log-likelihood is its ODE model's, so the
# samples of that ODE model must pass DDPM's gate too.

# %% tags=["checks"]
G_MIN = {name: zoo.recipe(name).min_quality[dist.name] for name in names}
KL_MAX = {"vae": 1.0, "flow_matching": 0.3, "ddpm": 0.3}  # nats; measured with margin (see README)
for name, g_min in G_MIN.items():
    g = results[name]["quality"].gap_closed
    print(f"{name:>14}: G = {g:.3f} (must be >= {g_min})")
    assert g >= g_min, f"{name}: G = {g:.3f} < {g_min}"
assert ddpm_ode_quality.gap_closed >= G_MIN["ddpm"], f"DDPM's PF-ODE samples: G = {ddpm_ode_quality.gap_closed:.3f}"
for name, kl_max in KL_MAX.items():
    gap = true_log_p - results[name]["log_p"]  # pointwise log p_data - log p_theta
    kl, stderr = gap.mean().item(), gap.std().item() / len(gap) ** 0.5
    print(f"{name:>14}: KL(p_data || p_theta) estimate = {kl:.3f} +- {stderr:.3f} nats (must be < {kl_max})")
    assert kl > -3 * stderr, f"{name}: the model's likelihood beats the true density by more than noise"
    assert kl < kl_max, f"{name}: KL estimate {kl:.3f} nats is too large"
print("all quality checks passed")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Check your understanding
#
# 1. Why is the GAN's training loss no measure of its sample quality, while the flow-matching
#    loss at least falls as the model improves?
# 2. A model scores $G = 1.04$. Is it better than the data? What would you measure to decide?
# 3. Which of the four losses needs a second network, and which one needs no noise at all to
#    evaluate its likelihood bound?
# 4. DDPM needs 1,000 network evaluations per sample here. Which family gets a sample in one,
#    and what does it give up in exchange?
#
# ## Summary
#
# - Every training loss here is a distance between a prediction and a target: a negative ELBO
#   (reconstruction plus a KL to the prior), a cross-entropy of real against fake, and two mean
#   squared errors on a noised copy of the data (a velocity, a noise). Averaged over the data,
#   each estimates a divergence between model and data, or a bound on one.
# - Raw losses are not comparable across families. Samples are: exact $W_2$ to held-out data,
#   read against its noise floor and a Gaussian baseline, gives one score $G$ for every family.
#   $G$ is itself noisy: fresh data scatters around a value near 1.
# - The families trade sampling cost for likelihood: one network evaluation for the VAE and GAN,
#   tens to a thousand for flows and diffusion, which in exchange give (nearly) exact
#   likelihoods through an ODE.
# - Next: **01 paradigms** takes each family in depth, **02 proofs** shows why DDPM's noise loss
#   is denoising score matching and why flow matching and diffusion are one model.
#
# ## References
#
# - Kingma & Welling (2014). Auto-Encoding Variational Bayes. arXiv:1312.6114.
# - Goodfellow et al. (2014). Generative Adversarial Networks. arXiv:1406.2661.
# - Ho, Jain & Abbeel (2020). Denoising Diffusion Probabilistic Models. arXiv:2006.11239.
# - Lipman, Chen, Ben-Hamu, Nickel & Le (2023). Flow Matching for Generative Modeling. arXiv:2210.02747.
# - Peyre & Cuturi (2019). Computational Optimal Transport. arXiv:1803.00567.
#
# ## Exercise
#
# The graded exercise for this lecture is [exercises/00_quickstart.py](../exercises/00_quickstart.py)
# (open it with `make lab`; grading: see the README).
