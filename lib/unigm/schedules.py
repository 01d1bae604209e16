"""Noise schedules as small pure functions of time, named like the papers' symbols.

Time convention of the course (see unigm.base): t in [0, 1], t = 0 is data, t = 1 is noise.
Every schedule asserts its boundary values when this module is imported.
"""
from __future__ import annotations

import math

import torch


# -- variance preserving (DDPM / VP SDE) ---------------------------------------------------------
def beta_vp_linear(t, beta_min: float = 0.1, beta_max: float = 20.0):
    """beta(t) = beta_min + t (beta_max - beta_min) (Song et al. 2021, arXiv:2011.13456, eq. 33).
    With T = 1000 steps, beta_i = beta(i / T) / T runs from 1e-4 to 0.02: Ho et al. 2020's schedule."""
    return beta_min + t * (beta_max - beta_min)


def alpha_bar_vp_linear(t, beta_min: float = 0.1, beta_max: float = 20.0):
    """alpha_bar(t) = exp(-int_0^t beta(s) ds); alpha_bar(0) = 1, alpha_bar(1) = e^-10.05."""
    return torch.exp(-(beta_min * t + 0.5 * (beta_max - beta_min) * t**2))


def t_of_alpha_bar_vp_linear(alpha_bar, beta_min: float = 0.1, beta_max: float = 20.0):
    """The inverse of alpha_bar_vp_linear: the t in [0, 1] with alpha_bar(t) = alpha_bar, the
    positive root of (beta_max - beta_min) t^2 / 2 + beta_min t + log alpha_bar = 0."""
    alpha_bar = torch.as_tensor(alpha_bar)
    slope = beta_max - beta_min
    return (-beta_min + torch.sqrt(beta_min**2 - 2 * slope * torch.log(alpha_bar))) / slope


def alpha_bar_cosine(t, s: float = 0.008):
    """alpha_bar(t) = f(t) / f(0), f(t) = cos((t + s) / (1 + s) pi / 2)^2 (Nichol & Dhariwal 2021,
    arXiv:2102.09672, eq. 17); alpha_bar(0) = 1, alpha_bar(1) = 0. Samplers that divide by
    sqrt(alpha_bar) must stop short of t = 1 with this schedule."""
    t = torch.as_tensor(t)
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    return f / math.cos(s / (1 + s) * math.pi / 2) ** 2


def snr(alpha_bar):
    """Signal-to-noise ratio of x_t = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps:
    alpha_bar / (1 - alpha_bar) (Kingma et al. 2021, arXiv:2107.00630, eq. 2)."""
    return alpha_bar / (1 - alpha_bar)


def sigma_bar(alpha_bar):
    """sqrt((1 - alpha_bar) / alpha_bar) = 1 / sqrt(snr): the noise level of x_t / sqrt(alpha_bar),
    the variable in which DDIM is an Euler step (Song, Meng & Ermon 2021, arXiv:2010.02502, Sec. 4.3)."""
    return torch.sqrt((1 - alpha_bar) / alpha_bar)


# -- variance exploding (score SDE) --------------------------------------------------------------
def sigma_ve(t, sigma_min: float = 0.01, sigma_max: float = 50.0):
    """sigma(t) = sigma_min (sigma_max / sigma_min)^t, the variance-exploding noise scale of
    Song et al. 2021 (arXiv:2011.13456, Appendix C); sigma(0) = sigma_min, sigma(1) = sigma_max."""
    return sigma_min * (sigma_max / sigma_min) ** torch.as_tensor(t)


def g_squared_ve(t, sigma_min: float = 0.01, sigma_max: float = 50.0):
    """g(t)^2 = d sigma(t)^2 / dt = 2 sigma(t)^2 log(sigma_max / sigma_min): the squared diffusion
    coefficient of the VE SDE dx = g(t) dW (Song et al. 2021, eq. 9)."""
    return 2 * sigma_ve(t, sigma_min, sigma_max) ** 2 * math.log(sigma_max / sigma_min)


def sigma_squared_ve_kernel(t, sigma_min: float = 0.01, sigma_max: float = 50.0):
    """sigma(t)^2 - sigma(0)^2: the variance of the VE transition kernel
    p_0t(x_t | x_0) = N(x_0, (sigma(t)^2 - sigma(0)^2) I) (Song et al. 2021, Appendix B), the
    integral of g^2 = g_squared_ve from 0 to t; 0 at t = 0."""
    return sigma_ve(t, sigma_min, sigma_max) ** 2 - sigma_min**2


# -- the linear (flow-matching) path <-> the VP path, through the signal-to-noise ratio -----------
def alpha_bar_of_linear_path(t):
    """The alpha_bar whose VP path has the SNR of the linear path at time t:
    alpha_bar / (1 - alpha_bar) = (1 - t)^2 / t^2  =>  alpha_bar = (1 - t)^2 / ((1 - t)^2 + t^2).
    (Not (1 - t)^2: that path has SNR (1 - t)^2 / (t (2 - t)).)"""
    return (1 - t) ** 2 / ((1 - t) ** 2 + t**2)


def linear_time_of_alpha_bar(alpha_bar):
    """The inverse map: t = sqrt(1 - alpha_bar) / (sqrt(alpha_bar) + sqrt(1 - alpha_bar))."""
    root, root_noise = alpha_bar**0.5, (1 - alpha_bar) ** 0.5
    return root_noise / (root + root_noise)


def _assert_boundary(name, value, expected, tol=1e-6):
    value = float(value)
    assert abs(value - expected) <= tol * max(1.0, abs(expected)), f"{name} = {value}, expected {expected}"


_ONE, _ZERO = torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
_assert_boundary("alpha_bar_vp_linear(0)", alpha_bar_vp_linear(_ZERO), 1.0)
_assert_boundary("alpha_bar_vp_linear(1)", alpha_bar_vp_linear(_ONE), math.exp(-10.05))
_assert_boundary("alpha_bar_cosine(0)", alpha_bar_cosine(_ZERO), 1.0)
_assert_boundary("alpha_bar_cosine(1)", alpha_bar_cosine(_ONE), 0.0)
_assert_boundary("sigma_ve(0)", sigma_ve(_ZERO), 0.01)
_assert_boundary("sigma_ve(1)", sigma_ve(_ONE), 50.0)
_assert_boundary("sigma_squared_ve_kernel(0)", sigma_squared_ve_kernel(_ZERO), 0.0)
_assert_boundary("alpha_bar_of_linear_path(0)", alpha_bar_of_linear_path(_ZERO), 1.0)
_assert_boundary("alpha_bar_of_linear_path(1)", alpha_bar_of_linear_path(_ONE), 0.0)
