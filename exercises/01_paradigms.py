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
# # Exercise 01: inside the VAE, flow and GAN families
#
# *Goes with lecture 01 (paradigms, part 1). 6 questions, 19 points; runs in about half a minute
# on a laptop CPU (the last question trains two small flows for a few seconds each).*
#
# Lecture 01 trained a dozen models. Each of them rests on one small piece of code that is easy
# to get subtly wrong: a bound that underflows, a Jacobian with the wrong half, a stop-gradient
# in the wrong place, a quantizer with the wrong number of levels, a penalty that does not
# reach the critic's weights, a pairing that is not optimal. Here you write those pieces, derive
# what a coupling layer's Jacobian is and what optimal transport does in one dimension, check
# all of it against closed forms and the course library, and read what a coupling does to a
# trained flow. Fill in every `# YOUR CODE HERE` (delete the
# `raise NotImplementedError` line under it) and run the test cell under each answer.
#
# - Check the whole notebook from a terminal: `unigm-grade check 01_paradigms.ipynb` (or the
#   `.py` file) executes it in a fresh kernel and lists each test with its points.
# - Grading runs the same tests and **hidden** ones (other shapes, seeds and edge cases), after
#   running your whole notebook top to bottom. Code you type into a test cell is not run when
#   graded; write answers in the answer cells.
# - No answer draws random numbers: the noise it needs is passed in as an argument.

# %%
import math

import torch

from unigm import zoo
from unigm.vae import gaussian_log_prob  # log N(x; mean, diag exp(log_std)^2), summed over the last dim

torch.manual_seed(0)

# %% [markdown]
# ## Q1 (3 points): the importance-weighted bound
#
# With $k$ draws $z_i \sim q(z \mid x)$ and weights $w_i = p(x, z_i) / q(z_i \mid x)$,
# $\log \frac1k \sum_i w_i$ is, in expectation, a lower bound on $\log p(x)$ that tightens as $k$
# grows (Burda et al. 2016; $k = 1$ is the ELBO). The weights are tiny numbers such as
# $e^{-700}$, so compute the bound from $\log w_i$ without ever forming $w_i$ (look up
# `torch.logsumexp`).
#
# Then use it for the library's Gaussian `VAE`: `vae.encode(x)` gives the `(mean, log_std)` of
# $q(z \mid x)$, `vae.decoder_log_prob(x, z)` gives $\log p(x \mid z)$ for `z` of shape
# `(k, B, K)` (it returns `(k, B)`), and the prior is $\mathcal N(0, I)$. The $k$ reparameterised
# draws $z_i = \mu + \sigma \varepsilon_i$ use the standard-normal `eps` of shape `(k, B, K)` passed in.

# %%
def iwae_bound(log_joint, log_q):
    """log (1/k) sum_i exp(log_joint_i - log_q_i), over the first dimension: (k, B) -> (B,)."""
    # YOUR CODE HERE
    raise NotImplementedError("q1: replace this line with your answer")


def vae_iwae_log_prob(vae, x, eps):
    """The k-sample importance-weighted bound on log p(x) of a Gaussian VAE, z_i = mean + std * eps_i:
    x (B, D), eps (k, B, K) -> (B,)."""
    # YOUR CODE HERE
    raise NotImplementedError("q1: replace this line with your answer")


# %% test="q1.bound" points=1
log_joint, log_q = torch.randn(8, 5), torch.randn(8, 5)
expected = (log_joint - log_q).exp().mean(0).log()
assert iwae_bound(log_joint, log_q).shape == (5,), "(k, B) -> (B,): average over the k draws"
assert torch.allclose(iwae_bound(log_joint, log_q), expected, atol=1e-5), "not log of the mean weight"
assert torch.allclose(iwae_bound(log_joint[:1], log_q[:1]), log_joint[0] - log_q[0]), "k = 1 must give the ELBO term"
tiny = iwae_bound(torch.full((4, 2), -800.0), torch.zeros(4, 2))
assert torch.isfinite(tiny).all() and torch.allclose(tiny, torch.full((2,), -800.0)), \
    "weights of e^-800 underflow to 0 if you exponentiate: work with log weights"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q1.vae" points=2
from unigm.course.grading.kernel_side import replaced

vae = zoo.make("vae", (2,)).eval()
x = torch.randn(32, 2)


def library_iwae_bound(log_joint, log_q):
    return torch.logsumexp(log_joint - log_q, 0) - math.log(len(log_joint))


library = vae.log_prob(x, 16, generator=torch.Generator().manual_seed(1))
eps = torch.randn(16, 32, vae.config.latent_dim, generator=torch.Generator().manual_seed(1))  # the library's draw
with torch.no_grad(), replaced(globals(), iwae_bound=library_iwae_bound):  # Q1's bound counts once
    ours = vae_iwae_log_prob(vae, x, eps)
assert ours.shape == (32,), "one bound per example"
assert torch.allclose(ours, library, atol=1e-4), "differs from vae.log_prob(x, k) with the same noise"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Q2 (3 points): an affine coupling layer and its log-determinant
#
# RealNVP (Dinh et al. 2017) splits the coordinates with a binary `mask` $m$. The masked ones pass
# unchanged and condition an affine map of the others:
#
# $$y = m \odot x + (1 - m) \odot \big(x \odot e^{s} + b\big), \qquad (s, b) = \text{conditioner}(m \odot x).$$
#
# **Derive** the log-determinant $\log\lvert\det \partial y / \partial x\rvert$ for one example:
# which entries of the Jacobian $\partial y_i / \partial x_j$ are zero (order the coordinates
# masked first), what are its diagonal entries, and why do the derivatives of the conditioner,
# a whole neural network, not enter? Then solve $y$ for $x$ to get the exact inverse. The
# conditioner may return any values in the masked coordinates: those must not affect $y$ or the
# log-determinant.

# %%
def coupling_forward(x, mask, conditioner):
    """(y, log|det dy/dx|): x (B, D), mask (D,) of 0/1; conditioner(m x) -> (s, b), each (B, D)."""
    # YOUR CODE HERE
    raise NotImplementedError("q2: replace this line with your answer")


def coupling_inverse(y, mask, conditioner):
    """The x with coupling_forward(x, mask, conditioner)[0] == y."""
    # YOUR CODE HERE
    raise NotImplementedError("q2: replace this line with your answer")


# %% test="q2.invertible" points=1
torch.manual_seed(2)
net = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.Tanh(), torch.nn.Linear(32, 8)).double()


def conditioner(masked_x):  # a small network; its outputs in the masked coordinates are not zero
    s, b = net(masked_x).chunk(2, dim=-1)
    return s, b


mask = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64)
x = torch.randn(10, 4, dtype=torch.float64)
with torch.no_grad():
    y, log_det = coupling_forward(x, mask, conditioner)
    assert y.shape == x.shape and log_det.shape == (10,)
    assert torch.equal(y[:, mask == 1], x[:, mask == 1]), "the masked coordinates must pass unchanged"
    assert (coupling_inverse(y, mask, conditioner) - x).abs().max() < 1e-10, "inverse(forward(x)) != x"

# %% test="q2.log_det" points=2
torch.manual_seed(3)
net = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.Tanh(), torch.nn.Linear(32, 8)).double()


def conditioner(masked_x):
    s, b = net(masked_x).chunk(2, dim=-1)
    return s, b


def forward_one(v):  # (D,) -> (D,): one example through the layer, for the Jacobian
    return coupling_forward(v[None], mask, conditioner)[0][0]


mask = torch.tensor([0.0, 1.0, 1.0, 0.0], dtype=torch.float64)
x = torch.randn(3, 4, dtype=torch.float64)
with torch.no_grad():
    log_det = coupling_forward(x, mask, conditioner)[1]
assert log_det.shape == (3,), "one log-determinant per example"
for i in range(3):
    jacobian = torch.autograd.functional.jacobian(forward_one, x[i])
    exact = torch.linalg.slogdet(jacobian).logabsdet
    assert abs(log_det[i].item() - exact.item()) < 1e-8, \
        f"log|det| {log_det[i].item():.6f} but the Jacobian's is {exact.item():.6f}"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Q3 (3 points): vector quantisation and where its gradients go
#
# A VQ-VAE (van den Oord et al. 2017) replaces each encoder output $z_e$ by its nearest codebook
# vector $e$ (Euclidean distance). Rounding has no gradient, so three terms share the work, with
# $\operatorname{sg}$ the stop-gradient (`.detach()`):
#
# - the straight-through copy $z_q = z_e + \operatorname{sg}[e - z_e]$: its value is $e$, but its
#   gradient flows to $z_e$ unchanged (the decoder's gradient reaches the encoder);
# - the codebook loss $\lVert \operatorname{sg}[z_e] - e \rVert^2$ moves only the codebook;
# - the commitment loss $\lVert z_e - \operatorname{sg}[e] \rVert^2$ moves only the encoder.
#
# Both losses are summed over the code dimension and averaged over the $N$ vectors.

# %%
def vector_quantize(z_e, codebook):
    """z_e (N, d), codebook (K, d) -> (z_q (N, d), indices (N,), codebook_loss, commitment_loss)."""
    # YOUR CODE HERE
    raise NotImplementedError("q3: replace this line with your answer")


# %% test="q3.values" points=1
torch.manual_seed(4)
z_e, codebook = torch.randn(50, 3), torch.randn(16, 3)
z_q, indices, codebook_loss, commitment_loss = vector_quantize(z_e, codebook)
squared_distances = (z_e[:, None, :] - codebook[None, :, :]).pow(2).sum(-1)  # (N, K)
assert torch.equal(indices, squared_distances.argmin(1)), "not the nearest codebook vector"
assert torch.allclose(z_q, codebook[indices], atol=1e-6), "z_q must equal the chosen code vectors"
nearest = squared_distances.min(1).values.mean()
assert torch.allclose(codebook_loss, nearest) and torch.allclose(commitment_loss, nearest), \
    "both losses are the mean over vectors of the squared distance to the chosen code"


# %% test="q3.gradients" points=2
torch.manual_seed(5)
z_e, codebook = torch.randn(40, 3), torch.randn(8, 3)
indices = (z_e[:, None, :] - codebook[None, :, :]).pow(2).sum(-1).argmin(1)


def gradients(pick):
    """Gradients (on z_e, on the codebook) of one output of vector_quantize; zeros where none flows."""
    z, c = z_e.clone().requires_grad_(True), codebook.clone().requires_grad_(True)
    pick(*vector_quantize(z, c)).backward()
    return [torch.zeros_like(v) if v.grad is None else v.grad for v in (z, c)]


w = torch.randn(40, 3)
to_encoder, to_codebook = gradients(lambda z_q, *_: (w * z_q).sum())
assert torch.allclose(to_encoder, w), "straight-through: d(w . z_q)/dz_e must be w"
assert to_codebook.abs().max() == 0, "z_q must not send gradient to the codebook"
to_encoder, to_codebook = gradients(lambda z_q, i, codebook_loss, commitment: codebook_loss)
assert to_encoder.abs().max() == 0, "the codebook loss must not move the encoder"
assert to_codebook.abs().max() > 0, "the codebook loss must move the codebook"
to_encoder, to_codebook = gradients(lambda z_q, i, codebook_loss, commitment: commitment)
assert to_codebook.abs().max() == 0, "the commitment loss must not move the codebook"
assert torch.allclose(to_encoder, 2 * (z_e - codebook[indices]) / len(z_e)), "d commitment / dz_e = 2 (z_e - e) / N"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Q4 (3 points): finite scalar quantisation with exactly L levels
#
# FSQ (Mentzer et al. 2024) has no codebook to learn: it bounds each channel and rounds it. For a
# channel with $L$ levels, bound with
#
# $$b(z) = (1 - \epsilon)\,\tfrac{L - 1}{2} \tanh z - o, \qquad o = \tfrac12 \text{ if } L \text{ is even, else } 0, \qquad \epsilon = 10^{-3},$$
#
# then round, with the straight-through estimator so the gradient is that of $b$. For odd $L$ this
# rounds to $\{-\tfrac{L-1}{2}, \dots, \tfrac{L-1}{2}\}$; for even $L$ to $\{-\tfrac L2, \dots, \tfrac L2 - 1\}$:
# $L$ values either way (not $2L + 1$: the common misstatement of lecture 02).
#
# The implicit codebook has $\prod_i L_i$ codes. Number them in mixed radix: channel $i$ has the
# digit $c_i + \lfloor L_i/2 \rfloor \in \{0, \dots, L_i - 1\}$, and channel 0 is the least
# significant, so the index is $\sum_i \text{digit}_i \prod_{j < i} L_j$.

# %%
def fsq_round(z, levels, eps=1e-3):
    """Bound each of the d channels of z (..., d) to its L_i levels and round (straight-through)."""
    # YOUR CODE HERE
    raise NotImplementedError("q4: replace this line with your answer")


def fsq_index(codes, levels):
    """Integer-valued codes (..., d) from fsq_round -> their index in [0, prod L_i), (...,) long."""
    # YOUR CODE HERE
    raise NotImplementedError("q4: replace this line with your answer")


# %% test="q4.levels" points=2
levels = (2, 3, 4, 5, 8)
z = torch.linspace(-8, 8, 4001)[:, None].repeat(1, len(levels))
codes = fsq_round(z, levels)
assert codes.shape == z.shape
for i, L in enumerate(levels):
    values = codes[:, i].unique()
    assert len(values) == L, f"L = {L}: {len(values)} distinct levels {values.tolist()}"
    assert torch.equal(values, values.round()), "codes are integers"
z = torch.randn(100, len(levels), requires_grad=True)
fsq_round(z, levels).sum().backward()
half_width = (1 - 1e-3) * (torch.tensor(levels) - 1) / 2
assert torch.allclose(z.grad, half_width * (1 - torch.tanh(z.detach()) ** 2), atol=1e-5), \
    "straight-through: the gradient must be that of the bound b(z), not zero"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q4.index" points=1
levels = (3, 4, 2)
grid = torch.cartesian_prod(*[torch.arange(L) - L // 2 for L in levels]).float()  # every code, (24, 3)
indices = fsq_index(grid, levels)
assert indices.shape == (24,)
assert torch.equal(indices.sort().values, torch.arange(24)), "the codes must number 0 .. prod(L) - 1, each once"
assert fsq_index(torch.tensor([[-1.0, -2.0, -1.0]]), levels).item() == 0, "the lowest code is index 0"
assert fsq_index(torch.tensor([[0.0, -2.0, -1.0]]), levels).item() == 1, "channel 0 is the least significant digit"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Q5 (3 points): the WGAN-GP gradient penalty
#
# WGAN-GP (Gulrajani et al. 2017) keeps the critic $f$ close to 1-Lipschitz with the penalty
#
# $$\mathbb E_{\hat x}\,\big(\lVert \nabla_{\hat x} f(\hat x) \rVert_2 - 1\big)^2, \qquad
#   \hat x = \epsilon\, x_\text{real} + (1 - \epsilon)\, x_\text{fake}, \quad \epsilon \sim U[0, 1] \text{ per example}.$$
#
# The penalty is minimised over the critic's weights, so its value must stay differentiable in
# them: the gradient $\nabla_{\hat x} f$ has to be computed with `create_graph=True`. The
# interpolation weights `eps` (shape `(B, 1)`) are passed in.

# %%
def gradient_penalty(critic, real, fake, eps):
    """mean over the batch of (|grad_x critic(x_hat)| - 1)^2 at x_hat = eps real + (1 - eps) fake."""
    # YOUR CODE HERE
    raise NotImplementedError("q5: replace this line with your answer")


# %% test="q5.linear" points=2
critic = torch.nn.Linear(2, 1).double()
with torch.no_grad():
    critic.weight.copy_(torch.tensor([[3.0, 4.0]]))  # |w| = 5: the gradient of w . x is w everywhere
real, fake = torch.randn(16, 2, dtype=torch.float64), torch.randn(16, 2, dtype=torch.float64)
penalty = gradient_penalty(critic, real, fake, torch.rand(16, 1, dtype=torch.float64))
assert penalty.shape == (), "a scalar"
assert abs(penalty.item() - 16.0) < 1e-10, f"(|w| - 1)^2 = 16 for a linear critic, got {penalty.item()}"
assert penalty.requires_grad, "the penalty must be differentiable in the critic's weights: create_graph=True"
penalty.backward()
w = critic.weight.detach()
assert torch.allclose(critic.weight.grad, 2 * (w.norm() - 1) * w / w.norm()), \
    "d/dw (|w| - 1)^2 = 2 (|w| - 1) w / |w|"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q5.library" points=1
model = zoo.make("wgan_gp", (2,))
real, fake = torch.randn(64, 2), model.generate(64).detach()
torch.manual_seed(8)
eps = torch.rand(64, 1)
ours = gradient_penalty(model.discriminator, real, fake, eps)
torch.manual_seed(8)
library = model.penalty(real, fake, None, None) / model.config.gp_lambda
assert torch.allclose(ours, library, rtol=1e-5), f"yours {ours.item():.6f}, WGANGP.penalty {library.item():.6f}"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Q6 (4 points): minibatch optimal transport, and what it does to a flow
#
# Flow matching pairs each data point $x_0^{(i)}$ with a noise draw. Independent pairing takes
# them as drawn; minibatch optimal transport (Tong et al. 2024, arXiv:2302.00482; Pooladian et
# al. 2023, arXiv:2304.14772) re-pairs a batch of $n$ data points with $n$ noise draws by the
# permutation $\pi$ that minimises the total squared distance
# $\sum_i \lVert x_0^{(i)} - x_1^{(\pi(i))} \rVert^2$.
#
# **(a)** Write `ot_pairing(x0, x1)` for batches of any event shape `(n, *E)` (the distance runs
# over all of `E`): it returns the rows of `x1` reordered so that row `i` is the partner of
# `x0[i]`. Build the cost matrix yourself and solve the assignment exactly with
# `scipy.optimize.linear_sum_assignment` (or POT's `ot.emd`, which `unigm` uses).
#
# **(b)** In one dimension no solver is needed. **Derive** the optimal pairing of $n$ numbers
# with $n$ numbers: take $a < a'$ and $b < b'$ and compare the cost of pairing them in order,
# $(a, b), (a', b')$, with the crossed pairing $(a, b'), (a', b)$; what does that say about the
# optimal permutation? Write `ot_pairing_1d(x0, x1)` for tensors of shape `(n,)` from your
# result, without calling an assignment solver.

# %%
from scipy.optimize import linear_sum_assignment


def ot_pairing(x0, x1):
    """x1's rows reordered by the exact OT assignment for the squared distance: x0, x1 (n, *E) -> (n, *E)."""
    # YOUR CODE HERE
    raise NotImplementedError("q6: replace this line with your answer")


def ot_pairing_1d(x0, x1):
    """The same for numbers, x0, x1 (n,) -> (n,), without an assignment solver."""
    # YOUR CODE HERE
    raise NotImplementedError("q6: replace this line with your answer")


# %% test="q6.pairing" points=2
def is_reordering(paired, x1):
    """True when the rows of `paired` are the rows of x1, each used once."""
    a, b = paired.flatten(1).double(), x1.flatten(1).double()
    distance = torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")
    nearest = distance.argmin(1)
    return paired.shape == x1.shape and bool(distance.min(1).values.max() < 1e-12) and \
        torch.equal(nearest.sort().values, torch.arange(len(x1)))


def best_cost(x0, x1):
    """The optimal total squared distance, by scipy's exact assignment."""
    cost = torch.cdist(x0.flatten(1).double(), x1.flatten(1).double()) ** 2
    rows, cols = linear_sum_assignment(cost.numpy())
    return cost[rows, cols].sum().item()


def total_cost(x0, paired):
    return (x0.double() - paired.double()).pow(2).sum().item()


g = torch.Generator().manual_seed(10)
x0, x1 = torch.randn(40, 2, generator=g) + torch.tensor([3.0, 0.0]), torch.randn(40, 2, generator=g)
paired = ot_pairing(x0, x1)
assert is_reordering(paired, x1), "return the rows of x1, each once, in a new order"
assert total_cost(x0, paired) <= best_cost(x0, x1) * (1 + 1e-9), \
    f"total squared distance {total_cost(x0, paired):.4f}, but the optimum is {best_cost(x0, x1):.4f}"
assert total_cost(x0, paired) < total_cost(x0, x1), "the OT pairing is cheaper than the pairing as drawn"
### HIDDEN TESTS: run only when the notebook is graded

# %% test="q6.one_d" points=1
import scipy.optimize
from scipy.optimize import linear_sum_assignment
from unigm.course.grading.kernel_side import replaced


def best_cost(x0, x1):
    cost = torch.cdist(x0.flatten(1).double(), x1.flatten(1).double()) ** 2
    rows, cols = linear_sum_assignment(cost.numpy())
    return cost[rows, cols].sum().item()


def total_cost(x0, paired):
    return (x0.double() - paired.double()).pow(2).sum().item()


def no_solver(*args, **kwargs):
    raise RuntimeError("derive the 1D pairing: no assignment solver, no ot_pairing, in ot_pairing_1d")


def pairing_1d_without_solver(x0, x1):
    with replaced(globals(), linear_sum_assignment=no_solver, ot_pairing=no_solver), \
            replaced(vars(scipy.optimize), linear_sum_assignment=no_solver):
        return ot_pairing_1d(x0, x1)


g = torch.Generator().manual_seed(13)
x0, x1 = torch.randn(50, generator=g) * 3, torch.randn(50, generator=g)
paired = pairing_1d_without_solver(x0, x1)
assert paired.shape == (50,) and torch.equal(paired.sort().values, x1.sort().values), "a reordering of x1"
assert abs(total_cost(x0[:, None], paired[:, None]) - best_cost(x0[:, None], x1[:, None])) < 1e-9, \
    "not the optimal pairing"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# **(c) Train, look, explain.** The cell below trains two flow-matching models on eight Gaussians,
# one with independent pairs and one with minibatch-OT pairs (the library's `OTFlowMatching`,
# which pairs every training batch like your `ot_pairing`), for a few seconds each. Top row: it
# follows 48 noise draws back to data along each model's ODE (32 Euler steps, blue), beside the
# straight chord from start to end (dotted). Bottom row: 1,000 samples of each model drawn with a
# **single** Euler step (NFE = 1), over the data in grey. Predict first: which coupling gives
# the straighter flow, and what does that buy? Then run it and look.

# %%
import matplotlib.pyplot as plt

from unigm import bench, data, samplers

eight = data.toy("eight_gaussians")
flows = {name: bench.train(name, eight, seed=0, steps=500)[0].eval() for name in ("flow_matching", "ot_flow_matching")}
start = torch.randn(48, 2, generator=torch.Generator().manual_seed(0))
noise = torch.randn(1000, 2, generator=torch.Generator().manual_seed(1))
data_points = eight.sample(1000, torch.Generator().manual_seed(2))
fig, axes = plt.subplots(2, 2, figsize=(9, 9), sharex=True, sharey=True)
for column, (name, model) in enumerate(flows.items()):
    trajectory = []
    samplers.euler(model.velocity, start, 32, trajectory=trajectory)
    path = torch.stack(trajectory)  # (33, 48, 2): from noise (t = 1) to data (t = 0)
    top, bottom = axes[0, column], axes[1, column]
    for i in range(path.shape[1]):
        top.plot(path[[0, -1], i, 0], path[[0, -1], i, 1], ls=":", lw=0.8, color="grey")
    top.plot(path[:, :, 0], path[:, :, 1], lw=1.0, color="tab:blue")
    top.scatter(path[0, :, 0], path[0, :, 1], s=8, color="grey", zorder=3, label="noise (t = 1)")
    top.scatter(path[-1, :, 0], path[-1, :, 1], s=8, color="tab:red", zorder=3, label="end (t = 0)")
    top.set_title({"flow_matching": "independent pairs", "ot_flow_matching": "minibatch-OT pairs"}[name])
    one_step = samplers.euler(model.velocity, noise, 1)
    bottom.scatter(data_points[:, 0], data_points[:, 1], s=3, color="lightgrey", label="data")
    bottom.scatter(one_step[:, 0], one_step[:, 1], s=3, color="tab:blue", alpha=0.5, label="1 Euler step")
    for ax in (top, bottom):
        ax.set_aspect("equal")
axes[0, 0].legend(loc="upper left", fontsize=8)
axes[1, 0].legend(loc="upper left", fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# *Figure: top, ODE trajectories of the two trained flows from the same 48 noise draws and the
# chords between their ends; bottom, one-step samples of each flow over the data.*
#
# Which statement fits what you see?
#
# - **A.** The coupling changes nothing visible: both flows have alike trajectories and alike
#   one-step samples.
# - **B.** The minibatch-OT flow follows its chords almost exactly, so a single Euler step
#   already carries the noise out to the ring of modes; the independent flow's single step
#   leaves the samples in a blob at the centre.
# - **C.** The independent flow gives the better one-step samples, because independent pairs
#   point in every direction and their average cancels.

# %%
def which_is_straighter():
    """The letter of the statement that fits the plot: "A", "B" or "C"."""
    # YOUR CODE HERE
    raise NotImplementedError("q6: replace this line with your answer")


# %% test="q6.read" points=1
assert which_is_straighter() in ("A", "B", "C"), "one letter: A, B or C"
### HIDDEN TESTS: run only when the notebook is graded

# %% [markdown]
# ## Done?
#
# Restart the kernel and run all cells: every test cell should pass. Then run
# `unigm-grade check 01_paradigms.ipynb` to see the points of the visible tests. Lecture 01
# trains every model these pieces belong to.
