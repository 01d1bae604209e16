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
# *Goes with lecture 02 (proofs). 5 questions, 15 points; runs in seconds.*
#
# Each question asks for a small derivation, done with sympy where it is symbolic, and checks
# it twice: against a closed form and against the course library, the code that trains the
# models. Fill in every `# YOUR CODE HERE` (delete the `raise NotImplementedError` line under
# it) and run the test cell under each answer; `unigm-grade check 02_proofs.ipynb` checks the
# whole notebook. Grading adds hidden tests and runs the notebook top to bottom. Time runs from
# $t = 0$ (data) to $t = 1$ (noise).

# %%
import math

import sympy as sp
import torch

torch.manual_seed(0)

# the symbols every question uses
s, t = sp.symbols("s t", nonnegative=True)
beta_min, beta_max = sp.symbols("beta_min beta_max", positive=True)
x_t, x_0, eps, eps_hat = sp.symbols("x_t x_0 epsilon epsilon_hat", real=True)
a = sp.symbols("alpha_bar", positive=True)  # alpha_bar(t), in (0, 1)
p, q, D = sp.symbols("p q D", positive=True)  # two densities at one point, a discriminator value
u = sp.symbols("u", positive=True)  # the argument of a divergence generator f(u), u = p / q
tau = sp.symbols("tau", real=True)  # the argument of its conjugate f*

# %% [markdown]
# ## Q1 (3 points): the noise schedule is an integral
#
# The variance-preserving SDE $dx = -\tfrac12\beta(t)\,x\,dt + \sqrt{\beta(t)}\,dW$ keeps the signal
# scale $\sqrt{\bar\alpha(t)}$ with $\bar\alpha(t) = \exp\!\big(-\int_0^t \beta(s)\,ds\big)$. For the linear
# schedule $\beta(s) = \beta_\min + s(\beta_\max - \beta_\min)$, compute $\bar\alpha(t)$ with
# `sp.integrate`, as an expression in the symbols `t`, `beta_min`, `beta_max` above.

# %%
def alpha_bar_expression():
    """exp(-int_0^t beta(s) ds) for beta(s) = beta_min + s (beta_max - beta_min), in t, beta_min, beta_max."""
    # YOUR CODE HERE
    raise NotImplementedError("q1: replace this line with your answer")


# %% test="q1.library" points=2
from unigm.schedules import alpha_bar_vp_linear

expression = alpha_bar_expression()
assert expression.free_symbols <= {t, beta_min, beta_max}, f"use only t, beta_min, beta_max: {expression.free_symbols}"
for time_value in [0.0, 0.1, 0.5, 1.0]:
    ours = float(expression.subs({t: time_value, beta_min: 0.1, beta_max: 20.0}))
    library = alpha_bar_vp_linear(torch.tensor(time_value, dtype=torch.float64)).item()
    assert abs(ours - library) < 1e-12, f"at t = {time_value}: {ours} but the library's alpha_bar is {library}"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q1.ode" points=1
expression = alpha_bar_expression()
assert sp.simplify(expression.subs(t, 0)) == 1, "alpha_bar(0) = 1: no noise at t = 0"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Q2 (3 points): denoising score matching is DDPM's noise loss
#
# With $q(x_t \mid x_0) = \mathcal N(\sqrt{\bar\alpha}\,x_0,\ 1 - \bar\alpha)$ (one dimension, `a` stands for
# $\bar\alpha$), write its score $\partial_{x_t} \log q(x_t \mid x_0)$. A network that predicts the noise,
# $\hat\varepsilon$, defines the score estimate $\hat s = -\hat\varepsilon / \sqrt{1 - \bar\alpha}$ (this is
# `DDPM.score`). Find the weight $\lambda(\bar\alpha)$ that makes DDPM's loss and denoising score
# matching the same objective, $(\hat\varepsilon - \varepsilon)^2 = \lambda\,(\hat s - s)^2$, where $s$ is the
# score at $x_t = \sqrt{\bar\alpha}\,x_0 + \sqrt{1 - \bar\alpha}\,\varepsilon$.

# %%
def conditional_score(x_t, x_0, a):
    """d/dx_t log N(x_t; sqrt(a) x_0, 1 - a), a sympy expression."""
    # YOUR CODE HERE
    raise NotImplementedError("q2: replace this line with your answer")


def dsm_weight(a):
    """lambda(a) with (eps_hat - eps)^2 = lambda(a) (s_hat - s)^2, a sympy expression in a."""
    # YOUR CODE HERE
    raise NotImplementedError("q2: replace this line with your answer")


# %% test="q2.score" points=1
log_q = -(x_t - sp.sqrt(a) * x_0) ** 2 / (2 * (1 - a)) - sp.log(2 * sp.pi * (1 - a)) / 2
assert sp.simplify(conditional_score(x_t, x_0, a) - sp.diff(log_q, x_t)) == 0, "differs from d/dx_t log q"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q2.weight" points=2
from unigm.diffusion import DDPM

score = conditional_score(sp.sqrt(a) * x_0 + sp.sqrt(1 - a) * eps, x_0, a)
score_hat = -eps_hat / sp.sqrt(1 - a)
assert sp.simplify((eps_hat - eps) ** 2 - dsm_weight(a) * (score_hat - score) ** 2) == 0, "not the same objective"
# the same identity with the library's DDPM (an untrained network is as good as any here)
ddpm = DDPM((2,)).double()
x0_batch, noise = torch.randn(16, 2, dtype=torch.float64), torch.randn(16, 2, dtype=torch.float64)
times = torch.rand(16, dtype=torch.float64) * 0.98 + 0.01
noisy = ddpm.noise(x0_batch, noise, times)
with torch.no_grad():
    noise_hat, score_net = ddpm.predict_eps(noisy, times), ddpm.score(noisy, times)
alpha_bar_t = ddpm.alpha_bar(times)
weight = torch.tensor([float(dsm_weight(a).subs(a, value)) for value in alpha_bar_t.tolist()], dtype=torch.float64)
score_true = -noise / (1 - alpha_bar_t).sqrt()[:, None]
assert torch.allclose((noise_hat - noise).pow(2).sum(1), weight * (score_net - score_true).pow(2).sum(1), rtol=1e-8)
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Q3 (3 points): what the optimal GAN discriminator computes
#
# At one point $x$, with $p = p_\text{data}(x)$ and $q = p_g(x)$, the discriminator maximises
# $p \log D + q \log(1 - D)$. Solve for the maximiser $D^*$ with sympy, then write the
# discriminator's loss at the optimum, $-\big(p \log D^* + q \log(1 - D^*)\big)$, as an expression in
# `p` and `q`. Summed over $x$ it is $\log 4 - 2\,\mathrm{JSD}(p_\text{data} \,\|\, p_g)$ (Goodfellow et al. 2014).

# %%
def optimal_discriminator():
    """argmax over D of p log D + q log(1 - D), an expression in p and q."""
    # YOUR CODE HERE
    raise NotImplementedError("q3: replace this line with your answer")


def loss_at_optimum():
    """-(p log D* + q log(1 - D*)), an expression in p and q."""
    # YOUR CODE HERE
    raise NotImplementedError("q3: replace this line with your answer")


# %% test="q3.optimum" points=1
assert sp.simplify(optimal_discriminator() - p / (p + q)) == 0, "D* is not p / (p + q)"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q3.value" points=2
from scipy.spatial.distance import jensenshannon

p_data, p_model = [0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25]
total = sum(float(loss_at_optimum().subs({p: pi, q: qi})) for pi, qi in zip(p_data, p_model))
jsd = jensenshannon(p_data, p_model) ** 2  # scipy returns the square root, in nats
assert abs(total - (math.log(4) - 2 * jsd)) < 1e-10, \
    f"sum over x = {total:.6f}, but log 4 - 2 JSD = {math.log(4) - 2 * jsd:.6f}"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Q4 (3 points): Fenchel conjugates of f-divergences
#
# f-GAN (Nowozin et al. 2016) needs the convex conjugate $f^*(\tau) = \sup_u \big(u\tau - f(u)\big)$ of
# the generator $f$ of each divergence. For a strictly convex, differentiable $f$ the supremum is
# where $\tau = f'(u)$. Write `fenchel_conjugate(f)` for an expression `f` in the symbol `u`,
# returning an expression in `tau`; it is checked against the table `unigm.gan.F_DIVERGENCES`
# for KL, reverse KL, Pearson $\chi^2$ and Jensen-Shannon.

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
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Q5 (3 points): Tweedie's formula, the denoiser inside every diffusion model
#
# For $x_t = \sqrt{\bar\alpha}\,x_0 + \sqrt{1 - \bar\alpha}\,\varepsilon$, Tweedie's formula gives the
# posterior mean from the score of the noised marginal:
# $\mathbb E[x_0 \mid x_t] = \big(x_t + (1 - \bar\alpha)\,\nabla \log p_t(x_t)\big) / \sqrt{\bar\alpha}$.
# Implement it in torch for a batch `x_t` of shape `(B, *E)`, `score` of the same shape and
# `alpha_bar` of shape `(B,)`.

# %%
def tweedie_denoiser(x_t, score, alpha_bar):
    """E[x_0 | x_t] = (x_t + (1 - alpha_bar) score) / sqrt(alpha_bar), alpha_bar of shape (B,)."""
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
# Restart the kernel and run all cells: every test cell should pass. Lecture 02 derives the same
# results step by step, each checked by `unigm.course.derivations`.
