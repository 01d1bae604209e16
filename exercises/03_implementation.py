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
# # Exercise 03: write the pieces the library is made of
#
# *Goes with lecture 03 (implementation). 5 questions, 17 points; runs in about fifteen seconds on
# a laptop CPU (one question trains a small model for a few seconds).*
#
# Lecture 03 showed how the course library is built: samplers are plain functions of a callable
# $f(x, t)$, a model is a class that fills in a small contract (`loss`, `sample`, `score` or
# `velocity`), and one trainer, `unigm.train.fit`, trains all of them, on one process or on many.
# Here you write one piece of each layer yourself and check it against the library and against
# closed forms: a Heun step and its measured order (Q1), a DPM-Solver-2 step (Q2), the loss of a
# new score model that `fit` trains unchanged (Q3), the gradient averaging that
# DistributedDataParallel does across processes (Q4), and a plot of four samplers at equal cost to
# read (Q5).
#
# - Fill in every `# YOUR CODE HERE` (delete the `raise NotImplementedError` line under it) and
#   run the test cell under each answer: a test passes when it runs without error.
# - Check the whole notebook from a terminal: `unigm-grade check 03_implementation.ipynb` (or the
#   `.py` file) executes it in a fresh kernel and lists each test with its points.
# - Grading runs the same tests and **hidden** ones (other shapes, schedules, seeds and edge
#   cases), after running your whole notebook top to bottom. Code you type into a test cell is not
#   run when graded; write answers in the answer cells.
# - Time runs from $t = 0$ (data) to $t = 1$ (noise); samplers run from $t = 1$ down to $t = 0$.
# - No answer draws random numbers: the noise an answer needs is passed in as an argument.

# %%
import math

import torch

from unigm import paths, samplers, schedules
from unigm.densities import GaussianMixtureOnPath
from unigm.tensors import as_time, per_example

torch.manual_seed(0)

# %% [markdown]
# ### The exact problem every sampler below is measured on
#
# Take Gaussian data $x_0 \sim \mathcal N(\mu, s^2 I)$ in 2D and noise it along the VP path
# $x_t = \alpha_t x_0 + \sigma_t \varepsilon$, $\alpha_t = \sqrt{\bar\alpha(t)}$, $\sigma_t = \sqrt{1 - \bar\alpha(t)}$, with the
# linear schedule `schedules.alpha_bar_vp_linear`. Every marginal is Gaussian,
# $p_t = \mathcal N(\alpha_t \mu, v_t I)$ with $v_t = \alpha_t^2 s^2 + \sigma_t^2$, so its score, its noise prediction
# $\mathbb E[\varepsilon \mid x_t] = -\sigma_t \nabla \log p_t$ and the velocity of its probability-flow ODE are exact
# (`GAUSSIAN.score`, `exact_eps`, `GAUSSIAN.velocity`). Even the ODE's solution is known: from $x_1$ at
# $t = 1$, $x_t = \alpha_t \mu + \sqrt{v_t / v_1}\,(x_1 - \alpha_1 \mu)$ (`flow_map`). So the error of a
# sampler is measured exactly, not against another sampler. We stop at $t = 0.01$, as
# DPM-Solver must (its $\lambda$ below is infinite at $t = 0$).

# %%
MU, S, T_END = torch.tensor([1.0, -0.5], dtype=torch.float64), 0.5, 1e-2
X1 = torch.tensor([[0.3, -1.2], [-1.5, 0.8], [2.0, 1.0]], dtype=torch.float64)  # (B, D) starting points at t = 1
GAUSSIAN = GaussianMixtureOnPath(MU[None], S, paths.vp_path())  # one component: p_0 = N(MU, S^2 I)


def flow_map(x1, t):
    """The probability-flow ODE of the Gaussian, solved in closed form from time 1 to time t."""
    alpha_bar = schedules.alpha_bar_vp_linear(torch.as_tensor(t, dtype=torch.float64))
    alpha_bar_1 = schedules.alpha_bar_vp_linear(torch.tensor(1.0, dtype=torch.float64))
    v_t, v_1 = alpha_bar * S**2 + 1 - alpha_bar, alpha_bar_1 * S**2 + 1 - alpha_bar_1
    return alpha_bar.sqrt() * MU + (v_t / v_1).sqrt() * (x1 - alpha_bar_1.sqrt() * MU)


def exact_eps(x, t):
    """E[eps | x_t = x] = -sigma_t grad log p_t(x), exact for the Gaussian."""
    return GAUSSIAN.path.eps_from_score(GAUSSIAN.score(x, t), t)


# %% [markdown]
# ## Q1 (3 points): a Heun step, and its order measured
#
# A sampler in `unigm.samplers` is a loop over a *one-step function* `step(f, x, t0, t1)` that
# moves $x$ from time $t_0$ to $t_1$ along $dx/dt = f(x, t)$; `samplers.integrate(step, f, x, steps,
# t_start, t_end)` runs that loop for any such function, yours included. Euler takes
# $x_1 = x_0 + h f(x_0, t_0)$ with $h = t_1 - t_0$ (negative when sampling). **Heun's method** (the
# explicit trapezoid rule; Karras et al. 2022, arXiv:2206.00364, Algorithm 1 without its noise)
# first takes that Euler step as a trial point $\tilde x$, evaluates the field again there, at
# $t_1$, and then moves with the **average** of the two slopes.
#
# 1. `heun_step(f, x, t0, t1)`: one Heun step, with exactly two evaluations of `f`. `t0`, `t1`
#    are Python floats or 0-dim tensors; `f` wants the time as a tensor of shape `(B,)` in `x`'s
#    dtype, which `as_time(t0, x)` (imported above) gives you.
# 2. `measured_order_of(step, steps)`: for a one-step function `step`, integrate the Gaussian's
#    probability-flow ODE (`GAUSSIAN.velocity`) from `X1` at $t = 1$ to `T_END` with each number
#    of steps in `steps`, take the largest distance $\lVert x - x_\text{exact} \rVert$ over the rows of
#    `X1` (`flow_map` gives $x_\text{exact}$) as the error, and return
#    `samplers.measured_order(errors, steps)`: the slope $p$ in error $\approx C h^p$.

# %%
def heun_step(f, x, t0, t1):
    """x at t1 from x at t0 by one Heun step of dx/dt = f(x, t); two evaluations of f."""
    # YOUR CODE HERE
    raise NotImplementedError("q1: replace this line with your answer")


def measured_order_of(step, steps=(16, 32, 64)):
    """The measured global order of the one-step method `step` on the Gaussian PF-ODE (a float)."""
    # YOUR CODE HERE
    raise NotImplementedError("q1: replace this line with your answer")


# %% test="q1.step" points=2
def swirl(x, t):
    """A nonlinear, time-dependent field (B, D), (B,) -> (B, D)."""
    return -x * (1 + t[:, None]) + torch.sin(x.flip(-1))


x = torch.randn(6, 2, dtype=torch.float64)
t0, t1 = torch.tensor(0.8, dtype=torch.float64), torch.tensor(0.55, dtype=torch.float64)
ours, library = heun_step(swirl, x, t0, t1), samplers.heun_step(swirl, x, t0, t1)
assert ours.shape == x.shape, f"the step keeps the shape of x: {tuple(x.shape)}, got {tuple(ours.shape)}"
assert torch.allclose(ours, library, atol=1e-12), "differs from samplers.heun_step"
assert torch.allclose(heun_step(GAUSSIAN.velocity, X1, 0.4, 0.3),
                      samplers.heun_step(GAUSSIAN.velocity, X1, torch.tensor(0.4), torch.tensor(0.3)), atol=1e-7), \
    "differs from samplers.heun_step on the Gaussian's velocity, with the times given as floats"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q1.order" points=1
order = measured_order_of(heun_step)
assert isinstance(order, float), "return the float samplers.measured_order gives"
assert abs(order - 2) < 0.3, f"Heun is a second-order method, measured {order:.2f}"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Q2 (4 points): a DPM-Solver-2 step
#
# DDIM is Euler in disguise: first order. DPM-Solver (Lu et al. 2022, arXiv:2206.00927) gets a
# second-order sampler for the same noise-prediction network $\hat\varepsilon(x, t)$ by changing the
# variable of integration to the half log-SNR
# $$\lambda_t = \log\frac{\alpha_t}{\sigma_t} = \tfrac12\big(\log\bar\alpha(t) - \log(1 - \bar\alpha(t))\big),$$
# which grows as $t$ falls. In $\lambda$ the probability-flow ODE's solution from $t$ to $s < t$ is exact
# up to one integral of the network (their eq. 3.4):
# $$x_s = \frac{\alpha_s}{\alpha_t}\,x_t - \alpha_s \int_{\lambda_t}^{\lambda_s} e^{-\lambda}\,\hat\varepsilon(x_\lambda, \lambda)\,d\lambda.$$
# DPM-Solver-1 freezes $\hat\varepsilon$ at its value at $t$ and is exactly DDIM. **DPM-Solver-2** lets
# $\hat\varepsilon$ vary linearly in $\lambda$, its slope estimated from one more evaluation at an
# intermediate point a fraction $r \in (0, 1]$ of the way in $\lambda$. With $h = \lambda_s - \lambda_t > 0$ and
# $\hat\varepsilon_t = \hat\varepsilon(x_t, t)$, one step is (Algorithm 1 for $r = 1/2$; the general $r$ is their
# Appendix's DPM-Solver-2):
# $$t_r = t_\lambda(\lambda_t + r h), \qquad u = \frac{\alpha_{t_r}}{\alpha_t}\,x_t - \sigma_{t_r}\,(e^{r h} - 1)\,\hat\varepsilon_t,$$
# $$x_s = \frac{\alpha_s}{\alpha_t}\,x_t - \sigma_s\,(e^{h} - 1)\Big[\hat\varepsilon_t + \frac{1}{2r}\big(\hat\varepsilon(u, t_r) - \hat\varepsilon_t\big)\Big],$$
# where $t_\lambda$ is the inverse of $t \mapsto \lambda_t$. The first line is a DDIM step to $t_r$; for
# $r = 1/2$ the bracket is just $\hat\varepsilon(u, t_r)$, but only then.
#
# Write `dpm_solver2_step(eps, x, t, s, alpha_bar, r)` from these formulas, for any schedule
# `alpha_bar` (a function of a float64 tensor of times) and times $1 \ge t > s > 0$ given as floats
# or 0-dim tensors. You may use `samplers.lambda_of_t(t, alpha_bar)` and
# `samplers.t_of_lambda(lam, alpha_bar, t_low, t_high)` (the $t \in [t_\text{low}, t_\text{high}]$ with
# $\lambda_t$ = `lam`); `math.expm1(h)` is $e^h - 1$ without cancellation for small $h$. Two
# evaluations of `eps`, called with times of shape `(B,)` in `x`'s dtype (`as_time`).

# %%
def dpm_solver2_step(eps, x, t, s, alpha_bar, r=0.5):
    """One DPM-Solver-2 step of the probability-flow ODE from time t down to s, for a noise prediction eps(x, t)."""
    # YOUR CODE HERE
    raise NotImplementedError("q2: replace this line with your answer")


# %% test="q2.step" points=3
def smooth_eps(x, t):
    """A made-up noise prediction, nonlinear in x and t: (B, *E), (B,) -> (B, *E)."""
    return torch.tanh(x) * per_example(1 + t, x) - 0.3 * per_example(t, x) ** 2


def matches_library(t, s, alpha_bar, r=0.5, shape=(2,), dtype=torch.float64, tolerance=1e-10):
    x = torch.randn(8, *shape, dtype=dtype)
    ours = dpm_solver2_step(smooth_eps, x, t, s, alpha_bar, r)
    library = samplers.dpm_solver2_step(smooth_eps, x, t, s, alpha_bar, r)
    return ours.shape == x.shape and ours.dtype == dtype and torch.allclose(ours, library, atol=tolerance, rtol=tolerance)


assert matches_library(0.8, 0.5, schedules.alpha_bar_vp_linear), "differs from samplers.dpm_solver2_step (r = 1/2)"
assert matches_library(0.3, 0.02, schedules.alpha_bar_vp_linear), "differs from samplers.dpm_solver2_step near the data"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q2.gaussian" points=1
def dpm_solver2_order(r, steps=(16, 32, 64)):
    """Your step chained on equal steps from t = 1 to T_END with the exact eps; the measured order."""
    exact, errors = flow_map(X1, T_END), []
    for n in steps:
        x, grid = X1, samplers.time_grid(n, 1.0, T_END)
        for t, s in zip(grid[:-1], grid[1:]):
            x = dpm_solver2_step(exact_eps, x, t, s, schedules.alpha_bar_vp_linear, r)
        errors.append((x - exact).norm(dim=1).max().item())
    return samplers.measured_order(errors, steps)


order = dpm_solver2_order(r=0.5)
assert abs(order - 2) < 0.3, f"DPM-Solver-2 is second order; measured {order:.2f}"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Q3 (4 points): a new model class, trained by the unchanged trainer
#
# Adding a model to the library means subclassing the paradigm's base class and filling in the
# contract; `unigm.train.fit` then trains it without knowing what it is. `DirectScore` below is a
# new member of the score-based family: its network outputs the score $s_\theta(x, t) \approx \nabla \log p_t(x)$
# **directly** (the library's `VPScoreSDE` predicts the noise instead and divides by $-\sigma_t$).
# It is trained by denoising score matching (Vincent 2011; Song et al. 2021, arXiv:2011.13456,
# eq. 7) on the VP path: the score of the noising kernel $q(x_t \mid x_0) = \mathcal N(\alpha_t x_0, \sigma_t^2 I)$
# at $x_t = \alpha_t x_0 + \sigma_t \varepsilon$ is the regression target, weighted by $\lambda(t) = \sigma_t^2$:
# $$\mathcal L(\theta) = \mathbb E_{t, x_0, \varepsilon}\Big[\lambda(t)\,\big\lVert s_\theta(x_t, t) - \nabla_{x_t} \log q(x_t \mid x_0)\big\rVert^2\Big].$$
#
# The class is written except for one hook. `loss(x)` draws $t \sim U[t_\min, 1]$ and $\varepsilon$ and calls
# `dsm_loss(x0, eps, t)`, the part you write: work out $\nabla_{x_t} \log q(x_t \mid x_0)$ in terms of
# $\varepsilon$ and $\sigma_t$, then return the loss above as one number, averaged over the batch **and** the
# event's dimensions (a `.mean()` over everything, like the library's losses). Use
# `self.gaussian_path` (its `sample`, `alpha`, `sigma`; `per_example` reshapes a `(B,)` tensor to
# broadcast against `(B, *E)`) and `self.score`, so that the loss works for any event shape, and
# for any model with these two attributes.

# %%
from unigm.base import ScoreBased
from unigm.nets import MLP
from unigm.tensors import rand, randn_like


class DirectScore(ScoreBased):
    """Denoising score matching with a network that outputs the score itself, on the VP path."""

    def __init__(self, event_shape, hidden=64, depth=2, t_min=1e-2):
        super().__init__(event_shape)
        self.net = MLP(self.event_dim, self.event_dim, hidden, depth, time_dim=16)
        self.gaussian_path = paths.vp_path()  # alpha_t = sqrt(alpha_bar(t)), sigma_t = sqrt(1 - alpha_bar(t))
        self.t_min = t_min

    def score(self, x, t):  # (B, *E), (B,) -> (B, *E)
        return self.unflat(self.net(self.flat(x), as_time(t, x)))

    def loss(self, x, *, generator=None):
        x0 = self.check_input(x)
        t = self.t_min + (1 - self.t_min) * rand((x0.shape[0],), x0, generator)  # the library's order: t, then eps
        eps = randn_like(x0, generator)
        return self.dsm_loss(x0, eps, t)

    def dsm_loss(self, x0, eps, t):
        """lambda(t) |s_theta(x_t, t) - grad log q(x_t | x_0)|^2 with lambda = sigma_t^2, averaged over everything."""
        # YOUR CODE HERE
        raise NotImplementedError("q3: replace this line with your answer")

    @torch.no_grad()
    def sample(self, n, steps=50, *, generator=None):
        """The probability-flow ODE dx/dt = -beta(t) (x + score) / 2 from N(0, I) at t = 1, by Heun."""
        x = self.randn(self.check_n(n), *self.event_shape, generator=generator)
        velocity = samplers.probability_flow_vp(self.score, schedules.beta_vp_linear)
        return samplers.heun(velocity, x, steps, 1.0, self.t_min)


# %% test="q3.value" points=2
from unigm.diffusion import VPScoreSDE


def matches_noise_loss(shape, seed):
    """Applied to the library's VPScoreSDE (score = -eps_theta / sigma), your loss must be its noise loss
    |eps_theta(x_t, t) - eps|^2: the weight sigma_t^2 is what makes the two the same."""
    torch.manual_seed(seed)
    library_model = VPScoreSDE(shape, VPScoreSDE.Config(hidden=32, t_min=1e-3)).double()
    x0 = torch.randn(64, *shape, dtype=torch.float64)
    library = library_model.loss(x0, generator=torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed)  # the same stream: the library draws t, then eps
    t = 1e-3 + (1 - 1e-3) * torch.rand(64, generator=g, dtype=torch.float64)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    ours = DirectScore.dsm_loss(library_model, x0, eps, t)  # your method, with the library's model as self
    return ours.shape == () and abs(ours.item() - library.item()) < 1e-9 * library.item()


assert matches_noise_loss((2,), seed=1), "differs from VPScoreSDE.loss: check the target's sign and scale, the weight, the mean"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q3.minimiser" points=1
def loss_slope_at_true_score(n, seed):
    """d/d delta of dsm_loss when the score is the Gaussian's exact score + delta * (a direction), at delta = 0.
    Denoising score matching is minimised by the true score, so this slope must vanish (up to Monte Carlo error)."""
    g = torch.Generator().manual_seed(seed)
    x0 = MU + S * torch.randn(n, 2, generator=g, dtype=torch.float64)
    eps = torch.randn(n, 2, generator=g, dtype=torch.float64)
    t = 0.01 + 0.99 * torch.rand(n, generator=g, dtype=torch.float64)
    delta = torch.zeros((), dtype=torch.float64, requires_grad=True)
    oracle = DirectScore((2,)).double()
    oracle.score = lambda x, time: (1 + delta) * GAUSSIAN.score(x, time)  # the exact score, then nudged
    (slope,) = torch.autograd.grad(DirectScore.dsm_loss(oracle, x0, eps, t), delta)
    return slope.item()


slope = loss_slope_at_true_score(100_000, seed=0)
assert abs(slope) < 0.01, f"the loss still falls when the true score is nudged (slope {slope:.3f}): wrong target"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q3.fit" points=1
from unigm.train import fit


def relative_score_error(model, seed=0):
    """E|s_theta - s|^2 / E|s|^2 over x_t ~ p_t at a few times, against the Gaussian's exact score."""
    g, total, norm = torch.Generator().manual_seed(seed), 0.0, 0.0
    with torch.no_grad():
        for time in (0.1, 0.3, 0.6, 0.9):
            x = GAUSSIAN.sample(2000, time, g).float()
            t = torch.full((2000,), time)
            exact = GAUSSIAN.score(x.double(), t.double()).float()
            total += (model.score(x, t) - exact).pow(2).sum().item()
            norm += exact.pow(2).sum().item()
    return total / norm


gaussian_data = MU.float() + S * torch.randn(4096, 2, generator=torch.Generator().manual_seed(3))
torch.manual_seed(0)
score_model = DirectScore((2,))
before = relative_score_error(score_model)
history = fit(score_model, gaussian_data, steps=400, batch_size=256, lr=1e-2, progress=False, seed=0)
after = relative_score_error(score_model)
print(f"relative score error: {before:.3f} untrained, {after:.3f} after {history.steps} steps")
assert after < 0.1 * before and after < 0.05, f"fit did not learn the score: relative error {after:.3f}"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Q4 (4 points): gradient averaging across processes, by hand
#
# Under `torchrun`, `fit` runs one copy of the model on each of $K$ processes ("ranks"). Each rank
# draws its own share of the global batch, computes the gradient of **its** mean loss, and
# DistributedDataParallel then all-reduces the gradients: every rank receives the **average** of the
# $K$ gradients and takes the same optimiser step, so the copies stay identical. Is that the
# gradient one process would get on the whole batch? For a loss that is a mean over examples,
# $L = \frac1N \sum_{i=1}^N \ell_i$, split into shards of $n_1, \dots, n_K$ examples with $N = \sum_k n_k$, write
# the full gradient in terms of the shard gradients $g_k = \nabla \frac{1}{n_k}\sum_{i \in k} \ell_i$.
#
# 1. `rank_gradient(model, loss_fn, shard)`: what one rank computes, the gradient of
#    `loss_fn(model, shard)` with respect to `model.parameters()`, as a list of tensors in that
#    order. Leave the parameters' `.grad` alone (`torch.autograd.grad` returns gradients without
#    storing them).
# 2. `all_reduce(gradients, sizes)`: `gradients[k]` is rank $k$'s list and `sizes[k]` its $n_k$;
#    return the list of gradients of $L$ over the union of the shards. With equal shards (what
#    `fit` makes) this is DDP's plain average; the last, smaller batch of an epoch is where the plain
#    average goes wrong. Your reduction must stay exact there.

# %%
def rank_gradient(model, loss_fn, shard):
    """[d loss_fn(model, shard) / d p for p in model.parameters()], without touching p.grad."""
    # YOUR CODE HERE
    raise NotImplementedError("q4: replace this line with your answer")


def all_reduce(gradients, sizes):
    """The gradient of the mean loss over all shards, from each rank's gradient of its own mean loss."""
    # YOUR CODE HERE
    raise NotImplementedError("q4: replace this line with your answer")


# %% test="q4.rank" points=1
from unigm import zoo


def flow_matching_loss(model, shard):
    """A mean over the shard's examples; the noise comes with the data, so the loss is deterministic."""
    x0, x1, t = shard
    x_t = per_example(1 - t, x0) * x0 + per_example(t, x0) * x1
    return (model.velocity(x_t, t) - (x1 - x0)).pow(2).mean()


def make_shards(sizes, seed, shape=(2,)):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(n, *shape, generator=g, dtype=torch.float64), torch.randn(n, *shape, generator=g, dtype=torch.float64),
             torch.rand(n, generator=g, dtype=torch.float64)) for n in sizes]


torch.manual_seed(0)
fm_model = zoo.make("flow_matching", (2,), hidden=32).double()
(shard,) = make_shards([16], seed=1)
grads = rank_gradient(fm_model, flow_matching_loss, shard)
flow_matching_loss(fm_model, shard).backward()
assert len(grads) == len(list(fm_model.parameters())), "one gradient per parameter tensor"
assert all(torch.allclose(g, p.grad, atol=1e-12) for g, p in zip(grads, fm_model.parameters())), "not the gradient"
fm_model.zero_grad(set_to_none=True)
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q4.equal" points=1
def global_gradient(model, shards):
    """What one process computes on the whole batch: autograd on the concatenated shards."""
    whole = tuple(torch.cat(parts) for parts in zip(*shards))
    return torch.autograd.grad(flow_matching_loss(model, whole), list(model.parameters()))


def reduction_is_exact(model, sizes, seed):
    shards = make_shards(sizes, seed)  # the per-rank gradients from autograd, so that Q4.1 is not graded twice
    per_rank = [list(torch.autograd.grad(flow_matching_loss(model, shard), list(model.parameters()))) for shard in shards]
    reduced = all_reduce(per_rank, sizes)
    return len(reduced) == len(per_rank[0]) and all(
        torch.allclose(a, b, atol=1e-12) for a, b in zip(reduced, global_gradient(model, shards)))


assert reduction_is_exact(fm_model, [32, 32], seed=3), "2 ranks of 32 examples: not the gradient of the whole batch"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q4.unequal" points=2
assert reduction_is_exact(fm_model, [48, 16], seed=5), "shards of 48 and 16 examples: not the gradient of the whole batch"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Q5 (2 points): predict, then run: which sampler wins at a fixed budget?
#
# The cost of a sampler is its number of network evaluations (NFE): Euler and DDIM spend one per
# step, Heun and DPM-Solver-2 two. The cell below runs the library's four samplers on the exact
# problem above (DDIM and DPM-Solver-2 with the exact noise prediction, Euler and Heun with the
# exact velocity, all on equal steps in $t$ from 1 to `T_END`) at NFE = 4, 8, ..., 128 and plots the
# error against the NFE. **Predict first**: at NFE = 32, which is most accurate? Then run it and read
# the plot (the printed table has the same numbers).

# %%
import matplotlib.pyplot as plt

NFES = [4, 8, 16, 32, 64, 128]


def sampler_error(name, nfe):
    """Max distance to the exact flow map at T_END of one library sampler spending `nfe` evaluations."""
    if name in ("ddim", "dpm_solver2"):
        steps = nfe if name == "ddim" else nfe // 2
        x = getattr(samplers, name)(exact_eps, X1, steps, schedules.alpha_bar_vp_linear, t_end=T_END)
    else:
        steps = nfe if name == "euler" else nfe // 2
        x = getattr(samplers, name)(GAUSSIAN.velocity, X1, steps, t_end=T_END)
    return (x - flow_map(X1, T_END)).norm(dim=1).max().item()


budget_errors = {name: [sampler_error(name, nfe) for nfe in NFES] for name in ("euler", "heun", "ddim", "dpm_solver2")}
plt.figure(figsize=(5, 3.6))
for name, errors in budget_errors.items():
    plt.loglog(NFES, errors, "o-", label=name)
    print(f"{name:<12}", "  ".join(f"{e:.1e}" for e in errors))
plt.xlabel("network evaluations (NFE)")
plt.ylabel("max |error| at t = 0.01")
plt.legend()
plt.grid(True, which="both", alpha=0.3)
plt.show()

# %% [markdown]
# *Figure: the error of four samplers with a perfect network against their cost, log-log axes.*
#
# Read the plot, then answer. (a) When the NFE doubles (from 32 to 64, say), by about what factor
# does the error fall for Euler, and for DPM-Solver-2: 2, 4 or 8? (b) Which sampler has the smallest
# error at NFE = 32: `"euler"`, `"heun"`, `"ddim"` or `"dpm_solver2"`?

# %%
def error_factor_per_doubling():
    """(factor for Euler, factor for DPM-Solver-2), each 2, 4 or 8."""
    # YOUR CODE HERE
    raise NotImplementedError("q5: replace this line with your answer")


def best_at_32():
    """The name of the most accurate sampler at NFE = 32."""
    # YOUR CODE HERE
    raise NotImplementedError("q5: replace this line with your answer")


# %% test="q5.read" points=2
factors, best = error_factor_per_doubling(), best_at_32()
assert len(factors) == 2 and all(f in (2, 4, 8) for f in factors), "two factors, each 2, 4 or 8"
assert best in ("euler", "heun", "ddim", "dpm_solver2"), 'one of "euler", "heun", "ddim", "dpm_solver2"'
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Done?
#
# Restart the kernel and run all cells: every test cell should pass. The order of a sampler says how
# fast its error falls, not how small it is: in Q5 the constant $C$ in $C h^p$ decides the winner at a
# small budget (Lu et al. space DPM-Solver's steps equally in $\lambda$, not in $t$, for this reason;
# try `samplers.dpm_solver2(..., times=...)` with such a grid). Lecture 03 times the same
# samplers compiled (`samplers.fast_sampler`), and runs `fit` under `torchrun` with two processes:
# the gradient averaging of Q4, done by DistributedDataParallel during the backward pass.
