"""Likelihood through an ODE: the instantaneous change of variables (Chen et al. 2018, Thm. 1)
    d log p(x_t) / dt = -div f(x_t, t)   =>   log p_0(x_0) = log p_1(x_1) + int_0^1 div f dt
"""
from __future__ import annotations

from typing import Callable

import torch

from .ode import Field, integrate, rk4_step


def divergence_exact(f: Field, x: torch.Tensor, t: torch.Tensor,
                     create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(f(x, t), div_x f(x, t)) with the exact trace: one vector-Jacobian product per dimension.

    create_graph=True keeps both differentiable in f's parameters (maximum-likelihood training);
    otherwise they are returned detached."""
    with torch.enable_grad():
        x_in = x if create_graph and x.requires_grad else x.detach().requires_grad_(True)
        out = f(x_in, t)
        flat_out = out.reshape(x.shape[0], -1)
        div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for i in range(flat_out.shape[1]):
            (grad,) = torch.autograd.grad(flat_out[:, i].sum(), x_in, retain_graph=True, create_graph=create_graph)
            div = div + grad.reshape(x.shape[0], -1)[:, i]
    return (out, div) if create_graph else (out.detach(), div.detach())


def divergence_hutchinson(f: Field, x: torch.Tensor, t: torch.Tensor, probes: int = 1,
                          generator: torch.Generator | None = None,
                          create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(f(x, t), unbiased estimate of div f): E_v[v^T (df/dx) v] = tr(df/dx) for Rademacher v
    (Hutchinson 1989; FFJORD, Grathwohl et al. 2019). One vector-Jacobian product per probe."""
    with torch.enable_grad():
        x_in = x if create_graph and x.requires_grad else x.detach().requires_grad_(True)
        out = f(x_in, t)
        est = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for _ in range(probes):
            v = (torch.randint(0, 2, x.shape, generator=generator) * 2 - 1).to(x)
            (vjp,) = torch.autograd.grad(out, x_in, v, retain_graph=True, create_graph=create_graph)
            est = est + (vjp * v).reshape(x.shape[0], -1).sum(1)
    return (out, est / probes) if create_graph else (out.detach(), (est / probes).detach())


def ode_log_prob(f: Field, x: torch.Tensor, prior_log_prob: Callable[[torch.Tensor], torch.Tensor],
                 steps: int = 100, divergence=divergence_exact) -> torch.Tensor:
    """log p_0(x) of the model whose samples are x_0 = ODE(x_1 ~ prior, from t=1 to t=0).

    Integrates the augmented state (x, int div f) forwards from t = 0 to t = 1 with RK4 and
    returns prior_log_prob(x_1) + int_0^1 div f(x_t, t) dt, shape (B,)."""
    shape, batch = x.shape, x.shape[0]

    def augmented(state, t):  # state (B, D + 1): x flattened, then the running integral of div f
        v, div = divergence(f, state[:, :-1].reshape(shape), t)
        return torch.cat([v.reshape(batch, -1), div[:, None]], dim=1)

    start = torch.cat([x.reshape(batch, -1), torch.zeros(batch, 1, dtype=x.dtype, device=x.device)], dim=1)
    end = integrate(rk4_step, augmented, start, steps, 0.0, 1.0)
    return prior_log_prob(end[:, :-1].reshape(shape)) + end[:, -1]
