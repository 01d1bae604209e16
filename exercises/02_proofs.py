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
# # Exercise 02: derive it, then check it against the code
#
# *Goes with lecture 02 (proofs). 5 questions, 15 points; runs in about ten seconds.*
#
# Each question asks for a derivation that lecture 02 does **not** write out for you (a case it
# skips, a direction it does not take, or a general form of a special case it proves), and checks
# your result numerically against the course library, the code that trains the models. Derive on
# paper or with sympy (imported below), then write the result as a function. One question
# asks you to run a sampler and read a plot. Fill in every `# YOUR CODE HERE` (delete the
# `raise NotImplementedError` line under it) and run the test cell under each answer;
# `unigm-grade check 02_proofs.ipynb` checks the whole notebook. Grading adds hidden tests and
# runs the notebook top to bottom. Time runs from $t = 0$ (data) to $t = 1$ (noise).
#
# Notation (lecture 02, result 3): a Gaussian path is $x_t = \alpha_t x_0 + \sigma_t \varepsilon$ with
# $\varepsilon \sim \mathcal N(0, I)$, and its signal-to-noise ratio is $\mathrm{SNR}(t) = \alpha_t^2 / \sigma_t^2$. The
# library's `GaussianPath` objects (`unigm.paths.linear_path()`, `unigm.paths.vp_path()`) give
# $\alpha$, $\sigma$ and their time derivatives as functions of a tensor `t`:
# `path.alpha(t)`, `path.sigma(t)`, `path.d_alpha(t)`, `path.d_sigma(t)`.
# Flow matching uses the linear path $\alpha_t = 1 - t$, $\sigma_t = t$; DDPM the VP path
# $\alpha_t = \sqrt{\bar\alpha(t)}$, $\sigma_t = \sqrt{1 - \bar\alpha(t)}$ with the linear schedule
# $\bar\alpha(t) = \exp\!\big(-\beta_\min t - \tfrac12 (\beta_\max - \beta_\min) t^2\big)$,
# $\beta_\min = 0.1$, $\beta_\max = 20$.

# %%
import math

import sympy as sp
import torch

from unigm.paths import linear_path, vp_path

torch.manual_seed(0)
u = sp.symbols("u", positive=True)  # the argument of a divergence generator f(u), u = p / q (Q4)
tau = sp.symbols("tau", real=True)  # the argument of its conjugate f* (Q4)

# %% [markdown]
# ## Q1 (3 points): flow matching and DDPM at the same noise level
#
# Flow matching's linear path and DDPM's VP path blur the data in the same way when their SNRs
# are equal (lecture 02, step 3.6). Lecture 02 maps a VP noise level to a linear time; here you
# go the other way, all the way to the DDPM's clock.
#
# 1. `matched_alpha_bar(t)`: the $\bar\alpha$ at which a VP path has the SNR of the linear path at
#    time $t$.
# 2. `linear_from_vp(x_vp, t)`: a VP sample $x_\text{VP} = \sqrt{\bar\alpha}\,x_0 + \sqrt{1-\bar\alpha}\,\varepsilon$
#    at that $\bar\alpha$ is a rescaled linear-path sample. Return the linear-path sample
#    $(1 - t)x_0 + t\varepsilon$ (same $x_0$, same $\varepsilon$), computed from `x_vp` and `t` alone.
#    `x_vp` has shape `(B, *E)` and `t` shape `(B,)`.
# 3. `vp_time(t, beta_min, beta_max)`: the time $\tau \in (0, 1)$ on the DDPM's own clock (the
#    linear $\beta$ schedule above) whose $\bar\alpha(\tau)$ is that matched value. You will need to
#    solve a quadratic; pick the root in $(0, 1)$.
#
# Work with torch tensors (`t` is a float tensor of any shape for 1 and 3).

# %%
def matched_alpha_bar(t):
    """alpha_bar with SNR_VP = SNR of the linear path at time t."""
    # YOUR CODE HERE
    raise NotImplementedError("q1: replace this line with your answer")


def linear_from_vp(x_vp, t):
    """(1 - t) x0 + t eps from x_vp = sqrt(a) x0 + sqrt(1 - a) eps at a = matched_alpha_bar(t); t (B,)."""
    # YOUR CODE HERE
    raise NotImplementedError("q1: replace this line with your answer")


def vp_time(t, beta_min=0.1, beta_max=20.0):
    """The DDPM time tau whose alpha_bar(tau) equals matched_alpha_bar(t)."""
    # YOUR CODE HERE
    raise NotImplementedError("q1: replace this line with your answer")


# %% test="q1.alpha_bar" points=1
t = torch.linspace(0.02, 0.98, 49, dtype=torch.float64)
a = matched_alpha_bar(t)
assert a.shape == t.shape and ((a > 0) & (a < 1)).all(), "one alpha_bar in (0, 1) per time"
assert torch.allclose(a / (1 - a), linear_path().snr(t), rtol=1e-10), "the VP SNR a / (1 - a) differs from the linear one"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q1.map" points=1
x0, eps = torch.randn(8, 2, dtype=torch.float64), torch.randn(8, 2, dtype=torch.float64)
t = torch.rand(8, dtype=torch.float64) * 0.96 + 0.02
snr = linear_path().snr(t)
a = (snr / (1 + snr))[:, None]  # the matched alpha_bar, from the SNR
x_vp = a.sqrt() * x0 + (1 - a).sqrt() * eps
assert torch.allclose(linear_from_vp(x_vp, t), linear_path().sample(x0, eps, t), atol=1e-12), \
    "not the linear-path sample (1 - t) x0 + t eps"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q1.vp_time" points=1
t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
tau_vp = vp_time(t)  # (not `tau`: that name is Q4's sympy symbol)
assert tau_vp.shape == t.shape and ((tau_vp > 0) & (tau_vp < 1)).all(), "one DDPM time in (0, 1) per linear time"
assert torch.allclose(vp_path().snr(tau_vp), linear_path().snr(t), rtol=1e-8), "the DDPM's SNR at tau differs"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Q2 (3 points): every Gaussian path's regression is a weighted noise loss
#
# A velocity model $\hat v$ on a Gaussian path defines a noise prediction $\hat\varepsilon$ through the
# marginal velocity $u(x, t) = \tfrac{\dot\alpha_t}{\alpha_t} x + \big(\dot\sigma_t - \tfrac{\dot\alpha_t \sigma_t}{\alpha_t}\big)\,\varepsilon$
# (lecture 02, step 3.4, with $\mathbb E[\varepsilon \mid x]$ replaced by a prediction): $\hat v = u(x_t, t)$ at
# $\varepsilon = \hat\varepsilon$, and the regression target, $\dot\alpha_t x_0 + \dot\sigma_t \varepsilon$, is $u(x_t, t)$ at
# the true $\varepsilon$. **Derive** the weight $w(t)$ with
# $\lVert \hat v - (\dot\alpha_t x_0 + \dot\sigma_t \varepsilon) \rVert^2 = w(t)\,\lVert \hat\varepsilon - \varepsilon \rVert^2$
# for **any** Gaussian path (lecture 02 does only flow matching's linear path), and write it in
# terms of the path's `alpha`, `sigma`, `d_alpha`, `d_sigma`.
#
# The first test checks it where it matters most: with your weight, a noise loss reproduces
# `FlowMatching.loss` itself.

# %%
def eps_loss_weight(path, t):
    """w(t) with |v_hat - target|^2 = w(t) |eps_hat - eps|^2 on the Gaussian path `path`; t a tensor."""
    # YOUR CODE HERE
    raise NotImplementedError("q2: replace this line with your answer")


# %% test="q2.flow_matching" points=2
from unigm import zoo


def fm_loss_as_eps_loss(model, x0, seed):
    """FlowMatching.loss(x0) with the library's noise stream, as a weighted noise loss; (library, ours)."""
    library = model.loss(x0, generator=torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed)  # the same stream: the library draws x1 (the noise), then t
    eps = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
    t = torch.rand(len(x0), generator=g, dtype=x0.dtype)
    path = linear_path()
    x_t = path.sample(x0, eps, t)
    with torch.no_grad():
        eps_hat = path.eps_from_velocity(x_t, model.velocity(x_t, t), t)  # the noise the velocity implies
    weight = eps_loss_weight(path, t).reshape(-1, *[1] * (x0.dim() - 1))
    return library.item(), (weight * (eps_hat - eps) ** 2).mean().item()


model = zoo.make("flow_matching", (2,)).double()
library, ours = fm_loss_as_eps_loss(model, torch.randn(256, 2, dtype=torch.float64), seed=3)
assert abs(ours - library) < 1e-9 * library, f"weighted noise loss {ours:.6f}, FlowMatching.loss {library:.6f}"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q2.paths" points=1
from unigm.paths import GaussianPath

half_pi = math.pi / 2
cosine = GaussianPath(  # the trigonometric path alpha = cos(pi t / 2), sigma = sin(pi t / 2)
    "cosine", alpha=lambda t: torch.cos(half_pi * t), sigma=lambda t: torch.sin(half_pi * t),
    d_alpha=lambda t: -half_pi * torch.sin(half_pi * t), d_sigma=lambda t: half_pi * torch.cos(half_pi * t),
    d_sigma_squared=lambda t: half_pi * torch.sin(math.pi * t))


def identity_holds(path, t, shape=(2,)):
    """|v_hat - target|^2 = w |eps_hat - eps|^2 per example, for random x0, eps, eps_hat."""
    x0, eps, eps_hat = (torch.randn(len(t), *shape, dtype=torch.float64) for _ in range(3))
    x_t = path.sample(x0, eps, t)
    target = path.velocity(x0, eps, t)  # d x_t / dt = alpha' x0 + sigma' eps
    v_hat = path.velocity_from_eps(x_t, eps_hat, t)  # u(x_t, t) at eps = eps_hat
    left = (v_hat - target).flatten(1).pow(2).sum(1)
    right = eps_loss_weight(path, t) * (eps_hat - eps).flatten(1).pow(2).sum(1)
    return torch.allclose(left, right, rtol=1e-9)


assert identity_holds(cosine, torch.rand(64, dtype=torch.float64) * 0.98 + 0.01), "fails on the cosine path"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Q3 (3 points): a DDIM step, and what its error looks like
#
# DDIM with $\eta = 0$ (Song, Meng & Ermon 2021, arXiv:2010.02502) moves a sample deterministically
# from noise level $\bar\alpha_t$ to a less noisy level $\bar\alpha_s > \bar\alpha_t$ with a noise
# prediction $\hat\varepsilon$: it estimates the clean point $\hat x_0$ by solving
# $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1 - \bar\alpha_t}\,\varepsilon$ for $x_0$ with $\varepsilon = \hat\varepsilon$,
# then noises $\hat x_0$ back to level $\bar\alpha_s$ with the **same** $\hat\varepsilon$ (no fresh noise).
# Write the step from this description; `eps_hat` is passed in as a tensor, `a_t` and `a_s` are
# floats.

# %%
def ddim_step(x_t, eps_hat, a_t, a_s):
    """One deterministic DDIM step from noise level a_t to a_s (alpha_bar values, a_s > a_t)."""
    # YOUR CODE HERE
    raise NotImplementedError("q3: replace this line with your answer")


# %% test="q3.step" points=2
from unigm import samplers
from unigm.schedules import alpha_bar_vp_linear


def step_matches_library(shape, t, s, alpha_bar, dtype=torch.float32):
    x, eps_hat = torch.randn(16, *shape, dtype=dtype), torch.randn(16, *shape, dtype=dtype)
    expected = samplers.ddim_step(lambda y, time: eps_hat, x, t, s, alpha_bar, eta=0.0)
    a_t, a_s = alpha_bar(torch.tensor(t, dtype=torch.float64)).item(), alpha_bar(torch.tensor(s, dtype=torch.float64)).item()
    ours = ddim_step(x, eps_hat, a_t, a_s)
    return ours.shape == expected.shape and torch.allclose(ours, expected, rtol=1e-5, atol=1e-5)


assert step_matches_library((2,), 0.7, 0.45, alpha_bar_vp_linear), "differs from unigm.samplers.ddim_step (eta = 0)"
assert step_matches_library((2,), 0.3, 0.0, alpha_bar_vp_linear), "differs from ddim_step on the last step, to s = 0"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# DDIM in action (the library's sampler, so a slip in your step costs nothing here). Take
# one-dimensional Gaussian data $x_0 \sim \mathcal N(m, v)$. Its exact noise
# prediction is known in closed form, $\mathbb E[\varepsilon \mid x_t] = \sqrt{1 - \bar\alpha}\,(x_t - \sqrt{\bar\alpha}\,m) / (\bar\alpha v + 1 - \bar\alpha)$,
# and so is where the probability-flow ODE carries each starting point. The cell below runs the
# library's DDIM sampler with that **exact** noise prediction for $N = 1, 2, 4, \dots, 256$ steps
# from $t = 1$ to $t = 0$, for two data sets, a single point ($v = 0$) and a Gaussian ($v = 0.5$),
# and plots the error against the exact ODE endpoint. Predict first: with a perfect network, is
# DDIM exact?

# %%
import matplotlib.pyplot as plt

from unigm import samplers
from unigm.schedules import alpha_bar_vp_linear

data_mean = 1.5
start = torch.linspace(-3, 3, 101, dtype=torch.float64)[:, None]  # 101 starting points at t = 1


def exact_eps(v):
    def eps(x, time):
        a = alpha_bar_vp_linear(time)[:, None]
        return (1 - a).sqrt() * (x - a.sqrt() * data_mean) / (a * v + 1 - a)
    return eps


def exact_endpoint(v):
    """The probability-flow ODE's x_0 from `start`: affine in x / sqrt(alpha_bar) (lecture 02, step 3.6)."""
    a1 = alpha_bar_vp_linear(torch.tensor(1.0, dtype=torch.float64))
    y, lam2 = start / a1.sqrt(), (1 - a1) / a1
    return data_mean + (y - data_mean) * math.sqrt(v / (v + lam2))


step_counts = [2**k for k in range(9)]
errors = {}
for v in (0.0, 0.5):
    errors[v] = [(samplers.ddim(exact_eps(v), start, n, alpha_bar_vp_linear) - exact_endpoint(v)).abs().max().item()
                 for n in step_counts]
plt.figure(figsize=(5, 3.6))
for v, label in ((0.0, "one point (v = 0)"), (0.5, "Gaussian (v = 0.5)")):
    plt.loglog(step_counts, [max(e, 1e-17) for e in errors[v]], "o-", label=label)
plt.xlabel("DDIM steps N")
plt.ylabel("max |error| at t = 0")
plt.legend()
plt.grid(True, which="both", alpha=0.3)
plt.show()

# %% [markdown]
# *Figure: the error of DDIM with a perfect noise prediction, against the number of steps
# (log-log axes; an error of $10^{-13}$ or less is floating-point rounding).*
#
# For each data set, which statement fits the plot?
#
# - **A.** Exact (rounding error only) for every $N$, even $N = 1$.
# - **B.** The error falls like $1/N$: the line has slope $-1$ (a first-order method, like Euler).
# - **C.** The error falls like $1/N^2$: slope $-2$.
# - **D.** The error does not fall as $N$ grows.

# %%
def ddim_error_behaviour():
    """(letter for the single point, letter for the Gaussian), each "A", "B", "C" or "D"."""
    # YOUR CODE HERE
    raise NotImplementedError("q3: replace this line with your answer")


# %% test="q3.read" points=1
answer = ddim_error_behaviour()
assert len(answer) == 2 and all(letter in ("A", "B", "C", "D") for letter in answer), \
    "two letters, one per data set, each A, B, C or D"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Q4 (3 points): Fenchel conjugates of f-divergences
#
# f-GAN (Nowozin et al. 2016) needs the convex conjugate $f^*(\tau) = \sup_u \big(u\tau - f(u)\big)$ of
# the generator $f$ of each divergence. For a strictly convex, differentiable $f$ the supremum is
# where $\tau = f'(u)$. Write `fenchel_conjugate(f)` for an expression `f` in the symbol `u`,
# returning an expression in `tau`; it is checked against the table `unigm.gan.F_DIVERGENCES`
# for KL, reverse KL, Pearson $\chi^2$ (visible tests) and Jensen-Shannon,
# $f(u) = u \log u - (u + 1) \log\frac{u + 1}{2}$ (hidden, with all four at other points).

# %%
def fenchel_conjugate(f):
    """f*(tau) = sup_u (u tau - f(u)) for a strictly convex, differentiable f(u); an expression in tau."""
    # YOUR CODE HERE
    raise NotImplementedError("q4: replace this line with your answer")


# %% test="q4.kl" points=1
from unigm.gan import F_DIVERGENCES


def matches_library(name, f, taus):
    """f* from fenchel_conjugate, evaluated at the points taus, against the library's conjugate."""
    conjugate = fenchel_conjugate(f)
    for value in taus:
        ours = complex(conjugate.subs(tau, value).evalf())
        library = F_DIVERGENCES[name].conjugate(torch.tensor(value, dtype=torch.float64)).item()
        if abs(ours.imag) > 1e-9 or abs(ours.real - library) > 1e-9:
            return False
    return True


assert matches_library("kl", u * sp.log(u), [-2.0, -0.5, 0.0, 1.0]), "f(u) = u log u should give f*(tau) = exp(tau - 1)"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q4.table" points=2
from unigm.gan import F_DIVERGENCES


def conjugate_matches(name, f, taus):
    """f* from fenchel_conjugate, evaluated at the points taus, against the library's conjugate."""
    conjugate = fenchel_conjugate(f)
    for value in taus:
        ours = complex(conjugate.subs(tau, value).evalf())
        library = F_DIVERGENCES[name].conjugate(torch.tensor(value, dtype=torch.float64)).item()
        if abs(ours.imag) > 1e-9 or abs(ours.real - library) > 1e-9:
            return False
    return True


assert conjugate_matches("reverse_kl", -sp.log(u), [-2.0, -0.5]), "f(u) = -log u (reverse KL): differs from the table"
assert conjugate_matches("pearson", (u - 1) ** 2, [-1.0, 0.5, 3.0]), "f(u) = (u - 1)^2 (Pearson): differs from the table"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Q5 (3 points): Tweedie's formula, the denoiser inside every diffusion model
#
# For $x_t = \sqrt{\bar\alpha}\,x_0 + \sqrt{1 - \bar\alpha}\,\varepsilon$, the posterior mean
# $\mathbb E[x_0 \mid x_t]$ (the best denoiser) can be computed from the score of the noised marginal
# $p_t$ alone, whatever the data distribution. **Derive** it: write $p_t(x) = \int q(x \mid x_0)\,p(x_0)\,dx_0$,
# differentiate under the integral to get $\nabla \log p_t(x) = \mathbb E\big[\nabla_x \log q(x \mid x_0) \,\big|\, x_t = x\big]$,
# insert the Gaussian kernel's score and solve for $\mathbb E[x_0 \mid x_t]$. Implement the result in torch
# for a batch `x_t` of shape `(B, *E)`, `score` of the same shape and `alpha_bar` of shape `(B,)`.

# %%
def tweedie_denoiser(x_t, score, alpha_bar):
    """E[x_0 | x_t] from x_t, the score of p_t at x_t, and alpha_bar of shape (B,)."""
    # YOUR CODE HERE
    raise NotImplementedError("q5: replace this line with your answer")


# %% test="q5.gaussian" points=2
# Gaussian data x_0 ~ N(m, v): p_t = N(sqrt(a) m, a v + 1 - a), and E[x_0 | x_t] is known in closed form
m, v = 1.5, 0.25
alpha = torch.full((1000,), 0.6, dtype=torch.float64)
x = torch.randn(1000, 1, dtype=torch.float64) * 2
total_var = alpha[:, None] * v + 1 - alpha[:, None]
marginal_score = -(x - alpha[:, None].sqrt() * m) / total_var
posterior_mean = m + alpha[:, None].sqrt() * v * (x - alpha[:, None].sqrt() * m) / total_var
assert torch.allclose(tweedie_denoiser(x, marginal_score, alpha), posterior_mean, atol=1e-10), "not the posterior mean"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q5.ddpm" points=1
from unigm.diffusion import DDPM

# with the score of a DDPM, Tweedie's formula is the x_0 its noise prediction implies
ddpm = DDPM((2,))
noisy, times = torch.randn(32, 2), torch.rand(32) * 0.98 + 0.01
with torch.no_grad():
    alpha_bar_t = ddpm.alpha_bar(times)[:, None]
    x0_from_noise = (noisy - (1 - alpha_bar_t).sqrt() * ddpm.predict_eps(noisy, times)) / alpha_bar_t.sqrt()
    denoised = tweedie_denoiser(noisy, ddpm.score(noisy, times), ddpm.alpha_bar(times))
assert torch.allclose(denoised, x0_from_noise, atol=1e-4), "differs from the x_0 implied by DDPM.predict_eps"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Done?
#
# Restart the kernel and run all cells: every test cell should pass. Lecture 02 proves the
# results these questions build on step by step, each checked by `unigm.course.derivations`; Q1 to
# Q3 together say that one Euler step of flow matching and one DDIM step at the matched noise
# levels are the same update.
