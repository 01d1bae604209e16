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
# # Exercise 00: the four losses, by hand
#
# *Goes with lecture 00 (quickstart). 6 questions, 18 points; runs in about half a minute on a
# laptop CPU (one question trains a small model for a few seconds).*
#
# Lecture 00 wrote each training loss as *distance(prediction, target)*. Here you build those
# losses yourself, derive the two closed forms they rest on (a KL divergence and the optimal
# discriminator), check everything against the course library, and finally train a model and
# read a plot. Fill in every `# YOUR CODE HERE` (delete the `raise NotImplementedError` line
# under it) and run the test cell under each answer: a test passes when it runs without error.
#
# - Check the whole notebook from a terminal: `unigm-grade check 00_quickstart.ipynb` (or the
#   `.py` file) executes it in a fresh kernel and lists each test with its points.
# - Grading runs the same tests and **hidden** ones (other shapes, seeds and edge cases), after
#   running your whole notebook top to bottom: it must run without your manual steps. Code you
#   type into a test cell is not run when graded; write answers in the answer cells.
# - Time runs from $t = 0$ (data) to $t = 1$ (noise), as everywhere in the course.
# - No answer draws random numbers: the noise a loss needs is passed in as an argument, so your
#   result never depends on the order in which you would have drawn it.

# %%
import math

import torch
import torch.nn.functional as F

from unigm import zoo

torch.manual_seed(0)

# %% [markdown]
# ## Q1 (3 points): a Gaussian log-density with all its constants
#
# A likelihood in nats must keep every constant, or numbers from different models cannot be
# compared. For a diagonal Gaussian with standard deviations $\sigma = e^{s}$ ($s$ = `log_std`),
#
# $$\log \mathcal N(x; \mu, \operatorname{diag}\sigma^2)
#   = \sum_{d} \Big[-\tfrac12 \Big(\frac{x_d - \mu_d}{\sigma_d}\Big)^2 - s_d - \tfrac12 \log 2\pi\Big].$$
#
# Implement it for tensors of shape `(..., D)` (they broadcast like any torch tensors), summing
# over the last dimension only.

# %%
def gaussian_log_prob(x, mean, log_std):
    """log N(x; mean, diag(exp(log_std))^2), summed over the last dimension: (..., D) -> (...)."""
    # YOUR CODE HERE
    raise NotImplementedError("q1: replace this line with your answer")


# %% test="q1.shapes" points=1
x, mean, log_std = torch.randn(5, 3), torch.randn(5, 3), 0.3 * torch.randn(5, 3)
assert gaussian_log_prob(x, mean, log_std).shape == (5,), "sum over the last dimension only: (5, 3) -> (5,)"
assert gaussian_log_prob(torch.zeros(4, 1, 2), torch.zeros(3, 2), torch.zeros(3, 2)).shape == (4, 3), \
    "inputs broadcast like torch tensors: (4, 1, 2) with (3, 2) -> (4, 3)"

# %% test="q1.values" points=2
from torch.distributions import Normal

x, mean, log_std = torch.randn(5, 3), torch.randn(5, 3), 0.3 * torch.randn(5, 3)
expected = Normal(mean, log_std.exp()).log_prob(x).sum(-1)
assert torch.allclose(gaussian_log_prob(x, mean, log_std), expected, atol=1e-5), \
    "differs from torch.distributions.Normal"
standard = gaussian_log_prob(torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1, 1)).item()
assert abs(standard + 0.5 * math.log(2 * math.pi)) < 1e-6, \
    f"log N(0; 0, 1) = -log(2 pi)/2 = -0.9189, got {standard:.4f}: keep every constant"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Q2 (3 points): derive the KL term, then the negative ELBO of the course's VAE
#
# The VAE's encoder gives $q_\phi(z \mid x) = \mathcal N(\mu, \operatorname{diag}\sigma^2)$ and
# the prior is $p(z) = \mathcal N(0, I)$. **Derive** $\mathrm{KL}(q \,\|\, p) = \mathbb E_q[\log q(z) - \log p(z)]$
# in closed form (no sampling): write out both log-densities, and use $\mathbb E_q[z_k] = \mu_k$ and
# $\mathbb E_q[z_k^2] = \mu_k^2 + \sigma_k^2$. Implement your result with `log_std` $= \log\sigma$.
#
# Then write the negative ELBO, averaged over a batch, for the library's `VAE`:
# `vae.encode(x)` returns `(mean, log_std)` of $q(z \mid x)$ and `vae.decode(z)` returns
# `(mean, log_std)` of the Gaussian $p(x \mid z)$. Use one reparameterised draw
# $z = \mu + \sigma \varepsilon$ per point, with the standard-normal `eps` (shape `(B, K)`) that is
# passed in: your function draws nothing itself.

# %%
def kl_to_standard_normal(mean, log_std):
    """KL(N(mean, diag exp(log_std)^2) || N(0, I)), summed over the last dimension: (..., K) -> (...)."""
    # YOUR CODE HERE
    raise NotImplementedError("q2: replace this line with your answer")


def negative_elbo(vae, x, eps):
    """-ELBO = -(log p(x|z) - KL(q(z|x) || p(z))) with z = mean + std * eps, averaged over the batch."""
    # YOUR CODE HERE
    raise NotImplementedError("q2: replace this line with your answer")


# %% test="q2.kl" points=1
from torch.distributions import Normal, kl_divergence

mean, log_std = torch.randn(6, 2), 0.5 * torch.randn(6, 2)
expected = kl_divergence(Normal(mean, log_std.exp()), Normal(0.0, 1.0)).sum(-1)
assert kl_to_standard_normal(mean, log_std).shape == (6,), "sum over the last (latent) dimension"
assert torch.allclose(kl_to_standard_normal(mean, log_std), expected, atol=1e-5), "differs from torch.distributions"
assert kl_to_standard_normal(torch.zeros(3, 4), torch.zeros(3, 4)).abs().max() < 1e-7, "KL(p || p) must be 0"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q2.elbo" points=2
import unigm.vae
from unigm.course.grading.kernel_side import replaced

vae = zoo.make("vae", (2,)).eval()  # evaluation mode: the true -ELBO, no KL warm-up
x = torch.randn(64, 2)
library = vae.loss(x, generator=torch.Generator().manual_seed(1))
eps = torch.randn(64, vae.config.latent_dim, generator=torch.Generator().manual_seed(1))  # the library's draw
# checked with the library's log-density and KL in place of yours, so Q1 and Q2.kl are not graded twice
with replaced(globals(), gaussian_log_prob=unigm.vae.gaussian_log_prob,
              kl_to_standard_normal=unigm.vae.kl_to_standard_normal):
    ours = negative_elbo(vae, x, eps)
assert ours.shape == (), "average over the batch: the result is a scalar"
assert torch.allclose(ours, library, atol=1e-5), f"-ELBO = {ours.item():.4f} but vae.loss(x) = {library.item():.4f}"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Q3 (3 points): the DDPM forward process
#
# The course's DDPM uses the linear variance-preserving schedule
# $\beta(t) = \beta_\min + t(\beta_\max - \beta_\min)$ and
# $\bar\alpha(t) = \exp\!\big(-\int_0^t \beta(s)\,ds\big)$; noising a data point is
# $x_t = \sqrt{\bar\alpha(t)}\,x_0 + \sqrt{1 - \bar\alpha(t)}\,\varepsilon$. Do the integral by hand,
# then write the forward process for a batch `x0` of any event shape `(B, *E)` with one time per
# example, `t` of shape `(B,)`.

# %%
def alpha_bar(t, beta_min=0.1, beta_max=20.0):
    """exp(-int_0^t beta(s) ds) for beta(s) = beta_min + s (beta_max - beta_min); t a tensor."""
    # YOUR CODE HERE
    raise NotImplementedError("q3: replace this line with your answer")


def ddpm_noise(x0, eps, t, beta_min=0.1, beta_max=20.0):
    """A draw of q(x_t | x_0): sqrt(alpha_bar(t)) x0 + sqrt(1 - alpha_bar(t)) eps; x0, eps (B, *E), t (B,)."""
    # YOUR CODE HERE
    raise NotImplementedError("q3: replace this line with your answer")


# %% test="q3.schedule" points=1
from unigm.diffusion import DDPM

ddpm = DDPM((2,))
t = torch.linspace(0, 1, 11)
assert abs(alpha_bar(torch.tensor(0.0)).item() - 1) < 1e-6, "alpha_bar(0) = 1: no noise at t = 0"
assert torch.allclose(alpha_bar(t), ddpm.alpha_bar(t), rtol=1e-5), "differs from DDPM.alpha_bar"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q3.noise" points=2
x0, eps, t = torch.randn(8, 2), torch.randn(8, 2), torch.rand(8)
assert ddpm_noise(x0, eps, t).shape == (8, 2)
assert torch.allclose(ddpm_noise(x0, eps, t), ddpm.noise(x0, eps, t), atol=1e-6), "differs from DDPM.noise"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Q4 (3 points): flow matching on the linear path
#
# Flow matching joins each data point $x_0$ to a noise draw $x_1 \sim \mathcal N(0, I)$ by the
# straight line $x_t = (1 - t)\,x_0 + t\,x_1$ and regresses the network's velocity
# $v_\theta(x_t, t)$ on the line's velocity $\frac{d x_t}{dt}$:
# $\mathcal L = \mathbb E_{t, x_0, x_1} \lVert v_\theta(x_t, t) - \tfrac{d x_t}{dt} \rVert^2$
# (a mean over batch and dimensions). Write the path, then the loss of the library's
# `FlowMatching` model (`model.velocity(x_t, t)`) for a batch `x0`, given its noise partners `x1`
# and one time per example `t`, shape `(B,)` (the library draws them; you receive them).

# %%
def linear_path(x0, x1, t):
    """(x_t, dx_t/dt) on the straight line from x0 (t = 0) to x1 (t = 1); x0, x1 (B, *E), t (B,)."""
    # YOUR CODE HERE
    raise NotImplementedError("q4: replace this line with your answer")


def flow_matching_loss(model, x0, x1, t):
    """Conditional flow-matching loss of `model` on the batch x0 with partners x1 at times t (a scalar)."""
    # YOUR CODE HERE
    raise NotImplementedError("q4: replace this line with your answer")


# %% test="q4.path" points=1
from unigm.flows import FlowMatching

x0, x1, t = torch.randn(5, 2), torch.randn(5, 2), torch.rand(5)
x_t, velocity = linear_path(x0, x1, t)
assert torch.allclose(linear_path(x0, x1, torch.zeros(5))[0], x0), "x_t = x0 at t = 0 (data)"
assert torch.allclose(linear_path(x0, x1, torch.ones(5))[0], x1), "x_t = x1 at t = 1 (noise)"
expected_x_t, expected_velocity = FlowMatching((2,)).path(x0, x1, t)
assert torch.allclose(x_t, expected_x_t, atol=1e-6) and torch.allclose(velocity, expected_velocity, atol=1e-6)
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q4.loss" points=2
model = zoo.make("flow_matching", (2,))
x0 = torch.randn(128, 2)
library = model.loss(x0, generator=torch.Generator().manual_seed(2))
g = torch.Generator().manual_seed(2)  # the same stream: the library draws x1, then t
x1, t = torch.randn(128, 2, generator=g), torch.rand(128, generator=g)
with replaced(globals(), linear_path=model.path):  # checked with the library's path, so Q4's path counts once
    ours = flow_matching_loss(model, x0, x1, t)
assert ours.shape == (), "a mean over batch and dimensions: a scalar"
assert torch.allclose(ours, library, atol=1e-6), f"your loss {ours.item():.5f}, model.loss {library.item():.5f}"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Q5 (3 points): the GAN discriminator, and the best one there is
#
# The discriminator outputs a logit $\ell = \operatorname{logit} D(x)$ and minimises the binary
# cross-entropy of data (label 1) against samples (label 0):
# $\mathrm{BCE}(D(x), 1) + \mathrm{BCE}(D(G(z)), 0)$, each term averaged over its batch. Write
# it from logits, without computing $\log D$ from $D = \sigma(\ell)$ (that overflows for large
# $|\ell|$; `F.softplus` is your friend).
#
# Now let the discriminator be any function $D(x) \in (0, 1)$, with the generator fixed. In
# expectation the loss is $-\int \big(p_\text{data}(x) \log D(x) + p_g(x) \log(1 - D(x))\big)\,dx$.
# **Derive** the $D^*(x)$ that minimises it (hint: the integral can be minimised point by point;
# at one point it is a function of one number $D$), and write it for densities given as tensors
# of values.

# %%
def discriminator_bce(real_logits, fake_logits):
    """BCE(D(x), 1) + BCE(D(G(z)), 0) from logits, each term averaged over its batch."""
    # YOUR CODE HERE
    raise NotImplementedError("q5: replace this line with your answer")


def optimal_discriminator(p_data, p_model):
    """The D*(x) that minimises the expected discriminator loss, elementwise from density values."""
    # YOUR CODE HERE
    raise NotImplementedError("q5: replace this line with your answer")


# %% test="q5.bce" points=1
from unigm.gan import discriminator_loss

real, fake = torch.randn(10), torch.randn(12)
expected = (F.binary_cross_entropy_with_logits(real, torch.ones(10))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros(12)))
assert torch.allclose(discriminator_bce(real, fake), expected, atol=1e-6), \
    "differs from F.binary_cross_entropy_with_logits"
assert torch.isfinite(discriminator_bce(torch.tensor([-200.0]), torch.tensor([200.0]))), "overflows for large logits"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q5.optimum" points=2
from scipy.spatial.distance import jensenshannon


def expected_loss(p, q, d):
    return -(p * d.log()).sum() - (q * (1 - d).log()).sum()


p_data = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
p_model = torch.full((4,), 0.25, dtype=torch.float64)
d = optimal_discriminator(p_data, p_model)
assert d.shape == (4,) and ((d > 0) & (d < 1)).all(), "one value in (0, 1) per point"
for shift in (-0.01, 0.01):  # nudging D* either way may not lower the loss
    assert expected_loss(p_data, p_model, d + shift) >= expected_loss(p_data, p_model, d), "not the minimiser"
jsd = jensenshannon(p_data.numpy(), p_model.numpy()) ** 2  # scipy returns the square root, in nats
assert abs(expected_loss(p_data, p_model, d).item() - (math.log(4) - 2 * jsd)) < 1e-10, \
    "at the optimum the loss is log 4 - 2 JSD (Goodfellow et al. 2014)"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Q6 (3 points): train, look, explain: sampling a flow in one step
#
# A flow-matching model samples by integrating its ODE from noise ($t = 1$) to data ($t = 0$); the
# number of Euler steps is the number of network evaluations (NFE). The cell below trains the
# course's `flow_matching` model on eight Gaussians (about ten seconds), then draws samples from the
# **same** noise with 1 Euler step and with 32, and plots them beside the data.
#
# **Predict first**: what will the 1-step samples look like? Then run the cell and look.

# %%
import matplotlib.pyplot as plt

from unigm import bench, data, samplers

eight = data.toy("eight_gaussians")
fm_model, _ = bench.train("flow_matching", eight, seed=0, steps=1200)
fm_model.eval()
noise = torch.randn(1000, 2, generator=torch.Generator().manual_seed(0))
data_points = eight.sample(1000, torch.Generator().manual_seed(1))
samples_1 = samplers.euler(fm_model.velocity, noise, 1)
samples_32 = samplers.euler(fm_model.velocity, noise, 32)

fig, axes = plt.subplots(1, 3, figsize=(12, 4), sharex=True, sharey=True)
for ax, points, title in zip(axes, (data_points, samples_1, samples_32), ("data", "1 Euler step", "32 Euler steps")):
    ax.scatter(points[:, 0], points[:, 1], s=3, alpha=0.5)
    ax.set_title(title)
    ax.set_aspect("equal")
    ax.set_xlim(-3, 3)
    ax.set_ylim(-3, 3)
plt.tight_layout()
plt.show()

# %% [markdown]
# *Figure: 1,000 data points, and 1,000 samples of the trained flow from the same noise.*
#
# Read the plot, then answer. (a) Of the 8 modes, how many does each sampler **cover**, meaning
# a visible share of its samples lands on the mode? (b) Which statement explains the 1-step
# samples?
#
# - **A.** The network is undertrained: with more training steps the 1-step samples would cover
#   the modes.
# - **B.** At $t = 1$ the noise tells nothing about which data point it is paired with, so the
#   best velocity makes one Euler step land on $\mathbb E[x_0]$, the mean of the data, for every
#   noise draw.
# - **C.** One Euler step overshoots: the samples land far outside the data.

# %%
def modes_covered():
    """(modes covered with 1 Euler step, modes covered with 32 Euler steps): two ints in 0..8."""
    # YOUR CODE HERE
    raise NotImplementedError("q6: replace this line with your answer")


def why_one_step():
    """The letter of the statement that explains the 1-step samples: "A", "B" or "C"."""
    # YOUR CODE HERE
    raise NotImplementedError("q6: replace this line with your answer")


# %% test="q6.modes" points=2
answer = modes_covered()
assert len(answer) == 2 and all(int(n) == n and 0 <= n <= 8 for n in answer), \
    "two whole numbers of modes, each from 0 to 8"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q6.why" points=1
assert why_one_step() in ("A", "B", "C"), "one letter: A, B or C"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Done?
#
# Restart the kernel and run all cells: every test cell should pass. Then run
# `unigm-grade check 00_quickstart.ipynb` to see the points of the visible tests.
