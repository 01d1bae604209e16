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
# # Exercise 04: the evaluation protocol, by hand
#
# *Goes with lecture 04 (experiments, part 1). 5 questions, 16 points; runs in about ten seconds
# on a laptop CPU (nothing is trained).*
#
# Lecture 04 measured sets of images with the metrics of `unigm.metrics`, each read against its
# data-vs-data floor. Here you write the core of four of them yourself, on small sets of points
# whose answers are known, and check each against the library and against closed forms: the
# Fréchet distance between two Gaussians and between two sample sets, with the closed form for
# diagonal covariances derived (Q1); precision and recall from $k$-nearest-neighbour balls (Q2);
# bits per dimension of discrete data from the log-density of dequantized, rescaled data (Q3); the
# 1-NN two-sample accuracy, what its values mean, and its value when there is nothing to find
# (derived, Q4); and, to finish, four published "losses" put on one scale and ranked (Q5).
#
# - Fill in every `# YOUR CODE HERE` (delete the `raise NotImplementedError` line under it) and
#   run the test cell under each answer: a test passes when it runs without error.
# - Check the whole notebook from a terminal: `unigm-grade check 04_experiments.ipynb` (or the
#   `.py` file) executes it in a fresh kernel and lists each test with its points.
# - Grading runs the same tests and **hidden** ones (other sizes, dimensions, dtypes, seeds and
#   edge cases), after running your whole notebook top to bottom. Code you type into a test cell
#   is not run when graded; write answers in the answer cells.
# - Inputs are torch tensors (float32 or float64; compute in float64) and every number you return
#   is a Python `float`. No answer draws random numbers: the noise an answer needs is an argument.

# %%
import math

import torch

from unigm import data, metrics

torch.manual_seed(0)

# %% [markdown]
# ## Q1 (4 points): the Fréchet distance
#
# The Fréchet distance of Heusel et al. (2017) fits a Gaussian to each set of features and
# returns the squared Wasserstein-2 distance between the two Gaussians (Dowson & Landau 1982):
# $$\mathrm{FD}\big(\mathcal N(\mu_a, C_a), \mathcal N(\mu_b, C_b)\big) = \lVert\mu_a - \mu_b\rVert^2
#   + \operatorname{tr} C_a + \operatorname{tr} C_b - 2 \operatorname{tr}\big(C_a^{1/2} C_b C_a^{1/2}\big)^{1/2}.$$
# The last trace equals $\operatorname{tr}(C_a C_b)^{1/2}$, but take care: $C_a C_b$ is not symmetric,
# and its numerical square root (`scipy.linalg.sqrtm`) can come out complex by rounding. The
# symmetric form needs only square roots of symmetric positive semi-definite matrices, which
# `torch.linalg.eigh` gives ($C = V \operatorname{diag}(w) V^\top$, so
# $C^{1/2} = V \operatorname{diag}(\sqrt{w}) V^\top$; eigenvalues that rounding makes slightly negative
# count as 0). The trace of the square root of a symmetric PSD matrix is the sum of the square
# roots of its eigenvalues. Covariances estimated from fewer points than dimensions are singular:
# your answer must still work.
#
# 1. `frechet_gaussians(mu_a, cov_a, mu_b, cov_b)`: the formula above, from means `(D,)` and
#    covariances `(D, D)`.
# 2. `frechet_distance(a, b)`: between two feature sets `(n, D)` and `(m, D)`, through Gaussian fits:
#    the sample means and the **unbiased** covariances (divided by $n - 1$: `torch.cov`'s default;
#    note that it wants the variables in rows, and that for $D = 1$ it returns a 0-dim tensor).
#    Use your `frechet_gaussians`.
# 3. Derive the distance when both covariances are **diagonal**, $C_a = \operatorname{diag}(v_a)$,
#    $C_b = \operatorname{diag}(v_b)$: the trace term becomes a sum over dimensions, and FD a sum of
#    squares. Write `frechet_diagonal(mu_a, var_a, mu_b, var_b)` from your result, with vectors of
#    length $D$ only: it must work for $D = 100{,}000$, where one $D \times D$ matrix takes 80 GB.

# %%
def frechet_gaussians(mu_a, cov_a, mu_b, cov_b):
    """The squared W2 distance between N(mu_a, cov_a) and N(mu_b, cov_b), a float."""
    # YOUR CODE HERE
    raise NotImplementedError("q1: replace this line with your answer")


def frechet_distance(a, b):
    """The Fréchet distance between Gaussian fits (mean, unbiased covariance) of the rows of a and b."""
    # YOUR CODE HERE
    raise NotImplementedError("q1: replace this line with your answer")


def frechet_diagonal(mu_a, var_a, mu_b, var_b):
    """The Fréchet distance between N(mu_a, diag(var_a)) and N(mu_b, diag(var_b)), a float; O(D)."""
    # YOUR CODE HERE
    raise NotImplementedError("q1: replace this line with your answer")


# %% test="q1.gaussians" points=2
def moment_matched(mu, cov, n, seed):
    """n points whose sample mean is exactly mu and whose unbiased covariance is exactly cov (n > D)."""
    mu, cov = torch.as_tensor(mu, dtype=torch.float64), torch.as_tensor(cov, dtype=torch.float64)
    z = torch.randn(n, len(mu), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    z = z - z.mean(0)
    z = z @ torch.linalg.inv(torch.linalg.cholesky(torch.cov(z.T).reshape(len(mu), len(mu)))).T  # mean 0, covariance I
    w, v = torch.linalg.eigh(cov)
    return mu + z @ (v * w.clamp(min=0).sqrt()).T  # covariance V diag(w) V^T = cov


def library_frechet_gaussians(mu_a, cov_a, mu_b, cov_b):
    """metrics.frechet_distance measures point sets, so give it two sets with exactly these moments."""
    return metrics.frechet_distance(moment_matched(mu_a, cov_a, len(mu_a) + 5, seed=1),
                                    moment_matched(mu_b, cov_b, len(mu_b) + 5, seed=2))


def random_covariance(d, seed):
    m = torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return m @ m.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


def close(ours, expected, tolerance=1e-6):
    return isinstance(ours, float) and abs(ours - expected) <= tolerance * max(1.0, abs(expected))


one = torch.ones(1, dtype=torch.float64)
assert close(frechet_gaussians(0.5 * one, 4 * one[None], -1 * one, 9 * one[None]), 1.5**2 + (2 - 3) ** 2), \
    "1D: FD(N(m_a, s_a^2), N(m_b, s_b^2)) = (m_a - m_b)^2 + (s_a - s_b)^2 (and return a float)"
mu_a, mu_b = torch.tensor([1.0, 0.0, -2.0], dtype=torch.float64), torch.tensor([0.5, 1.0, 0.0], dtype=torch.float64)
cov_a, cov_b = random_covariance(3, seed=3), random_covariance(3, seed=4)  # they do not commute
assert close(frechet_gaussians(mu_a, cov_a, mu_b, cov_b), library_frechet_gaussians(mu_a, cov_a, mu_b, cov_b)), \
    "differs from metrics.frechet_distance on two 3D Gaussians whose covariances do not commute"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q1.samples" points=1
from unigm.course.grading.kernel_side import replaced

g = torch.Generator().manual_seed(10)
features_a = torch.randn(200, 6, generator=g, dtype=torch.float64)
features_b = 1.3 * torch.randn(150, 6, generator=g, dtype=torch.float64) + 0.2
with replaced(globals(), frechet_gaussians=library_frechet_gaussians):  # graded with the library's Q1.1, so it counts once
    ours = frechet_distance(features_a, features_b)
    assert close(ours, metrics.frechet_distance(features_a, features_b)), \
        "differs from metrics.frechet_distance: check the means and the unbiased covariances"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q1.diagonal" points=1
mu_a, mu_b = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64), torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
var_a, var_b = torch.tensor([1.0, 4.0, 0.25], dtype=torch.float64), torch.tensor([9.0, 1.0, 0.25], dtype=torch.float64)
assert close(frechet_diagonal(mu_a, var_a, mu_b, var_b), library_frechet_gaussians(mu_a, var_a.diag(), mu_b, var_b.diag())), \
    "differs from metrics.frechet_distance on two diagonal Gaussians"
big = torch.linspace(0.5, 2.0, 100_000, dtype=torch.float64)  # D = 100,000: no D x D matrix fits in memory
assert close(frechet_diagonal(big, big**2, big + 0.01, (big + 0.5) ** 2), 100_000 * (0.01**2 + 0.5**2)), \
    "for D = 100,000: use the closed form, with vectors only"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Q2 (3 points): precision and recall from $k$-NN balls
#
# Kynkäänniemi et al. (2019) estimate the support of each set as a union of balls: around every
# point, a ball whose radius is the distance to its **$k$-th nearest neighbour in its own set**,
# the point itself excluded (so with $k = 1$ the radius is the distance to the nearest *other*
# point). Balls are closed: a point at exactly the radius is inside. With $N$ real points and $M$
# generated ("fake") ones,
# - **precision** = the share of fake points inside at least one real ball (fidelity);
# - **recall** = the share of real points inside at least one fake ball (diversity).
#
# 1. `knn_radii(x, k)`: the radius of each row of `x` `(n, D)` in its own set: `(n,)` in float64.
#    `torch.cdist` gives all pairwise distances; `Tensor.kthvalue` or `torch.sort` the $k$-th
#    smallest (mind the zero distance of each point to itself).
# 2. `precision_recall(real, fake, k)`: the pair `(precision, recall)` of floats.
#
# The first test is small enough to check by hand: draw the points on a line.

# %%
def knn_radii(x, k):
    """Distance from each row of x to its k-th nearest other row: (n,) float64."""
    # YOUR CODE HERE
    raise NotImplementedError("q2: replace this line with your answer")


def precision_recall(real, fake, k=5):
    """(precision, recall) of the fake set against the real set, from closed k-NN balls."""
    # YOUR CODE HERE
    raise NotImplementedError("q2: replace this line with your answer")


# %% test="q2.radii" points=1
line = torch.tensor([[0.0], [1.0], [3.0], [7.0], [9.0]])
assert torch.equal(knn_radii(line, 1), torch.tensor([1.0, 1.0, 2.0, 2.0, 2.0], dtype=torch.float64)), \
    "k = 1: the distance to the nearest other point"
assert torch.equal(knn_radii(line, 2), torch.tensor([3.0, 2.0, 3.0, 4.0, 6.0], dtype=torch.float64)), \
    "k = 2: the distance to the second nearest other point"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q2.values" points=2
from unigm.course.grading.kernel_side import replaced


def library_radii(x, k):
    return metrics._kth_neighbour_radius(x.double().reshape(len(x), -1), k)


def matches_prdc(real, fake, k):
    library = metrics.prdc(real, fake, k=k)
    precision, recall = precision_recall(real, fake, k)
    return (isinstance(precision, float) and isinstance(recall, float)
            and abs(precision - library["precision"]) < 1e-9 and abs(recall - library["recall"]) < 1e-9)


fake_line = torch.tensor([[2.5], [5.0], [11.0], [11.5]])
g = torch.Generator().manual_seed(21)
real_points = torch.randn(300, 4, generator=g, dtype=torch.float64)
fake_points = 1.4 * torch.randn(250, 4, generator=g, dtype=torch.float64) + 0.3
with replaced(globals(), knn_radii=library_radii):  # graded with the library's radii, so that Q2.1 counts once
    assert precision_recall(line, fake_line, k=1) == (0.75, 0.8), \
        "on the line: 3 of 4 fake points in a real ball, 4 of 5 real points in a fake ball (balls are closed)"
    assert matches_prdc(real_points, fake_points, k=5), "differs from metrics.prdc (or not two floats)"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Q3 (3 points): bits per dimension, with the change of variables
#
# A discrete image $v \in \{0, \dots, L-1\}^D$ is dequantized and rescaled to the interval
# $[\text{low}, \text{high})$ the model works on:
# $$x = \text{low} + s\,(v + u), \qquad s = \frac{\text{high} - \text{low}}{L}, \qquad u \sim U[0, 1)^D.$$
# A model gives a density $p_X(x)$. As lecture 04 (section 5) derives, $y = v + u$ has density
# $p_Y(y) = p_X(x)\, s^D$, and the bits per dimension of the discrete data (an upper bound on the
# model's discrete cross-entropy, exact for a density that is flat on each bin) is
# $$\text{bits/dim} = -\frac{\mathbb E \log p_X(x) + D \log s}{D \ln 2}.$$
#
# 1. `dequantize_to(v, u, levels, interval)`: $x$ from the integer levels `v` and the noise `u` (same
#    shape, `u` in $[0, 1)$), in `u`'s dtype.
# 2. `bits_per_dim_discrete(log_density, dims, levels, interval)`: bits/dim from a batch of log-densities
#    $\log p_X(x)$ `(B,)` (one number per image, in nats), averaged over the batch.

# %%
def dequantize_to(v, u, levels, interval=(0.0, 1.0)):
    """x = low + (high - low) (v + u) / levels, in u's dtype."""
    # YOUR CODE HERE
    raise NotImplementedError("q3: replace this line with your answer")


def bits_per_dim_discrete(log_density, dims, levels, interval=(0.0, 1.0)):
    """Bits per dimension of the discrete data, from log p_X of its dequantized, rescaled version (B,)."""
    # YOUR CODE HERE
    raise NotImplementedError("q3: replace this line with your answer")


# %% test="q3.rescale" points=1
digits = data.digits("train").images[:50]  # (50, 1, 8, 8) integer grey levels 0..16
noise = torch.rand(digits.shape, generator=torch.Generator().manual_seed(30))  # the u that data.dequantize draws
x01 = dequantize_to(digits, noise, data.DIGIT_LEVELS)
assert x01.dtype == torch.float32 and torch.allclose(
    x01, data.dequantize(digits, data.DIGIT_LEVELS, torch.Generator().manual_seed(30)), atol=1e-6), \
    "on [0, 1): differs from data.dequantize with the same noise"
x11 = dequantize_to(digits, noise, data.DIGIT_LEVELS, (-1.0, 1.0))
assert torch.allclose(x11, 2 * x01 - 1, atol=1e-6), "on [-1, 1): x' = 2 x - 1"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q3.bits" points=2
for interval in [(0.0, 1.0), (-1.0, 1.0), (0.0, 17.0)]:
    uniform = torch.full((10,), -64 * math.log(interval[1] - interval[0]), dtype=torch.float64)  # log p_X of the uniform density
    assert isinstance(bits_per_dim_discrete(uniform, 64, 17, interval), float)
    assert abs(bits_per_dim_discrete(uniform, 64, 17, interval) - math.log2(17)) < 1e-9, \
        f"the uniform density on {interval} must cost exactly log2(17) bits per dimension"
log_p = torch.randn(32, generator=torch.Generator().manual_seed(33)) * 5 + 40
library = metrics.bits_per_dim_discrete(log_p, 64, 17, (-1.0, 1.0))
assert abs(bits_per_dim_discrete(log_p, 64, 17, (-1.0, 1.0)) - library) < 1e-9, "differs from metrics.bits_per_dim_discrete"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Q4 (4 points): the 1-NN two-sample test
#
# Lopez-Paz & Oquab (2017) turn "are these two sets from one distribution?" into a classification
# problem. Pool the sets $a$ ($n_a$ points) and $b$ ($n_b$ points), label each point by its set, and
# classify every point by the label of its **nearest other point** in the pool (leave-one-out: a
# point is not its own neighbour). The 1-NN accuracy is the share of points classified correctly.
#
# 1. `nn1_accuracy(a, b)`: that accuracy, a float, for rows of `a` `(n_a, D)` and `b` `(n_b, D)`.
# 2. Derive its **expected value when there is nothing to find**: $a$ and $b$ drawn independently
#    from one continuous distribution. Hint: by symmetry, the nearest other point of a given point
#    is equally likely to be any of the $n_a + n_b - 1$ others. Write `nn1_null(n_a, n_b)`. For
#    $n_a = n_b = N$ you should find lecture 04's $(N - 1)/(2N - 1)$, a little below $\tfrac12$; for
#    unequal sizes, the "ideal" value is far from $\tfrac12$.
#
# The second test shows what the accuracy means: about $\tfrac12$ (at the null value) for two draws
# of one distribution, near 1 for separable sets, and 0 for a set of copies of the training set
# measured against that training set (each copy's nearest point is its original and vice versa),
# which no comparison with held-out data can show.

# %%
def nn1_accuracy(a, b):
    """Leave-one-out 1-nearest-neighbour accuracy of telling the rows of a from the rows of b."""
    # YOUR CODE HERE
    raise NotImplementedError("q4: replace this line with your answer")


def nn1_null(n_a, n_b):
    """The expected 1-NN accuracy for two independent sets of sizes n_a and n_b from one continuous distribution."""
    # YOUR CODE HERE
    raise NotImplementedError("q4: replace this line with your answer")


# %% test="q4.value" points=2
g = torch.Generator().manual_seed(40)
set_a, set_b = torch.randn(100, 3, generator=g, dtype=torch.float64), torch.randn(100, 3, generator=g, dtype=torch.float64) + 0.5
ours = nn1_accuracy(set_a, set_b)
assert isinstance(ours, float) and abs(ours - metrics.nn1_accuracy(set_a, set_b)) < 1e-12, "differs from metrics.nn1_accuracy"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q4.meaning" points=1
g = torch.Generator().manual_seed(42)
training_set = torch.randn(200, 5, generator=g, dtype=torch.float64)
same = nn1_accuracy(training_set, torch.randn(200, 5, generator=g, dtype=torch.float64))
shifted = nn1_accuracy(training_set, torch.randn(200, 5, generator=g, dtype=torch.float64) + 3)
copies = nn1_accuracy(training_set, training_set + 1e-3 * torch.randn(200, 5, generator=g, dtype=torch.float64))
print(f"1-NN accuracy: same distribution {same:.3f}, shifted {shifted:.3f}, copies of the training set {copies:.3f}")
assert abs(same - 0.5) < 0.1, "two draws of one Gaussian: about 1/2"
assert shifted > 0.95, "two Gaussians 3 standard deviations apart in every coordinate: nearly separable"
assert copies == 0.0, "copies against their originals: every point's nearest neighbour is its twin, in the other set"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q4.null" points=1
assert abs(nn1_null(135, 135) - 134 / 269) < 1e-12, "equal sizes N: (N - 1) / (2N - 1)"
g = torch.Generator().manual_seed(44)
draws = [metrics.nn1_accuracy(torch.rand(3, 1, generator=g, dtype=torch.float64),
                              torch.rand(7, 1, generator=g, dtype=torch.float64)) for _ in range(2000)]
simulated = sum(draws) / len(draws)
print(f"n_a = 3, n_b = 7: simulated {simulated:.4f} (2,000 draws), yours {nn1_null(3, 7):.4f}")
assert abs(nn1_null(3, 7) - simulated) < 0.02, "differs from the simulation for n_a = 3, n_b = 7"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Q5 (2 points): a loss is not a leaderboard
#
# Lecture 04 (section 6) fitted one Gaussian to the digits written three ways and found three
# different negative log-likelihoods (NLLs) for one model. The reason is the change of variables
# of Q3.
#
# 1. `nll_shift(dims, old_interval, new_interval)`: a model of $D$-dimensional data on `old_interval`
#    is carried over to the same data rescaled (affinely, per dimension) to `new_interval`: the new
#    density is the old one pushed through the rescaling, and the maximum-likelihood fit on rescaled
#    data is exactly that model. By how many nats per example does its NLL change? (New minus old; a
#    shift of the interval changes nothing, a stretch does.)
# 2. Four papers report a likelihood on the same test digits ($D = 64$, $L = 17$ grey levels), each
#    in its own convention. Put them on one scale (bits/dim of the discrete digits; your Q3 answer
#    helps) and rank them:
#
# | model | reported | the model's data |
# |---|---|---|
# | A | NLL $= -60.0$ nats per image | dequantized digits on $[0, 1)$ |
# | B | NLL $= -10.0$ nats per image | dequantized digits on $[-1, 1)$ |
# | C | NLL $= 118.0$ nats per image | $y = v + u$ on $[0, 17)$ |
# | D | $-1.30$ "bits/dim", computed as $-\mathbb E\log_2 p_X / D$ with no change of variables | dequantized digits on $[0, 1)$ |
#
# `ranking()` returns the four letters from the best model (fewest bits/dim) to the worst, e.g.
# `["A", "B", "C", "D"]`.

# %%
def nll_shift(dims, old_interval, new_interval):
    """NLL on new_interval minus NLL on old_interval of the same model, in nats per example."""
    # YOUR CODE HERE
    raise NotImplementedError("q5: replace this line with your answer")


def ranking():
    """The models "A" to "D", best (fewest bits/dim of the discrete digits) first."""
    # YOUR CODE HERE
    raise NotImplementedError("q5: replace this line with your answer")


# %% test="q5.shift" points=1
def gaussian_nll_gap(dims, old, new, seed):
    """NLL of the maximum-likelihood diagonal Gaussian fitted on data in `new`, minus that of the one on `old`."""
    g = torch.Generator().manual_seed(seed)
    unit_train, unit_test = torch.rand(500, dims, generator=g, dtype=torch.float64) ** 2, torch.rand(
        200, dims, generator=g, dtype=torch.float64) ** 2  # data on [0, 1)
    nll = []
    for low, high in (old, new):
        train_set, test_set = low + (high - low) * unit_train, low + (high - low) * unit_test
        fit = torch.distributions.Normal(train_set.mean(0), train_set.std(0))
        nll.append(-fit.log_prob(test_set).sum(1).mean().item())
    return nll[1] - nll[0]


assert abs(nll_shift(64, (0.0, 1.0), (-1.0, 1.0)) - gaussian_nll_gap(64, (0.0, 1.0), (-1.0, 1.0), seed=50)) < 1e-8, \
    "[0, 1) to [-1, 1) in 64 dimensions: differs from the fitted Gaussians' NLLs"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q5.rank" points=1
order = list(ranking())
assert sorted(order) == ["A", "B", "C", "D"], 'the four letters "A", "B", "C", "D", each once'
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Done?
#
# Restart the kernel and run all cells: every test cell should pass. In lecture 04 these
# functions run on the judge's 128 features of 270 digits, next to their data-vs-data floors: the
# floor of Q4's 1-NN accuracy is your `nn1_null`, and Q2's recall is the metric that noise fools
# and coverage (`metrics.prdc`) does not. Q5's ranking is the reverse of the raw NLLs': compare
# likelihoods only in bits/dim of the discrete data.
