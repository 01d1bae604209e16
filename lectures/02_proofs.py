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
# # 02 Proofs: the equivalences, derived and machine-checked
#
# *Reading time about 45 minutes, run time under a minute on a 2-core laptop CPU.*
#
# Lecture 01 showed six families of generative models side by side. This lecture proves that
# they are connected by exact identities: a diffusion model's noise loss *is* denoising score
# matching, its stochastic sampler and its ODE share every marginal, flow matching *is*
# diffusion after a change of time and scale, a GAN's discriminator estimates a density ratio,
# and every one of these models can be read as an energy or as a gradient flow.
#
# **How to read this notebook.** Each result is derived in numbered steps. Right below a step,
# a cell runs `show("n.k")`: a sympy computation from `unigm.course.derivations` that verifies exactly
# that step (the two sides are shown, and their difference must simplify to zero). The same
# functions run in the test suite (`tests/test_derivations.py`) and from the command line
# (`python -m unigm.course.derivations`). Each result then meets the library's real code: the DDPM loss,
# the samplers, the f-GAN table, the likelihood routine, the FSQ quantizer are called as they are
# used in training, on toys whose answer is known exactly.
#
# Eleven common mistakes appear in boxes, **common misstatement → correct statement**. Each box
# runs a check in which the wrong version is computed and *fails*, and the right one *passes*.
#
# Notation: time $t\in[0,1]$ with $t=0$ data and $t=1$ noise, for every family. The VP (DDPM)
# forward process is $x_t=\sqrt{\bar\alpha_t}\,x_0+\sqrt{1-\bar\alpha_t}\,\varepsilon$,
# $\varepsilon\sim\mathcal N(0,I)$, with $\bar\alpha_t=\exp(-\int_0^t\beta)$.

# %%
import math

import matplotlib.pyplot as plt
import sympy as sp
import torch
from IPython.display import Markdown, display

from unigm import runtime, samplers
from unigm.course import derivations
from unigm.course.derivations import show
from unigm.course.derivations.adversarial import GENERATORS, STATED_CONJUGATES, derive_conjugate, mixture_pair
from unigm.course.derivations.toys import eight_gaussians
from unigm.course.widgets import show_source
from unigm.diffusion import DDPM
from unigm.gan import F_DIVERGENCES
from unigm.paths import vp_to_linear
from unigm.schedules import alpha_bar_of_linear_path, alpha_bar_vp_linear, beta_vp_linear, linear_time_of_alpha_bar

setup = runtime.setup(seed=0)
setup

# %% [markdown]
# ## 1. Denoising score matching is DDPM's noise loss
#
# Score matching fits a field $s_\theta(x,t)\approx\nabla_x\log p_t(x)$. Vincent (2011, *A
# connection between score matching and denoising autoencoders*) replaced the unknown marginal
# score by the score of the noising kernel $q(x_t\mid x_0)$, which is known in closed form.
# For the VP kernel $q(x_t\mid x_0)=\mathcal N(\sqrt{\bar\alpha}\,x_0,(1-\bar\alpha)I)$ the
# kernel is isotropic, so each coordinate can be treated on its own.
#
# **Step 1.1.** Differentiate the log-density of the kernel:
# $\nabla_{x_t}\log q(x_t\mid x_0)=-\dfrac{x_t-\sqrt{\bar\alpha}\,x_0}{1-\bar\alpha}.$

# %%
show("1.1")

# %% [markdown]
# **Step 1.2.** A sample of the kernel is $x_t=\sqrt{\bar\alpha}\,x_0+\sqrt{1-\bar\alpha}\,\varepsilon$.
# Substituting it, the numerator becomes $\sqrt{1-\bar\alpha}\,\varepsilon$, so the target of
# denoising score matching is the noise itself, rescaled:
# $\nabla\log q(x_t\mid x_0)=-\varepsilon/\sqrt{1-\bar\alpha}$. Nothing was approximated.

# %%
show("1.2")

# %% [markdown]
# **Step 1.3.** The DSM loss at time $t$ is
# $\lambda_t\,\mathbb E\,\|s_\theta(x_t,t)-\nabla\log q(x_t\mid x_0)\|^2$. Write the model in the
# same form as its target, $s_\theta=-\varepsilon_\theta/\sqrt{1-\bar\alpha}$, and choose
# $\lambda_t=1-\bar\alpha_t$. The factor cancels and what is left is
# $\|\varepsilon_\theta-\varepsilon\|^2$: the integrand of $L_\text{simple}$ (Ho, Jain &
# Abbeel 2020, arXiv:2006.11239, eq. 14).

# %%
show("1.3")

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
# **Against the library.** Here is the loss the trainer minimises for every DDPM in the course:

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
# > there is no scaling.) The check computes both DSM losses on the same batch.

# %%
show("1.6")

# %% [markdown]
# ## 2. The probability-flow ODE and the SDE have the same marginals
#
# Take a forward SDE $dx=f(x,t)\,dt+g(t)\,dW$. Its marginals $p_t$ obey the Fokker-Planck equation
# $\partial_t p=-\nabla\cdot(fp)+\tfrac{g^2}{2}\Delta p$. A deterministic flow $\dot x=v(x,t)$
# moves densities by the continuity equation $\partial_t p=-\nabla\cdot(vp)$. Song et al. (2021,
# arXiv:2011.13456, eq. 13) proposed the velocity $v=f-\tfrac{g^2}{2}\nabla\log p_t$.
#
# **Step 2.1.** The key identity: $p\,\nabla\log p=\nabla p$ for any positive density.

# %%
show("2.1")

# %% [markdown]
# **Step 2.2.** Insert $v$ into the continuity equation; by step 2.1,
# $-\nabla\cdot\big((f-\tfrac{g^2}{2}\nabla\log p)\,p\big)=-\nabla\cdot(fp)+\tfrac{g^2}{2}\Delta p$,
# which is the Fokker-Planck equation, for *any* $p$, $f$ and $g$. First in 1D, with $p$, $f$,
# $g$ left as unspecified functions:

# %%
show("2.2")

# %% [markdown]
# **Step 2.3.** The same in 2D (divergence and Laplacian in two variables):

# %%
show("2.3")

# %% [markdown]
# **Step 2.4.** The stochastic sampler runs backwards. In the reversed time $s=1-t$, the SDE with
# drift $-(f-g^2\nabla\log p_t)$ and the same $g$ (Anderson 1982, *Reverse-time diffusion
# equation models*) has a Fokker-Planck equation whose right side is exactly $-\partial_t p$:
# it retraces the forward marginals.

# %%
show("2.4")

# %% [markdown]
# **Step 2.5.** For the VP SDE, $f=-\tfrac{\beta}{2}x$ and $g^2=\beta$ with
# $\bar\alpha'=-\beta\bar\alpha$. The kernel's marginal for Gaussian data,
# $\mathcal N(\sqrt{\bar\alpha}\,m,\ \bar\alpha v+1-\bar\alpha)$, solves that Fokker-Planck
# equation, so both samplers below must reproduce it.

# %%
show("2.5")

# %% [markdown]
# **By simulation.** The toy is the eight-Gaussian mixture; along the VP path every $p_t$ is a
# mixture again, so its score is exact (`unigm.densities.GaussianMixtureOnPath`). From exact
# samples of $p_1$ we run the library's `euler_maruyama` with `reverse_sde_vp` and its `heun`
# with `probability_flow_vp`, and compare the particles at $t=0$ with each other and with exact
# samples of the data by MMD permutation tests. A deliberately wrong sampler (the reverse-SDE
# drift integrated *without* its noise, i.e. the ODE without the factor $\tfrac12$) must be
# rejected by the same test, which shows that the test has power.

# %%
show("2.6")

# %%
mixture_vp = eight_gaussians("vp")
g = torch.Generator().manual_seed(0)
particles = {
    "exact p_0": mixture_vp.sample(1000, 0.0, g),
    "reverse SDE (Euler-Maruyama)": samplers.euler_maruyama(
        *samplers.reverse_sde_vp(mixture_vp.score, beta_vp_linear), mixture_vp.sample(1000, 1.0, g), steps=500, generator=g),
    "probability-flow ODE (Heun)": samplers.heun(
        samplers.probability_flow_vp(mixture_vp.score, beta_vp_linear), mixture_vp.sample(1000, 1.0, g), steps=200),
}
fig, axes = plt.subplots(1, 3, figsize=(12, 4), sharex=True, sharey=True)
for ax, (title, x) in zip(axes, particles.items()):
    ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.5)
    ax.set_title(title)
    ax.set_aspect("equal")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 3. Flow matching and diffusion are one model
#
# Every path used in this course is Gaussian: $x_t=\alpha_t x_0+\sigma_t\varepsilon$. Flow
# matching's linear path has $\alpha_t=1-t$, $\sigma_t=t$ (Lipman et al. 2023, arXiv:2210.02747;
# Liu et al. 2023, arXiv:2209.03003); the VP path has $\alpha_t=\sqrt{\bar\alpha_t}$,
# $\sigma_t=\sqrt{1-\bar\alpha_t}$. What a path does to the data is summarised by its
# signal-to-noise ratio $\mathrm{SNR}=\alpha_t^2/\sigma_t^2$ (Kingma et al. 2021, *Variational
# Diffusion Models*, arXiv:2107.00630).
#
# **Step 3.1.** The linear path has $\mathrm{SNR}=(1-t)^2/t^2$. A VP path reaches the same SNR when
# $\bar\alpha/(1-\bar\alpha)=(1-t)^2/t^2$, i.e. $\bar\alpha=\dfrac{(1-t)^2}{(1-t)^2+t^2}$.

# %%
show("3.1")

# %% [markdown]
# **Step 3.2.** At that $\bar\alpha$, $\sqrt{\bar\alpha}=(1-t)/r$ and $\sqrt{1-\bar\alpha}=t/r$ with
# $r=\sqrt{(1-t)^2+t^2}$. So $x_\text{VP}=x_\text{lin}/r$, and since
# $\sqrt{\bar\alpha}+\sqrt{1-\bar\alpha}=1/r$:
# $x_\text{lin}=x_\text{VP}/(\sqrt{\bar\alpha}+\sqrt{1-\bar\alpha})$, sample by sample.

# %%
show("3.2")

# %% [markdown]
# **Step 3.3.** The time map inverts: $t=\sqrt{1-\bar\alpha}\,/\,(\sqrt{\bar\alpha}+\sqrt{1-\bar\alpha})$.

# %%
show("3.3")

# %% [markdown]
# **Step 3.4.** The ODE of a path. The marginal velocity is the conditional velocity
# $\dot\alpha x_0+\dot\sigma\varepsilon$ averaged given $x_t=x$. Both posterior means follow from
# the score: $\mathbb E[x_0\mid x]=(x+\sigma^2\nabla\log p_t)/\alpha$ (Tweedie, result 11) and
# $\mathbb E[\varepsilon\mid x]=-\sigma\nabla\log p_t$. Hence
# $u(x,t)=\tfrac{\dot\alpha}{\alpha}x+\big(\tfrac{\dot\alpha\sigma^2}{\alpha}-\tfrac{1}{2}\tfrac{d\sigma^2}{dt}\big)\nabla\log p_t(x)$,
# the formula in `GaussianPath.velocity_from_score`.

# %%
show("3.4")

# %% [markdown]
# **Step 3.5.** For the VP path this is Song et al.'s probability-flow ODE,
# $u=-\tfrac{\beta}{2}(x+\nabla\log p_t)$: flow matching's ODE and diffusion's ODE are instances of
# one formula.

# %%
show("3.5")

# %% [markdown]
# **Step 3.6.** Why trajectories coincide. Divide by $\alpha$: $z=x/\alpha=x_0+\lambda\varepsilon$
# with $\lambda=\sigma/\alpha$. The density of $z$ is the data blurred by
# $\mathcal N(0,\lambda^2)$, whatever the path; and the ODE becomes
# $dz/dt=\dot\lambda\,(-\lambda\nabla_z\log p(z;\lambda))$. Time enters only through $\lambda$,
# so two paths with the same $\lambda$ (the same SNR) trace the same curve $z(\lambda)$.

# %%
show("3.6")

# %% [markdown]
# **Step 3.7.** The losses correspond too. On the linear path the target is $\varepsilon-x_0$;
# with $x_0=(x_t-t\varepsilon)/(1-t)$ a velocity model and a noise model are related by
# $v_\theta=(\varepsilon_\theta-x_t)/(1-t)$, and
# $\|v_\theta-(\varepsilon-x_0)\|^2=(1-t)^{-2}\|\varepsilon_\theta-\varepsilon\|^2$: flow matching
# is an $\varepsilon$-loss with weight $(1-t)^{-2}$.

# %%
show("3.7")

# %% [markdown]
# **Against the library.** Starting from the same exact samples of $p_1$, the library's VP
# probability-flow ODE (`probability_flow_vp`, RK4) and the linear-path ODE of the same mixture are
# integrated on matched time grids; after the map $x/(\sqrt{\bar\alpha}+\sqrt{1-\bar\alpha})$
# they agree at every step. And the library's `FlowMatching.loss` is reproduced as a weighted
# $\varepsilon$-loss.

# %%
show("3.8", "3.9")

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

t_grid = torch.linspace(0.02, 0.98, 200, dtype=torch.float64)
fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
axes[0].semilogy(t_grid, ((1 - t_grid) / t_grid) ** 2, label="linear path $(1-t)^2/t^2$", lw=3)
matched = alpha_bar_of_linear_path(t_grid)
axes[0].semilogy(t_grid, matched / (1 - matched), "--", label=r"VP, $\bar\alpha=(1-t)^2/((1-t)^2+t^2)$")
naive = (1 - t_grid) ** 2
axes[0].semilogy(t_grid, naive / (1 - naive), ":", label=r"VP, $\bar\alpha=(1-t)^2$ (wrong)")
axes[0].set_xlabel("t")
axes[0].set_title("signal-to-noise ratio")
axes[0].legend()
for k in range(24):
    axes[1].plot(linear[:, k, 0], linear[:, k, 1], color="C0", lw=1)
    axes[1].plot(mapped_vp[::5, k, 0], mapped_vp[::5, k, 1], ".", color="C1", ms=3)
axes[1].set_title("linear-path ODE (lines) and mapped VP ODE (dots)")
axes[1].set_aspect("equal")
plt.tight_layout()
plt.show()
print(f"max distance between the two trajectories: {(mapped_vp - linear).abs().max().item():.2e}")

# %% [markdown]
# > **Common misstatement →** "the linear path is the VP path with $\bar\alpha_t=(1-t)^2$", since
# > that makes the signal coefficient $\sqrt{\bar\alpha}=1-t$.
# >
# > **Correct statement →** the noise coefficient is then $\sqrt{1-(1-t)^2}=\sqrt{t(2-t)}\neq t$,
# > so the SNR (dotted curve above) is wrong at every interior $t$. The matched schedule is
# > $\bar\alpha=(1-t)^2/((1-t)^2+t^2)$ together with the rescaling of $x$. The check maps VP
# > samples built from the same $(x_0,\varepsilon)$ under both schedules onto the linear path.

# %%
show("3.10")

# %% [markdown]
# ## 4. The optimal GAN discriminator estimates a density ratio
#
# Goodfellow et al. (2014, arXiv:1406.2661) train $D$ to maximise
# $V(D)=\mathbb E_{p}\log D+\mathbb E_{q}\log(1-D)$, with $p=p_\text{data}$ and $q=p_g$. The
# objective is an integral of a function of $D(x)$ at each point, so it can be maximised point by
# point.
#
# **Step 4.1.** At a point with densities $p$, $q$: $p\log D+q\log(1-D)$ is concave in $D$ and its
# only critical point is $D^*=p/(p+q)$.

# %%
show("4.1")

# %% [markdown]
# **Step 4.2.** Substituting $D^*$, and writing $m=(p+q)/2$:
# $p\log\frac{p}{p+q}+q\log\frac{q}{p+q}=-(p+q)\log2+p\log\frac pm+q\log\frac qm$. Integrating,
# $C(G)=V(D^*)=-\log4+\mathrm{KL}(p\,\|\,m)+\mathrm{KL}(q\,\|\,m)=-\log4+2\,\mathrm{JSD}(p\,\|\,q)$.

# %%
show("4.2")

# %% [markdown]
# **Step 4.3.** The logit of $D^*$ is the log density ratio: $\log\frac{D^*}{1-D^*}=\log p-\log q$.
# A trained discriminator is a density-ratio estimator.

# %%
show("4.3")

# %% [markdown]
# **Numerically.** A 1D data mixture against a wide Gaussian generator, by quadrature: $V(D^*)$
# against $-\log 4+2\,\mathrm{JSD}$; two perturbations of $D^*$ that lower $V$; the library's
# Jensen-Shannon generator integrated to $2\,\mathrm{JSD}$; and the library's
# `discriminator_loss`, fed the optimal logits on samples, against $\log4-2\,\mathrm{JSD}$.

# %%
show("4.4")

# %%
x_line = torch.linspace(-4, 4, 400, dtype=torch.float64)
log_p, log_q = mixture_pair(x_line)
plt.figure(figsize=(7, 3.5))
plt.plot(x_line, log_p.exp(), label=r"$p_\mathrm{data}$")
plt.plot(x_line, log_q.exp(), label=r"$p_g$")
plt.plot(x_line, torch.sigmoid(log_p - log_q), label=r"$D^*=p/(p+q)$")
plt.legend()
plt.title("the optimal discriminator")
plt.show()

# %% [markdown]
# ## 5. f-divergences and their Fenchel conjugates
#
# For a convex $f$ with $f(1)=0$, $D_f(P\,\|\,Q)=\mathbb E_Q f(p/q)$. Its convex conjugate
# $f^*(t)=\sup_u\,(ut-f(u))$ gives the variational lower bound used by f-GAN (Nowozin, Cseke &
# Tomioka 2016, arXiv:1606.00709): $D_f\ge\sup_T\ \mathbb E_P T-\mathbb E_Q f^*(T)$, with equality
# at $T^*=f'(p/q)$. The critic's raw output $V$ is sent into the domain of $f^*$ by an output
# activation. The library's table is `unigm.gan.F_DIVERGENCES`.
#
# **Step 5.1.** The five generators satisfy $f(1)=0$ and are convex.

# %%
show("5.1")

# %% [markdown]
# **Steps 5.2 to 5.5.** For a smooth, strictly convex $f$ the supremum is where the derivative of
# $ut-f(u)$ vanishes: solve $f'(u^*)=t$, then $f^*(t)=u^*t-f(u^*)$. Sympy does both steps; the
# result is compared with the stated closed form. For Jensen-Shannon we use the generator
# $f(u)=u\log u-(u+1)\log\frac{u+1}{2}$, for which $D_f=2\,\mathrm{JSD}$; its conjugate exists
# only for $t<\log 2$.

# %%
show("5.2", "5.3", "5.4", "5.5")

# %% [markdown]
# **Step 5.6.** Total variation, $f(u)=\tfrac12|u-1|$, is not differentiable at $u=1$, so the
# stationarity argument does not apply. Instead: $ut-f(u)$ is piecewise linear with slope
# $t+\tfrac12$ left of 1 and $t-\tfrac12$ right of 1. It is bounded above exactly when
# $-\tfrac12\le t\le\tfrac12$, and then its maximum is at the kink, with value $t$. Outside that
# interval $f^*=+\infty$.

# %%
show("5.6")

# %% [markdown]
# The table the lecture derives, next to what the library uses. Each library entry is then
# checked numerically: its torch `conjugate` against the sympy formula and against a direct
# numerical maximisation of $ut-f(u)$ (with the library's own $f$), at the values $T$ its
# `activation` actually produces.

# %%
rows = ["| divergence | $f(u)$ | $u^*$ | $f^*(t)$ derived | activation range |", "|---|---|---|---|---|"]
for name in ["kl", "reverse_kl", "pearson", "jensen_shannon"]:
    derived, u_star = derive_conjugate(name)
    f_u = GENERATORS[name][0]
    activation = F_DIVERGENCES[name].activation(torch.tensor([-30.0, 0.0, 30.0], dtype=torch.float64))
    rows.append(f"| {name} | ${sp.latex(f_u)}$ | ${sp.latex(u_star)}$ | ${sp.latex(derived)}$ | "
                f"({activation[0].item():.3g}, {activation[2].item():.3g}) |")
activation = F_DIVERGENCES["total_variation"].activation(torch.tensor([-30.0, 30.0], dtype=torch.float64))
rows.append(f"| total_variation | ${sp.latex(GENERATORS['total_variation'][0])}$ | 1 | "
            f"${sp.latex(STATED_CONJUGATES['total_variation'])}$ on $[-\\frac12,\\frac12]$ | "
            f"({activation[0].item():.3g}, {activation[1].item():.3g}) |")
display(Markdown("\n".join(rows)))

# %%
show("5.7", "5.8", "5.9", "5.10", "5.11")

# %% [markdown]
# All five entries of `F_DIVERGENCES` agree with the derivation (no correction was needed). The
# bound is tight: with the optimal critic $T^*=f'(p/q)$ it equals $D_f$ by quadrature, and a
# scaled critic $0.9\,T^*$ gives strictly less.

# %%
show("5.12")

# %% [markdown]
# **WGAN is not an f-divergence.** Arjovsky, Chintala & Bottou (2017, arXiv:1701.07875) minimise
# $W_1(P,Q)=\sup_{\|h\|_\text{Lip}\le1}\mathbb E_P h-\mathbb E_Q h$, an *integral probability
# metric*: a supremum of differences of expectations over a class of functions. An f-divergence
# depends on $P$ and $Q$ only through the density ratio, so it is unchanged when both distributions
# are pushed through the same invertible map; $W_1$ measures distances in $x$ and scales with them.
# (Total variation is the only f-divergence that is also an IPM; Sriperumbudur et al. 2009, *On
# integral probability metrics, phi-divergences and binary classification*, arXiv:0901.2698.) The check scales two Gaussians by 2:
# all five library divergences stay put, $W_1$ doubles. And for two narrow Gaussians far apart,
# JSD is stuck at $\log 2$ whatever the distance, while $W_1$ grows with it.

# %%
show("5.13")

# %% [markdown]
# > **Common misstatement →** "the Jensen-Shannon conjugate is $-\log(1-e^t)$" and "the TV
# > conjugate is $f^*(t)=t$" (with an unbounded critic).
# >
# > **Correct statement →** $-\log(1-e^t)$ is the conjugate of the *GAN* generator
# > $u\log u-(u+1)\log(u+1)$; for the JS generator above it is $-\log(2-e^t)$ on $t<\log2$. For TV,
# > $f^*(t)=t$ only on $[-\tfrac12,\tfrac12]$ and $+\infty$ outside, so the critic needs a
# > bounded activation such as $\tfrac12\tanh$. The check maximises $ut-f(u)$ numerically.

# %%
show("5.14")

# %% [markdown]
# ## 6. Energy-based views
#
# An energy $E$ defines $p=e^{-E}/Z$. Three families read naturally this way.
#
# **Step 6.1 (VAE).** With the joint energy $E(x,z)=-\log p(x,z)$, the evidence lower bound of
# Kingma & Welling (2014, arXiv:1312.6114) is
# $\mathrm{ELBO}=\mathbb E_q\log\frac{p(x,z)}{q(z\mid x)}=-\mathbb E_q[E(x,z)]+H[q]$: an average
# energy plus an entropy, with a **plus** sign. Its negative, $\mathbb E_q[E]-H[q]$, is the
# variational free energy. The check uses a latent with three states and symbolic probabilities.

# %%
show("6.1")

# %% [markdown]
# **Step 6.2.** The gap is a KL divergence: $\log p(x)=\mathrm{ELBO}+\mathrm{KL}(q(z\mid x)\,\|\,p(z\mid x))$
# for every normalised $q$.

# %%
show("6.2")

# %% [markdown]
# **Step 6.3 (diffusion).** With $p_t=e^{-E_t}/Z_t$, the normaliser does not depend on $x$, so
# $\nabla\log p_t=-\nabla E_t$: a score model is the (negative) gradient of a time-dependent energy.

# %%
show("6.3")

# %% [markdown]
# **Step 6.4 (GAN).** With $p_\text{data}=e^{-E_\text{data}}/Z_\text{data}$ and $p_g=e^{-E_g}/Z_g$,
# the optimal logit of result 4 is a difference of energies plus a constant.

# %%
show("6.4")

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
# integration by parts; no normaliser and no data score are needed.
#
# **Step 6.8.** The check: data $\mathcal N(0,1)$, model energy $x^2/(2\theta^2)$. The difference
# of the two objectives is the constant $\tfrac12$, for every $\theta$.

# %%
show("6.8")

# %% [markdown]
# **Step 6.9.** Hyvärinen's objective is $J(\theta)=\frac1{2\theta^4}-\frac1{\theta^2}$, minimised at
# $\theta=1$ (the data). The bare penalty $\mathbb E\|\nabla E\|^2=\theta^{-4}$ has no minimiser:
# it keeps decreasing as the energy flattens.

# %%
show("6.9")

# %% [markdown]
# > **Common misstatement →** "adding $\mathbb E\|\nabla_x E\|^2$ to the loss is score matching".
# >
# > **Correct statement →** score matching is $\mathbb E[\tfrac12\|\nabla E\|^2-\Delta E]$; the
# > Laplacian term is what ties the energy to the data. Alone, $\|\nabla E\|^2$ is a smoothness
# > regulariser whose minimiser is a flat energy. The check fits $\theta$ by both objectives,
# > computed with autograd on samples.

# %%
show("6.10")

# %% [markdown]
# ## 7. Wasserstein gradient flows
#
# Jordan, Kinderlehrer & Otto (1998, *The variational formulation of the Fokker-Planck equation*)
# showed that some Fokker-Planck equations are gradient flows of a functional $F(p)$ in the
# Wasserstein-2 geometry: $\partial_t p=\nabla\cdot\big(p\,\nabla\tfrac{\delta F}{\delta p}\big)$,
# with the implicit time step (the JKO step)
# $p_{k+1}=\arg\min_p\ \tfrac{1}{2\tau}W_2^2(p,p_k)+F(p)$.
#
# **Step 7.1.** The first variation of $F(p)=\mathrm{KL}(p\,\|\,\pi)=\int p\log(p/\pi)$ is
# $\log(p/\pi)+1$.

# %%
show("7.1")

# %% [markdown]
# **Step 7.2.** The VP forward process (an Ornstein-Uhlenbeck process with rate $\beta/2$) has
# Fokker-Planck right side $\tfrac\beta2(\nabla\cdot(xp)+\Delta p)$, which equals
# $\tfrac\beta2\nabla\cdot\big(p\nabla\log\frac{p}{\mathcal N(0,I)}\big)$: the W2 gradient flow of
# $\mathrm{KL}(p\,\|\,\mathcal N(0,I))$, run on the clock $\tfrac12\int\beta$.

# %%
show("7.2")

# %% [markdown]
# **Step 7.3.** Langevin dynamics $dx=\nabla\log\pi\,dt+\sqrt2\,dW$ is, in the same sense, the W2
# gradient flow of $\mathrm{KL}(p\,\|\,\pi)$, for any target $\pi=e^{-U}$.

# %%
show("7.3")

# %% [markdown]
# **Step 7.4.** For Gaussians in 1D the JKO step can be solved by hand:
# $W_2^2(\mathcal N(m,s^2),\mathcal N(m_k,s_k^2))=(m-m_k)^2+(s-s_k)^2$ and
# $\mathrm{KL}(\mathcal N(m,s^2)\,\|\,\mathcal N(0,1))=\tfrac12(s^2+m^2-1)-\log s$. Setting both
# partial derivatives to zero gives $m=\frac{m_k}{1+\tau}$ and
# $s=\frac{s_k+\sqrt{s_k^2+4\tau(1+\tau)}}{2(1+\tau)}$.

# %%
show("7.4")

# %% [markdown]
# **Step 7.5.** Compared with the exact Ornstein-Uhlenbeck flow over time $\tau$,
# $m_ke^{-\tau}$ and $\sqrt{1+(s_k^2-1)e^{-2\tau}}$, the JKO minimiser agrees to first order in
# $\tau$: it is the implicit Euler step of the flow.

# %%
show("7.5")

# %% [markdown]
# **Against the library.** JKO steps, each minimised *numerically* (no closed form used), on the
# clock of the library's VP schedule, track the particles of the library's `euler_maruyama`
# forward simulation; halving $\tau$ halves their error (first order).

# %%
show("7.6")

# %% [markdown]
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

# %% [markdown]
# ## 8. Exact likelihood through the probability-flow ODE
#
# **Step 8.1.** Along a trajectory of $\dot x=v(x,t)$, the continuity equation gives
# $\frac{d}{dt}\log p(x(t),t)=\partial_t\log p+v\cdot\nabla\log p=-\nabla\cdot v$, the
# instantaneous change of variables (Chen et al. 2018, *Neural Ordinary Differential Equations*,
# arXiv:1806.07366, Thm. 1). Integrating from data to noise,
# $\log p_0(x_0)=\log p_1(x_1)+\int_0^1\nabla\cdot v(x_t,t)\,dt$.

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
# > **Common misstatement →** "diffusion models and flow matching have no likelihood; only
# > VAEs and normalising flows do".
# >
# > **Correct statement →** through the probability-flow ODE both define a continuous normalising
# > flow, whose likelihood is exact up to the ODE solver. (The stochastic sampler's distribution
# > is the same $p_0$; the ODE is how its density is *evaluated*.)

# %%
show("8.4")

# %% [markdown]
# ## 9. Continuous normalising flows: the trace and Hutchinson's estimator
#
# **Step 9.1.** Where does the divergence come from? The Jacobian $M_t=\partial x_t/\partial x_0$
# of an ODE obeys $\dot M=JM$ with $J=\partial f/\partial x$, and Jacobi's formula gives
# $\frac{d}{dt}\log\det M=\mathrm{tr}(M^{-1}\dot M)=\mathrm{tr}\,J=\nabla\cdot f$.

# %%
show("9.1")

# %% [markdown]
# Computing $\mathrm{tr}\,J$ exactly costs one vector-Jacobian product per dimension. Hutchinson
# (1989) replaced it by $v^\top Jv$ with a random probe $v$, $\mathbb E[vv^\top]=I$: one product
# per probe (used by FFJORD, Grathwohl et al. 2019, arXiv:1810.01367).
#
# **Step 9.2.** For Rademacher probes ($v_i=\pm1$), averaging over all $2^3$ sign vectors of a
# symbolic $3\times3$ matrix gives exactly the trace.

# %%
show("9.2")

# %% [markdown]
# **Step 9.3.** Its variance: $v^\top Av=\sum_iA_{ii}+\sum_{i<j}(A_{ij}+A_{ji})v_iv_j$, so
# $\mathrm{Var}=\sum_{i<j}(A_{ij}+A_{ji})^2$; the diagonal contributes nothing.

# %%
show("9.3")

# %% [markdown]
# **Step 9.4.** Gaussian probes are also unbiased but have variance $\tfrac12\|A+A^\top\|_F^2$,
# larger by $2\sum_iA_{ii}^2$.

# %%
show("9.4")

# %% [markdown]
# **Against the library.** `samplers.divergence_exact` and `samplers.divergence_hutchinson` on a
# small network: the exact trace equals the trace of the autograd Jacobian; a counter inside the
# network records $d$ backward passes for the exact trace and one per probe for Hutchinson;
# 20,000 independent estimates have the trace as mean and the predicted variance.

# %%
show("9.5")

# %% [markdown]
# ## 10. DDIM is an Euler step of the probability-flow ODE
#
# DDIM (Song, Meng & Ermon 2021, arXiv:2010.02502) steps from $t$ to $s<t$ by predicting
# $\hat x_0=(x_t-\sqrt{1-\bar\alpha_t}\,\varepsilon_\theta)/\sqrt{\bar\alpha_t}$ and re-noising it:
# $x_s=\sqrt{\bar\alpha_s}\,\hat x_0+\sqrt{1-\bar\alpha_s-\sigma^2}\,\varepsilon_\theta+\sigma z$ with
# $\sigma=\eta\sqrt{\tfrac{1-\bar\alpha_s}{1-\bar\alpha_t}}\sqrt{1-\tfrac{\bar\alpha_t}{\bar\alpha_s}}$.
#
# **Step 10.1.** With $\eta=0$, divide by $\sqrt{\bar\alpha_s}$. In the variables
# $\bar x=x/\sqrt{\bar\alpha}$ and $\bar\sigma=\sqrt{(1-\bar\alpha)/\bar\alpha}$ the update reads
# $\bar x_s=\bar x_t+(\bar\sigma_s-\bar\sigma_t)\,\varepsilon_\theta$: one Euler step.

# %%
show("10.1")

# %% [markdown]
# **Step 10.2.** And it is an Euler step *of the probability-flow ODE*: with the score
# $-\varepsilon/\sqrt{1-\bar\alpha}$, the VP ODE $\dot x=-\tfrac\beta2(x+\nabla\log p_t)$ becomes
# $d\bar x/d\bar\sigma=\varepsilon$ (this is step 3.6 with $\lambda=\bar\sigma$).

# %%
show("10.2")

# %% [markdown]
# **Step 10.3.** Any $\eta$ keeps the marginals $q(x_s\mid x_0)=\mathcal N(\sqrt{\bar\alpha_s}x_0,
# 1-\bar\alpha_s)$: the deterministic part carries variance $1-\bar\alpha_s-\sigma^2$ and the
# added noise the missing $\sigma^2$.
#
# **Step 10.4.** At $\eta=1$, $\sigma^2$ is DDPM's posterior variance and the mean is DDPM's
# posterior mean: DDIM with $\eta=1$ is the ancestral sampler.

# %%
show("10.3", "10.4")

# %% [markdown]
# **Against the library.** `samplers.ddim` ($\eta=0$) equals the library's `euler_step` applied to
# $d\bar x/d\bar\sigma=\varepsilon$ on the matching $\bar\sigma$ grid, and `samplers.ddim` with
# $\eta=1$ and the same random stream reproduces `DDPM.sample`.

# %%
show("10.5", "10.6")

# %% [markdown]
# > **Common misstatement →** DDIM with $\eta>0$ implemented by shrinking the noise coefficient to
# > $\sqrt{1-\bar\alpha_s-\sigma^2}$ but forgetting to add $\sigma z$.
# >
# > **Correct statement →** the update needs $+\sigma z$; without it the spread of $x_s$ around
# > $\sqrt{\bar\alpha_s}x_0$ is $1-\bar\alpha_s-\sigma^2$ instead of $1-\bar\alpha_s$ (step 10.3). The
# > check takes one large $\eta=1$ step with the true noise, with and without the term.

# %%
show("10.7")

# %% [markdown]
# ## 11. Tweedie's formula
#
# The best denoiser is a score (Robbins 1956; Efron 2011, *Tweedie's formula and selection bias*):
# $\mathbb E[x_0\mid x_t]=\big(x_t+(1-\bar\alpha)\nabla\log p_t(x_t)\big)/\sqrt{\bar\alpha}$.
#
# **Step 11.1.** The Gaussian kernel satisfies
# $(1-\bar\alpha)\,\partial_xN(x;\sqrt{\bar\alpha}x_0,1-\bar\alpha)+x\,N=\sqrt{\bar\alpha}\,x_0\,N$.
# Integrate against $p_0(x_0)$ and divide by $p_t(x)$: the left side becomes
# $(1-\bar\alpha)\nabla\log p_t+x$, the right side $\sqrt{\bar\alpha}\,\mathbb E[x_0\mid x]$.

# %%
show("11.1")

# %% [markdown]
# **Step 11.2.** A fully explicit case: data on two atoms with weights $w$, $1-w$. Bayes' rule for
# $\mathbb E[x_0\mid x_t]$ and Tweedie's formula with the mixture's score coincide symbolically.

# %%
show("11.2")

# %% [markdown]
# **Against the library.** On the eight-Gaussian toy, Tweedie with the library's `DDPM.score`
# (exact predictor) equals the closed-form posterior mean, and on pairs drawn with `DDPM.noise`
# the residual $x_0-\mathbb E[x_0\mid x_t]$ is uncorrelated with functions of $x_t$, the defining
# property of a conditional expectation.

# %%
show("11.3")

# %% [markdown]
# ## 12. Small facts, each checked
#
# **WaveNet's receptive field** (van den Oord et al. 2016, arXiv:1609.03499). A causal convolution
# with kernel $K$ and dilation $d$ sees $(K-1)d$ past inputs besides the current one; with
# dilations $1,2,\dots,2^{L-1}$ the receptive field is $1+(K-1)(2^L-1)$.

# %%
show("12.1")

# %% [markdown]
# The library's `unigm.autoregressive.DilatedCausalStack` is probed with an impulse: exactly
# `receptive_field` outputs respond, starting at the impulse (nothing before it: causal).

# %%
show("12.2")

# %% [markdown]
# > **Common misstatement →** "ten layers of kernel 2 see 1025 samples" ($2^{10}+1$).
# >
# > **Correct statement →** $1+(2-1)(2^{10}-1)=1024$: the current sample and 1023 before it.

# %%
show("12.3")

# %% [markdown]
# **FSQ levels** (Mentzer et al. 2023, arXiv:2309.15505). Each channel is squashed into an
# interval that contains exactly $L$ integers and rounded: $\{-m,\dots,m\}$ for $L=2m+1$,
# $\{-m,\dots,m-1\}$ for $L=2m$. The codebook is the product, $\prod_iL_i$ codes.

# %%
show("12.4", "12.5")

# %% [markdown]
# > **Common misstatement →** "FSQ with $L$ levels rounds to the $2L+1$ integers
# > $-L,\dots,L$".
# >
# > **Correct statement →** the bound is chosen so that exactly $L$ values occur per channel; the
# > library's `FSQ((8, 5, 5, 5))` has 1000 codes, not $17\cdot11^3$.

# %%
show("12.6")

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

# %%
show("12.9")

# %% [markdown]
# > **Common misstatement →** consistency-training pairs drawn with independent noise,
# > $(x_0+t_{n+1}z,\ x_0+t_nz')$.
# >
# > **Correct statement →** the same $z$ for both: then one Euler step of the PF-ODE (the library's
# > `euler_step` with `probability_flow_ve`) maps $x_{t_{n+1}}$ exactly onto $x_{t_n}$; with
# > independent noise the pair is about $\sqrt2\,t$ apart however small the step.

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

# %% [markdown]
# ## Where next
#
# - **03 implementation**: the samplers used here (`ddim`, `reverse_sde_vp`,
#   `probability_flow_vp`, `euler_maruyama`, `heun`, `rk4`) measured for accuracy against the
#   analytic scores of this lecture, and made fast.
# - **05 frontier**: stochastic interpolants generalise the Gaussian paths of result 3; energy
#   matching and JKO particle schemes build on results 6 and 7.
