"""The losses of the logistic GAN game on logits (Goodfellow et al. 2014, arXiv:1406.2661) and the
R1 gradient penalty (Mescheder et al. 2018, arXiv:1801.04406), as plain functions of tensors.

A discriminator outputs a logit l; D = sigmoid(l) is its probability that the input is real, and
log sigmoid(l) = -softplus(-l), log(1 - sigmoid(l)) = -softplus(l) keep every loss stable.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """BCE(D(x), 1) + BCE(D(G(z)), 0) = softplus(-l_real) + softplus(l_fake), averaged."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss_non_saturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(G(z)) = BCE(D(G(z)), 1) = softplus(-l_fake)."""
    return F.softplus(-fake_logits).mean()


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 = E_data |grad_x D(x)|^2 (Mescheder et al. 2018, arXiv:1801.04406), a zero-centred
    gradient penalty on real data that makes the game locally convergent. `real` must require
    grad and `real_logits` = D(real)."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.pow(2).reshape(len(real), -1).sum(1).mean()
