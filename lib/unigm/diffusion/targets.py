"""What a diffusion network predicts: the noise eps, the data x_0, or v (Salimans & Ho 2022,
"Progressive Distillation for Fast Sampling of Diffusion Models", arXiv:2202.00512, Sec. 4).

On a Gaussian path x_t = alpha_t x_0 + sigma_t eps the three are linear in each other given x_t
(unigm.paths.GaussianPath converts), so a network trained on any of them implies the other two. The
regression losses differ only by a weight of the signal-to-noise ratio SNR = alpha^2 / sigma^2:
an error eps_hat - eps implies
    x0_hat - x_0 = -(sigma / alpha) (eps_hat - eps)               =>  |x_0 - x0_hat|^2 = |eps - eps_hat|^2 / SNR
    v_hat - v    = ((alpha^2 + sigma^2) / alpha) (eps_hat - eps)  =>  |v - v_hat|^2   = (1 + 1/SNR) |eps - eps_hat|^2
where the second line uses alpha^2 + sigma^2 = 1 (the VP path of DDPM). Equivalently, the v loss is
(1 + SNR) times the x_0 loss (Salimans & Ho's "SNR+1" weighting). Lecture 02, checks 3.11-3.12.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..paths import GaussianPath


# -- the weights, each |target - prediction|^2 / |eps - eps_hat|^2 on the VP path --------------------
# Plain arithmetic on purpose: they accept a float, a tensor or a sympy expression (checked in 3.11).
def eps_weight_epsilon(snr):
    """The epsilon loss itself: weight 1 (Ho et al. 2020, eq. 14)."""
    return snr**0


def eps_weight_x0(snr):
    """|x_0 - x0_hat|^2 = (sigma / alpha)^2 |eps - eps_hat|^2 = |eps - eps_hat|^2 / SNR."""
    return 1 / snr


def eps_weight_v(snr):
    """|v - v_hat|^2 = ((alpha^2 + sigma^2) / alpha)^2 |eps - eps_hat|^2 = (1 + 1/SNR) |eps - eps_hat|^2
    when alpha^2 + sigma^2 = 1 (VP). Not (1 + SNR): that is its weight relative to the x_0 loss."""
    return 1 + 1 / snr


def preconditioning(snr, sigma_data=1.0):
    """(c_skip, c_out) of an x_0 predictor written as x0_hat = c_skip x_t + c_out F(x_t, t) on the VP path,
    for data of standard deviation sigma_data (Karras et al. 2022, "Elucidating the Design Space of
    Diffusion-Based Generative Models", arXiv:2206.00364, Table 1, "Ours"). EDM states them on
    x / alpha with noise level s^2 = 1 / SNR: c_skip = sd^2 / (s^2 + sd^2), c_out = s sd / sqrt(s^2 + sd^2);
    here c_skip is divided by alpha = sqrt(SNR / (1 + SNR)) so that it multiplies x_t itself. c_skip x_t
    is the best linear guess of x_0 for data of that scale, and F's target (x_0 - c_skip x_t) / c_out has
    unit variance at every noise level, so the net never has to copy x_t to within sigma (lecture 01,
    7.2). With sigma_data = 1 the pair is (alpha, sigma) and F = -v: this x_0 model is the v model
    (lecture 02, check 3.14)."""
    alpha = (snr / (1 + snr)) ** 0.5
    c_skip = sigma_data**2 * snr / (1 + sigma_data**2 * snr) / alpha
    c_out = sigma_data / (1 + sigma_data**2 * snr) ** 0.5
    return c_skip, c_out


def eps_weight_x0_preconditioned(snr, sigma_data=1.0):
    """The preconditioned x_0 loss |x_0 - x0_hat|^2 / c_out^2 (= |F - F_target|^2, EDM's weight
    lambda = 1 / c_out^2) as a weight on |eps - eps_hat|^2: (1 / c_out^2) / SNR = 1 + 1 / (sigma_data^2 SNR).
    sigma_data = 1 gives eps_weight_v."""
    return 1 + 1 / (sigma_data**2 * snr)


@dataclass(frozen=True)
class PredictionTarget:
    """One choice of what the network outputs, as three conversions and a weight:
    target(path, x0, eps, t)       what the network regresses on, from a training pair
    to_x0_eps(path, x, out, t)     (x0_hat, eps_hat) implied by the output `out` at x_t = x
    eps_weight(snr)                |target - out|^2 = eps_weight(snr) |eps - eps_hat|^2 (VP path)"""

    name: str
    target: Callable[..., torch.Tensor]
    to_x0_eps: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    eps_weight: Callable


def _eps_target(path: GaussianPath, x0, eps, t):
    return eps


def _x0_target(path: GaussianPath, x0, eps, t):
    return x0


def _v_target(path: GaussianPath, x0, eps, t):  # v = alpha eps - sigma x_0
    return path.v_from_x0_eps(x0, eps, t)


def _x0_eps_from_eps(path: GaussianPath, x, eps, t):
    return path.x0_from_eps(x, eps, t), eps


def _x0_eps_from_x0(path: GaussianPath, x, x0, t):
    return x0, path.eps_from_x0(x, x0, t)


def _x0_eps_from_v(path: GaussianPath, x, v, t):
    return path.x0_eps_from_v(x, v, t)


TARGETS = {
    "epsilon": PredictionTarget("epsilon", _eps_target, _x0_eps_from_eps, eps_weight_epsilon),
    "x0": PredictionTarget("x0", _x0_target, _x0_eps_from_x0, eps_weight_x0),
    "v": PredictionTarget("v", _v_target, _x0_eps_from_v, eps_weight_v),
}


def prediction_target(name: str) -> PredictionTarget:
    """The target called `name` ('epsilon', 'x0' or 'v'); a clear error otherwise."""
    if name not in TARGETS:
        raise ValueError(f"unknown prediction target {name!r}; choose one of {', '.join(TARGETS)}")
    return TARGETS[name]
