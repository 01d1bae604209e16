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
# # 02 Proofs: the equivalences, derived and machine-checked
#
# *Reading time about 60 minutes, run time about a minute on a 2-core laptop CPU (quick profile).*
#
# **Learning goals.** After this notebook you can
# 1. derive, with a few lines of sympy, why DDPM's noise loss *is* denoising score matching, why
#    the probability-flow ODE and the SDE share their marginals, and why flow matching is
#    diffusion after a change of time and scale;
# 2. explain what an optimal GAN discriminator computes (a density ratio, a Jensen-Shannon
#    divergence, a difference of energies) and derive the Fenchel conjugates behind f-GANs;
# 3. compute the exact likelihood of a diffusion or flow-matching model through its ODE, and
#    measure the cost and the variance of Hutchinson's trace estimator;
# 4. show that a DDIM step is an Euler step, that the best denoiser is a score (Tweedie), and
#    that diffusion is a hierarchical VAE whose ELBO reweights the DDPM loss;
# 5. recognise eleven common misstatements and check the correct version against the library.
#
# **Prerequisites.** Lectures 00 (quickstart) and 01 (paradigms). Calculus (partial
# derivatives, integration by parts, Taylor series), Gaussian densities and their products,
# the idea of a stochastic differential equation. No measure theory.
#
# **The story.** Lecture 01 showed six families of generative models side by side and left three
# questions open: *is diffusion a VAE?*, *is flow matching diffusion?*, *are GANs and diffusion
# related?* This lecture answers them with twelve exact identities. A diffusion model's noise loss
# is score matching; with the exact score its stochastic and deterministic samplers share every
# marginal (a learned score breaks the tie: check 8.5); flow matching with independent noise is the
# same model seen through another clock; a GAN's discriminator estimates a density ratio. Several of
# these models also read as energies (result 6), and the forward noising process, not the generator,
# is a Wasserstein gradient flow (result 7).
#
# **How to read this notebook.** The twelve results are grouped in four parts, followed by a fifth
# that answers lecture 01's questions. Each result starts with *why it should be true* (a picture
# or a short story), then the key step as **sympy you can edit**: change a symbol, a factor or a
# sign and rerun, and the `assert` tells you whether the identity survives. The remaining steps
# are one call away: `show("n.k")` runs the library's check of step n.k (`unigm.course.derivations`,
# the same functions the test suite runs) and prints the two sides it compared. Each result then
# meets the library's real code (the DDPM loss, the samplers, the f-GAN table, the likelihood
# routine) on toys whose answer is known exactly, with a figure where a picture says more than a
# number. Eleven boxes read **common misstatement → correct statement**; each runs a check in which
# the wrong version is computed and *fails* and the right one *passes*.
#
# Notation: time $t\in[0,1]$ with $t=0$ data and $t=1$ noise, for every family. The VP (DDPM)
# forward process is $x_t=\sqrt{\bar\alpha_t}\,x_0+\sqrt{1-\bar\alpha_t}\,\varepsilon$,
# $\varepsilon\sim\mathcal N(0,I)$, with $\bar\alpha_t=\exp(-\int_0^t\beta)$.

# %%
import itertools
import math

import matplotlib.pyplot as plt
import sympy as sp
import torch
from IPython.display import Markdown, display

from unigm import data, runtime, samplers
from unigm.course import derivations
from unigm.course.derivations import show
from unigm.course.derivations.adversarial import GENERATORS, STATED_CONJUGATES, derive_conjugate, mixture_pair, normal
from unigm.course.derivations.core import gaussian_expectation, quadrature_1d
from unigm.course.derivations.toys import ExactDDPM, ExactFlowMatching, eight_gaussians
from unigm.course.figures import check_readable, scatter2d, use_course_style
from unigm.course.widgets import show_source
from unigm.densities import GaussianMixtureOnPath
from unigm.diffusion import DDPM, targets
from unigm.gan import F_DIVERGENCES
from unigm.paths import vp_path, vp_to_linear
from unigm.schedules import (alpha_bar_of_linear_path, alpha_bar_vp_linear, beta_vp_linear, linear_time_of_alpha_bar,
                             sigma_bar, snr, t_of_alpha_bar_vp_linear)
from unigm.tensors import per_example

setup = runtime.setup(seed=0)
use_course_style()
setup

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Part I. Diffusion, read three ways
#
# One diffusion model, three descriptions: a regression on noise (DDPM), a score model (score
# matching), and a flow (an ODE). Results 1 to 3 show that they are the same object.
#
# ### 1. Denoising score matching is DDPM's noise loss
#
# **Why it should be true.** Take one data point $x_0$ and blur it with Gaussian noise. The blurred
# density is a bump centred at $\sqrt{\bar\alpha}\,x_0$, and its score (the gradient of the
# log-density) at a noisy point $x_t$ is an arrow pointing back to the centre, of length
# (distance)/(variance). But the distance from $x_t$ to the centre *is* the noise that was added,
# $\sqrt{1-\bar\alpha}\,\varepsilon$. So "point back towards the clean data" and "say which noise was
# added" are the same instruction, up to the factor $-1/\sqrt{1-\bar\alpha}$. Vincent (2011, *A
# connection between score matching and denoising autoencoders*) showed that regressing on this
# per-point score teaches the score of the whole blurred distribution.
#
# **The algebra.** For the VP kernel $q(x_t\mid x_0)=\mathcal N(\sqrt{\bar\alpha}\,x_0,(1-\bar\alpha)I)$
# each coordinate can be treated on its own (the kernel is isotropic).
# - **Step 1.1.** $\nabla_{x_t}\log q(x_t\mid x_0)=-\dfrac{x_t-\sqrt{\bar\alpha}\,x_0}{1-\bar\alpha}$.
# - **Step 1.2.** Substitute $x_t=\sqrt{\bar\alpha}\,x_0+\sqrt{1-\bar\alpha}\,\varepsilon$: the target is
#   $-\varepsilon/\sqrt{1-\bar\alpha}$. Nothing is approximated.
# - **Step 1.3.** Write the model like its target, $s_\theta=-\varepsilon_\theta/\sqrt{1-\bar\alpha}$, and
#   weight the DSM loss by $\lambda_t=1-\bar\alpha_t$: what is left is $\|\varepsilon_\theta-\varepsilon\|^2$,
#   the integrand of $L_\text{simple}$ (Ho, Jain & Abbeel 2020, arXiv:2006.11239, eq. 14).
#
# **Predict.** Is the DSM target *exactly* proportional to the noise $\varepsilon$, or only for
# small noise levels? Which weight $\lambda_t$ will turn DSM into $L_\text{simple}$?

# %%
a = sp.Symbol("alphabar", positive=True)  # alpha_bar(t), in (0, 1)
x_t, x_0, eps, eps_theta = sp.symbols("x_t x_0 epsilon epsilon_theta", real=True)

# log N(x_t; sqrt(a) x_0, 1 - a), the noising kernel
log_q = -(x_t - sp.sqrt(a) * x_0) ** 2 / (2 * (1 - a)) - sp.log(2 * sp.pi * (1 - a)) / 2
kernel_score = sp.diff(log_q, x_t)  # step 1.1
target = kernel_score.subs(x_t, sp.sqrt(a) * x_0 + sp.sqrt(1 - a) * eps)  # step 1.2
display(Markdown(f"kernel score ${sp.latex(kernel_score)}$; at the noisy sample: ${sp.latex(sp.simplify(target))}$"))
assert sp.simplify(target - (-eps / sp.sqrt(1 - a))) == 0

weight = 1 - a  # step 1.3: try another weight (1, or 1/(1 - a)) and see the assert fail
s_theta = -eps_theta / sp.sqrt(1 - a)
assert sp.simplify(weight * (s_theta - target) ** 2 - (eps_theta - eps) ** 2) == 0

# %% [markdown]
# Exact, for every noise level, and the weight is $1-\bar\alpha_t$. The library's checks of the
# same three steps:

# %%
show("1.1", "1.2", "1.3")

# %% [markdown]
# **Step 1.4.** Why does regressing on the *kernel's* score teach the *marginal* score? Because
# the two objectives differ by a constant that does not depend on $s$ (Vincent 2011). The check
# proves it for Gaussian data $x_0\sim\mathcal N(m,v)$ and every affine model
# $s(x)=cx+d$: the gap between the two expected losses has zero derivative in $c$ and in $d$.
# (The general proof expands both squares; the cross terms agree because
# $\mathbb E[\nabla\log q(x_t\mid x_0)\mid x_t]=\nabla\log p_t(x_t)$.)

# %%
show("1.4")

# %% [markdown]
# **Against the library.** Here is the loss the trainer minimises for every DDPM in the course.
# It never mentions a score:

# %%
show_source(DDPM.loss)

# %% [markdown]
# The check replays the random draws of `DDPM.loss` on one batch, forms $x_t$ with the
# library's `DDPM.noise`, computes the kernel score by *autograd* of a
# `torch.distributions.Normal` log-density (from $x_t$ and $x_0$ only, never from
# $\varepsilon$), and evaluates the DSM loss with weight $1-\bar\alpha$ and the library's own
# `DDPM.score`. It must equal `DDPM.loss` to rounding error.

# %%
show("1.5")

# %% [markdown]
# > **Common misstatement →** "DDPM's loss equals denoising score matching once we use
# > $\sqrt{\bar\alpha_t}\approx1$", i.e. the target $-(x_t-x_0)/(1-\bar\alpha)$.
# >
# > **Correct statement →** the equivalence is exact and needs the factor: the target is
# > $-(x_t-\sqrt{\bar\alpha}\,x_0)/(1-\bar\alpha)=-\varepsilon/\sqrt{1-\bar\alpha}$. (The
# > approximate target belongs to variance-*exploding* noise, $x_t=x_0+\sigma\varepsilon$, where
# > there is no scaling.)
#
# **Predict.** On a real batch, how far will the DSM loss with the approximate target be from
# `DDPM.loss`: a rounding error, a few per cent, or more?

# %%
show("1.6")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### 2. The probability-flow ODE and the SDE have the same marginals
#
# **Why it should be true.** Picture a crowd of particles spreading out under noise. Each
# particle jitters at random, but the *density* of the crowd changes smoothly: mass flows from
# crowded places to empty ones, at a rate proportional to how steeply the density falls, i.e. to
# $-\nabla\log p$. Replace the random jitter by a deterministic drift of exactly that size, and every
# particle moves smoothly while the crowd's density evolves exactly as before. Only the density is
# matched, not the individual paths.
#
# **The algebra.** A forward SDE $dx=f(x,t)\,dt+g(t)\,dW$ moves its marginals by the Fokker-Planck
# equation $\partial_t p=-\nabla\cdot(fp)+\tfrac{g^2}{2}\Delta p$; a flow $\dot x=v(x,t)$ moves them by
# the continuity equation $\partial_t p=-\nabla\cdot(vp)$. Song et al. (2021, arXiv:2011.13456,
# eq. 13) chose $v=f-\tfrac{g^2}{2}\nabla\log p_t$.
# - **Step 2.1.** The key identity: $p\,\nabla\log p=\nabla p$ for any positive density.
# - **Step 2.2.** Insert $v$ in the continuity equation: by step 2.1,
#   $-\nabla\cdot\big((f-\tfrac{g^2}{2}\nabla\log p)\,p\big)=-\nabla\cdot(fp)+\tfrac{g^2}{2}\Delta p$, the
#   Fokker-Planck equation, for *any* $p$, $f$ and $g$. In 1D, with $p$, $f$, $g$ unspecified functions:

# %%
x, t = sp.symbols("x t", real=True)
p, f, g = sp.Function("p")(x, t), sp.Function("f")(x, t), sp.Function("g")(t)

factor = sp.Rational(1, 2)  # Song et al.'s factor in front of g^2 * score
v = f - factor * g**2 * sp.diff(sp.log(p), x)  # the probability-flow velocity
continuity = -sp.diff(v * p, x)
fokker_planck = -sp.diff(f * p, x) + g**2 / 2 * sp.diff(p, x, 2)
residual = sp.simplify(sp.expand(continuity - fokker_planck))
print("continuity - Fokker-Planck =", residual)
assert residual == 0

# %% [markdown]
# **Predict.** The reverse SDE's drift has $g^2\nabla\log p$, without the $\tfrac12$. If you used
# that drift as an ODE velocity (no noise), what would be left over in the equation above?

# %%
v_wrong = f - g**2 * sp.diff(sp.log(p), x)
leftover = sp.simplify(sp.expand(-sp.diff(v_wrong * p, x) - fokker_planck))
print("with factor 1, continuity - Fokker-Planck =", leftover)
assert sp.simplify(leftover - g**2 / 2 * sp.diff(p, x, 2)) == 0

# %% [markdown]
# An extra diffusion term $\tfrac{g^2}{2}\partial_x^2p$: without its noise the reverse-SDE drift
# overshoots. The steps, checked by the library: 2.1, the identity above (2.2) and in 2D (2.3),
# the reverse SDE (2.4: in reversed time $s=1-t$ the SDE with drift $-(f-g^2\nabla\log p_t)$, Anderson
# 1982, retraces the forward marginals), and the VP kernel (2.5: for $f=-\tfrac\beta2x$, $g^2=\beta$,
# Gaussian data $\mathcal N(m,v)$ has marginals $\mathcal N(\sqrt{\bar\alpha}\,m,\bar\alpha v+1-\bar\alpha)$,
# a solution of that Fokker-Planck equation).

# %%
show("2.1", "2.2", "2.3", "2.4", "2.5")

# %% [markdown]
# **By simulation.** The toy is the eight-Gaussian mixture; along the VP path every $p_t$ is a
# mixture again, so its score is exact (`unigm.densities.GaussianMixtureOnPath`). From exact
# samples of $p_1$ we run the library's `euler_maruyama` with `reverse_sde_vp` and its `heun`
# with `probability_flow_vp`, and compare the particles at $t=0$ with each other and with exact
# samples of the data by MMD permutation tests. A deliberately wrong sampler (the reverse-SDE
# drift integrated *without* its noise: the ODE with factor 1, as above) must be rejected by the
# same test, which shows that the test has power.

# %%
show("2.6")

# %% [markdown]
# **Predict.** Both samplers start from the same kind of noise. The SDE adds fresh noise at every
# step, the ODE never does. Will their clouds at $t=0$ look alike? Will the ODE's particles be
# sharper (less spread around each mode)?

# %%
mixture_vp = eight_gaussians("vp")
g_rng = torch.Generator().manual_seed(0)
particles = {
    "exact samples of $p_0$": mixture_vp.sample(1000, 0.0, g_rng),
    "reverse SDE (Euler-Maruyama)": samplers.euler_maruyama(
        *samplers.reverse_sde_vp(mixture_vp.score, beta_vp_linear), mixture_vp.sample(1000, 1.0, g_rng), steps=500,
        generator=g_rng),
    "probability-flow ODE (Heun)": samplers.heun(
        samplers.probability_flow_vp(mixture_vp.score, beta_vp_linear), mixture_vp.sample(1000, 1.0, g_rng),
        steps=200),
}
fig, axes = plt.subplots(1, 3, figsize=(14, 4.6), sharex=True, sharey=True)
for ax, (title, points) in zip(axes, particles.items()):
    scatter2d(ax, points, title, lim=3.0)
    ax.set_xlabel("$x_1$ (data units)")
    ax.set_ylabel("$x_2$ (data units)")
plt.tight_layout()
check_readable(fig)
plt.show()
spread = {name: (points.norm(dim=1) - 2).std().item() for name, points in particles.items()}
print("radial spread around the circle of modes:", ", ".join(f"{k}: {v:.3f}" for k, v in spread.items()))

# %% [markdown]
# *Figure: 1,000 particles at $t=0$ from exact sampling, the stochastic sampler and the
# deterministic one, started from independent draws of $p_1$. Look at the eight modes: same
# positions, same weights, same width in all three panels. The ODE is not sharper: it matches the
# density, not the paths (each ODE particle follows a smooth curve, each SDE particle a jagged one).*
#
# ### 3. Flow matching and diffusion are one model
#
# **Why it should be true.** Every path in this course is Gaussian, $x_t=\alpha_tx_0+\sigma_t\varepsilon$.
# Divide by $\alpha_t$: $x_t/\alpha_t=x_0+(\sigma_t/\alpha_t)\,\varepsilon$ is *the data plus noise of
# size $\lambda=\sigma/\alpha$*, whatever the path. Two paths differ only in how fast the clock
# $\lambda(t)$ runs and in an overall scale $\alpha_t$; neither changes what a point at noise level
# $\lambda$ looks like. So the linear path of flow matching ($\alpha=1-t$, $\sigma=t$; Lipman et al.
# 2023, arXiv:2210.02747; Liu et al. 2023, arXiv:2209.03003) and the VP path
# ($\alpha=\sqrt{\bar\alpha}$, $\sigma=\sqrt{1-\bar\alpha}$) must be the same model after a change of time
# (match $\lambda$, i.e. the signal-to-noise ratio $\mathrm{SNR}=\alpha^2/\sigma^2=\lambda^{-2}$; Kingma
# et al. 2021, arXiv:2107.00630) and of scale.
#
# **The algebra.**
# - **Step 3.1.** The linear path has $\mathrm{SNR}=(1-t)^2/t^2$. A VP path has the same SNR when
#   $\bar\alpha=\dfrac{(1-t)^2}{(1-t)^2+t^2}$.
# - **Step 3.2.** Then $\sqrt{\bar\alpha}=(1-t)/r$, $\sqrt{1-\bar\alpha}=t/r$ with $r=\sqrt{(1-t)^2+t^2}$, so
#   $x_\text{lin}=x_\text{VP}/(\sqrt{\bar\alpha}+\sqrt{1-\bar\alpha})$, sample by sample.
# - **Step 3.3.** The time map inverts: $t=\sqrt{1-\bar\alpha}\,/\,(\sqrt{\bar\alpha}+\sqrt{1-\bar\alpha})$.

# %%
t, s = sp.symbols("t s", positive=True)  # s stands for 1 - t (both positive inside (0, 1))
x_0, eps = sp.symbols("x_0 epsilon", real=True)

alpha_bar = s**2 / (s**2 + t**2)  # the matched VP schedule
assert sp.simplify(alpha_bar / (1 - alpha_bar) - s**2 / t**2) == 0  # 3.1: the linear path's SNR
x_vp = sp.sqrt(alpha_bar) * x_0 + sp.sqrt(1 - alpha_bar) * eps
x_lin = sp.simplify(x_vp / (sp.sqrt(alpha_bar) + sp.sqrt(1 - alpha_bar)))
print("x_VP / (sqrt(abar) + sqrt(1 - abar)) =", x_lin, "  with s = 1 - t:", sp.simplify(x_lin.subs(s, 1 - t)))
assert sp.simplify(x_lin.subs(s, 1 - t) - ((1 - t) * x_0 + t * eps)) == 0  # 3.2: exactly the linear path

# %% [markdown]
# **Predict.** A shortcut often seen: "the linear path is the VP path with $\bar\alpha_t=(1-t)^2$",
# since then the signal coefficient $\sqrt{\bar\alpha}$ is $1-t$. Does that schedule have the linear
# path's SNR?

# %%
naive = s**2  # alpha_bar = (1 - t)^2
snr_gap = sp.simplify((naive / (1 - naive) - s**2 / t**2).subs(s, 1 - t))
print("SNR(abar = (1-t)^2) - SNR(linear) =", sp.factor(snr_gap))
assert snr_gap != 0

# %% [markdown]
# No: its noise coefficient is $\sqrt{1-(1-t)^2}=\sqrt{t(2-t)}\neq t$ (the misstatement box below
# checks it on samples). The library's checks of steps 3.1 and 3.2, and the rest of result 3:
# - **Step 3.4.** The ODE of a path. The marginal velocity is the conditional velocity
#   $\dot\alpha x_0+\dot\sigma\varepsilon$ averaged given $x_t=x$; both posterior means follow from the
#   score, $\mathbb E[x_0\mid x]=(x+\sigma^2\nabla\log p_t)/\alpha$ (Tweedie, result 11) and
#   $\mathbb E[\varepsilon\mid x]=-\sigma\nabla\log p_t$. Hence
#   $u(x,t)=\tfrac{\dot\alpha}{\alpha}x+\big(\tfrac{\dot\alpha\sigma^2}{\alpha}-\tfrac{1}{2}\tfrac{d\sigma^2}{dt}\big)\nabla\log p_t(x)$,
#   the formula in `GaussianPath.velocity_from_score`.
# - **Step 3.5.** For the VP path this is Song et al.'s probability-flow ODE,
#   $u=-\tfrac{\beta}{2}(x+\nabla\log p_t)$.
# - **Step 3.6.** In $z=x/\alpha$, $\lambda=\sigma/\alpha$ the ODE is $dz/dt=\dot\lambda\,(-\lambda\nabla_z\log p(z;\lambda))$:
#   time enters only through $\lambda$, so paths with the same SNR trace the same curve $z(\lambda)$.
# - **Step 3.7.** The losses correspond: with $v_\theta=(\varepsilon_\theta-x_t)/(1-t)$,
#   $\|v_\theta-(\varepsilon-x_0)\|^2=(1-t)^{-2}\|\varepsilon_\theta-\varepsilon\|^2$: flow matching is an
#   $\varepsilon$-loss with weight $(1-t)^{-2}$.

# %%
show("3.1", "3.2", "3.3", "3.4", "3.5", "3.6", "3.7")

# %% [markdown]
# **Against the library.** Starting from the same exact samples of $p_1$, the library's VP
# probability-flow ODE (`probability_flow_vp`, RK4) and the linear-path ODE of the same mixture are
# integrated on matched time grids; after the map $x/(\sqrt{\bar\alpha}+\sqrt{1-\bar\alpha})$ they must
# agree at every step. And the library's `FlowMatching.loss` is reproduced as a weighted
# $\varepsilon$-loss.

# %%
show("3.8", "3.9")

# %% [markdown]
# **Predict.** Run both ODEs from the same 24 starting points, map the VP trajectory onto the
# linear path: will the two curves agree to plotting accuracy only, or to the accuracy of the
# ODE solver (far below a pixel)?

# %%
mixture_linear = eight_gaussians("linear")
steps = 100
vp_times = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
alpha_bars = alpha_bar_vp_linear(vp_times)
linear_times = linear_time_of_alpha_bar(alpha_bars)
x_vp = mixture_vp.sample(24, 1.0, torch.Generator().manual_seed(1))
x_lin = vp_to_linear(x_vp, alpha_bars[0])
velocity_vp = samplers.probability_flow_vp(mixture_vp.score, beta_vp_linear)
mapped_vp, linear = [x_lin], [x_lin]
for i in range(steps):
    x_vp = samplers.rk4_step(velocity_vp, x_vp, vp_times[i], vp_times[i + 1])
    linear.append(samplers.rk4_step(mixture_linear.velocity, linear[-1], linear_times[i], linear_times[i + 1]))
    mapped_vp.append(vp_to_linear(x_vp, alpha_bars[i + 1]))
mapped_vp, linear = torch.stack(mapped_vp), torch.stack(linear)  # (steps + 1, 24, 2)
trajectory_gap = (mapped_vp - linear).abs().max().item()

t_grid = torch.linspace(0.02, 0.98, 200, dtype=torch.float64)
fig, axes = plt.subplots(1, 2, figsize=(14, 5))
axes[0].semilogy(t_grid, ((1 - t_grid) / t_grid) ** 2, label="linear path $(1-t)^2/t^2$", lw=4)
matched = alpha_bar_of_linear_path(t_grid)
axes[0].semilogy(t_grid, matched / (1 - matched), "--", label=r"VP, $\bar\alpha=\frac{(1-t)^2}{(1-t)^2+t^2}$")
naive_alpha_bar = (1 - t_grid) ** 2
axes[0].semilogy(t_grid, naive_alpha_bar / (1 - naive_alpha_bar), ":", label=r"VP, $\bar\alpha=(1-t)^2$ (wrong)")
axes[0].set_xlabel("time $t$ of the linear path (dimensionless)")
axes[0].set_ylabel("signal-to-noise ratio (dimensionless)")
axes[0].set_title("matching the clocks")
axes[0].legend()
for k in range(24):
    axes[1].plot(linear[:, k, 0], linear[:, k, 1], color="C0", lw=1)
    axes[1].plot(mapped_vp[::5, k, 0], mapped_vp[::5, k, 1], ".", color="C1", ms=5)
axes[1].set_title("linear ODE (lines), mapped VP ODE (dots)")
axes[1].set_xlabel("$x_1$ (data units)")
axes[1].set_ylabel("$x_2$ (data units)")
axes[1].set_aspect("equal")
plt.tight_layout()
check_readable(fig)
plt.show()
print(f"max distance between the two trajectories: {trajectory_gap:.2e} (data units)")

# %% [markdown]
# *Figure: left, the SNR of the linear path (thick) and of two VP schedules; the matched one lies
# on it everywhere, $\bar\alpha=(1-t)^2$ (dotted) only at the ends. Right, 24 trajectories of the
# linear-path ODE (lines) and of the VP probability-flow ODE mapped onto the linear path (dots,
# every fifth step): look at how every dot sits on its line, from the noise (large circle) to the
# eight modes.*
#
# > **Common misstatement →** "the linear path is the VP path with $\bar\alpha_t=(1-t)^2$".
# >
# > **Correct statement →** the matched schedule is $\bar\alpha=(1-t)^2/((1-t)^2+t^2)$ together with
# > the rescaling of $x$. The check maps VP samples built from the same $(x_0,\varepsilon)$ under both
# > schedules onto the linear path.

# %%
show("3.10")

# %% [markdown]
# Every schedule of the library is one more Gaussian path. Nichol & Dhariwal's cosine schedule
# (2021, arXiv:2102.09672) with offset $s=0$ is $\bar\alpha=\cos^2(\pi t/2)$: $\alpha=\cos$, $\sigma=\sin$,
# the trigonometric path, whose matched linear time is $\sin/(\sin+\cos)$; the offset $s$ only shifts
# and rescales time. Check 3.15 derives the time map and evaluates `schedules.alpha_bar_cosine`.
#
# > **Common misstatement →** "every flow-matching model is a Gaussian path, so all of them share the
# > diffusion model's PF-ODE".
# >
# > **Correct statement →** results 3.1 to 3.8 need $x_1$ drawn independently of $x_0$. Minibatch-OT
# > couplings (OT flow matching) and reflow pairs make $x_1$ depend on $x_0$, so $x_t=(1-t)x_0+tx_1$
# > is no longer $\alpha_tx_0+\sigma_t\varepsilon$ with independent noise, and the marginals are not the
# > Gaussian blur of the data. Check 3.16 measures the correlation $\mathbb E[(x_0-m)\cdot x_1]$ of the
# > library's two couplings.

# %%
show("3.15", "3.16")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Three things a network can predict: one loss, three weights (steps 3.11-3.14)
#
# **Why it should be true.** Given $x_t=\alpha x_0+\sigma\varepsilon$, knowing the noise is knowing
# the data: $x_0=(x_t-\sigma\varepsilon)/\alpha$. So a network may output $\hat\varepsilon$, $\hat x_0$
# or $\hat v=\alpha\hat\varepsilon-\sigma\hat x_0$ (Salimans & Ho 2022): each implies the other two.
# What changes is *how much an error costs at each noise level*: an error $\delta$ in
# $\hat\varepsilon$ moves $\hat x_0$ by $\sigma\delta/\alpha$, tiny at low noise and huge at high
# noise. The three losses are therefore the $\varepsilon$-loss times a weight of the SNR
# $\alpha^2/\sigma^2$, the same currency as step 3.7 (flow matching's weight $(1-t)^{-2}$).
#
# **Predict.** Relative to the $\varepsilon$-loss, is the $v$-loss weighted by $1+\mathrm{SNR}$ or by
# $1+1/\mathrm{SNR}$? (Salimans & Ho call it "SNR+1 weighting": relative to what?)

# %%
snr_ = sp.Symbol("SNR", positive=True)
a_, s_ = sp.sqrt(snr_ / (1 + snr_)), sp.sqrt(1 / (1 + snr_))  # VP: alpha^2 + sigma^2 = 1, alpha^2 / sigma^2 = SNR
eps_hat = sp.Symbol("epsilon_hat", real=True)
x_t = a_ * x_0 + s_ * eps
x0_hat = (x_t - s_ * eps_hat) / a_  # what eps_hat implies for x_0
error = {"epsilon": eps - eps_hat, "x0": x_0 - x0_hat, "v": (a_ * eps - s_ * x_0) - (a_ * eps_hat - s_ * x0_hat)}
weights = {name: sp.simplify(e**2 / (eps - eps_hat) ** 2) for name, e in error.items()}
for name, w in weights.items():
    print(f"|{name} error|^2 = {w} * |eps error|^2")
assert sp.simplify(weights["x0"] - 1 / snr_) == 0
assert sp.simplify(weights["v"] - (1 + 1 / snr_)) == 0
assert sp.simplify(weights["v"] / weights["x0"] - (1 + snr_)) == 0  # "SNR+1" is relative to the x0 loss

# %% [markdown]
# So: $1+1/\mathrm{SNR}$ relative to the $\varepsilon$-loss, $1+\mathrm{SNR}$ relative to the $x_0$-loss.
# The library's weights (`unigm.diffusion.targets`) must be these formulas (3.11), `DDPM.loss` with
# each target must equal the weighted $\varepsilon$-loss on the same draws (3.12), and the box 3.13
# computes the misquoted weight and watches it fail.
#
# **A fourth way, and why it is not new.** A plain $x_0$-network must copy $x_t$ almost exactly at
# low noise (lecture 01, 7.2 measures the damage). EDM (Karras et al. 2022) writes
# $\hat x_0=c_\text{skip}x_t+c_\text{out}F$ with $c_\text{skip}$ the Gaussian posterior-mean
# coefficient $\alpha\sigma_d^2/(\alpha^2\sigma_d^2+\sigma^2)$ for data of scale $\sigma_d$, $c_\text{out}$
# chosen so that $F$'s target has unit variance, and the loss $|x_0-\hat x_0|^2/c_\text{out}^2$. Check
# 3.14 takes the library's coefficients (`targets.preconditioning`) and shows all of this, and that
# at $\sigma_d=1$ the pair is $(\alpha,\sigma)$, $F$'s target is $-v$ and the weight is the $v$-loss's: the
# preconditioned $x_0$-model *is* the $v$-model. The key step, the unit variance, by hand:

# %%
sd_ = sp.Symbol("sigma_d", positive=True)
c_skip_, c_out_ = (sp.nsimplify(c) for c in targets.preconditioning(snr_, sd_))
f_target = sp.expand((x_0 - c_skip_ * x_t) / c_out_)
f_variance = sp.simplify(f_target.coeff(x_0) ** 2 * sd_**2 + f_target.coeff(eps) ** 2)  # Var x_0 = sd^2, Var eps = 1
print("Var of F's target:", f_variance, "| at sigma_d = 1, F's target =", sp.simplify(f_target.subs(sd_, 1)))
assert f_variance == 1
assert sp.simplify(f_target.subs(sd_, 1) + (a_ * eps - s_ * x_0)) == 0  # F = -v

# %%
show("3.11", "3.12", "3.13", "3.14")

# %% [markdown]
# **What the weights mean in training.** Plotted against noise level, the $x_0$-loss spends almost
# nothing on the low-noise end (weight $1/\mathrm{SNR}\to0$), exactly where the last sampling steps
# happen; the $v$-loss never weights a noise level below the $\varepsilon$-loss. Lecture 01 trains all
# three on two moons and measures the consequence.

# %%
log_snr = torch.linspace(-10, 10, 201, dtype=torch.float64)
fig, ax = plt.subplots(figsize=(7, 4.5))
for name, style in (("epsilon", "-"), ("x0", "--"), ("v", ":")):
    ax.semilogy(log_snr, targets.prediction_target(name).eps_weight(log_snr.exp()), style, lw=3,
                label=f"{name} loss")
ax.axvline(0, color="grey", lw=1)
ax.set_xlabel(r"log-SNR $\log(\alpha^2/\sigma^2)$ (low: noisy, high: clean)")
ax.set_ylabel(r"weight on $|\varepsilon-\hat\varepsilon|^2$")
ax.set_title("three targets, one loss: the weight per noise level")
ax.legend()
check_readable(fig)
plt.show()
weight_at = {name: float(targets.prediction_target(name).eps_weight(torch.tensor(1e4))) for name in targets.TARGETS}
print("weights at SNR = 1e4 (the last DDPM step):", {k: f"{v:.1e}" for k, v in weight_at.items()})

# %% [markdown]
# *Figure: the weight each target puts on the noise error, against log-SNR. Look at the right end:
# the $x_0$ curve falls as $1/\mathrm{SNR}$ while $\varepsilon$ and $v$ stay at 1.*

# %% tags=["checks"]
# Part I: what the figures above must show
assert trajectory_gap < 1e-4, f"mapped VP and linear ODE trajectories differ by {trajectory_gap:.2e}"
assert weight_at["x0"] < 1e-3 < 1 <= weight_at["v"] and weight_at["epsilon"] == 1, weight_at  # the figure's right end
for name in ("reverse SDE (Euler-Maruyama)", "probability-flow ODE (Heun)"):
    assert abs(spread[name] - spread["exact samples of $p_0$"]) < 0.02, (name, spread)
print("Part I checks passed")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Check your understanding (Part I)
#
# 1. DDPM's network predicts noise and is never told about scores. Which line of `DDPM.score`
#    turns it into a score, and why is that conversion exact rather than approximate?
# 2. In the DSM loss, what goes wrong at small noise ($\bar\alpha\to1$) if you drop the weight
#    $\lambda_t=1-\bar\alpha_t$?
# 3. The ODE and the SDE have the same marginals. Give one thing you can do with the ODE that you
#    cannot do with the SDE, and one reason to prefer the SDE anyway.
# 4. A colleague trains flow matching and wants to sample it with a DDPM sampler. What two maps do
#    they need, and what happens if they use $\bar\alpha=(1-t)^2$?

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Part II. Adversarial and energy views
#
# A GAN never writes down a density, an energy-based model never normalises one. Results 4 to 6
# show what their objectives compute: a density ratio, an f-divergence, a difference of energies.
#
# ### 4. The optimal GAN discriminator estimates a density ratio
#
# **Why it should be true.** The discriminator sees a point $x$ and must say "real" or "fake". If
# real points land at $x$ with density $p(x)$ and fake ones with density $q(x)$, the best possible
# answer is Bayes' rule with equal priors: the probability of "real" is $p/(p+q)$. Nothing else
# about the generator matters to the discriminator at that point, and the objective can be
# maximised point by point.
#
# **The algebra.** Goodfellow et al. (2014, arXiv:1406.2661) maximise
# $V(D)=\mathbb E_{p}\log D+\mathbb E_{q}\log(1-D)$, $p=p_\text{data}$, $q=p_g$.
# - **Step 4.1.** At a point, $p\log D+q\log(1-D)$ is concave in $D$, with only critical point $D^*=p/(p+q)$.
# - **Step 4.2.** With $m=(p+q)/2$: $p\log\frac{p}{p+q}+q\log\frac{q}{p+q}=-(p+q)\log2+p\log\frac pm+q\log\frac qm$;
#   integrated, $C(G)=V(D^*)=-\log4+2\,\mathrm{JSD}(p\,\|\,q)$.
# - **Step 4.3.** The logit of $D^*$ is the log density ratio: $\log\frac{D^*}{1-D^*}=\log p-\log q$.
#
# **Predict.** Where real data is three times as dense as fake data ($p=3q$), what is $D^*$?

# %%
p, q, D = sp.symbols("p q D", positive=True)  # the two densities at one point, the discriminator's output there
value = p * sp.log(D) + q * sp.log(1 - D)
(D_star,) = sp.solve(sp.diff(value, D), D)  # step 4.1
curvature = sp.simplify(sp.diff(value, D, 2).subs(D, D_star))
print("D* =", D_star, "   at p = 3q:", sp.simplify(D_star.subs(p, 3 * q)), "   curvature there:", curvature)
assert sp.simplify(D_star - p / (p + q)) == 0 and curvature.is_negative  # a maximum

logit = sp.log(D_star / (1 - D_star))  # step 4.3
assert sp.simplify(sp.expand_log(sp.simplify(logit), force=True) - (sp.log(p) - sp.log(q))) == 0

# %%
show("4.1", "4.2", "4.3")

# %% [markdown]
# **Numerically.** A 1D data mixture against a wide Gaussian generator, by quadrature: $V(D^*)$
# against $-\log 4+2\,\mathrm{JSD}$; two perturbations of $D^*$ that lower $V$; the library's
# Jensen-Shannon generator integrated to $2\,\mathrm{JSD}$; and the library's
# `discriminator_loss`, fed the optimal logits on samples, against $\log4-2\,\mathrm{JSD}$.

# %%
show("4.4")

# %% [markdown]
# **Predict.** The generator below is a wide Gaussian, wider than the data. Far out in the tails,
# is $D^*$ near 0, near $\tfrac12$ or near 1? And where the two densities cross?

# %%
x_line = torch.linspace(-4, 4, 400, dtype=torch.float64)
log_p, log_q = mixture_pair(x_line)
d_star_line = torch.sigmoid(log_p - log_q)
fig, ax = plt.subplots(figsize=(9, 4.2))
ax.plot(x_line, log_p.exp(), label=r"$p_\mathrm{data}$")
ax.plot(x_line, log_q.exp(), label=r"$p_g$")
ax.plot(x_line, d_star_line, "k", label=r"$D^*=p/(p+q)$")
ax.axhline(0.5, color="grey", lw=1, ls=":")
ax.set_xlabel("$x$ (data units)")
ax.set_ylabel("density (1/data unit); $D^*$ (probability)")
ax.set_title("the optimal discriminator")
ax.legend()
check_readable(fig)
plt.show()

# %% [markdown]
# *Figure: the data density (two bumps), the generator's (one wide bump) and the optimal
# discriminator. Look at the tails, where only the generator puts mass: $D^*\to0$. $D^*$ crosses
# $\tfrac12$ (dotted) exactly where the two densities cross: there a point is as likely real as fake.*
#
# ### 5. f-divergences and their Fenchel conjugates
#
# **Why it should be true.** A convex function is the upper envelope of its tangent lines:
# $f(u)=\sup_t\,(tu-f^*(t))$, where $f^*(t)$ says how far the tangent of slope $t$ must be lowered.
# Apply it inside $D_f(P\,\|\,Q)=\mathbb E_Q f(p/q)$ with a slope $T(x)$ chosen at every point: every
# choice of $T$ gives a lower bound, the best choice (the tangent at $u=p/q$) gives equality. A
# "critic" network that outputs $T(x)$ and maximises the bound is estimating an f-divergence
# from samples alone (f-GAN; Nowozin, Cseke & Tomioka 2016, arXiv:1606.00709):
# $D_f\ge\sup_T\ \mathbb E_P T-\mathbb E_Q f^*(T)$, equality at $T^*=f'(p/q)$. The library's table of
# five divergences is `unigm.gan.F_DIVERGENCES`; an output activation sends the critic's raw
# output into the domain of $f^*$.
#
# **The algebra.**
# - **Step 5.1.** The five generators satisfy $f(1)=0$ and are convex.
# - **Steps 5.2 to 5.5.** For smooth, strictly convex $f$ the supremum is where the derivative of
#   $ut-f(u)$ vanishes: solve $f'(u^*)=t$, then $f^*(t)=u^*t-f(u^*)$. The supremum runs over
#   $u=p/q\ge0$ only, so the tangent point must satisfy $u^*\ge0$: for Pearson $\chi^2$,
#   $u^*=1+t/2$ is negative when $t<-2$, and there the supremum sits at $u=0$, $f^*(t)=-f(0)=-1$.
#
# **Predict.** For KL, $f(u)=u\log u$ and $f'(u)=\log u+1$. Guess $f^*(t)$ before sympy computes it.

# %%
u = sp.Symbol("u", positive=True)
t = sp.Symbol("t", real=True)

f_u = u * sp.log(u)  # try -sp.log(u) (reverse KL): then the assert must expect -1 - log(-t)
(u_star,) = sp.solve(sp.Eq(sp.diff(f_u, u), t), u)  # the tangent point: f'(u*) = t
f_star = sp.simplify(u_star * t - f_u.subs(u, u_star))
print("u* =", u_star, "   f*(t) =", f_star)
assert sp.simplify(f_star - sp.exp(t - 1)) == 0

# %% [markdown]
# The library derives all five the same way. For Jensen-Shannon we use the generator
# $f(u)=u\log u-(u+1)\log\frac{u+1}{2}$, for which $D_f=2\,\mathrm{JSD}$; its conjugate exists only for
# $t<\log2$.

# %%
show("5.1", "5.2", "5.3", "5.4", "5.5")

# %% [markdown]
# **Step 5.6.** Total variation, $f(u)=\tfrac12|u-1|$, is not differentiable at $u=1$, so the
# stationarity argument does not apply. Instead: on $u\ge0$, $ut-f(u)$ is piecewise linear with
# slope $t+\tfrac12$ on $[0,1]$ and $t-\tfrac12$ on $[1,\infty)$. For $t>\tfrac12$ it grows without
# bound: $f^*=+\infty$. For $-\tfrac12\le t\le\tfrac12$ its maximum is at the kink, with value $t$.
# For $t<-\tfrac12$ it falls from $u=0$ on, so $f^*(t)=-f(0)=-\tfrac12$, a finite value (the
# density ratio cannot go below 0 to make it larger).

# %%
show("5.6")

# %% [markdown]
# The table the lecture derives, next to what the library uses. Each library entry is then
# checked numerically: its torch `conjugate` against the sympy formula and against a direct
# numerical maximisation of $ut-f(u)$ (with the library's own $f$), at the values $T$ its
# `activation` actually produces.

# %%
rows = ["| divergence | $f(u)$ | $u^*$ | $f^*(t)$, $u\\ge0$ (steps 5.2-5.6) | activation range |", "|---|---|---|---|---|"]
for name in ["kl", "reverse_kl", "pearson", "jensen_shannon"]:
    derived, u_star = derive_conjugate(name)  # for Pearson only where u* >= 0, i.e. t >= -2
    f_u = GENERATORS[name][0]
    activation = F_DIVERGENCES[name].activation(torch.tensor([-30.0, 0.0, 30.0], dtype=torch.float64))
    rows.append(f"| {name} | ${sp.latex(f_u)}$ | ${sp.latex(u_star)}$ | ${sp.latex(STATED_CONJUGATES[name])}$ | "
                f"({activation[0].item():.3g}, {activation[2].item():.3g}) |")
activation = F_DIVERGENCES["total_variation"].activation(torch.tensor([-30.0, 30.0], dtype=torch.float64))
rows.append(f"| total_variation | ${sp.latex(GENERATORS['total_variation'][0])}$ | 1 | "
            f"${sp.latex(STATED_CONJUGATES['total_variation'])}$ | "
            f"({activation[0].item():.3g}, {activation[1].item():.3g}) |")
display(Markdown("\n".join(rows)))

# %%
show("5.7", "5.8", "5.9", "5.10", "5.11")

# %% [markdown]
# All five entries of `F_DIVERGENCES` agree with the derivation, including the two piecewise
# conjugates (TV and Pearson), and every activation keeps $T$ where $f^*$ is finite. The
# bound is tight: with the optimal critic $T^*=f'(p/q)$ it equals $D_f$ by quadrature, and a
# scaled critic $0.9\,T^*$ gives strictly less. Check 5.15 then plays the game with the library's
# `FGAN`: its bound, estimated from samples with the optimal critic, matches $D_f$, and the
# generator's loss has the bound's gradient, so the generator descends what the critic ascends.

# %%
show("5.12", "5.15")

# %% [markdown]
# **WGAN is not an f-divergence.** Arjovsky, Chintala & Bottou (2017, arXiv:1701.07875) minimise
# $W_1(P,Q)=\sup_{\|h\|_\text{Lip}\le1}\mathbb E_P h-\mathbb E_Q h$, an *integral probability
# metric*: a supremum of differences of expectations over a class of functions. An f-divergence
# depends on $P$ and $Q$ only through the density ratio, so it is unchanged when both distributions
# are pushed through the same invertible map; $W_1$ measures distances in $x$ and scales with them.
# (Total variation is the only f-divergence that is also an IPM; Sriperumbudur et al. 2009,
# arXiv:0901.2698.)
#
# **Predict.** Scale two Gaussians by 2 (both of them). What happens to their KL divergence, and to
# their $W_1$ distance? And for two very narrow Gaussians moved further and further apart, does
# JSD keep growing?

# %%
show("5.13")

# %% [markdown]
# KL (like every f-divergence) stays put, $W_1$ doubles; JSD is stuck at $\log2$ once the two
# distributions no longer overlap, which is why a GAN's gradient can vanish and a WGAN's does not.
#
# > **Common misstatement →** "the Jensen-Shannon conjugate is $-\log(1-e^t)$" and "the TV
# > conjugate is $f^*(t)=t$" (with an unbounded critic).
# >
# > **Correct statement →** $-\log(1-e^t)$ is the conjugate of the *GAN* generator
# > $u\log u-(u+1)\log(u+1)$; for the JS generator above it is $-\log(2-e^t)$ on $t<\log2$. For TV,
# > $f^*(t)=t$ only on $[-\tfrac12,\tfrac12]$; it is $+\infty$ above $\tfrac12$ but $-\tfrac12$ below
# > $-\tfrac12$ (not $+\infty$: the ratio $u=p/q$ is never negative). The critic needs an activation
# > bounded above by $\tfrac12$, such as $\tfrac12\tanh$. The check maximises $ut-f(u)$ numerically
# > over $u\ge0$.

# %%
show("5.14")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### 6. Energy-based views
#
# **Why it should be true.** Any positive density can be written $p=e^{-E}/Z$: low energy, high
# probability. Read this way, each family becomes a statement about an energy. A VAE's bound
# balances a low average energy against a spread-out posterior, exactly the trade-off of free
# energy in physics (energy minus temperature times entropy). A score is a force, minus the gradient
# of the energy, and the normaliser $Z$, which does not depend on $x$, drops out of it. And a GAN's
# optimal logit, $\log p-\log q$, is a difference of two energies.
#
# **The algebra.**
# - **Step 6.1 (VAE).** With $E(x,z)=-\log p(x,z)$ (Kingma & Welling 2014, arXiv:1312.6114),
#   $\mathrm{ELBO}=\mathbb E_q\log\frac{p(x,z)}{q(z\mid x)}=-\mathbb E_q[E(x,z)]+H[q]$, entropy with a
#   **plus** sign; its negative is the variational free energy.
# - **Step 6.2.** The gap is a KL divergence: $\log p(x)=\mathrm{ELBO}+\mathrm{KL}(q(z\mid x)\,\|\,p(z\mid x))$.
# - **Step 6.3 (diffusion).** With $p_t=e^{-E_t}/Z_t$, $\nabla\log p_t=-\nabla E_t$.
# - **Step 6.4 (GAN).** The optimal logit of result 4 is $E_g-E_\text{data}+\log(Z_g/Z_\text{data})$.
#
# **Predict.** Does the entropy $H[q]$ enter the ELBO with a plus or a minus sign? (Think: should
# the bound reward or punish a posterior that spreads out?) The cell checks it for a latent with
# three states and symbolic probabilities.

# %%
p_joint = sp.symbols("p_1:4", positive=True)  # p(x, z = k) at a fixed x
q_post = sp.symbols("q_1:4", positive=True)  # q(z = k | x)

elbo = sum(qk * sp.log(pk / qk) for qk, pk in zip(q_post, p_joint))
energy = [-sp.log(pk) for pk in p_joint]
entropy = -sum(qk * sp.log(qk) for qk in q_post)
sign = +1  # try -1
assert sp.simplify(sp.expand_log(sp.expand(elbo - (-sum(qk * ek for qk, ek in zip(q_post, energy)) + sign * entropy)),
                                 force=True)) == 0

# %%
show("6.1", "6.2", "6.3", "6.4")

# %% [markdown]
# **Against the library.** For the library's `VAE` with a 2D latent, everything can be integrated
# on a grid over $z$: $\log p(x)$, $-\mathbb E_q[E]+H[q]$ and $\mathrm{KL}(q\,\|\,p(z\mid x))$.
# The free-energy form must match the library's Monte Carlo `VAE.elbo`, the gap must be the
# posterior KL, and the importance-weighted bound `VAE.log_prob` (Burda et al. 2016,
# arXiv:1509.00519) must approach $\log p(x)$. For diffusion, autograd of the energy
# $-\log p_t$ of the eight-Gaussian toy gives its score, and the library's `DDPM.score` with the
# exact noise predictor agrees.

# %%
show("6.5", "6.6")

# %% [markdown]
# > **Common misstatement →** "$\mathrm{ELBO}=-\mathbb E_q[E]-H[q]$" (or a free energy
# > $\mathbb E_q[E]+H[q]$): the entropy with the wrong sign.
# >
# > **Correct statement →** $\mathrm{ELBO}=-\mathbb E_q[E]+H[q]$: the bound rewards a spread-out
# > posterior. The check compares both signs with $\log p(x)-\mathrm{KL}$ for the library's VAE.

# %%
show("6.7")

# %% [markdown]
# **Fitting an energy: score matching.** Hyvärinen (2005, *Estimation of non-normalized
# statistical models by score matching*) showed that
# $\tfrac12\mathbb E_p\|\nabla\log p_\theta-\nabla\log p\|^2$ equals
# $\mathbb E_p[\tfrac12\|\nabla E_\theta\|^2-\Delta E_\theta]$ plus a constant, after an
# integration by parts; no normaliser and no data score are needed. The story: the squared
# gradient alone rewards a *flat* energy; the Laplacian term rewards energies that curve upwards
# where the data are, and the two balance at the data distribution.
#
# **Predict.** Data $\mathcal N(0,1)$, model energy $E_\theta(x)=x^2/(2\theta^2)$. Which $\theta$ minimises
# Hyvärinen's objective? Which minimises the bare penalty $\mathbb E\|\nabla E\|^2$?

# %%
theta = sp.Symbol("theta", positive=True)
z = sp.Symbol("z", real=True)  # z ~ N(0, 1), the data
E_theta = z**2 / (2 * theta**2)
grad_E, lap_E = sp.diff(E_theta, z), sp.diff(E_theta, z, 2)
hyvarinen = gaussian_expectation(grad_E**2 / 2 - lap_E, {z: 1})  # E over the data, exactly (Isserlis)
bare = gaussian_expectation(grad_E**2, {z: 1})
print("Hyvarinen J(theta) =", hyvarinen, "  critical points:", sp.solve(sp.diff(hyvarinen, theta), theta))
print("bare E|grad E|^2   =", bare, "  critical points:", sp.solve(sp.diff(bare, theta), theta))
assert sp.solve(sp.diff(hyvarinen, theta), theta) == [1] and sp.solve(sp.diff(bare, theta), theta) == []

# %% [markdown]
# **Step 6.8.** The difference of the two objectives is the constant $\tfrac12$, for every $\theta$.
# **Step 6.9.** $J(\theta)=\frac1{2\theta^4}-\frac1{\theta^2}$ is minimised at $\theta=1$ (the data); the bare
# penalty $\theta^{-4}$ keeps decreasing as the energy flattens.

# %%
show("6.8", "6.9")

# %% [markdown]
# > **Common misstatement →** "adding $\mathbb E\|\nabla_x E\|^2$ to the loss is score matching".
# >
# > **Correct statement →** score matching is $\mathbb E[\tfrac12\|\nabla E\|^2-\Delta E]$; the
# > Laplacian term is what ties the energy to the data. Alone, $\|\nabla E\|^2$ is a smoothness
# > regulariser whose minimiser is a flat energy. The check fits $\theta$ by both objectives,
# > computed with autograd on samples.

# %%
show("6.10")

# %% tags=["checks"]
# Part II: what the figure above must show
assert ((d_star_line - 0.5) * (log_p - log_q) >= 0).all(), "D* must be above 1/2 exactly where p_data > p_g"
assert d_star_line[0].item() < 0.05 and d_star_line[-1].item() < 0.05, "D* must vanish in the generator's tails"
assert torch.allclose(d_star_line, log_p.exp() / (log_p.exp() + log_q.exp()), atol=1e-12)
print("Part II checks passed")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Check your understanding (Part II)
#
# 1. A discriminator reaches $D(x)=0.8$ at some $x$. If it is optimal, what is $p_\text{data}(x)/p_g(x)$?
# 2. Why does an f-GAN critic for total variation need a bounded output activation, while one
#    for KL does not?
# 3. Two narrow distributions do not overlap. Which of JSD and $W_1$ tells the generator which way
#    to move, and why?
# 4. Write the ELBO as an energy and an entropy. Which term does the reparameterised encoder
#    noise make larger, and why does the bound reward it?

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Part III. Dynamics and likelihood
#
# Diffusion moves probability mass over time. Results 7 to 9 ask *which functional that motion
# decreases*, and *how to read off a density* from a flow.
#
# ### 7. Wasserstein gradient flows
#
# **Why it should be true.** Gradient descent moves a point downhill on a function. Jordan,
# Kinderlehrer & Otto (1998, *The variational formulation of the Fokker-Planck equation*) did the
# same for a *distribution* moving downhill on a functional $F(p)$, where "distance" between
# distributions is the cost of moving mass, $W_2$. The forward noising process pulls every point
# towards 0 and adds noise: it forgets the data and approaches $\mathcal N(0,I)$, and it does so as
# fast as possible in $W_2$ on $\mathrm{KL}(p\,\|\,\mathcal N(0,I))$. Its implicit step (the JKO step) is
# $p_{k+1}=\arg\min_p\ \tfrac{1}{2\tau}W_2^2(p,p_k)+F(p)$, the analogue of an implicit gradient step
# $x_{k+1}=\arg\min_x\tfrac1{2\tau}\|x-x_k\|^2+F(x)$.
#
# **The algebra.** A W2 gradient flow reads $\partial_t p=\nabla\cdot\big(p\,\nabla\tfrac{\delta F}{\delta p}\big)$.
# - **Step 7.1.** The first variation of $F(p)=\mathrm{KL}(p\,\|\,\pi)$ is $\log(p/\pi)+1$.
# - **Step 7.2.** The VP forward process (Ornstein-Uhlenbeck with rate $\beta/2$) has Fokker-Planck
#   right side $\tfrac\beta2(\nabla\cdot(xp)+\Delta p)=\tfrac\beta2\nabla\cdot\big(p\nabla\log\frac{p}{\mathcal N(0,I)}\big)$:
#   the W2 gradient flow of $\mathrm{KL}(p\,\|\,\mathcal N(0,I))$ on the clock $\tau=\tfrac12\int\beta$.
# - **Step 7.3.** Langevin dynamics $dx=\nabla\log\pi\,dt+\sqrt2\,dW$ is the W2 gradient flow of
#   $\mathrm{KL}(p\,\|\,\pi)$, for any target $\pi=e^{-U}$.
#
# **Predict.** Step 7.2 in 1D: the first variation has a $+1$. Does it matter for the flow?

# %%
x, t = sp.symbols("x t", real=True)
p, beta = sp.Function("p")(x, t), sp.Function("beta")(t)

fokker_planck = sp.diff(beta / 2 * x * p, x) + beta / 2 * sp.diff(p, x, 2)  # OU: drift -beta x / 2, g^2 = beta
log_standard_normal = -x**2 / 2 - sp.log(2 * sp.pi) / 2
first_variation = sp.log(p) - log_standard_normal + 1  # delta KL(p || N(0,1)) / delta p; drop the + 1 and rerun
gradient_flow = beta / 2 * sp.diff(p * sp.diff(first_variation, x), x)
assert sp.simplify(sp.expand(fokker_planck - gradient_flow)) == 0

# %% [markdown]
# The constant disappears under the gradient: only $\nabla\frac{\delta F}{\delta p}$ moves mass. The
# library's checks of 7.1, of 7.2 in 2D, and of Langevin (7.3):

# %%
show("7.1", "7.2", "7.3")

# %% [markdown]
# **Step 7.4.** For Gaussians in 1D the JKO step can be solved by hand:
# $W_2^2(\mathcal N(m,s^2),\mathcal N(m_k,s_k^2))=(m-m_k)^2+(s-s_k)^2$ and
# $\mathrm{KL}(\mathcal N(m,s^2)\,\|\,\mathcal N(0,1))=\tfrac12(s^2+m^2-1)-\log s$. Set both partial
# derivatives to zero. **Step 7.5.** Compare with the exact Ornstein-Uhlenbeck flow over time $\tau$,
# $m_ke^{-\tau}$ and $\sqrt{1+(s_k^2-1)e^{-2\tau}}$: they must agree to first order in $\tau$ (an
# implicit Euler step).

# %%
m, m_k = sp.symbols("m m_k", real=True)
s, s_k, tau = sp.symbols("s s_k tau", positive=True)

objective = ((m - m_k) ** 2 + (s - s_k) ** 2) / (2 * tau) + (s**2 + m**2 - 1) / 2 - sp.log(s)
(m_star,) = sp.solve(sp.diff(objective, m), m)
s_star = [root for root in sp.solve(sp.diff(objective, s), s) if root.subs({s_k: 1, tau: 1}) > 0][0]
display(Markdown(f"JKO step: $m = {sp.latex(m_star)}$, $s = {sp.latex(s_star)}$"))
exact_m, exact_s = m_k * sp.exp(-tau), sp.sqrt(1 + (s_k**2 - 1) * sp.exp(-2 * tau))
assert sp.simplify(sp.series(m_star - exact_m, tau, 0, 2).removeO()) == 0
assert sp.simplify(sp.series(s_star - exact_s, tau, 0, 2).removeO()) == 0
jko_step = sp.lambdify((m_k, s_k, tau), (m_star, s_star))  # used for the figure below

# %%
show("7.4", "7.5")

# %% [markdown]
# **Against the library.** JKO steps, each minimised *numerically* (no closed form used), on the
# clock of the library's VP schedule, track the particles of the library's `euler_maruyama`
# forward simulation; halving $\tau$ halves their error (first order).

# %%
show("7.6")

# %% [markdown]
# **Predict.** One JKO step of size $\tau=0.5$ from mean $m_k$ gives $m_k/1.5$; the exact flow gives
# $m_ke^{-0.5}\approx m_k/1.65$. Will JKO iterates lag behind the flow or run ahead of it, and how
# does the gap change with $\tau=0.1$?

# %%
m0, s0, clock_end = 2.0, 0.5, 2.0  # p_0 = N(2, 0.5^2); the OU clock tau = -log(alpha_bar) / 2 runs to 2
jko_paths = {}
for step in (0.5, 0.1):
    moments = [(m0, s0)]
    for _ in range(round(clock_end / step)):
        moments.append(tuple(float(v) for v in jko_step(*moments[-1], step)))
    jko_paths[step] = (torch.arange(len(moments)) * step, torch.tensor(moments, dtype=torch.float64))

# the library's forward VP SDE, simulated with particles, read on the same clock
t_end = t_of_alpha_bar_vp_linear(torch.tensor(math.exp(-2 * clock_end), dtype=torch.float64)).item()
ou_path = []
x_data = m0 + s0 * torch.randn(20_000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
samplers.euler_maruyama(samplers.vp_drift(beta_vp_linear), lambda time: beta_vp_linear(time).sqrt(), x_data,
                        steps=400, t_start=0.0, t_end=t_end, generator=torch.Generator().manual_seed(1),
                        trajectory=ou_path)
particle_clock = -0.5 * torch.log(alpha_bar_vp_linear(samplers.time_grid(400, 0.0, t_end)))
particle_moments = torch.tensor([[x.mean().item(), x.std().item()] for x in ou_path])

clock = torch.linspace(0, clock_end, 200, dtype=torch.float64)
exact_moments = torch.stack([m0 * torch.exp(-clock), torch.sqrt(1 + (s0**2 - 1) * torch.exp(-2 * clock))], 1)
fig, axes = plt.subplots(1, 2, figsize=(14, 4.5))
for j, quantity in enumerate(["mean $m$", "standard deviation $s$"]):
    axes[j].plot(clock, exact_moments[:, j], "k", label="exact OU flow")
    axes[j].plot(particle_clock[::20], particle_moments[::20, j], "x", ms=9, label="library SDE, 20,000 particles")
    for step, marker in [(0.5, "o-"), (0.1, "s-")]:
        taus, moments = jko_paths[step]
        axes[j].plot(taus, moments[:, j], marker, ms=5, lw=1, label=rf"JKO steps, $\tau$ = {step}")
    axes[j].set_xlabel(r"OU clock $\tau=-\frac{1}{2}\log\bar\alpha_t$ (dimensionless)")
    axes[j].set_ylabel(f"{quantity} (data units)")
axes[0].legend()
axes[0].set_title("JKO steps track the forward process")
axes[1].set_title(r"from $\mathcal{N}(2, 0.5^2)$ towards $\mathcal{N}(0, 1)$")
plt.tight_layout()
check_readable(fig)
plt.show()
jko_error = {step: (moments[-1] - exact_moments[-1]).abs().max().item() for step, (_, moments) in jko_paths.items()}
print("JKO error at tau = 2:", ", ".join(f"step {k}: {v:.4f}" for k, v in jko_error.items()))

# %% [markdown]
# *Figure: the mean and the standard deviation of $p_t$ on the OU clock, for the exact flow
# (line), the library's forward SDE simulated with particles (crosses) and JKO iterates with two
# step sizes. Look at the large steps: the implicit (JKO) iterates lag behind the flow, as implicit
# Euler does, and the lag shrinks in proportion to $\tau$. The standard deviation first grows
# (noise is added) while the mean decays.*
#
# > **Common misstatement →** "each DDPM reverse step is a JKO step of
# > $\mathrm{KL}(p\,\|\,p_\text{data})$".
# >
# > **Correct statement →** the *forward* (noising) process is the W2 gradient flow of
# > $\mathrm{KL}(p\,\|\,\mathcal N(0,I))$; the reverse process retraces its marginals $p_t$
# > backwards and is not the W2 gradient flow of a KL toward the data. The gradient flow of
# > $\mathrm{KL}(p\,\|\,p_\text{data})$ is Langevin dynamics toward $p_\text{data}$, which visits
# > different intermediate distributions. The check starts both from $p_1$ for Gaussian data
# > $\mathcal N(2, 0.5^2)$ and compares their variances at the moment their means are half-way.

# %%
show("7.7")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### 8. Exact likelihood through the probability-flow ODE
#
# **Why it should be true.** Follow a small blob of probability mass along the flow. The mass in
# the blob never changes (the ODE moves mass, it does not create it), so if the blob's volume
# grows, its density must fall in proportion. The rate at which a flow expands volume is the
# divergence of its velocity. So the log-density along a trajectory changes by $-\nabla\cdot v$ per
# unit time, and integrating from data to noise, where the density is a known Gaussian, gives
# the exact log-likelihood of a data point.
#
# **The algebra.** **Step 8.1.** Along $\dot x=v(x,t)$ the continuity equation gives
# $\frac{d}{dt}\log p(x(t),t)=\partial_t\log p+v\cdot\nabla\log p=-\nabla\cdot v$, the instantaneous change of
# variables (Chen et al. 2018, arXiv:1806.07366, Thm. 1). Integrating,
# $\log p_0(x_0)=\log p_1(x_1)+\int_0^1\nabla\cdot v(x_t,t)\,dt$. In 1D:
#
# **Predict.** For an incompressible flow ($\nabla\cdot v=0$), how does $\log p$ change along a
# trajectory? Does the answer depend on $p$?

# %%
x, t = sp.symbols("x t", real=True)
p, v = sp.Function("p")(x, t), sp.Function("v")(x, t)

dp_dt = -sp.diff(p * v, x)  # the continuity equation
total_derivative = dp_dt / p + v * sp.diff(sp.log(p), x)  # d/dt log p(x(t), t) along dx/dt = v
print("d/dt log p(x(t), t) =", sp.simplify(sp.expand(total_derivative)))
assert sp.simplify(sp.expand(total_derivative + sp.diff(v, x))) == 0

# %%
show("8.1")

# %% [markdown]
# **Against the library.** Plug the exact fields of the eight-Gaussian toy into the library's
# `FlowMatching` (its velocity) and `DDPM` (its noise predictor), each by overriding that one hook
# (`unigm.course.derivations.toys`), and call their unchanged `log_prob`: RK4 on the ODE with the exact
# divergence. `DDPM.log_prob` starts at $t=1/T$, the smallest noise it was trained on, so its
# truth is $\log p_{1/T}$.

# %%
show("8.2", "8.3")

# %% [markdown]
# **Predict.** Along the circle through the modes, the true density falls by a factor of about
# $e^{29}$ between two modes. Will the ODE likelihood follow it down into the valleys, or smooth
# them out like a trained model would? The ODE is solved with a finite number of RK4 steps (64 by
# default): where will that solver's error be largest, and what happens to it when the steps double?

# %%
toy = data.toy("eight_gaussians")
exact_flow = ExactFlowMatching(eight_gaussians("linear"))  # the library's FlowMatching, exact velocity
angle = torch.linspace(0, math.pi / 2, 49, dtype=torch.float64)  # a quarter of the circle: three modes
on_circle = 2 * torch.stack([torch.cos(angle), torch.sin(angle)], 1)  # (49, 2), radius 2 passes the modes
true_log_p = toy.log_prob(on_circle).double()
ode_log_p = {steps: exact_flow.log_prob(on_circle, steps=steps) for steps in (64, 128)}
ode_error = {steps: (log_p_ - true_log_p).abs() for steps, log_p_ in ode_log_p.items()}

fig, axes = plt.subplots(1, 2, figsize=(14, 4.5))
axes[0].plot(angle, true_log_p, "k", lw=3, label=r"true $\log p_\mathrm{data}$")
axes[0].plot(angle, ode_log_p[64], "o", ms=6, label="FlowMatching.log_prob, 64 RK4 steps")
axes[0].set_xlabel("angle on the circle of radius 2 (radians)")
axes[0].set_ylabel("log-density (nats)")
axes[0].set_title("ODE likelihood along a line")
axes[0].set_ylim(-42, 5)
axes[0].legend(loc="lower center")
for steps, marker in [(64, "o-"), (128, "s-")]:
    axes[1].semilogy(angle, ode_error[steps].clamp(min=1e-8), marker, ms=5, lw=1, label=f"{steps} RK4 steps")
axes[1].set_xlabel("angle on the circle of radius 2 (radians)")
axes[1].set_ylabel(r"$|\log p_\mathrm{ODE} - \log p_\mathrm{data}|$ (nats)")
axes[1].set_title("the error is the solver's")
axes[1].set_ylim(1e-9, 1e3)
axes[1].legend(loc="upper center")
plt.tight_layout()
check_readable(fig)
plt.show()
near_modes = true_log_p > true_log_p.max() - 3
print(f"within 3 nats of a mode: max error {ode_error[64][near_modes].max().item():.1e} nats (64 steps); "
      f"worst anywhere: {ode_error[64].max().item():.2f} (64 steps), {ode_error[128].max().item():.3f} (128 steps)")

# %% [markdown]
# *Figure: left, the true log-density on a quarter of the circle through the modes (line) and the
# library's `FlowMatching.log_prob` with the exact velocity (dots). Right, the error on a log scale
# for 64 and 128 RK4 steps. Look at the valleys, about 29 nats deep: the ODE follows them, because
# it is a change of variables, not a fit. The error is largest on the steep slopes between a mode
# and a valley, where the ODE must carry a point through a strongly contracting field near $t=0$;
# doubling the steps divides it by more than an order of magnitude (RK4 is fourth order). At the
# modes, where the data are, it is far below $10^{-3}$ nats already, which is what check 8.2 measures.*
#
# > **Common misstatement →** "diffusion models and flow matching have no likelihood; only
# > VAEs and normalising flows do".
# >
# > **Correct statement →** through the probability-flow ODE both define a continuous normalising
# > flow, whose likelihood is exact up to the ODE solver (check 8.4 shows it on a second data set,
# > the 25 narrower modes of `grid25`). That density is the ODE model's. The
# > stochastic sampler draws from the same $p_0$ only with the exact score and exact integration;
# > with a learned score the two samplers are two different models, and check 8.5 measures how far
# > apart they land when the score is only 10% too small.

# %%
show("8.4", "8.5")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### 9. Continuous normalising flows: the trace and Hutchinson's estimator
#
# **Why it should be true.** The divergence is the trace of the Jacobian $J=\partial f/\partial x$, and
# autograd gives $J$ only one row (or column) per backward pass: $d$ passes for the exact trace. But
# a random vector $v$ with $\mathbb E[vv^\top]=I$ "looks in every direction at once": $v^\top Jv$ picks up
# each diagonal entry with weight $v_i^2$ (on average 1) and each off-diagonal entry with a random
# sign (on average 0). One backward pass per probe, exact on average, at the price of noise from
# the off-diagonal entries (Hutchinson 1989; FFJORD, Grathwohl et al. 2019, arXiv:1810.01367).
#
# **The algebra.**
# - **Step 9.1.** The Jacobian $M_t=\partial x_t/\partial x_0$ of an ODE obeys $\dot M=JM$, and Jacobi's
#   formula gives $\frac{d}{dt}\log\det M=\mathrm{tr}(M^{-1}\dot M)=\mathrm{tr}\,J=\nabla\cdot f$.
# - **Step 9.2.** For Rademacher probes ($v_i=\pm1$), averaging $v^\top Av$ over all $2^3$ sign vectors
#   of a symbolic $3\times3$ matrix gives exactly the trace.
# - **Step 9.3.** Its variance: $v^\top Av=\sum_iA_{ii}+\sum_{i<j}(A_{ij}+A_{ji})v_iv_j$, so
#   $\mathrm{Var}=\sum_{i<j}(A_{ij}+A_{ji})^2$.
# - **Step 9.4.** Gaussian probes are also unbiased but have variance $\tfrac12\|A+A^\top\|_F^2$,
#   larger by $2\sum_iA_{ii}^2$.
#
# **Predict.** Do the diagonal entries $A_{ii}$ add any variance to the Rademacher estimate?

# %%
A = sp.Matrix(3, 3, lambda i, j: sp.Symbol(f"a_{i + 1}{j + 1}", real=True))
probes = [sp.Matrix(signs) for signs in itertools.product((-1, 1), repeat=3)]  # all 8 Rademacher vectors
estimates = [(v.T * A * v)[0] for v in probes]
mean = sp.expand(sp.Add(*estimates) / 8)
variance = sp.expand(sp.Add(*[(e - mean) ** 2 for e in estimates]) / 8)
print("E[v^T A v] =", mean)
assert sp.expand(mean - A.trace()) == 0
assert sp.expand(variance - sum((A[i, j] + A[j, i]) ** 2 for i in range(3) for j in range(i + 1, 3))) == 0
print("diagonal entries in the variance:", [A[i, i] for i in range(3) if variance.has(A[i, i])])

# %%
show("9.1", "9.2", "9.3", "9.4")

# %% [markdown]
# **Against the library.** This is the estimator every CNF in the course can use; one
# vector-Jacobian product per probe:

# %%
show_source(samplers.divergence_hutchinson)

# %% [markdown]
# The check runs `samplers.divergence_exact` and `samplers.divergence_hutchinson` on a small
# network: the exact trace equals the trace of the autograd Jacobian; a counter inside the
# network records $d$ backward passes for the exact trace and one per probe for Hutchinson;
# 20,000 independent estimates have the trace as mean and the predicted variance.

# %%
show("9.5")

# %% [markdown]
# **Predict.** For a small random network in $d=5$, draw 20,000 single-probe estimates at one
# point. Is any one estimate ever exactly the trace? Which spread is wider, Rademacher or Gaussian
# probes? And with $k$ probes, does the variance fall like $1/k$ or $1/\sqrt k$?

# %%
torch.manual_seed(0)
d, n = 5, 20_000
net = torch.nn.Sequential(torch.nn.Linear(d, 32), torch.nn.Tanh(), torch.nn.Linear(32, d)).double()
field = lambda y, time: net(y)  # noqa: E731  a velocity f(x, t) that ignores t
x_point, t_point = torch.randn(1, d, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
J = torch.autograd.functional.jacobian(net, x_point[0])  # (d, d)
_, exact_trace = samplers.divergence_exact(field, x_point, t_point)
g_probe = torch.Generator().manual_seed(0)
_, rademacher = samplers.divergence_hutchinson(field, x_point.expand(n, d), t_point.expand(n), generator=g_probe)
v_gauss = torch.randn(n, d, generator=g_probe, dtype=torch.float64)
gaussian = ((v_gauss @ J) * v_gauss).sum(1)  # v^T J v with Gaussian probes, by hand
var_rademacher = sum((J[i, j] + J[j, i]).item() ** 2 for i in range(d) for j in range(i + 1, d))  # step 9.3
var_gaussian = 0.5 * ((J + J.T) ** 2).sum().item()  # step 9.4
probe_counts = [1, 2, 4, 8, 16, 32]
measured_var = [samplers.divergence_hutchinson(field, x_point.expand(4000, d), t_point.expand(4000), probes=k,
                                               generator=g_probe)[1].var().item() for k in probe_counts]

fig, axes = plt.subplots(1, 2, figsize=(14, 4.5))
bins = torch.linspace(exact_trace.item() - 4 * var_gaussian**0.5, exact_trace.item() + 4 * var_gaussian**0.5, 80)
axes[0].hist(rademacher.numpy(), bins=bins.numpy(), alpha=0.6, label=f"Rademacher, var {rademacher.var().item():.3f}")
axes[0].hist(gaussian.numpy(), bins=bins.numpy(), alpha=0.5, label=f"Gaussian, var {gaussian.var().item():.3f}")
axes[0].axvline(exact_trace.item(), color="k", lw=3, label=f"exact trace {exact_trace.item():.3f}")
axes[0].set_xlabel(r"single-probe estimate $v^\top J v$ (1/unit time)")
axes[0].set_ylabel("count (of 20,000)")
axes[0].set_title("one probe: unbiased, noisy")
axes[0].set_ylim(0, 1.4 * axes[0].get_ylim()[1])  # room for the legend above the bars
axes[0].legend(loc="upper right")
ks = torch.tensor(probe_counts, dtype=torch.float64)
axes[1].loglog(ks, var_rademacher / ks, "k", label=r"predicted $\sum_{i<j}(J_{ij}+J_{ji})^2/k$")
axes[1].loglog(ks, measured_var, "o", ms=8, label="measured (4,000 estimates each)")
axes[1].set_xlabel("number of probes $k$ (backward passes)")
axes[1].set_ylabel("variance of the estimate (1/unit time$^2$)")
axes[1].set_title("variance falls like $1/k$")
axes[1].legend()
plt.tight_layout()
check_readable(fig)
plt.show()

# %% [markdown]
# *Figure: left, 20,000 single-probe estimates of the divergence of a small network at one point,
# with Rademacher and Gaussian probes, around the exact trace (black line). Look at how wide the
# spread is compared with the trace itself, and how the Gaussian histogram is wider (step 9.4).
# The Rademacher estimates take at most 16 values: one per sign pattern of $v$ (up to a global flip,
# which leaves $v^\top Jv$ unchanged), weighted equally, and their average is exactly the trace.
# Right, the variance against the number of probes on log-log axes: a slope of $-1$, on the
# predicted line. To halve the noise's standard deviation, four times as many probes. With $d=5$
# the exact trace costs 5 passes, so Hutchinson only pays off in high dimension.*

# %% tags=["checks"]
# Part III: what the figures above must show
assert jko_error[0.1] < jko_error[0.5] / 3, f"JKO error must shrink with the step: {jko_error}"
particle_error = (particle_moments[-1] - torch.tensor([m0 * math.exp(-clock_end), exact_moments[-1, 1].item()])).abs()
assert particle_error.max().item() < 0.02, f"library SDE particles vs exact OU moments: {particle_error}"
assert ode_error[64][near_modes].max().item() < 1e-3, "ODE log p near the modes (64 steps)"
assert ode_error[128].max().item() < 0.1, "ODE log p along the circle (128 steps)"
assert ode_error[128].max().item() < ode_error[64].max().item() / 10, "the solver error must shrink with the steps"
standard_error = (var_rademacher / n) ** 0.5
assert abs(rademacher.mean().item() - exact_trace.item()) < 4 * standard_error, "Hutchinson must be unbiased"
assert abs(rademacher.var().item() / var_rademacher - 1) < 0.05, "Rademacher variance (step 9.3)"
assert abs(gaussian.var().item() / var_gaussian - 1) < 0.1, "Gaussian-probe variance (step 9.4)"
for k, measured in zip(probe_counts, measured_var):
    assert abs(measured * k / var_rademacher - 1) < 0.15, f"variance with {k} probes: {measured}"
print("Part III checks passed")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Check your understanding (Part III)
#
# 1. The forward noising process is a W2 gradient flow. Of which functional, and why is the reverse
#    (generating) process *not* the gradient flow of $\mathrm{KL}(p\,\|\,p_\text{data})$?
# 2. A JKO step is an *implicit* step. What does that buy over an explicit one, and what did the
#    figure show it costs at large $\tau$?
# 3. To compute $\log p_\theta(x)$ of a trained flow-matching model, in which direction do you
#    integrate the ODE, and what do you add up along the way?
# 4. In $d=3{,}072$ (a 32x32 colour image), how many backward passes does the exact trace cost per
#    ODE step, and what does Hutchinson trade for the saving?

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Part IV. Samplers, denoisers, and small facts
#
# ### 10. DDIM is an Euler step of the probability-flow ODE
#
# **Why it should be true.** Result 3 showed that in the variables $\bar x=x/\sqrt{\bar\alpha}$ (the
# data plus noise, unscaled) and $\bar\sigma=\sqrt{(1-\bar\alpha)/\bar\alpha}$ (the size of that noise),
# every Gaussian path is "data plus $\bar\sigma$ times noise". Lowering the noise level from $\bar\sigma_t$
# to $\bar\sigma_s$ while *keeping the predicted noise fixed* removes exactly
# $(\bar\sigma_t-\bar\sigma_s)\,\varepsilon_\theta$: a straight step along the current slope. That is what
# DDIM does (Song, Meng & Ermon 2021, arXiv:2010.02502), and it is the definition of an Euler step.
#
# **The algebra.** DDIM steps from $t$ to $s<t$ by predicting
# $\hat x_0=(x_t-\sqrt{1-\bar\alpha_t}\,\varepsilon_\theta)/\sqrt{\bar\alpha_t}$ and re-noising it:
# $x_s=\sqrt{\bar\alpha_s}\,\hat x_0+\sqrt{1-\bar\alpha_s-\sigma^2}\,\varepsilon_\theta+\sigma z$ with
# $\sigma=\eta\sqrt{\tfrac{1-\bar\alpha_s}{1-\bar\alpha_t}}\sqrt{1-\tfrac{\bar\alpha_t}{\bar\alpha_s}}$. Here is the library's step:

# %%
show_source(samplers.ddim_step)

# %% [markdown]
# - **Step 10.1.** With $\eta=0$, divide by $\sqrt{\bar\alpha_s}$: $\bar x_s=\bar x_t+(\bar\sigma_s-\bar\sigma_t)\,\varepsilon_\theta$,
#   one Euler step in $(\bar x,\bar\sigma)$.
# - **Step 10.2.** And it is an Euler step *of the probability-flow ODE*: with the score
#   $-\varepsilon/\sqrt{1-\bar\alpha}$, the VP ODE $\dot x=-\tfrac\beta2(x+\nabla\log p_t)$ becomes
#   $d\bar x/d\bar\sigma=\varepsilon$ (step 3.6 with $\lambda=\bar\sigma$).
#
# **Predict.** In the variables $(\bar x,\bar\sigma)$, is one DDIM step a curve or a straight line?
# With which slope?

# %%
a_t, a_s = sp.symbols("alphabar_t alphabar_s", positive=True)
x, eps = sp.symbols("x epsilon", real=True)  # x = x_t, eps = eps_theta(x_t, t)

x0_hat = (x - sp.sqrt(1 - a_t) * eps) / sp.sqrt(a_t)
x_s = sp.sqrt(a_s) * x0_hat + sp.sqrt(1 - a_s) * eps  # DDIM with eta = 0
sigma_bar_of = lambda alpha_bar_: sp.sqrt((1 - alpha_bar_) / alpha_bar_)  # noqa: E731
euler = x / sp.sqrt(a_t) + (sigma_bar_of(a_s) - sigma_bar_of(a_t)) * eps  # x_bar + (step in sigma_bar) * slope
assert sp.simplify(x_s / sp.sqrt(a_s) - euler) == 0

# %% [markdown]
# A straight line of slope $\varepsilon_\theta$. The remaining steps: 10.2 above; **10.3**, any
# $\eta\in[0,1]$ keeps the marginals $q(x_s\mid x_0)=\mathcal N(\sqrt{\bar\alpha_s}x_0,1-\bar\alpha_s)$ (the deterministic part
# carries variance $1-\bar\alpha_s-\sigma^2$, the noise the missing $\sigma^2$; above $\eta=1$ that
# variance turns negative in the last steps, so `ddim_step` refuses $\eta>1$); **10.4**, at $\eta=1$,
# $\sigma^2$ is DDPM's posterior variance and the mean DDPM's posterior mean: DDIM with $\eta=1$ is the
# ancestral sampler.

# %%
show("10.1", "10.2", "10.3", "10.4")

# %% [markdown]
# **Against the library.** `samplers.ddim` ($\eta=0$) equals the library's `euler_step` applied to
# $d\bar x/d\bar\sigma=\varepsilon$ on the matching $\bar\sigma$ grid, and `samplers.ddim` with
# $\eta=1$ and the same random stream reproduces `DDPM.sample`.

# %%
show("10.5", "10.6")

# %% [markdown]
# **Predict.** Six DDIM steps from $t=0.5$ to $0$ on the eight-Gaussian toy (exact noise
# predictor), and six Euler steps of $d\bar x/d\bar\sigma=\varepsilon$ on the matching $\bar\sigma$ grid:
# will the iterates coincide to plotting accuracy, to rounding error, or only in the limit of many
# steps? And will either land on the exact ODE solution?

# %%
exact_ddpm = ExactDDPM(mixture_vp)  # the library's DDPM with the exact noise predictor of the mixture
t_start, ddim_steps = 0.5, 6
x_start = mixture_vp.sample(5, t_start, torch.Generator().manual_seed(3))
times = samplers.time_grid(ddim_steps, t_start, 0.0)
alpha_bar_grid = exact_ddpm.alpha_bar(times)
sigma_grid = sigma_bar(alpha_bar_grid)


def eps_in_sigma_bar(x_bar, sigma):
    """The PF-ODE in (x_bar, sigma_bar): d x_bar / d sigma_bar = eps(x, t), x = sqrt(abar) x_bar."""
    a_ = 1 / (1 + sigma**2)
    return exact_ddpm.predict_eps(x_bar * per_example(a_, x_bar).sqrt(), t_of_alpha_bar_vp_linear(a_))


ddim_path = []
samplers.ddim(exact_ddpm.predict_eps, x_start, ddim_steps, exact_ddpm.alpha_bar, t_start=t_start,
              trajectory=ddim_path)
ddim_bar = torch.stack(ddim_path) / alpha_bar_grid.sqrt()[:, None, None]  # (steps + 1, 5, 2) in x_bar
euler_bar = [x_start / alpha_bar_grid[0].sqrt()]
for s0_, s1_ in zip(sigma_grid[:-1], sigma_grid[1:]):
    euler_bar.append(samplers.euler_step(eps_in_sigma_bar, euler_bar[-1], s0_, s1_))
euler_bar = torch.stack(euler_bar)
reference = []
samplers.rk4(eps_in_sigma_bar, euler_bar[0], 200, t_start=sigma_grid[0].item(), t_end=0.0, trajectory=reference)
reference_sigma = samplers.time_grid(200, sigma_grid[0].item(), 0.0)
reference = torch.stack(reference)
ddim_euler_gap = (ddim_bar - euler_bar).abs().max().item()

fig, ax = plt.subplots(figsize=(10, 5))
for k in range(len(x_start)):
    ax.plot(reference_sigma, reference[:, k, 0], color="grey", lw=1.5,
            label="exact PF-ODE (RK4, 200 steps)" if k == 0 else None)
    ax.plot(sigma_grid, ddim_bar[:, k, 0], "o-", color="C0", ms=9, lw=1.5, label="DDIM iterates" if k == 0 else None)
    ax.plot(sigma_grid, euler_bar[:, k, 0], "x", color="C3", ms=10, mew=2, label="Euler iterates" if k == 0 else None)
ax.invert_xaxis()
ax.set_xlabel(r"noise level $\bar\sigma=\sqrt{(1-\bar\alpha)/\bar\alpha}$ (dimensionless; time runs to the right)")
ax.set_ylabel(r"$\bar x_1 = x_1/\sqrt{\bar\alpha}$ (data units)")
ax.set_title("DDIM = Euler on the PF-ODE, in $(\\bar x, \\bar\\sigma)$")
ax.legend()
check_readable(fig)
plt.show()
print(f"max |DDIM - Euler| over all iterates: {ddim_euler_gap:.1e}; "
      f"endpoint error of both vs the exact ODE: {(euler_bar[-1] - reference[-1]).abs().max().item():.3f}")

# %% [markdown]
# *Figure: the first coordinate of five trajectories in the variables $(\bar x,\bar\sigma)$, from
# $t=0.5$ (left) to the data (right). DDIM's iterates (circles joined by straight segments) and
# Euler's (crosses) are the same points, to rounding error. Look at the grey curves: each DDIM step
# follows the tangent of the exact ODE solution and drifts off it where the solution bends (near
# the end, where the trajectories commit to a mode): DDIM inherits Euler's first-order error.*
#
# > **Common misstatement →** DDIM with $\eta>0$ implemented by shrinking the noise coefficient to
# > $\sqrt{1-\bar\alpha_s-\sigma^2}$ but forgetting to add $\sigma z$.
# >
# > **Correct statement →** the update needs $+\sigma z$; without it the spread of $x_s$ around
# > $\sqrt{\bar\alpha_s}x_0$ is $1-\bar\alpha_s-\sigma^2$ instead of $1-\bar\alpha_s$ (step 10.3). The
# > check takes one large $\eta=1$ step with the true noise, with and without the term.

# %%
show("10.7")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### 11. Tweedie's formula
#
# **Why it should be true.** You see a noisy point $x_t$ and must guess the clean $x_0$. Dividing by
# $\sqrt{\bar\alpha}$ undoes the scaling but not the noise. The score tells you which way the density of
# noisy points increases, i.e. where the clean points that could have produced $x_t$ are more
# likely to be: step that way, by the noise variance $1-\bar\alpha$, and you land on the posterior mean
# (Robbins 1956; Efron 2011, *Tweedie's formula and selection bias*):
# $\mathbb E[x_0\mid x_t]=\big(x_t+(1-\bar\alpha)\nabla\log p_t(x_t)\big)/\sqrt{\bar\alpha}$.
#
# **The algebra.**
# - **Step 11.1.** The Gaussian kernel satisfies
#   $(1-\bar\alpha)\,\partial_xN(x;\sqrt{\bar\alpha}x_0,1-\bar\alpha)+x\,N=\sqrt{\bar\alpha}\,x_0\,N$. Integrate
#   against $p_0(x_0)$ and divide by $p_t(x)$: the left side becomes $(1-\bar\alpha)\nabla\log p_t+x$,
#   the right side $\sqrt{\bar\alpha}\,\mathbb E[x_0\mid x]$.
# - **Step 11.2.** Data on two atoms: Bayes' rule and Tweedie coincide symbolically (library check).
#
# For Gaussian data $\mathcal N(m,v)$ the posterior mean is linear in $x_t$. **Predict.** What is
# its slope when the data has no spread ($v\to0$)? When it is very spread out ($v\to\infty$)?

# %%
a = sp.Symbol("alphabar", positive=True)
x, x_0, m_data = sp.symbols("x x_0 m", real=True)
v_data = sp.Symbol("v", positive=True)

kernel = sp.exp(-(x - sp.sqrt(a) * x_0) ** 2 / (2 * (1 - a))) / sp.sqrt(2 * sp.pi * (1 - a))
assert sp.simplify((1 - a) * sp.diff(kernel, x) + x * kernel - sp.sqrt(a) * x_0 * kernel) == 0  # step 11.1

score_t = -(x - sp.sqrt(a) * m_data) / (a * v_data + 1 - a)  # p_t = N(sqrt(a) m, a v + 1 - a)
tweedie = (x + (1 - a) * score_t) / sp.sqrt(a)
bayes = m_data + sp.sqrt(a) * v_data / (a * v_data + 1 - a) * (x - sp.sqrt(a) * m_data)  # Gaussian conditioning
assert sp.simplify(tweedie - bayes) == 0
slope = sp.diff(tweedie, x)
print("slope:", sp.simplify(slope), "  v -> 0:", sp.limit(slope, v_data, 0),
      "  v -> oo:", sp.limit(slope, v_data, sp.oo))

# %% [markdown]
# No spread: every noisy point is explained by the one clean value $m$ (slope 0). Huge spread: the
# prior says nothing, and the best guess is the rescaled observation (slope $1/\sqrt{\bar\alpha}$).
# Real data sit in between, and are not Gaussian: then the posterior mean bends.

# %%
show("11.1", "11.2")

# %% [markdown]
# **Against the library.** On the eight-Gaussian toy, Tweedie with the library's `DDPM.score`
# (exact predictor) equals the closed-form posterior mean, and on pairs drawn with `DDPM.noise`
# the residual $x_0-\mathbb E[x_0\mid x_t]$ is uncorrelated with functions of $x_t$, the defining
# property of a conditional expectation.

# %%
show("11.3")

# %% [markdown]
# **Predict.** Data in 1D: two modes, at $-2$ (weight 0.3) and $1.5$ (weight 0.7), each of width
# 0.4. Noise to $\bar\alpha=0.3$. Where does the naive guess $x_t/\sqrt{\bar\alpha}$ go most wrong? What
# does the posterior mean do between the two modes?

# %%
mixture_1d = GaussianMixtureOnPath([[-2.0], [1.5]], std=0.4, path=vp_path(), weights=[0.3, 0.7])
ddpm_1d = ExactDDPM(mixture_1d)  # the library's DDPM with the exact noise predictor of this mixture
alpha_bar_1d = 0.3
t_1d = t_of_alpha_bar_vp_linear(torch.tensor(alpha_bar_1d, dtype=torch.float64))
x_grid = torch.linspace(-4, 4, 301, dtype=torch.float64)[:, None]  # (301, 1)
t_batch = t_1d.expand(len(x_grid))
with torch.no_grad():
    tweedie_1d = (x_grid + (1 - alpha_bar_1d) * ddpm_1d.score(x_grid, t_batch)) / alpha_bar_1d**0.5
exact_posterior = mixture_1d.posterior_mean(x_grid, t_1d)
g_pairs = torch.Generator().manual_seed(0)
x0_pairs = mixture_1d.sample(4000, 0.0, g_pairs)
noise_pairs = torch.randn(x0_pairs.shape, generator=g_pairs, dtype=torch.float64)
xt_pairs = ddpm_1d.noise(x0_pairs, noise_pairs, t_1d.expand(4000))

fig, ax = plt.subplots(figsize=(10, 5))
ax.scatter(xt_pairs[:, 0], x0_pairs[:, 0], s=2, alpha=0.25, color="grey", label="pairs $(x_t, x_0)$")
ax.plot(x_grid[:, 0], exact_posterior[:, 0], "k", lw=5, label=r"exact $\mathbb{E}[x_0 \mid x_t]$ (Bayes)")
ax.plot(x_grid[:, 0], tweedie_1d[:, 0], "C1--", lw=2.5, label="Tweedie with DDPM.score")
ax.plot(x_grid[:, 0], x_grid[:, 0] / alpha_bar_1d**0.5, "C0:", lw=2, label=r"naive $x_t/\sqrt{\bar\alpha}$")
ax.set_xlim(-4, 4)
ax.set_ylim(-4, 4)
ax.set_xlabel(r"noisy observation $x_t$ (data units), $\bar\alpha = 0.3$")
ax.set_ylabel("clean value $x_0$ (data units)")
ax.set_title("the best denoiser is a score")
ax.legend(loc="upper left")
check_readable(fig)
plt.show()

# %% [markdown]
# *Figure: 4,000 pairs $(x_t,x_0)$ (grey), the exact posterior mean computed by Bayes' rule from the
# mixture (thick black), Tweedie's formula with the library's `DDPM.score` (orange dashes, on top
# of it) and the naive rescaling (blue dots). Look between the modes: the posterior mean jumps from
# one mode to the other, a steep S-curve, because a point there is explained by either; the naive
# guess shoots far beyond the data. The grey cloud is the spread around the mean: the best denoiser
# still cannot tell which mode a point in the middle came from.*
#
# ### 12. Small facts, each checked
#
# Five facts that are short to state and easy to get wrong. Each has a one-line reason.
#
# **WaveNet's receptive field** (van den Oord et al. 2016, arXiv:1609.03499). A causal convolution
# with kernel $K$ and dilation $d$ sees $(K-1)d$ past inputs besides the current one; with
# dilations $1,2,\dots,2^{L-1}$ the receptive field is $1+(K-1)(2^L-1)$: the layers' reaches add up.
#
# **Predict.** Ten layers of kernel 2: 1023, 1024 or 1025 samples?

# %%
K, L, l_ = sp.symbols("K L l", positive=True, integer=True)
receptive_field = 1 + sp.summation((K - 1) * 2**l_, (l_, 0, L - 1))  # the current sample + each layer's reach
print("receptive field = 1 +", sp.factor(receptive_field - 1), "   K = 2, L = 10:",
      receptive_field.subs({K: 2, L: 10}))
assert sp.simplify(receptive_field - (1 + (K - 1) * (2**L - 1))) == 0

# %% [markdown]
# The library's `unigm.autoregressive.DilatedCausalStack` is probed with an impulse: exactly
# `receptive_field` outputs respond, starting at the impulse (nothing before it: causal).

# %%
show("12.1", "12.2")

# %% [markdown]
# > **Common misstatement →** "ten layers of kernel 2 see 1025 samples" ($2^{10}+1$).
# >
# > **Correct statement →** $1+(2-1)(2^{10}-1)=1024$: the current sample and 1023 before it. The
# > check asks autograd which inputs the stack's last output depends on, a second probe beside the
# > impulses of 12.2.

# %%
show("12.3")

# %% [markdown]
# **FSQ levels** (Mentzer et al. 2023, arXiv:2309.15505). Each channel is squashed into an
# interval that contains exactly $L$ integers and rounded: $\{-m,\dots,m\}$ for $L=2m+1$,
# $\{-m,\dots,m-1\}$ for $L=2m$. The codebook is the product, $\prod_iL_i$ codes.
#
# **Predict.** How many codes does `FSQ((8, 5, 5, 5))` have?

# %%
show("12.4", "12.5")

# %% [markdown]
# > **Common misstatement →** "FSQ with $L$ levels rounds to the $2L+1$ integers
# > $-L,\dots,L$".
# >
# > **Correct statement →** the bound is chosen so that exactly $L$ values occur per channel; the
# > library's `FSQ((8, 5, 5, 5))` has 1000 codes, not $17\cdot11^3$: its mixed-radix indices fill
# > exactly $0,\dots,999$ and decode back to the same codes.
#
# A fixed codebook cannot collapse the way a learned one can, but that does not make every code
# used: an encoder whose outputs fill only part of the box reaches only part of the grid.
#
# > **Common misstatement →** "FSQ has no dead codes: all $\prod_iL_i$ codes are used".
# >
# > **Correct statement →** every FSQ output is a codebook entry, but which entries occur depends
# > on the encoder; check 12.14 feeds outputs spread along a plane and counts the codes reached.

# %%
show("12.6", "12.14")

# %% [markdown]
# **VQ-VAE stop-gradients** (van den Oord, Vinyals & Kavukcuoglu 2017, arXiv:1711.00937). The
# straight-through copy $z_q=z_e+\mathrm{sg}(e-z_e)$ has the value $e$ and passes the decoder's
# gradient to $z_e$ unchanged; the codebook term $\|\mathrm{sg}(z_e)-e\|^2$ moves only the
# codebook and the commitment term $\|z_e-\mathrm{sg}(e)\|^2$ only the encoder.

# %%
show("12.7", "12.8")

# %% [markdown]
# **Consistency-training pairs** (Song, Dhariwal, Chen & Sutskever 2023, arXiv:2303.01469). Given
# $x_0$, the conditional probability-flow ODE of the VE path $\sigma(t)=t$ is
# $\dot x=(x-x_0)/t$, whose solution is $x_t=x_0+tz$ for a fixed $z$. Pairs
# $(x_0+t_{n+1}z,\ x_0+t_nz)$ therefore lie on one ODE trajectory.
#
# **Predict.** If the two points of a pair get *independent* noise, how far apart are they as the
# step $t_{n+1}-t_n$ shrinks to zero?

# %%
show("12.9")

# %% [markdown]
# About $\sqrt2\,t$ per dimension, however small the step: they are not on one trajectory.
#
# > **Common misstatement →** consistency-training pairs drawn with independent noise,
# > $(x_0+t_{n+1}z,\ x_0+t_nz')$.
# >
# > **Correct statement →** the same $z$ for both: then $x-x_0$ stays proportional to the noise
# > level, and the library's VE probability-flow ODE (`probability_flow_ve` with `g_squared_ve`,
# > the geometric $\sigma(t)$ of Song et al.) carries $x_{t_{n+1}}$ onto $x_{t_n}$.

# %%
show("12.10")

# %% [markdown]
# **The Euler-Maruyama step of the VP reverse SDE.** Going from $t$ to $t-h$ with drift
# $f-g^2\nabla\log p_t$: $x\leftarrow x+h\beta(\tfrac x2+\nabla\log p_t)+\sqrt{\beta h}\,z$. To
# first order in $h$ this is DDPM's ancestral mean. The library's `euler_maruyama` with
# `reverse_sde_vp` takes exactly that step.

# %%
show("12.11", "12.12")

# %% [markdown]
# **The VE SDE's diffusion coefficient.** With $\sigma(t)=\sigma_\min(\sigma_\max/\sigma_\min)^t$ the
# variance-exploding SDE $dx=g(t)\,dW$ needs $g^2=d\sigma^2/dt=2\sigma^2\log(\sigma_\max/\sigma_\min)$
# (the factor 2 is easy to drop). Check 12.13 differentiates it and then runs the library's VE
# reverse SDE and probability-flow ODE on Gaussian data, where the variance can be followed exactly
# through every step: both must bring the prior back to the data's variance.

# %%
show("12.13")

# %% tags=["checks"]
# Part IV: what the figures above must show
assert ddim_euler_gap < 1e-10, f"DDIM and Euler iterates differ by {ddim_euler_gap:.1e}"
tweedie_gap = (tweedie_1d - exact_posterior).abs().max().item()
assert tweedie_gap < 1e-9, f"Tweedie with DDPM.score vs the exact posterior mean: {tweedie_gap:.1e}"
print("Part IV checks passed")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Check your understanding (Part IV)
#
# 1. DDIM with 10 steps is deterministic and fast. Name the ODE it solves, the variables in which
#    it is an Euler step, and the order of its error.
# 2. What must be added to a DDIM step with $\eta>0$, and what goes wrong in the marginals if it is
#    forgotten?
# 3. A trained DDPM gives you $\varepsilon_\theta(x_t,t)$. Write its estimate of $\mathbb E[x_0\mid x_t]$ in
#    one line. Why does it look blurry at large $t$?
# 4. A 12-layer WaveNet with kernel 3: what is its receptive field?

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Part V. Two questions from lecture 01
#
# Lecture 01 asked three questions. *Is flow matching diffusion?* was answered by result 3. The
# other two are answered here, each with a check.
#
# ### (a) Is diffusion a VAE?
#
# **Yes: a hierarchical VAE whose encoder is fixed.** Take the latents to be the noisy copies
# $x_{t_1},\dots,x_{t_T}$ of $x_0$ (Sohl-Dickstein et al. 2015, arXiv:1503.03585; Ho et al. 2020).
# The *encoder* $q(x_{1:T}\mid x_0)$ is the forward noising chain: nothing is learnt. The *decoder* is
# the reverse chain $p_\theta(x_s\mid x_t)$, $s=t-1/T$, Gaussian with DDPM's mean and the posterior
# variance. The ELBO splits over the steps (Ho et al. 2020, eq. 5):
# $$-\mathrm{ELBO}=\mathbb E_q\Big[\underbrace{\mathrm{KL}(q(x_1\mid x_0)\,\|\,p(x_1))}_{\text{no parameters}}+\sum_{t>1/T}\mathrm{KL}\big(q(x_s\mid x_t,x_0)\,\|\,p_\theta(x_s\mid x_t)\big)-\log p_\theta(x_0\mid x_{1/T})\Big].$$
# Both distributions in each KL are Gaussians with the *same* variance
# $\sigma^2=\beta(1-\bar\alpha_s)/(1-\bar\alpha_t)$, $\beta=1-\bar\alpha_t/\bar\alpha_s$, so the KL is a squared
# distance between means, and both means are "$x_t$ minus some noise": the true noise for $q$,
# the predicted noise for $p_\theta$. Each KL is a **weighted** noise-prediction error.
#
# **Predict.** Will the weight of a step in the ELBO be the same for every $t$ (as in
# $L_\text{simple}$)? If not, which steps does the ELBO care about most?

# %%
a_t, a_s = sp.symbols("alphabar_t alphabar_s", positive=True)
x, eps, eps_theta = sp.symbols("x_t epsilon epsilon_theta", real=True)

alpha_step = a_t / a_s  # 1 - beta of this step
beta_step = 1 - alpha_step
posterior_variance = beta_step * (1 - a_s) / (1 - a_t)
mean_q = (x - beta_step / sp.sqrt(1 - a_t) * eps) / sp.sqrt(alpha_step)  # q(x_s | x_t, x_0), x_0 written through eps
mean_p = (x - beta_step / sp.sqrt(1 - a_t) * eps_theta) / sp.sqrt(alpha_step)  # the model's p(x_s | x_t)
kl = (mean_q - mean_p) ** 2 / (2 * posterior_variance)  # KL of two Gaussians with one variance
snr_of = lambda alpha_bar_: alpha_bar_ / (1 - alpha_bar_)  # noqa: E731
elbo_weight = (snr_of(a_s) / snr_of(a_t) - 1) / 2
assert sp.simplify(kl - elbo_weight * (eps - eps_theta) ** 2) == 0
kl_weight = sp.factor(sp.simplify(kl / (eps - eps_theta) ** 2))
display(Markdown(f"$$\\mathrm{{KL}} = {sp.latex(kl_weight)}\\,(\\varepsilon-\\varepsilon_\\theta)^2 = \\tfrac12"
                 f"\\Big(\\tfrac{{\\mathrm{{SNR}}(s)}}{{\\mathrm{{SNR}}(t)}}-1\\Big)(\\varepsilon-\\varepsilon_\\theta)^2$$"))

# %% [markdown]
# **Numerically, with the library's schedule.** An (untrained, seeded) `DDPM` and a batch of two
# moons: at several steps $t=i/T$, $q(x_s\mid x_t,x_0)$ is built from $x_0$ (Ho et al. 2020,
# eq. 7, no $\varepsilon$ in sight), $p_\theta(x_s\mid x_t)$ from the network's $\varepsilon_\theta$, and the KL
# computed by `torch.distributions` must equal $\tfrac12(\mathrm{SNR}(s)/\mathrm{SNR}(t)-1)\,\|\varepsilon-\varepsilon_\theta\|^2$,
# whatever the network (the identity is about the chain, not the training).
#
# **Predict.** The network below is untrained. Will the KL still equal the weighted error to
# rounding precision, or only once the model is trained?

# %%
torch.manual_seed(0)
ddpm = DDPM((2,)).double()
T = ddpm.config.num_steps
x0_batch = data.toy("two_moons").sample(256, torch.Generator().manual_seed(0)).double()
g_noise = torch.Generator().manual_seed(1)
vae_gaps = {}
for i in (2, 10, 100, 500, 1000):
    t_i, s_i = torch.tensor(i / T, dtype=torch.float64), torch.tensor((i - 1) / T, dtype=torch.float64)
    abar_t, abar_s = ddpm.alpha_bar(t_i), ddpm.alpha_bar(s_i)
    alpha_i = abar_t / abar_s
    noise = torch.randn(x0_batch.shape, generator=g_noise, dtype=torch.float64)
    xt_batch = ddpm.noise(x0_batch, noise, t_i.expand(len(x0_batch)))
    posterior_std = ((1 - alpha_i) * (1 - abar_s) / (1 - abar_t)).sqrt()
    posterior_mean = (abar_s.sqrt() * (1 - alpha_i) * x0_batch
                      + alpha_i.sqrt() * (1 - abar_s) * xt_batch) / (1 - abar_t)
    with torch.no_grad():
        eps_pred = ddpm.predict_eps(xt_batch, t_i.expand(len(x0_batch)))
    model_mean = (xt_batch - (1 - alpha_i) / (1 - abar_t).sqrt() * eps_pred) / alpha_i.sqrt()
    kl_batch = torch.distributions.kl_divergence(torch.distributions.Normal(posterior_mean, posterior_std),
                                                 torch.distributions.Normal(model_mean, posterior_std)).sum(1)
    weighted_mse = 0.5 * (snr(abar_s) / snr(abar_t) - 1) * (noise - eps_pred).pow(2).sum(1)
    vae_gaps[i] = ((kl_batch - weighted_mse).abs().max() / weighted_mse.abs().max()).item()
    print(f"step i = {i:4d}: mean KL {kl_batch.mean().item():10.4f} nats, weighted eps-MSE "
          f"{weighted_mse.mean().item():10.4f}, relative gap {vae_gaps[i]:.1e}")

# %% [markdown]
# Equal at every step. So the ELBO of a DDPM is $\sum_t w_t\,\mathbb E\|\varepsilon-\varepsilon_\theta\|^2$ plus two
# end terms, with $w_t=\tfrac12(\mathrm{SNR}(s)/\mathrm{SNR}(t)-1)$, and **$L_\text{simple}$ is that ELBO with
# every $w_t$ replaced by 1**. Here are the weights the ELBO would use:

# %%
steps_i = torch.arange(2, T + 1, dtype=torch.float64)
elbo_weights = 0.5 * (snr(ddpm.alpha_bar((steps_i - 1) / T)) / snr(ddpm.alpha_bar(steps_i / T)) - 1)
fig, ax = plt.subplots(figsize=(9, 4.5))
ax.loglog(steps_i / T, elbo_weights, label=r"ELBO: $w_t=\frac{1}{2}(\mathrm{SNR}(s)/\mathrm{SNR}(t)-1)$")
ax.loglog(steps_i / T, torch.ones_like(steps_i), "--", label=r"$L_\mathrm{simple}$: $w_t = 1$")
ax.set_xlabel("time $t = i/T$ of the step (dimensionless)")
ax.set_ylabel(r"weight of $\|\varepsilon-\varepsilon_\theta\|^2$ (nats per unit)")
ax.set_title("the ELBO's weights and DDPM's")
ax.legend()
check_readable(fig)
plt.show()

# %% [markdown]
# *Figure: the weight each step's noise-prediction error gets in the ELBO (solid) and in
# $L_\text{simple}$ (dashed), for the library's schedule with $T=1000$. Look at the slope: the ELBO
# weight falls roughly in proportion to $1/i$ over the first steps, by about two orders of magnitude in
# all, so the likelihood is dominated by the nearly clean steps, which matter little for how
# samples look. Ho et al. found
# that dropping the weights ($L_\text{simple}$) gives better samples; the price is that the trained
# model no longer maximises its bound.*
#
# ### (b) Are GANs and diffusion related?
#
# **Yes, through scores.** Result 4.3: the optimal discriminator's logit is
# $\ell(x)=\log p_\text{data}(x)-\log p_g(x)$. Its gradient is
# $\nabla\ell=\nabla\log p_\text{data}-\nabla\log p_g$, **a difference of two scores**, the very
# objects score-based models learn. And result 7 says which way it points: moving generator
# samples along $\nabla\ell$ is the W2 gradient flow of $\mathrm{KL}(p_g\,\|\,p_\text{data})$, whose
# velocity is $-\nabla\frac{\delta}{\delta p_g}\mathrm{KL}=\nabla\log p_\text{data}-\nabla\log p_g$. A GAN
# generator climbing its discriminator's logit and a diffusion sampler following a score are two
# approximations of the same flow. DiffFlow (Zhang et al. 2023, arXiv:2307.02159) writes both as
# one SDE whose drift is a weighted combination of the two scores; lecture 05 builds on it.
#
# **Predict.** The discriminator never sees a score. Is the gradient of its optimal logit a
# difference of scores exactly, or only approximately? And does a small push of $p_g$'s samples
# along $\nabla\ell$ lower $\mathrm{KL}(p_g\,\|\,p_\text{data})$ at the rate $\mathbb E_{p_g}\|\nabla\ell\|^2$?

# %%
components = [(-1.5, 0.5), (1.0, 0.3)]  # p_data in mixture_pair: equal-weight mixture; p_g = N(0, 1.5^2)


def score_data(x):
    """Closed-form score of the data mixture: sum_k r_k(x) (mu_k - x) / s_k^2."""
    log_parts = torch.stack([normal(mu, sd).log_prob(x) for mu, sd in components])
    r = torch.softmax(log_parts, 0)
    return sum(r[k] * (mu - x) / sd**2 for k, (mu, sd) in enumerate(components))


x_q, w_q = quadrature_1d(-12.0, 12.0)  # trapezoid nodes and weights
x_leaf = x_q.clone().requires_grad_(True)
log_p_q, log_q_q = mixture_pair(x_leaf)
ell = log_p_q - log_q_q  # the optimal discriminator's logit (result 4.3)
(d_ell,) = torch.autograd.grad(ell.sum(), x_leaf, create_graph=True)
(dd_ell,) = torch.autograd.grad(d_ell.sum(), x_leaf)
d_ell, log_q_q = d_ell.detach(), log_q_q.detach()
score_difference = score_data(x_q) - (-x_q / 1.5**2)
gan_score_gap = (d_ell - score_difference).abs().max().item()


def kl_after_push(h):
    """KL(T_h # p_g || p_data) for T_h(x) = x + h * grad ell(x), by the change of variables."""
    log_p_moved, _ = mixture_pair(x_q + h * d_ell)
    return (w_q * log_q_q.exp() * (log_q_q - torch.log1p(h * dd_ell) - log_p_moved)).sum().item()


h = 1e-4
kl_rate = (kl_after_push(h) - kl_after_push(-h)) / (2 * h)
predicted_rate = -(w_q * log_q_q.exp() * d_ell**2).sum().item()
print(f"max |grad logit - (score_data - score_g)| = {gan_score_gap:.1e}")
print(f"KL(p_g || p_data) = {kl_after_push(0.0):.4f} nats; d KL / dh = {kl_rate:.6f}, "
      f"-E_g |grad logit|^2 = {predicted_rate:.6f}")

# %% [markdown]
# **Predict.** Read $\nabla\ell$ as a velocity for the generator's samples. Where will it be zero,
# and which way will it point far out in the tails, where only the generator has mass?

# %%
fig, axes = plt.subplots(1, 2, figsize=(14, 4.5))
window = x_q.abs() <= 4
axes[0].plot(x_q[window], log_p_q.detach().exp()[window], label=r"$p_\mathrm{data}$")
axes[0].plot(x_q[window], log_q_q.exp()[window], label=r"$p_g$")
axes[0].set_xlabel("$x$ (data units)")
axes[0].set_ylabel("density (1/data unit)")
axes[0].set_title("data and generator")
axes[0].legend()
axes[1].plot(x_q[window], d_ell[window], "k", lw=5, label=r"$\nabla \ell$, autograd of the optimal logit")
axes[1].plot(x_q[window], score_difference[window], "C1--", lw=2.5,
             label=r"$\nabla\log p_\mathrm{data}-\nabla\log p_g$")
axes[1].axhline(0, color="grey", lw=1)
axes[1].set_xlabel("$x$ (data units)")
axes[1].set_ylabel("velocity (1/data unit)")
axes[1].set_title("the discriminator's gradient is a score difference")
axes[1].legend(loc="lower left")
plt.tight_layout()
check_readable(fig)
plt.show()

# %% [markdown]
# *Figure: left, the data (two bumps) and a generator (one wide bump). Right, the gradient of the
# optimal discriminator's logit (black) and the difference of the two closed-form scores (orange
# dashes), on top of each other. Read it as a velocity for the generator's samples: positive means
# "move right". Look at where it crosses zero: twice where the generator's samples gather (near
# the data's modes, where $p_\text{data}/p_g$ peaks; the arrows point towards them from both sides)
# and once near 0, where the samples split between the two modes. In the tails it points back
# inwards. Moving along it lowers
# $\mathrm{KL}(p_g\,\|\,p_\text{data})$ at the rate $\mathbb E_{p_g}\|\nabla\ell\|^2$ printed above.*

# %% tags=["checks"]
# Part V: the two answers, as numbers
for i, gap in vae_gaps.items():
    assert gap < 1e-8, f"step {i}: KL(q || p_theta) vs weighted eps-MSE differ by {gap:.1e} (relative)"
assert gan_score_gap < 1e-10, f"grad of the optimal logit vs score difference: {gan_score_gap:.1e}"
assert abs(kl_rate / predicted_rate - 1) < 1e-4, f"dKL/dh = {kl_rate} vs -E|grad logit|^2 = {predicted_rate}"
print("Part V checks passed")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Check your understanding (Part V)
#
# 1. In the VAE reading of diffusion, what plays the role of the encoder, and why does it have no
#    parameters? Which ELBO term then has no parameters either?
# 2. $L_\text{simple}$ drops the ELBO's weights. Which steps does that up-weight, and what does
#    the model lose in exchange?
# 3. A GAN discriminator is trained to optimality on $p_\text{data}$ against $p_g$. Which direction
#    should a generator sample at $x$ move, in terms of scores?
# 4. Why can a diffusion model follow $\nabla\log p_\text{data}$ directly, while a GAN only ever gets
#    the difference $\nabla\log p_\text{data}-\nabla\log p_g$?

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Every check, in one table
#
# The same table as `python -m unigm.course.derivations` (the command exits non-zero if any check
# fails). Checks that share an expensive computation (the VAE quadrature, the ODE likelihoods)
# compute it once, so the second of them shows almost no time.

# %%
reports = derivations.run_all()
print(derivations.table(reports))
assert all(r.passed for r in reports)
print(f"{len(reports)} checks across {len({r.check.result for r in reports})} results")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# - **Diffusion is score matching.** The score of a Gaussian noising kernel is the added noise,
#   rescaled by $-1/\sqrt{1-\bar\alpha}$, exactly; DDPM's noise loss is denoising score matching with
#   weight $1-\bar\alpha_t$, and DSM teaches the marginal score because it differs from explicit score
#   matching by a constant.
# - **One density, many samplers.** The probability-flow ODE moves densities exactly as the SDE
#   does (its continuity equation *is* the Fokker-Planck equation), so the ODE gives likelihoods
#   and deterministic sampling, the SDE noise-robust sampling. DDIM is Euler's method on that
#   ODE in the variables $(x/\sqrt{\bar\alpha},\bar\sigma)$, with Euler's first-order error.
# - **Paths are clocks.** Every Gaussian path is "data plus noise of size $\sigma/\alpha$"; the
#   linear path of flow matching is the VP path after matching the SNR and rescaling $x$, not after
#   setting $\bar\alpha=(1-t)^2$.
# - **Discriminators estimate ratios.** The optimal GAN discriminator is $p/(p+q)$, its logit the
#   log density ratio, its value $-\log4+2\,\mathrm{JSD}$; f-GAN critics estimate any f-divergence
#   through the Fenchel conjugate; WGAN's $W_1$ is an integral probability metric instead.
# - **Energies and flows.** The ELBO is a negative free energy (entropy with a plus sign); a score
#   is minus an energy gradient; score matching needs its Laplacian term. The forward noising is
#   the W2 gradient flow of $\mathrm{KL}(p\,\|\,\mathcal N(0,I))$, discretised by implicit JKO steps.
# - **Likelihoods and denoisers.** $d\log p/dt=-\nabla\cdot v$ gives exact ODE likelihoods; the trace
#   costs $d$ backward passes exactly or one per Hutchinson probe, with variance
#   $\sum_{i<j}(J_{ij}+J_{ji})^2/k$. The best denoiser is Tweedie's: a step along the score.
# - **Lecture 01's questions.** Diffusion is a hierarchical VAE with a fixed encoder whose ELBO is a
#   weighted sum of noise-prediction errors ($L_\text{simple}$ drops the weights). A GAN's optimal
#   logit has a score difference as its gradient, the velocity of the W2 gradient flow of
#   $\mathrm{KL}(p_g\,\|\,p_\text{data})$: GANs and diffusion follow scores, one as a difference, one directly.
# - Next: **03 implementation** measures the samplers used here against the analytic scores and
#   makes them fast; **05 frontier** generalises the Gaussian paths (stochastic interpolants) and
#   builds on results 6 and 7 and on the score-difference view of GANs (energy matching, JKO
#   particles, DiffFlow).
#
# ## References
#
# - Anderson (1982). Reverse-time diffusion equation models. *Stochastic Processes and their
#   Applications* 12(3) (no arXiv id).
# - Arjovsky, Chintala & Bottou (2017). Wasserstein GAN. arXiv:1701.07875.
# - Burda, Grosse & Salakhutdinov (2016). Importance Weighted Autoencoders. arXiv:1509.00519.
# - Chen, Rubanova, Bettencourt & Duvenaud (2018). Neural Ordinary Differential Equations. arXiv:1806.07366.
# - Efron (2011). Tweedie's formula and selection bias. *Journal of the American Statistical
#   Association* 106(496) (no arXiv id).
# - Goodfellow et al. (2014). Generative Adversarial Networks. arXiv:1406.2661.
# - Grathwohl, Chen, Bettencourt, Sutskever & Duvenaud (2019). FFJORD: Free-form Continuous Dynamics
#   for Scalable Reversible Generative Models. arXiv:1810.01367.
# - Ho, Jain & Abbeel (2020). Denoising Diffusion Probabilistic Models. arXiv:2006.11239.
# - Hutchinson (1989). A stochastic estimator of the trace of the influence matrix for Laplacian
#   smoothing splines. *Communications in Statistics: Simulation and Computation* 18(3) (no arXiv id).
# - Hyvärinen (2005). Estimation of non-normalized statistical models by score matching. *JMLR* 6
#   (no arXiv id).
# - Jordan, Kinderlehrer & Otto (1998). The variational formulation of the Fokker-Planck equation.
#   *SIAM Journal on Mathematical Analysis* 29(1) (no arXiv id).
# - Kingma & Welling (2014). Auto-Encoding Variational Bayes. arXiv:1312.6114.
# - Kingma, Salimans, Poole & Ho (2021). Variational Diffusion Models. arXiv:2107.00630.
# - Lipman, Chen, Ben-Hamu, Nickel & Le (2023). Flow Matching for Generative Modeling. arXiv:2210.02747.
# - Liu, Gong & Liu (2023). Flow Straight and Fast: Learning to Generate and Transfer Data with
#   Rectified Flow. arXiv:2209.03003.
# - Mentzer, Minnen, Agustsson & Tschannen (2023). Finite Scalar Quantization: VQ-VAE Made Simple.
#   arXiv:2309.15505.
# - Nowozin, Cseke & Tomioka (2016). f-GAN: Training Generative Neural Samplers using Variational
#   Divergence Minimization. arXiv:1606.00709.
# - Sohl-Dickstein, Weiss, Maheswaranathan & Ganguli (2015). Deep Unsupervised Learning using
#   Nonequilibrium Thermodynamics. arXiv:1503.03585.
# - Song, Meng & Ermon (2021). Denoising Diffusion Implicit Models. arXiv:2010.02502.
# - Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole (2021). Score-Based Generative Modeling
#   through Stochastic Differential Equations. arXiv:2011.13456.
# - Song, Dhariwal, Chen & Sutskever (2023). Consistency Models. arXiv:2303.01469.
# - Sriperumbudur, Fukumizu, Gretton, Schölkopf & Lanckriet (2009). On integral probability
#   metrics, φ-divergences and binary classification. arXiv:0901.2698.
# - van den Oord et al. (2016). WaveNet: A Generative Model for Raw Audio. arXiv:1609.03499.
# - van den Oord, Vinyals & Kavukcuoglu (2017). Neural Discrete Representation Learning. arXiv:1711.00937.
# - Vincent (2011). A connection between score matching and denoising autoencoders. *Neural
#   Computation* 23(7) (no arXiv id).
# - Zhang, Shi, Yu, Xie & Li (2023). DiffFlow: A Unified SDE Framework for Score-Based Diffusion
#   Models and Generative Adversarial Networks. arXiv:2307.02159.
#
# ## Exercise
#
# The graded exercise for this lecture is [exercises/02_proofs.py](../exercises/02_proofs.py)
# (open it with `make lab`; grading: see the README): the noise schedule as an integral, DSM as
# DDPM's loss, the optimal discriminator, Fenchel conjugates and Tweedie's formula, each derived
# with sympy and checked against the library.
