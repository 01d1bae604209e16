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
# # Exercise 05: the frontier, by hand
#
# *Goes with lecture 05 (frontier). 5 questions, 18 points; runs in about ten seconds on a laptop
# CPU (nothing is trained).*
#
# Lecture 05 went past the course's main models to the ideas that tie them together: stochastic
# interpolants, entropic couplings, Wasserstein gradient flows and particle flows. Here you write
# the core of each on problems whose answers are known, and check it against `unigm.frontier`,
# against POT and against closed forms: a stochastic interpolant, its regression target and the
# exact velocity field of Gaussian data (derived, Q1); an entropic optimal-transport plan by
# Sinkhorn's iterations and its limit as the blur vanishes (Q2); one step of the JKO scheme for
# Gaussians in closed form (derived) and its order measured against the exact flow (Q3); the
# score-difference drift of DiffFlow from a kernel estimate of the particles' score, the optimal
# discriminator's version of it, and why the bare data score does not leave the data in place
# (derived, Q4); and, to finish, where an unbalanced plan destroys and creates mass (Q5).
#
# - Fill in every `# YOUR CODE HERE` (delete the `raise NotImplementedError` line under it) and
#   run the test cell under each answer: a test passes when it runs without error.
# - Check the whole notebook from a terminal: `unigm-grade check 05_frontier.ipynb` (or the
#   `.py` file) executes it in a fresh kernel and lists each test with its points.
# - Grading runs the same tests and **hidden** ones (other shapes, dimensions, parameters, dtypes
#   and edge cases), after running your whole notebook top to bottom. Code you type into a test
#   cell is not run when graded; write answers in the answer cells.
# - Time runs from $t = 0$ (data) to $t = 1$ (noise): $x_t = \alpha_t x_0 + \beta_t x_1 + \gamma_t z$
#   with $x_0$ the data and $x_1$ the noise.
# - No answer draws random numbers: the noise an answer needs is passed in as an argument.

# %%
import math

import numpy as np
import ot
import torch

from unigm.frontier import diffflow, gradient_flows, interpolants
from unigm.tensors import per_example

torch.manual_seed(0)

# %% [markdown]
# ## Q1 (4 points): a stochastic interpolant, its target and its velocity
#
# A stochastic interpolant (Albergo, Boffi & Vanden-Eijnden 2023, arXiv:2303.08797) joins a data
# point $x_0$ to a noise point $x_1 \sim \mathcal N(0, I)$, with an extra latent noise $z \sim \mathcal N(0, I)$
# (all three independent):
# $$x_t = \alpha_t x_0 + \beta_t x_1 + \gamma_t z, \qquad \alpha_0 = \beta_1 = 1,\ \alpha_1 = \beta_0 = 0,\
#   \gamma_0 = \gamma_1 = 0.$$
# The velocity field $b(t, x)$ whose ODE carries the noise to the data regresses onto the time
# derivative of the path at fixed $(x_0, x_1, z)$, the **target** $\dot\alpha_t x_0 + \dot\beta_t x_1 + \dot\gamma_t z$:
# $b(t, x) = \mathbb E[\dot\alpha_t x_0 + \dot\beta_t x_1 + \dot\gamma_t z \mid x_t = x]$.
# Here the schedule is trigonometric with a latent term of amplitude $a \ge 0$:
# $$\alpha_t = \cos\tfrac{\pi t}{2}, \qquad \beta_t = \sin\tfrac{\pi t}{2}, \qquad \gamma_t = a\sqrt{t(1 - t)}.$$
#
# 1. `interpolant(x0, x1, z, t, a)`: $x_t$, in `x0`'s dtype. `x0`, `x1`, `z` have one shape `(B, *E)`
#    (points, or images `(B, C, H, W)`), `t` is `(B,)` in $[0, 1]$, one time per example, and $a \ge 0$
#    a float: `per_example(t, x0)` (imported above) reshapes `t` to `(B, 1, ..., 1)` in `x0`'s dtype.
# 2. `velocity_target(x0, x1, z, t, a)`: the target $\dot\alpha_t x_0 + \dot\beta_t x_1 + \dot\gamma_t z$, for $t$
#    strictly inside $(0, 1)$ ($\dot\gamma_t$ is infinite at both ends).
# 3. Take Gaussian data, $x_0 \sim \mathcal N(m, s^2 I)$. Then $x_t$ is Gaussian too, and so is the pair
#    (target, $x_t$). **Derive** the exact velocity $b(t, x)$ in terms of $\alpha, \beta, \gamma$, their
#    derivatives, $m$ and $s$. Hint: per coordinate, for jointly Gaussian $U, X$,
#    $\mathbb E[U \mid X = x] = \mathbb E U + \frac{\operatorname{Cov}(U, X)}{\operatorname{Var} X}(x - \mathbb E X)$; write
#    $v_t = \operatorname{Var} x_t$ (per coordinate) and notice what $\operatorname{Cov}(\text{target}, x_t)$ is in
#    terms of $v_t$. Write `gaussian_velocity(x, t, mean, std, a)`: `x` `(B, *E)`, `t` `(B,)` in
#    $(0, 1)$, `mean` a tensor of shape `E` (or a 0-dim tensor), `std` $= s > 0$ a float.

# %%
def interpolant(x0, x1, z, t, a):
    """x_t = cos(pi t / 2) x0 + sin(pi t / 2) x1 + a sqrt(t (1 - t)) z, t (B,) one time per example."""
    # YOUR CODE HERE
    raise NotImplementedError("q1: replace this line with your answer")


def velocity_target(x0, x1, z, t, a):
    """d/dt x_t at fixed (x0, x1, z): alpha' x0 + beta' x1 + gamma' z, for t in (0, 1)."""
    # YOUR CODE HERE
    raise NotImplementedError("q1: replace this line with your answer")


def gaussian_velocity(x, t, mean, std, a):
    """The exact velocity b(t, x) = E[target | x_t = x] for data N(mean, std^2 I), t (B,) in (0, 1)."""
    # YOUR CODE HERE
    raise NotImplementedError("q1: replace this line with your answer")


# %% test="q1.path" points=1
def library_coefficients(t, x, a):
    """[alpha, beta, gamma, alpha', beta', gamma'] of the library's trigonometric + gamma schedule, each (B, 1, ...)."""
    return interpolants.with_gamma(interpolants.trigonometric(), a).coefficients(t.double(), x.double())


def close(ours, expected, tolerance=1e-10):
    return ours.shape == expected.shape and torch.allclose(ours.double(), expected.double(), rtol=tolerance,
                                                           atol=tolerance)


g = torch.Generator().manual_seed(0)
x0, x1, z = (torch.randn(4, 3, generator=g, dtype=torch.float64) for _ in range(3))
t = torch.tensor([0.0, 1.0, 0.3, 0.75], dtype=torch.float64)
x_t = interpolant(x0, x1, z, t, 0.5)
assert close(x_t[0], x0[0]) and close(x_t[1], x1[1]), "the boundary conditions: x_t = x0 (data) at t = 0, x1 (noise) at t = 1"
alpha, beta, gamma, *_ = library_coefficients(t, x0, 0.5)
assert close(x_t, alpha * x0 + beta * x1 + gamma * z), \
    "differs from the library's with_gamma(trigonometric(), 0.5) schedule"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q1.velocity" points=1
g = torch.Generator().manual_seed(2)
x0, x1, z = (torch.randn(5, 3, generator=g, dtype=torch.float64) for _ in range(3))
t, dt = torch.tensor([0.05, 0.3, 0.5, 0.7, 0.95], dtype=torch.float64), 1e-6
finite_difference = (interpolant(x0, x1, z, t + dt, 0.8) - interpolant(x0, x1, z, t - dt, 0.8)) / (2 * dt)
target = velocity_target(x0, x1, z, t, 0.8)
assert close(target, finite_difference, 1e-6), "differs from the central finite difference of your interpolant"
*_, d_alpha, d_beta, d_gamma = library_coefficients(t, x0, 0.8)
assert close(target, d_alpha * x0 + d_beta * x1 + d_gamma * z), "differs from the library schedule's derivatives"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q1.gaussian" points=2
def library_gaussian_velocity(x, t, mean, std, a):
    velocity, _ = interpolants.gaussian_fields(interpolants.with_gamma(interpolants.trigonometric(), a), mean, std)
    return velocity(x, t)


g = torch.Generator().manual_seed(4)
x = 2 * torch.randn(6, 2, generator=g, dtype=torch.float64)
t = torch.tensor([0.02, 0.2, 0.4, 0.6, 0.8, 0.98], dtype=torch.float64)
mean = torch.tensor([1.0, -2.0], dtype=torch.float64)
assert close(gaussian_velocity(x, t, mean, 0.5, 0.7), library_gaussian_velocity(x, t, mean, 0.5, 0.7), 1e-9), \
    "differs from interpolants.gaussian_fields for data N((1, -2), 0.5^2 I), a = 0.7"
standard = gaussian_velocity(x, t, torch.zeros(2, dtype=torch.float64), 1.0, 0.0)
assert close(standard, torch.zeros_like(x)), \
    "data N(0, I) and a = 0: x_t ~ N(0, I) at every t (cos^2 + sin^2 = 1), so nothing needs to move"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Q2 (4 points): an entropic coupling, by Sinkhorn's iterations
#
# Lecture 05's Schrödinger-bridge interpolant pairs each data point of a minibatch with a noise
# point drawn from the **entropic optimal-transport plan** between the two batches. For point
# clouds $x_0$ `(n, *E)` and $x_1$ `(m, *E)` with uniform weights $a_i = 1/n$, $b_j = 1/m$ and the
# cost $C_{ij} = \lVert x_{0,i} - x_{1,j} \rVert^2$ (the rows flattened), the plan is
# $$P = \arg\min_{P \ge 0,\ P\mathbf 1 = a,\ P^\top \mathbf 1 = b} \langle P, C\rangle + \varepsilon \sum_{ij} P_{ij}\log P_{ij}$$
# (POT's `ot.sinkhorn(a, b, C, reg=ε)`). Its solution has the form
# $P = \operatorname{diag}(u) K \operatorname{diag}(v)$, $K = e^{-C / \varepsilon}$, and Sinkhorn (1967; Cuturi 2013) finds
# the scalings by alternating the two marginal constraints, starting from $v = \mathbf 1$:
# $$u \leftarrow a / (K v), \qquad v \leftarrow b / (K^\top u).$$
# For small $\varepsilon$, $K$ underflows to 0 (and $0/0$ follows): run the same updates **in the log
# domain**, on $f = \varepsilon \log u$ and $g = \varepsilon \log v$, with `torch.logsumexp`.
#
# 1. `sinkhorn(x0, x1, reg, iterations)`: the plan `(n, m)` in float64 after `iterations` pairs
#    of updates (the $v$ update last). It must work for any `reg` > 0, however small: $e^{-C / \varepsilon}$
#    is 0 in float64 once $C / \varepsilon > 745$.
#
# The second test checks the marginals and the form $P_{ij} = e^{(f_i + g_j - C_{ij}) / \varepsilon}$; the third
# what happens as $\varepsilon \to 0$: the plan tends to an optimal plan of unregularised OT (`ot.emd`).

# %%
def sinkhorn(x0, x1, reg, iterations=1000):
    """The entropic-OT plan (n, m), float64, between uniform weights on the rows of x0 and x1, cost |x0_i - x1_j|^2."""
    # YOUR CODE HERE
    raise NotImplementedError("q2: replace this line with your answer")


# %% test="q2.plan" points=2
def pot_plan(x0, x1, reg, method="sinkhorn"):
    a, b = x0.double().reshape(len(x0), -1).numpy(), x1.double().reshape(len(x1), -1).numpy()
    return torch.as_tensor(ot.sinkhorn(np.full(len(a), 1 / len(a)), np.full(len(b), 1 / len(b)), ot.dist(a, b), reg,
                                       method=method, numItermax=20_000, stopThr=1e-13))


g = torch.Generator().manual_seed(10)
cloud_0, cloud_1 = torch.randn(6, 2, generator=g, dtype=torch.float64), torch.randn(8, 2, generator=g, dtype=torch.float64) + 1
plan = sinkhorn(cloud_0, cloud_1, 0.5)
assert isinstance(plan, torch.Tensor) and plan.shape == (6, 8) and plan.dtype == torch.float64, "a float64 tensor (n, m)"
assert torch.allclose(plan, pot_plan(cloud_0, cloud_1, 0.5), atol=1e-10), "differs from ot.sinkhorn with the same reg"
sigma = 0.8
assert torch.allclose(sinkhorn(cloud_0, cloud_1, 2 * sigma**2),
                      torch.as_tensor(interpolants.sinkhorn_plan(cloud_0, cloud_1, sigma)), atol=1e-9), \
    "differs from interpolants.sinkhorn_plan(sigma = 0.8), the Schrodinger bridge's plan (reg = 2 sigma^2)"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q2.marginals" points=1
cost = torch.cdist(cloud_0, cloud_1).pow(2)
for reg in (0.1, 1.0, 10.0):
    plan = sinkhorn(cloud_0, cloud_1, reg)
    assert torch.allclose(plan.sum(1), torch.full((6,), 1 / 6, dtype=torch.float64), atol=1e-9) and torch.allclose(
        plan.sum(0), torch.full((8,), 1 / 8, dtype=torch.float64), atol=1e-9), f"reg = {reg}: the marginals are 1/n and 1/m"
    potentials = plan.log() + cost / reg  # f_i / reg + g_j / reg: a sum of a row term and a column term
    centred = potentials - potentials.mean(1, keepdim=True) - potentials.mean(0, keepdim=True) + potentials.mean()
    assert centred.abs().max() < 1e-6, f"reg = {reg}: the plan is not of the form exp((f_i + g_j - C_ij) / reg)"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q2.limit" points=1
square = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
targets = torch.tensor([[1.2, 1.3], [-0.2, 0.1], [1.1, -0.3], [0.1, 1.4]], dtype=torch.float64)
exact = torch.as_tensor(ot.emd(np.full(4, 0.25), np.full(4, 0.25), ot.dist(square.numpy(), targets.numpy())))
distances = []
for reg in (1.0, 0.3, 0.1, 0.03, 1e-4):  # at reg = 1e-4, exp(-C / reg) is 0 for every pair of the second point
    distances.append((sinkhorn(square, targets, reg) - exact).abs().sum().item())
print("L1 distance to ot.emd's plan for reg = 1, 0.3, 0.1, 0.03, 1e-4:", [f"{d:.1e}" for d in distances])
assert all(later < earlier or later < 1e-9 for earlier, later in zip(distances, distances[1:])), \
    "as reg decreases the plan nears ot.emd's"
assert distances[-1] < 1e-9, "reg = 1e-4: the plan is the optimal permutation, each pair with mass 1/4 (log domain?)"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Q3 (4 points): one JKO step for Gaussians, and its order
#
# The Ornstein-Uhlenbeck process $dx = -x\,dt + \sqrt 2\,dW$ moves its law $\rho_t$ along the
# Wasserstein-2 gradient flow of $\mathrm{KL}(\rho \,\|\, \mathcal N(0, 1))$ (lecture 02, result 7; lecture 05,
# section 5). The JKO scheme (Jordan, Kinderlehrer & Otto 1998) discretises that flow **implicitly**, with
# steps of size $\tau$:
# $$\rho_{k+1} = \arg\min_\rho\ \mathrm{KL}(\rho \,\|\, \mathcal N(0, 1)) + \frac{W_2^2(\rho, \rho_k)}{2\tau}.$$
# From a Gaussian $\rho_k = \mathcal N(m, s^2)$ (1D) the minimiser is Gaussian (take this as given), so the
# minimisation runs over $\rho = \mathcal N(m', s'^2)$, $s' > 0$: both terms have closed forms (the KL of
# exercise 00, the Fréchet distance of exercise 04, which is $W_2^2$ between Gaussians).
#
# 1. `jko_objective(m_new, s_new, m, s, tau)`: the objective above at $\rho = \mathcal N(m_\text{new}, s_\text{new}^2)$,
#    $\rho_k = \mathcal N(m, s^2)$, a float.
# 2. **Derive** its minimiser by hand (lecture 02's step 7.4 checks it with sympy): set both partial
#    derivatives to zero ($s'$ solves a quadratic: keep its positive root), and write
#    `jko_step(m, s, tau)`: the pair of floats `(m_next, s_next)`.
# 3. The exact flow from $\mathcal N(m, s^2)$ is $\mathcal N(m e^{-t}, 1 + (s^2 - 1) e^{-2t})$ at time $t$
#    (`gradient_flows.fokker_planck_gaussian(m, s, t)` returns its mean and standard deviation).
#    `jko_error(m, s, tau, t_end)`: take $K$ = `round(t_end / tau)` JKO steps from $\mathcal N(m, s^2)$ with
#    your `jko_step` and return $|m_K - m(t_\text{end})| + |s_K - s(t_\text{end})|$, a float. The test
#    prints it for $\tau$ and $\tau / 2$: the scheme is of order one, the error halves.

# %%
def jko_objective(m_new, s_new, m, s, tau):
    """KL(N(m_new, s_new^2) || N(0, 1)) + W2^2(N(m_new, s_new^2), N(m, s^2)) / (2 tau), a float."""
    # YOUR CODE HERE
    raise NotImplementedError("q3: replace this line with your answer")


def jko_step(m, s, tau):
    """The minimiser (m_next, s_next) of jko_objective over N(m_next, s_next^2), in closed form."""
    # YOUR CODE HERE
    raise NotImplementedError("q3: replace this line with your answer")


def jko_error(m, s, tau, t_end):
    """|m_K - m(t_end)| + |s_K - s(t_end)| after K = round(t_end / tau) JKO steps from N(m, s^2)."""
    # YOUR CODE HERE
    raise NotImplementedError("q3: replace this line with your answer")


# %% test="q3.objective" points=1
def oracle_objective(m_new, s_new, m, s, tau):
    """KL from torch.distributions, W2 from POT's Bures-Wasserstein distance."""
    as64 = lambda v: torch.tensor(float(v), dtype=torch.float64)
    kl = torch.distributions.kl_divergence(torch.distributions.Normal(as64(m_new), as64(s_new)),
                                           torch.distributions.Normal(as64(0.0), as64(1.0))).item()
    w2 = ot.gaussian.bures_wasserstein_distance(np.array([m_new]), np.array([m]), np.array([[s_new**2]]),
                                                np.array([[s**2]]))
    return kl + float(w2) ** 2 / (2 * tau)


ours = jko_objective(0.7, 0.8, 2.0, 0.5, 0.3)
assert isinstance(ours, float) and abs(ours - oracle_objective(0.7, 0.8, 2.0, 0.5, 0.3)) < 1e-6, \
    "differs from KL (torch.distributions) + W2^2 (POT) / (2 tau)"
assert abs(jko_objective(0.0, 1.0, 0.0, 1.0, 0.1)) < 1e-12, "N(0, 1) to itself: no KL, no transport"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q3.step" points=2
from scipy.optimize import minimize


def minimised(m, s, tau):
    """The JKO step found numerically: BFGS on the oracle's objective over (m', log s')."""
    result = minimize(lambda p: oracle_objective(p[0], math.exp(p[1]), m, s, tau), np.array([m, math.log(s)]),
                      method="BFGS", options={"gtol": 1e-10})
    return float(result.x[0]), math.exp(float(result.x[1]))


ours = jko_step(2.0, 0.5, 0.3)
assert isinstance(ours, tuple) and len(ours) == 2 and all(isinstance(v, float) for v in ours), "a pair of floats"
assert all(abs(u - v) < 1e-12 for u, v in zip(ours, gradient_flows.gaussian_jko_step(2.0, 0.5, 0.3))), \
    "differs from gradient_flows.gaussian_jko_step"
assert all(abs(u - v) < 1e-5 for u, v in zip(ours, minimised(2.0, 0.5, 0.3))), \
    "differs from a numerical minimisation of the objective (scipy BFGS)"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q3.order" points=1
from unigm.course.grading.kernel_side import replaced


def library_step(m, s, tau):
    return gradient_flows.gaussian_jko_step(m, s, tau)


def expected_error(m, s, tau, t_end):
    (m_k, s_k), exact = gradient_flows.gaussian_jko_iterates(m, s, tau, round(t_end / tau))[-1], \
        gradient_flows.fokker_planck_gaussian(m, s, t_end)
    return abs(m_k - exact[0]) + abs(s_k - exact[1])


with replaced(globals(), jko_step=library_step):  # graded with the library's step, so that Q3.2 counts once
    errors = [jko_error(2.0, 0.5, tau, 1.0) for tau in (0.1, 0.05, 0.025)]
    print("JKO error at t = 1 for tau = 0.1, 0.05, 0.025:", [f"{e:.2e}" for e in errors])
    assert isinstance(errors[0], float) and abs(errors[0] - expected_error(2.0, 0.5, 0.1, 1.0)) < 1e-12, \
        "differs from K = 10 library JKO steps against gradient_flows.fokker_planck_gaussian"
    assert all(1.8 < earlier / later < 2.2 for earlier, later in zip(errors, errors[1:])), \
        "order one: the error halves when tau halves"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Q4 (4 points): the score-difference drift (DiffFlow)
#
# DiffFlow (Zhang et al. 2023, arXiv:2307.02159) moves particles $x \sim p_g$ along
# $$\frac{dx}{dt} = \nabla \log p_\text{data}(x) - \nabla \log p_g(x).$$
# Langevin dynamics toward $p_\text{data}$ has the same marginals, and $p_g = p_\text{data}$ is a fixed point (the
# drift is zero there). It is also a GAN's flow: the optimal discriminator
# $D^* = p_\text{data} / (p_\text{data} + p_g)$ has the logit $\log \frac{D^*}{1 - D^*} = \log p_\text{data} - \log p_g$,
# whose gradient is the drift. The particles' score is unknown; estimate it from the particles
# $x_1, \dots, x_n$ with a Gaussian kernel density estimate of bandwidth $h$,
# $q_h(x) = \frac1n \sum_j \mathcal N(x; x_j, h^2 I)$, **each particle's own kernel included** when $x$ is a
# particle.
#
# 1. `kde_score(x, particles, h)`: $\nabla_x \log q_h(x)$ for rows `x` `(B, D)` and `particles` `(n, D)`,
#    `(B, D)` in `x`'s dtype. Differentiate: you get a weighted mean of $(x_j - x) / h^2$; compute the
#    weights stably (far from all particles every kernel underflows to 0).
# 2. `score_difference_drift(x, data_score, h, particle_score=None)`: the drift at the particles `x`
#    `(n, D)`: `data_score(x)` minus the particles' score, `particle_score(x)` when it is given,
#    otherwise the KDE of the particles `x` themselves.
# 3. A KDE of bandwidth $h$ estimates the score of $p_g * \mathcal N(0, h^2 I)$, not that of $p_g$, so the flow
#    pairs it with the score of $p_\text{data} * \mathcal N(0, h^2 I)$: like with like. **Derive** the drift
#    for $p_\text{data} = \mathcal N(\mu_d, I)$ and $p_g = \mathcal N(\mu_g, I)$, both smoothed by $h$, and write
#    `gaussian_drift(mu_d, mu_g, h)` (vectors `(D,)`; the drift is the same at every $x$). With $h = 0$
#    it is the gradient of the optimal discriminator's logit.
# 4. Pair the KDE with the **bare** data score instead, $\nabla \log p_\text{data}(x) = -(x - \mu_d)$, and start
#    the particles at $p_\text{data}$ itself. With many particles the drift is $-c\,(x - \mu_d)$: the flow
#    contracts the data it should leave in place. **Derive** $c$ and write `contraction_rate(h)`.

# %%
def kde_score(x, particles, h):
    """grad_x log (1/n) sum_j N(x; particles_j, h^2 I): (B, D), (n, D) -> (B, D)."""
    # YOUR CODE HERE
    raise NotImplementedError("q4: replace this line with your answer")


def score_difference_drift(x, data_score, h, particle_score=None):
    """data_score(x) - (particle_score(x), or the KDE score of the particles x with bandwidth h)."""
    # YOUR CODE HERE
    raise NotImplementedError("q4: replace this line with your answer")


def gaussian_drift(mu_d, mu_g, h):
    """grad log (N(mu_d, I) * N(0, h^2 I)) - grad log (N(mu_g, I) * N(0, h^2 I)): (D,)."""
    # YOUR CODE HERE
    raise NotImplementedError("q4: replace this line with your answer")


def contraction_rate(h):
    """c in drift = -c (x - mu_d): bare data score of N(mu_d, I) minus the score of N(mu_d, I) * N(0, h^2 I)."""
    # YOUR CODE HERE
    raise NotImplementedError("q4: replace this line with your answer")


# %% test="q4.kde" points=1
g = torch.Generator().manual_seed(40)
particles = torch.randn(50, 2, generator=g, dtype=torch.float64)
x = 1.5 * torch.randn(7, 2, generator=g, dtype=torch.float64)
assert torch.allclose(kde_score(x, particles, 0.4), diffflow.kde_score(x, particles, 0.4), atol=1e-10), \
    "differs from diffflow.kde_score"
assert torch.allclose(kde_score(particles, particles, 0.3), diffflow.kde_score(particles, particles, 0.3), atol=1e-10), \
    "at the particles themselves (each one's own kernel included): differs from diffflow.kde_score"
assert torch.allclose(kde_score(x, particles[:1], 0.5), (particles[:1] - x) / 0.25, atol=1e-12), \
    "one particle: the score of N(x_1, h^2 I) is (x_1 - x) / h^2"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q4.drift" points=1
from unigm.course.grading.kernel_side import replaced

MU_D, MU_G = torch.tensor([1.0, -0.5], dtype=torch.float64), torch.tensor([-0.5, 0.5], dtype=torch.float64)


def gaussian_score(mean, variance=1.0):
    """The score of N(mean, variance I): x (n, D) -> (n, D)."""
    return lambda x: -(x - mean) / variance


g = torch.Generator().manual_seed(42)
x = MU_G + torch.randn(300, 2, generator=g, dtype=torch.float64)
with replaced(globals(), kde_score=diffflow.kde_score):  # graded with the library's KDE, so that Q4.1 counts once
    library = diffflow.score_difference_flow(x, gaussian_score(MU_D), step=1.0, steps=1, bandwidth=0.3) - x
    assert torch.allclose(score_difference_drift(x, gaussian_score(MU_D), 0.3), library, atol=1e-10), \
        "differs from one unit step of diffflow.score_difference_flow with the KDE score"
    exact = score_difference_drift(x, gaussian_score(MU_D), 0.3, particle_score=gaussian_score(MU_G))
    assert torch.allclose(exact, (MU_D - MU_G).expand_as(x), atol=1e-12), "with the exact particle score: mu_d - mu_g"
    at_data = MU_D + torch.randn(300, 2, generator=g, dtype=torch.float64)
    assert score_difference_drift(at_data, gaussian_score(MU_D), 0.3, gaussian_score(MU_D)).abs().max() == 0, \
        "particles already at p_data, exact scores: the drift is zero"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q4.gaussian" points=1
def discriminator_logit_gradient(x, mu_d, mu_g, h):
    """grad_x log(D* / (1 - D*)), D* = p / (p + q) of the two Gaussians smoothed by h, by autograd."""
    x = x.detach().clone().requires_grad_(True)
    cov = (1 + h**2) * torch.eye(len(mu_d), dtype=torch.float64)
    p = torch.distributions.MultivariateNormal(mu_d, cov).log_prob(x).exp()
    q = torch.distributions.MultivariateNormal(mu_g, cov).log_prob(x).exp()
    d_star = p / (p + q)
    (grad,) = torch.autograd.grad(torch.log(d_star / (1 - d_star)).sum(), x)
    return grad


points = torch.tensor([[0.0, 0.0], [1.0, 1.0], [-1.0, 0.5]], dtype=torch.float64)
for h in (0.0, 0.5):
    assert torch.allclose(gaussian_drift(MU_D, MU_G, h).expand(3, 2), discriminator_logit_gradient(points, MU_D, MU_G, h),
                          atol=1e-10), f"h = {h}: differs from the gradient of the optimal discriminator's logit"
g = torch.Generator().manual_seed(44)
x = MU_G + torch.randn(1500, 2, generator=g, dtype=torch.float64)
drift = gaussian_score(MU_D, 1 + 0.8**2)(x) - diffflow.kde_score(x, x, 0.8)  # KDE vs the smoothed data score
bulk = (x - MU_G).norm(dim=1) < 1.5
print("mean KDE drift in the bulk:", drift[bulk].mean(0).tolist(), "closed form:", gaussian_drift(MU_D, MU_G, 0.8).tolist())
assert (drift[bulk].mean(0) - gaussian_drift(MU_D, MU_G, 0.8)).norm() < 0.05, \
    "the KDE drift of 1,500 particles from N(mu_g, I) against the closed form, h = 0.8"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q4.contraction" points=1
g = torch.Generator().manual_seed(46)
at_data = MU_D + torch.randn(1500, 2, generator=g, dtype=torch.float64)
drift = gaussian_score(MU_D)(at_data) - diffflow.kde_score(at_data, at_data, 0.8)  # the bare data score
centred = at_data - MU_D
slope = ((drift * centred).sum() / centred.pow(2).sum()).item()  # least squares: drift = slope (x - mu_d)
print(f"h = 0.8: measured drift = {slope:.3f} (x - mu_d); yours: -{contraction_rate(0.8):.3f} (x - mu_d)")
assert abs(slope + contraction_rate(0.8)) < 0.03, "differs from the slope measured on 1,500 particles at p_data (h = 0.8)"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Q5 (2 points): where an unbalanced plan destroys and creates mass
#
# Unbalanced optimal transport (Chizat et al. 2018, arXiv:1607.05816) compares measures of unequal
# mass, $\sum_i a_i \delta_{x_i}$ and $\sum_j b_j \delta_{y_j}$: its plan $P$ `(n, m)` pays $\mathrm{reg}_m$ per unit
# of KL divergence between its marginals and $a$, $b$ instead of matching them. Where moving mass
# costs more than creating and destroying it, the plan does the latter:
# - destroyed at source point $i$: $a_i - \sum_j P_{ij}$ (negative where more leaves $x_i$ than was there);
# - created at target point $j$: $b_j - \sum_i P_{ij}$ (negative where more arrives than $y_j$ holds).
#
# 1. `destroyed_and_created(plan, a, b)`: the pair of float64 tensors `(n,)`, `(m,)` (inputs are
#    numpy arrays or tensors).
# 2. Lecture 05's example, `gradient_flows.two_cluster_example()`: a source with a shared cluster and
#    an extra cluster at $(-4, 3)$ (`source_extra` marks its points), a target of mass 1.5 with the
#    shared cluster moved by 0.5 and a new cluster at $(4, 3)$. Solve
#    `gradient_flows.unbalanced_plan(ex.a, ex.b, ex.xs, ex.xt, reg=0.1, reg_m=r)` for
#    $r \in \{1, 10, 100\}$ and return `destroyed_extra()`: the sorted list of the $r$ for which **more
#    than half** of the extra cluster's mass is destroyed rather than moved.

# %%
def destroyed_and_created(plan, a, b):
    """(a - plan.sum(1), b - plan.sum(0)) as float64 tensors."""
    # YOUR CODE HERE
    raise NotImplementedError("q5: replace this line with your answer")


def destroyed_extra():
    """The reg_m among (1, 10, 100) at which more than half of the extra source cluster's mass is destroyed."""
    # YOUR CODE HERE
    raise NotImplementedError("q5: replace this line with your answer")


# %% test="q5.mass" points=1
example = gradient_flows.two_cluster_example()
unbalanced = gradient_flows.unbalanced_plan(example.a, example.b, example.xs, example.xt, reg=0.1, reg_m=1.0)
destroyed, created = destroyed_and_created(unbalanced.plan, example.a, example.b)
library = gradient_flows.mass_change(unbalanced, example.a, example.b)
assert isinstance(destroyed, torch.Tensor) and destroyed.dtype == torch.float64, "float64 tensors"
assert np.allclose(destroyed.numpy(), library.destroyed, atol=1e-12) and np.allclose(
    created.numpy(), library.created, atol=1e-12), "differs from gradient_flows.mass_change"
assert abs((created.sum() - destroyed.sum()).item() - (example.b.sum() - example.a.sum())) < 1e-12, \
    "created - destroyed = (target mass) - (source mass), for any plan"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q5.reading" points=1
answer = destroyed_extra()
print("reg_m at which most of the extra cluster is destroyed:", answer)
assert isinstance(answer, list) and all(r in (1, 10, 100) for r in answer) and answer == sorted(answer), \
    "a sorted list of values among 1, 10, 100"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Done?
#
# Restart the kernel and run all cells: every test cell should pass. In lecture 05 these pieces
# run at scale: your Q1 target is what `StochasticInterpolant` regresses onto, your Q2 plan is
# where its Schrödinger-bridge pairs are drawn from, Q3's step is what a particle JKO step with an
# affine map finds for Gaussians, and Q4's drift moves DiffFlow's particles (smooth the data
# score by the KDE's bandwidth, or the flow contracts the data by Q4.4's rate). Q5's threshold
# shows the price $\mathrm{reg}_m$ at work: mass that would have to cross the plane is destroyed at
# the source and created at the target, until $\mathrm{reg}_m$ makes that dearer than moving it.
