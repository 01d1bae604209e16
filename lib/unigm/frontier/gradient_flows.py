"""Wasserstein gradient flows with particles (JKO steps) and unbalanced optimal transport.

Part 1: the W2 gradient flow of KL(rho || pi) toward pi = exp(-V) / Z, known up to Z.
The JKO scheme (Jordan, Kinderlehrer & Otto 1998, "The variational formulation of the Fokker-Planck
equation") takes implicit steps of size tau in the Wasserstein metric:
    rho_{k+1} = argmin_rho  KL(rho || pi) + W2^2(rho, rho_k) / (2 tau);
as tau -> 0 the iterates follow d rho / dt = div(rho grad(log rho + V)), the law of Langevin
dynamics dx = -grad V dt + sqrt(2) dW (derivations 7.3). With particles x_i ~ rho_k we search over
push-forwards rho = T#rho_k. The change of variables log rho(T(x)) = log rho_k(x) - log|det grad T(x)|
gives the KL without any density estimate:
    KL(T#rho_k || pi) = E[V(T(x))] - E[log|det grad T(x)|] + E[log rho_k(x)] + log Z,
and W2^2(T#rho_k, rho_k) <= E|T(x) - x|^2, with equality when T is the gradient of a convex function
(Brenier); at the optimum over all maps it is one. Each step minimises, over the map's parameters,
    J(T) = mean_i [ V(T(x_i)) - log|det grad T(x_i)| + |T(x_i) - x_i|^2 / (2 tau) ]
(the constant E[log rho_k] + log Z left out). T is an AffineMap (exact for Gaussians: the particle
step is then the closed-form step of derivations 7.4 at the particles' moments) or a ResidualMap
x + tau v(x) with v a small MLP. The particles carry their log-density, so the free energy
F = E[V + log rho] = KL(rho || pi) - log Z is tracked exactly; J(T) <= J(identity) makes it decrease
at every step (KL is a Lyapunov function of the flow).

Part 2: unbalanced optimal transport (Chizat, Peyre, Schmitzer & Vialard 2018, "Scaling algorithms
for unbalanced optimal transport problems", arXiv:1607.05816) between measures of unequal mass:
    min_P <P, C> + reg KL(P | a b^T) + reg_m KL(P 1 | a) + reg_m KL(P^T 1 | b),
solved by POT's generalised Sinkhorn (ot.unbalanced.sinkhorn_unbalanced). Where moving mass costs
more than reg_m, the plan destroys it at the source and creates it at the target instead.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import ot
import torch
from torch import nn

from .. import samplers
from ..nets import MLP

Energy = Callable[[torch.Tensor], torch.Tensor]  # V: (n, D) -> (n,), V = -log pi + const


# ---------------------------------------------------------------- Gaussian references (closed forms)

def gaussian_energy(mean: float = 0.0, std: float = 1.0) -> Energy:
    """V(x) = |x - mean|^2 / (2 std^2): pi = N(mean, std^2 I) up to its constant log Z."""
    return lambda x: (x - mean).pow(2).sum(-1) / (2 * std**2)


def gaussian_jko_step(mean, std, tau, target_mean=0.0, target_std=1.0):
    """The exact JKO step of KL(. || N(target_mean, target_std^2)) from N(mean, std^2), per coordinate.

    For N(0, 1), derivations 7.4: m = m_k / (1 + tau), s = (s_k + sqrt(s_k^2 + 4 tau (1 + tau))) / (2 (1 + tau)).
    For N(mu, sigma^2) the same in z = (x - mu) / sigma with tau / sigma^2 (KL is affine-invariant and
    W2^2 scales by sigma^2)."""
    step = tau / target_std**2
    m, s = (mean - target_mean) / target_std, std / target_std
    m_next = m / (1 + step)
    s_next = (s + math.sqrt(s**2 + 4 * step * (1 + step))) / (2 * (1 + step))
    return target_mean + target_std * m_next, target_std * s_next


def gaussian_jko_iterates(mean, std, tau, steps, target_mean=0.0, target_std=1.0) -> list[tuple[float, float]]:
    """[(m_k, s_k)] for k = 0 .. steps of the exact Gaussian JKO scheme."""
    out = [(float(mean), float(std))]
    for _ in range(steps):
        out.append(gaussian_jko_step(*out[-1], tau, target_mean, target_std))
    return out


def fokker_planck_gaussian(mean, std, t, target_mean=0.0, target_std=1.0) -> tuple[float, float]:
    """The exact flow (Ornstein-Uhlenbeck) from N(mean, std^2) toward N(mu, sigma^2) at time t:
    m(t) = mu + (m_0 - mu) e^{-t / sigma^2}, s^2(t) = sigma^2 + (s_0^2 - sigma^2) e^{-2 t / sigma^2}."""
    decay = math.exp(-t / target_std**2)
    m = target_mean + (mean - target_mean) * decay
    s = math.sqrt(target_std**2 + (std**2 - target_std**2) * decay**2)
    return m, s


def gaussian_kl(mean, std, target_mean=0.0, target_std=1.0) -> float:
    """KL(N(mean, std^2) || N(target_mean, target_std^2)) in 1D, nats."""
    return math.log(target_std / std) + (std**2 + (mean - target_mean) ** 2) / (2 * target_std**2) - 0.5


# ---------------------------------------------------------------- transport maps and the JKO step

class AffineMap(nn.Module):
    """T(x) = x A^T + b, A initialised to I (T = identity). log|det grad T| = log|det A| for every x.
    A is not constrained to be symmetric: among maps with the same push-forward the JKO cost picks the
    Brenier (symmetric positive definite) one by itself."""

    def __init__(self, dim: int, dtype=torch.float64):
        super().__init__()
        self.matrix = nn.Parameter(torch.eye(dim, dtype=dtype))
        self.shift = nn.Parameter(torch.zeros(dim, dtype=dtype))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (n, D) -> (n, D), (n,)
        log_det = torch.linalg.slogdet(self.matrix).logabsdet
        return x @ self.matrix.T + self.shift, log_det.expand(x.shape[0])


class ResidualMap(nn.Module):
    """T(x) = x + tau v(x), v an MLP whose last layer starts at zero (T = identity). Its Jacobian
    I + tau grad v is built with D backward passes (D is small here), log|det| by slogdet."""

    def __init__(self, dim: int, tau: float, hidden: int = 32, depth: int = 2, dtype=torch.float64):
        super().__init__()
        self.tau = tau
        self.velocity = MLP(dim, dim, hidden=hidden, depth=depth).to(dtype)
        last = self.velocity.layers[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (n, D) -> (n, D), (n,)
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            y = x + self.tau * self.velocity(x)
            rows = [torch.autograd.grad(y[:, d].sum(), x, create_graph=True)[0] for d in range(x.shape[1])]
        jacobian = torch.stack(rows, dim=1)  # (n, D, D), jacobian[i, d] = grad of y_d at x_i
        return y, torch.linalg.slogdet(jacobian).logabsdet


@dataclass
class JKOStep:
    particles: torch.Tensor  # (n, D) y_i = T(x_i)
    log_det: torch.Tensor  # (n,) log|det grad T(x_i)|
    objective: float  # J(T) at the optimum (without E[log rho_k] + log Z)
    transport: float  # mean |T(x_i) - x_i|^2, the W2^2 bound of the step
    transport_map: nn.Module


def jko_objective(transport_map: nn.Module, particles: torch.Tensor, energy: Energy, tau: float):
    """J(T) = mean[V(T(x)) - log|det grad T(x)| + |T(x) - x|^2 / (2 tau)] -> (J, y (n, D), log_det (n,), transport)."""
    y, log_det = transport_map(particles)
    transport = (y - particles).pow(2).sum(-1).mean()
    return energy(y).mean() - log_det.mean() + transport / (2 * tau), y, log_det, transport


def jko_step(particles: torch.Tensor, energy: Energy, tau: float, transport_map: nn.Module | None = None,
             iterations: int = 100) -> JKOStep:
    """One particle JKO step: minimise jko_objective over the map's parameters (full batch, L-BFGS with a
    strong-Wolfe line search from T = identity, so J(T) <= J(identity) = mean V(x)) and move the
    particles. transport_map: AffineMap(D) by default; any module x -> (T(x), log|det grad T(x)|)."""
    if tau <= 0:
        raise ValueError(f"tau must be positive, got {tau}")
    x = particles.detach()
    transport_map = AffineMap(x.shape[1], x.dtype) if transport_map is None else transport_map
    optimiser = torch.optim.LBFGS(transport_map.parameters(), lr=1.0, max_iter=iterations, history_size=20,
                                  tolerance_grad=1e-12, tolerance_change=1e-15, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        objective = jko_objective(transport_map, x, energy, tau)[0]
        objective.backward()
        return objective

    optimiser.step(closure)
    objective, y, log_det, transport = jko_objective(transport_map, x, energy, tau)
    if not torch.isfinite(objective):
        raise FloatingPointError("the JKO objective is not finite: the map stopped being invertible; lower tau")
    return JKOStep(y.detach(), log_det.detach(), objective.item(), transport.item(), transport_map)


@dataclass
class JKOFlow:
    particles: torch.Tensor  # (n, D) after the last step
    log_density: torch.Tensor  # (n,) log rho_k at the particles (relative to rho_0's if it was not given)
    trajectory: list = field(default_factory=list)  # steps + 1 tensors (n, D)
    free_energy: list = field(default_factory=list)  # steps + 1 values of mean(V + log rho) = KL - log Z
    transport: list = field(default_factory=list)  # steps values of mean |T(x) - x|^2


def jko_flow(particles: torch.Tensor, energy: Energy, tau: float, steps: int,
             make_map: Callable[[int], nn.Module] | None = None, log_density: torch.Tensor | None = None,
             iterations: int = 100) -> JKOFlow:
    """`steps` JKO steps of size tau (time steps * tau). make_map(D) builds a fresh map for each step
    (default AffineMap). log_density: log rho_0 at the particles (n,), if known; without it the free
    energy is known up to the constant -H(rho_0), which is enough to watch it decrease."""
    x = particles.detach()
    log_rho = torch.zeros(x.shape[0], dtype=x.dtype) if log_density is None else log_density.detach().clone()
    flow = JKOFlow(x, log_rho, [x], [(energy(x) + log_rho).mean().item()])
    for _ in range(steps):
        step = jko_step(x, energy, tau, None if make_map is None else make_map(x.shape[1]), iterations)
        x, log_rho = step.particles, log_rho - step.log_det
        flow.trajectory.append(x)
        flow.free_energy.append((energy(x) + log_rho).mean().item())
        flow.transport.append(step.transport)
    flow.particles, flow.log_density = x, log_rho
    return flow


def score_of(energy: Energy):
    """grad log pi = -grad V by autograd, as a field (x, t) -> (n, D) for unigm.samplers."""

    def score(x, t):
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            return -torch.autograd.grad(energy(x).sum(), x)[0]

    return score


def langevin_flow(particles: torch.Tensor, energy: Energy, t_end: float, steps: int,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Euler-Maruyama for dx = -grad V dt + sqrt(2) dW up to time t_end (unigm.samplers.langevin with
    step t_end / steps): the explicit, stochastic counterpart of jko_flow(tau = t_end / steps)."""
    return samplers.langevin(score_of(energy), particles, steps, t_end / steps, generator=generator)


# ---------------------------------------------------------------- unbalanced optimal transport

def _numpy(x) -> np.ndarray:
    return x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)


@dataclass
class TransportPlan:
    plan: np.ndarray  # (n, m) mass sent from source point i to target point j
    source_marginal: np.ndarray  # (n,) plan.sum(1): mass that leaves each source point
    target_marginal: np.ndarray  # (m,) plan.sum(0): mass that arrives at each target point

    @property
    def transported(self) -> float:
        return float(self.plan.sum())


def _plan(plan) -> TransportPlan:
    plan = np.asarray(plan, dtype=np.float64)
    return TransportPlan(plan, plan.sum(1), plan.sum(0))


def unbalanced_plan(a, b, xs, xt, reg: float, reg_m: float, iterations: int = 20_000) -> TransportPlan:
    """Entropic unbalanced OT between sum_i a_i delta_{xs_i} and sum_j b_j delta_{xt_j} (any total masses),
    squared Euclidean cost C: POT's generalised Sinkhorn (sinkhorn_unbalanced, reg_type "kl": the entropy
    term is reg KL(P | a b^T)). reg (entropic blur) and reg_m (price of creating or destroying mass, per
    unit of KL) are in cost units: mass moves over a squared distance c only where c is small against
    reg_m. As reg_m -> inf the plan becomes ot.sinkhorn's (equal masses) and its total mass tends to
    sqrt(sum a * sum b); for small reg_m it falls below both totals.

    The plain (not log-domain) iterations hold exp(-C / reg) and scalings exp(potential / reg), whose
    potentials grow to the cost scale as reg_m grows: keep (largest cost) / reg below a few hundred when
    reg_m is large (the two-cluster example: reg = 0.1 works up to reg_m = 100, reg = 0.5 up to 1000).
    POT's "sinkhorn_stabilized" is not used: in POT 0.9.7 it stops early with a wrong plan once reg_m
    >~ 10 (L1 error 0.9 of a unit mass against a log-domain solver at reg = 0.1, reg_m = 10).
    A numerical failure raises instead of returning a wrong plan."""
    a, b = _numpy(a), _numpy(b)
    cost = ot.dist(_numpy(xs), _numpy(xt), metric="sqeuclidean")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plan = ot.unbalanced.sinkhorn_unbalanced(a, b, cost, reg, reg_m, method="sinkhorn", reg_type="kl",
                                                 numItermax=iterations, stopThr=1e-9)
    numerical = [str(w.message) for w in caught if "umerical" in str(w.message)]
    for w in caught:
        if "umerical" not in str(w.message):
            warnings.warn(w.message, w.category, stacklevel=2)  # e.g. "did not converge": passed on
    if numerical or not np.all(np.isfinite(plan)):
        raise FloatingPointError(f"unbalanced Sinkhorn failed ({numerical[:1]}); raise reg (now {reg})")
    return _plan(plan)


def balanced_plan(a, b, xs, xt) -> TransportPlan:
    """Exact balanced OT (ot.emd, squared Euclidean cost) after normalising a and b to probabilities:
    every unit of source mass is moved, however far. The plan has total mass 1."""
    a, b = _numpy(a), _numpy(b)
    cost = ot.dist(_numpy(xs), _numpy(xt), metric="sqeuclidean")
    return _plan(ot.emd(a / a.sum(), b / b.sum(), cost, numItermax=10**7))


@dataclass
class MassChange:
    destroyed: np.ndarray  # (n,) a - plan.sum(1): > 0 source mass not transported (destroyed at the source)
    created: np.ndarray  # (m,) b - plan.sum(0): > 0 target mass that no transport brings (created there)

    @property
    def total_destroyed(self) -> float:
        return float(self.destroyed.sum())

    @property
    def total_created(self) -> float:
        return float(self.created.sum())


def mass_change(plan, a, b) -> MassChange:
    """Where an unbalanced plan destroys and creates mass.

    destroyed_i = a_i - sum_j P_ij: positive where source mass is not transported (destroyed at x_i);
    negative where more leaves x_i than was there (mass created at the source before transport).
    created_j = b_j - sum_i P_ij: positive where the target has more mass than arrives (created at y_j);
    negative where more arrives than the target holds (the excess is destroyed on arrival).
    total_created - total_destroyed = sum(b) - sum(a) for any plan."""
    plan = plan.plan if isinstance(plan, TransportPlan) else np.asarray(plan, dtype=np.float64)
    return MassChange(_numpy(a) - plan.sum(1), _numpy(b) - plan.sum(0))


@dataclass
class TwoClusterExample:
    xs: np.ndarray  # (n, 2) source points: a shared cluster and an extra cluster the target lacks
    xt: np.ndarray  # (m, 2) target points: the shared cluster (shifted) and a new cluster
    a: np.ndarray  # (n,) source masses, total source_mass
    b: np.ndarray  # (m,) target masses, total target_mass
    source_extra: np.ndarray  # (n,) bool, source points of the cluster absent from the target
    target_extra: np.ndarray  # (m,) bool, target points of the new cluster


def two_cluster_example(n: int = 120, generator: torch.Generator | None = None, spread: float = 0.3,
                        source_mass: float = 1.0, target_mass: float = 1.5) -> TwoClusterExample:
    """The lecture's example. Source: a cluster at (0, 0) (2/3 of its points) and an extra one at (-4, 3);
    target: the shared cluster moved to (0.5, 0) and a new one at (4, 3). Uniform masses per point,
    totals source_mass and target_mass. Balanced OT must carry mass over squared distances >= 16 into the
    new cluster; unbalanced OT with reg_m well below that destroys the extra cluster and creates the new one."""
    g = torch.Generator().manual_seed(0) if generator is None else generator
    shared, extra = 2 * n // 3, n - 2 * n // 3

    def cloud(centre, k):
        return torch.tensor(centre, dtype=torch.float64) + spread * torch.randn(k, 2, generator=g, dtype=torch.float64)

    xs = torch.cat([cloud((0.0, 0.0), shared), cloud((-4.0, 3.0), extra)]).numpy()
    xt = torch.cat([cloud((0.5, 0.0), shared), cloud((4.0, 3.0), extra)]).numpy()
    extra_mask = np.arange(n) >= shared
    return TwoClusterExample(xs, xt, np.full(n, source_mass / n), np.full(n, target_mass / n), extra_mask,
                             extra_mask.copy())
