"""Exactly solvable models built from the library's own classes, for the numeric checks.

A Gaussian mixture (the library's eight_gaussians toy) has an analytic score at every noise
level (unigm.densities.GaussianMixtureOnPath). Plugging that score into the library's DDPM and
FlowMatching classes, by overriding the one hook each exposes (predict_eps, velocity), gives
models whose every other method (score, sample, log_prob, ...) is the library's real code."""

from __future__ import annotations

import torch

from unigm import data
from unigm.diffusion import DDPM
from unigm.flows import FlowMatching
from unigm.densities import GaussianMixtureOnPath
from unigm.paths import linear_path, vp_path
from unigm.tensors import per_example


def eight_gaussians(path: str = "vp") -> GaussianMixtureOnPath:
    """The eight_gaussians toy carried along the VP path ('vp') or the linear path ('linear')."""
    return GaussianMixtureOnPath.from_toy(data.toy("eight_gaussians"), vp_path() if path == "vp" else linear_path())


class _ExactOnMixture:
    """A library model (float64) that knows the exact mixture it should have learned."""

    def __init__(self, mixture: GaussianMixtureOnPath, **config):
        super().__init__((mixture.means.shape[1],), self.Config(**config))
        self.mixture = mixture
        self.double()


class ExactDDPM(_ExactOnMixture, DDPM):
    """The library's DDPM with the exact noise predictor E[eps | x_t] = -sqrt(1 - alpha_bar) score."""

    def predict_eps(self, x, t):
        return -per_example(1 - self.alpha_bar(t), x).sqrt() * self.mixture.score(x, t)


class ExactFlowMatching(_ExactOnMixture, FlowMatching):
    """The library's FlowMatching with the exact marginal velocity of the linear path."""

    def velocity(self, x, t):
        return self.mixture.velocity(x, torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0]))
