"""DiffFlow: GANs and score-based diffusion as particle flows (Zhang, Shi, Yu, Xie & Li 2023,
"Unifying GANs and Score-Based Diffusion as Generative Particle Models", arXiv:2307.02159).

Particles x ~ p_g move along a velocity field. Three fields, one picture:
    Langevin toward p_data   dx = grad log p_data dt + sqrt(2) dW
        its marginals p_t follow the continuity equation with velocity grad log p_data - grad log p_t
        (Fokker-Planck: the noise term is the -grad log p_t part), so the deterministic
    score-difference flow   dx/dt = grad log p_data(x) - grad log p_g(x)     (the paper's alpha = 1, beta = -1)
        has the same marginals as Langevin, and p_g = p_data is a fixed point (the field is zero there).
    GAN-like flow           dx/dt = grad logit D*(x),  D* = p_data / (p_data + p_g)
        since logit D* = log p_data - log p_g, this IS the score-difference flow with the score difference
        read off an optimal discriminator; a non-saturating generator follows +grad log D, a related drift.
Drop the -grad log p_g term and keep no noise ("gradient ascent on log p_data") and p_data is no longer
stationary: particles collapse onto its modes. Langevin with the noise mis-set (sqrt(2) -> c) samples
p_data^(2 / c^2) instead, a tempered, sharper law (`langevin_tempered`).

Here the data score is exact (`toy_score` differentiates a toy's exact log-density), the particle score is
exact when given or a Gaussian KDE of the particles (`kde_score`). A KDE of bandwidth h estimates the
score of p_g * N(0, h^2 I), so the flow's fixed point is p_g * N(0, h^2) = (whatever density data_score is
the score of); pass the score of p_data * N(0, h^2) (`smoothed_toy(dist, h)`) to make p_data itself the
fixed point (a Gaussian convolution is injective), the bare data score to see the O(h^2) contraction.

`stationarity_table` measures all of this: particles drawn from p_data, moved k steps by each flow, W2 to
held-out data next to its noise floor, and the excess log-likelihood E_particles log p_data - E_data log p_data
(0 when the particles still follow p_data, > 0 when they have piled onto the modes).
Model code sits below unigm.metrics in the library's layers, so W2 here is computed with POT directly
(`wasserstein2`, the same exact solve as unigm.metrics.wasserstein2; the tests check they agree).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import ot
import torch
from torch import nn

from .. import data as data_module
from ..data import GaussianMixture, NoisyCurves, Toy2D
from ..nets import MLP
from ..samplers import langevin

Score = Callable[[torch.Tensor], torch.Tensor]  # x (B, D) -> (B, D)

__all__ = ["discriminator_flow", "gradient_ascent", "kde_score", "langevin_tempered", "score_difference_flow",
           "silverman_bandwidth", "smoothed_toy", "stationarity_table", "toy_score", "wasserstein2"]


# -- scores ---------------------------------------------------------------------------------------------
def toy_score(dist: Toy2D) -> Score:
    """x (B, 2) -> grad_x log p(x) of a toy with an exact log-density, by autograd."""

    def score(x: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            xx = x.detach().double().requires_grad_(True)
            (grad,) = torch.autograd.grad(dist.log_prob(xx).sum(), xx)
        return grad.to(x.dtype)

    return score


def smoothed_toy(dist: Toy2D, bandwidth: float, nodes: int = 512) -> Toy2D:
    """The toy convolved with N(0, bandwidth^2 I): a mixture of isotropic Gaussians (std -> sqrt(std^2 + h^2))
    or noisy curves (noise -> sqrt(noise^2 + h^2), `nodes` quadrature nodes per curve). bandwidth = 0 returns
    an equal copy (with `nodes` nodes: cheaper scores, same density to float32 precision for these toys)."""
    if isinstance(dist, GaussianMixture):
        return GaussianMixture(dist.name, dist.means, math.hypot(dist.std, bandwidth))
    if isinstance(dist, NoisyCurves):
        return NoisyCurves(dist.name, dist.curves, math.hypot(dist.noise, bandwidth), nodes=nodes)
    raise TypeError(f"smoothed_toy knows Gaussian mixtures and noisy curves, not {type(dist).__name__}")


def silverman_bandwidth(x: torch.Tensor) -> float:
    """Silverman's rule for a Gaussian KDE of n points in d dimensions (isotropic, one h):
    h = (4 / (d + 2))^(1 / (d + 4)) n^(-1 / (d + 4)) * (mean per-coordinate std)."""
    n, d = x.shape
    return float((4 / (d + 2)) ** (1 / (d + 4)) * n ** (-1 / (d + 4)) * x.std(0).mean())


def kde_score(x: torch.Tensor, particles: torch.Tensor, bandwidth: float, leave_one_out: bool = False) -> torch.Tensor:
    """grad_x log q_h(x), q_h = (1/n) sum_j N(x; x_j, h^2 I): sum_j w_j (x_j - x) / h^2 with
    w = softmax_j(-|x - x_j|^2 / (2 h^2)). (B, D), (n, D) -> (B, D). leave_one_out (x is `particles`):
    the score at x_i uses the other n - 1 particles (the i = j kernel only dilutes the estimate)."""
    logits = -torch.cdist(x, particles).pow(2) / (2 * bandwidth**2)  # (B, n)
    if leave_one_out:
        logits = logits - torch.diag(torch.full((len(x),), math.inf, dtype=x.dtype))
    w = torch.softmax(logits, dim=1)
    return (w @ particles - x) / bandwidth**2


# -- the flows ------------------------------------------------------------------------------------------
@torch.no_grad()
def score_difference_flow(x: torch.Tensor, data_score: Score, particle_score: Score | None = None, *,
                          step: float = 1e-3, steps: int = 100, bandwidth: float | None = None,
                          trajectory: list | None = None) -> torch.Tensor:
    """x <- x + step * (s_data(x) - s_g(x)), `steps` times (Euler on the score-difference flow, no noise).

    s_g: `particle_score(x)` when given (exact), otherwise the Gaussian KDE of the current particles with
    `bandwidth` (None: Silverman's rule, recomputed each step), each particle's own kernel included: an
    isolated particle then sees s_g ~ 0 and is pulled in by s_data. (Leaving it out makes the KDE score
    at an outlier point at its nearest neighbour with strength d / h^2, larger than the data score's pull
    d / (sigma^2 + h^2): outliers are pushed away and the flow blows up.) x: (n, D)."""
    for _ in range(steps):
        if particle_score is not None:
            s_g = particle_score(x)
        else:
            s_g = kde_score(x, x, bandwidth or silverman_bandwidth(x))
        x = x + step * (data_score(x) - s_g)
        if trajectory is not None:
            trajectory.append(x)
    return x


@torch.no_grad()
def gradient_ascent(x: torch.Tensor, data_score: Score, *, step: float = 1e-3, steps: int = 100) -> torch.Tensor:
    """x <- x + step * s_data(x): the flow without its -grad log p_g term and without noise.
    Its fixed points are the modes of p_data, so p_data is not stationary."""
    for _ in range(steps):
        x = x + step * data_score(x)
    return x


def langevin_tempered(data_score: Score, x: torch.Tensor, steps: int, step: float, noise_scale: float = math.sqrt(2),
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """x <- x + step * s(x) + noise_scale * sqrt(step) * z: Langevin with its noise scale c free.

    c = sqrt(2) is unigm.samplers.langevin. Other c: with step' = c^2 step / 2 the update reads
    x + step' (2 / c^2) s(x) + sqrt(2 step') z, i.e. exact Langevin toward p^(2 / c^2) (temperature c^2 / 2),
    and that is how it is run here (through unigm.samplers.langevin)."""
    factor = 2 / noise_scale**2
    return langevin(lambda y, t: factor * data_score(y), x, steps, noise_scale**2 * step / 2, generator=generator)


def discriminator_flow(x: torch.Tensor, data, *, steps: int = 200, step: float = 0.05, disc_steps: int = 5,
                       disc_every: int = 1, hidden: int = 64, depth: int = 2, lr: float = 2e-3,
                       batch_size: int = 512, generator: torch.Generator | None = None,
                       trajectory: list | None = None) -> torch.Tensor:
    """The GAN-like score-difference flow: x <- x + step * grad_x logit D(x), where D is a small MLP
    classifier (logistic loss, data = 1, particles = 0) trained `disc_steps` Adam steps every `disc_every`
    particle steps, warm-started (as a GAN's discriminator is). At the optimum logit D = log p_data - log p_g,
    so grad logit D estimates the score difference.

    data: a Toy2D (fresh batches each step) or a tensor (n_data, D) to draw batches from."""
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    torch_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
    with torch.random.fork_rng():  # the classifier's initialisation, without touching the global RNG
        torch.manual_seed(torch_seed)
        classifier = MLP(x.shape[1], 1, hidden, depth)
    optimiser = torch.optim.Adam(classifier.parameters(), lr=lr, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()

    def data_batch(m):
        if isinstance(data, Toy2D):
            return data.sample(m, g)
        return data[torch.randint(len(data), (m,), generator=g)]

    x = x.detach().clone()
    for i in range(steps):
        if i % disc_every == 0:
            for _ in range(disc_steps):
                real = data_batch(batch_size)
                fake = x[torch.randint(len(x), (batch_size,), generator=g)]
                logits = classifier(torch.cat([real, fake])).squeeze(-1)
                labels = torch.cat([torch.ones(batch_size), torch.zeros(batch_size)])
                optimiser.zero_grad()
                bce(logits, labels).backward()
                optimiser.step()
        xx = x.requires_grad_(True)
        (grad,) = torch.autograd.grad(classifier(xx).sum(), xx)  # grad_x logit D
        x = (x + step * grad).detach()
        if trajectory is not None:
            trajectory.append(x)
    return x


# -- measuring stationarity -----------------------------------------------------------------------------
def wasserstein2(x: torch.Tensor, y: torch.Tensor) -> float:
    """Exact W2 between two empirical measures with uniform weights (POT's network simplex on |x - y|^2)."""
    a, b = x.detach().double().numpy(), y.detach().double().numpy()
    cost = ot.dist(a, b, metric="sqeuclidean")
    return math.sqrt(max(float(ot.emd2(np.full(len(a), 1 / len(a)), np.full(len(b), 1 / len(b)), cost,
                                       numItermax=10**8)), 0.0))


def stationarity_table(dataset: str = "two_moons", n: int = 1000, steps: int = 200, step: float = 1e-3,
                       bandwidth: float = 0.1, seed: int = 0, methods: tuple[str, ...] | None = None) -> list[dict]:
    """Start n particles exactly at p_data, run each flow `steps` steps of size `step`, and measure.

    Rows {method, w2, w2_floor, w2_start, log_p_excess}: W2 to n held-out data points after the steps, the
    noise floor (a fresh draw vs the held-out set), W2 of the starting particles, and
    E_particles log p_data - E_fresh log p_data (nats; about 0 for a stationary flow, positive when the
    particles have collapsed toward the modes). Methods:
        score-difference (exact s_g)   s_g = s_data: the field is exactly zero (the identity; a sanity row)
        score-difference (KDE)         s_data of p_data * N(0, h^2) minus the KDE score, h = bandwidth
        score-difference (KDE, bare)   the unsmoothed s_data minus the KDE score: contracts by O(h^2)
        gradient ascent                s_data only, no noise: collapses onto the modes
        Langevin, sqrt(2) noise        unigm.samplers.langevin with the exact score: stationary (up to O(step))
        Langevin, noise 1              the noise mis-set: samples p_data^2, sharper than p_data
    methods: the subset of rows to run (None: all).
    """
    dist = data_module.toy(dataset)
    exact = smoothed_toy(dist, 0.0)
    score = toy_score(exact)
    smooth_score = toy_score(smoothed_toy(dist, bandwidth))
    g = torch.Generator().manual_seed(seed)
    test, fresh, start = dist.sample(n, g), dist.sample(n, g), dist.sample(n, g)
    floor = wasserstein2(fresh, test)
    w2_start = wasserstein2(start, test)
    log_p_fresh = exact.log_prob(fresh.double()).mean().item()
    runs = {
        "score-difference (exact s_g)": lambda: score_difference_flow(start, score, score, step=step, steps=steps),
        "score-difference (KDE)": lambda: score_difference_flow(start, smooth_score, step=step, steps=steps,
                                                                bandwidth=bandwidth),
        "score-difference (KDE, bare)": lambda: score_difference_flow(start, score, step=step, steps=steps,
                                                                      bandwidth=bandwidth),
        "gradient ascent": lambda: gradient_ascent(start, score, step=step, steps=steps),
        "Langevin, sqrt(2) noise": lambda: langevin(lambda y, t: score(y), start, steps, step, generator=g),
        "Langevin, noise 1": lambda: langevin_tempered(score, start, steps, step, noise_scale=1.0, generator=g),
    }
    rows = []
    unknown = set(methods or ()) - set(runs)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {list(runs)}")
    for method, run in runs.items():
        if methods is not None and method not in methods:
            continue
        x = run()
        rows.append({"method": method, "steps": steps, "w2": wasserstein2(x, test), "w2_floor": floor,
                     "w2_start": w2_start, "log_p_excess": exact.log_prob(x.double()).mean().item() - log_p_fresh})
    return rows
