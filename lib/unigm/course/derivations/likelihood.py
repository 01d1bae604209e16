"""Result 8 (exact likelihood of diffusion and flow-matching models through the probability-flow
ODE) and result 9 (continuous normalising flows: d log p/dt = -tr(df/dx), exact trace and
Hutchinson's estimator)."""

from __future__ import annotations

import functools
import itertools
import math

import sympy as sp
import torch

from unigm import data, samplers
from unigm.densities import GaussianMixtureOnPath
from unigm.paths import linear_path, vp_path
from unigm.schedules import alpha_bar_vp_linear, beta_vp_linear
from unigm.tensors import per_example

from .core import (all_of, at_least, at_most, check, claim, gaussian_expectation, linear_sde_variance, misstatement,
                   sympy_equal, within)
from .toys import ExactDDPM, ExactFlowMatching

X, Y, T = sp.symbols("x y t", real=True)


# -- result 8 -----------------------------------------------------------------------------------
@check(
    "8.1 instantaneous change of variables",
    8,
    "sympy",
    "if dp/dt = -div(p v), then along dx/dt = v: d/dt log p(x(t), t) = dlog p/dt + v . grad log p = -div v (2D)",
)
def instantaneous_change_of_variables():
    p = sp.Function("p")(X, Y, T)
    v = [sp.Function("v_1")(X, Y, T), sp.Function("v_2")(X, Y, T)]
    dp_dt = -(sp.diff(p * v[0], X) + sp.diff(p * v[1], Y))  # the continuity equation
    total = dp_dt / p + v[0] * sp.diff(sp.log(p), X) + v[1] * sp.diff(sp.log(p), Y)
    return sympy_equal(total, -(sp.diff(v[0], X) + sp.diff(v[1], Y)), simplify=lambda e: sp.simplify(sp.expand(e)))


@functools.lru_cache(maxsize=2)
def _likelihood_errors(toy_name: str = "eight_gaussians", n: int = 200, steps: int | None = None):
    """log_prob of the library's FlowMatching and DDPM (RK4 steps: their configs' unless given), with exact
    fields, vs the true densities."""
    toy = data.toy(toy_name)
    x = toy.sample(n, torch.Generator().manual_seed(1)).double()
    flow = ExactFlowMatching(GaussianMixtureOnPath.from_toy(toy, linear_path()))
    ddpm = ExactDDPM(GaussianMixtureOnPath.from_toy(toy, vp_path()))
    flow_log_p = flow.log_prob(x, steps)
    ddpm_log_p = ddpm.log_prob(x, steps)
    # DDPM.log_prob starts the ODE at t0 = 1/T, so its truth is the marginal p_t0 (almost p_data)
    t0 = torch.tensor(1.0 / ddpm.config.num_steps, dtype=torch.float64)
    return dict(
        flow=(flow_log_p - toy.log_prob(x).double()).abs().max().item(),
        ddpm=(ddpm_log_p - ddpm.mixture.log_prob(x, t0)).abs().max().item(),
        ddpm_vs_data=(ddpm_log_p - toy.log_prob(x).double()).abs().mean().item(),
        mean_log_p=toy.log_prob(x).double().mean().item(),
    )


@check(
    "8.2 FlowMatching.log_prob is exact",
    8,
    "numeric",
    "the library's FlowMatching.log_prob (RK4 + exact divergence), with the exact velocity of the eight-Gaussian "
    "toy, matches the true log-density",
)
def flow_matching_likelihood():
    return within(_likelihood_errors()["flow"], 0.0, 1e-3, "max |FlowMatching.log_prob - log p_data| (nats)")


@check(
    "8.3 DDPM.log_prob is exact",
    8,
    "numeric",
    "the library's DDPM.log_prob (PF-ODE from t = 1/T), with the exact noise predictor, matches the true log p_{1/T}",
)
def ddpm_likelihood():
    return within(_likelihood_errors()["ddpm"], 0.0, 2e-3, "max |DDPM.log_prob - log p_{1/T}| (nats)")


@check(
    "8.4 'no likelihood for diffusion and flow matching'",
    8,
    "misstatement",
    "the claim predicts no usable log p(x); on another data set than 8.2-8.3 (grid25: 25 narrower modes, 256 RK4 "
    "steps) the PF-ODE gives it to within 0.002 nats for both families",
)
def misstatement_no_likelihood():
    errors = _likelihood_errors("grid25", 50, 256)
    worst = max(errors["flow"], errors["ddpm"])
    wrong = claim(
        worst > 0.1, f"no likelihood: the ODE log p misses the truth by more than 0.1 nats (worst error {worst:.1e})"
    )
    right = at_most(worst, 2e-3, "worst |log p_ODE - log p_true| over FlowMatching and DDPM (nats)")
    return misstatement(wrong, right)


def _sampler_variances(score_scale: float, s: float = 0.5, steps: int = 4000) -> tuple[float, float]:
    """Data N(0, s^2) on the VP path: p_t = N(0, abar s^2 + 1 - abar). With a 'learned' score score_scale times
    the exact one, the exact final variances of the library's reverse SDE (Euler-Maruyama) and PF-ODE (Euler)."""
    def score(x, t):
        a = per_example(alpha_bar_vp_linear(t), x)
        return -score_scale * x / (a * s**2 + 1 - a)

    prior = (alpha_bar_vp_linear(torch.tensor(1.0, dtype=torch.float64)) * (s**2 - 1) + 1).item()
    drift, diffusion = samplers.reverse_sde_vp(score, beta_vp_linear)
    return (linear_sde_variance(drift, diffusion, prior, steps),
            linear_sde_variance(samplers.probability_flow_vp(score, beta_vp_linear), None, prior, steps))


@check(
    "8.5 'the SDE sampler draws from the ODE's density'",
    8,
    "misstatement",
    "the reverse SDE and the PF-ODE share p_0 only with the exact score (and exact integration): for Gaussian data "
    "and a score 10% too small, the library's two samplers end at different variances (exact variance propagation)",
)
def misstatement_sde_is_ode():
    s = 0.5
    exact_sde, exact_ode = _sampler_variances(1.0, s)
    learned_sde, learned_ode = _sampler_variances(0.9, s)
    gap = abs(learned_sde - learned_ode) / s**2
    return misstatement(
        at_most(gap, 0.01, "score 0.9 x exact: |Var_SDE - Var_ODE| / s^2 (the claim: 0)"),
        all_of([
            within(exact_sde / s**2, 1.0, 0.01, "exact score: Var_SDE / s^2"),
            within(exact_ode / s**2, 1.0, 0.01, "exact score: Var_ODE / s^2"),
            at_least(gap, 0.1, "score 0.9 x exact: |Var_SDE - Var_ODE| / s^2"),
        ]),
    )


# -- result 9 -----------------------------------------------------------------------------------
@check(
    "9.1 log-det evolves by the trace",
    9,
    "sympy",
    "d/dt log det M = tr(M^-1 dM/dt) (Jacobi), and with dM/dt = J M this is tr J = div f",
)
def jacobi_formula():
    M = sp.Matrix(2, 2, lambda i, j: sp.Function(f"m_{i + 1}{j + 1}")(T))
    J = sp.Matrix(2, 2, lambda i, j: sp.Symbol(f"J_{i + 1}{j + 1}", real=True))
    lhs = sp.diff(sp.log(M.det()), T)
    jacobi = (M.inv() * sp.diff(M, T)).trace()
    derivatives = {sp.diff(M[i, j], T): (J * M)[i, j] for i in range(2) for j in range(2)}
    return sympy_equal(
        sp.Matrix([lhs - jacobi, jacobi.subs(derivatives)]),
        sp.Matrix([0, J.trace()]),
        simplify=lambda e: e.applyfunc(sp.simplify),
    )


A = sp.Matrix(3, 3, lambda i, j: sp.Symbol(f"a_{i + 1}{j + 1}", real=True))


def _rademacher_moments():
    values = [(v.T * A * v)[0] for v in (sp.Matrix(signs) for signs in itertools.product((-1, 1), repeat=3))]
    mean = sp.Add(*values) / len(values)
    variance = sp.expand(sp.Add(*[(value - mean) ** 2 for value in values]) / len(values))
    return sp.expand(mean), variance


@check(
    "9.2 Hutchinson is unbiased (Rademacher)",
    9,
    "sympy",
    "averaging v^T A v over all 8 sign vectors v in {-1,1}^3 gives tr A",
)
def hutchinson_unbiased():
    mean, _ = _rademacher_moments()
    return sympy_equal(mean, A.trace())


@check(
    "9.3 Hutchinson variance (Rademacher)",
    9,
    "sympy",
    "Var[v^T A v] = sum_{i<j} (A_ij + A_ji)^2 for Rademacher v (exact enumeration)",
)
def hutchinson_variance():
    _, variance = _rademacher_moments()
    predicted = sum((A[i, j] + A[j, i]) ** 2 for i in range(3) for j in range(i + 1, 3))
    return sympy_equal(variance, predicted, simplify=sp.expand)


@check(
    "9.4 Hutchinson with Gaussian probes",
    9,
    "sympy",
    "v ~ N(0, I): E[v^T A v] = tr A, Var = ||A + A^T||_F^2 / 2 (larger than Rademacher by 2 sum A_ii^2)",
)
def hutchinson_gaussian():
    v = sp.Matrix(sp.symbols("v_1:4", real=True))
    form = sp.expand((v.T * A * v)[0])
    variances = {vi: 1 for vi in v}
    mean = gaussian_expectation(form, variances)
    variance = sp.expand(gaussian_expectation(form**2, variances) - mean**2)
    symmetric = A + A.T
    predicted = sp.expand(sum(entry**2 for entry in symmetric) / 2)
    return sympy_equal(
        sp.Matrix([mean, variance]), sp.Matrix([A.trace(), predicted]), simplify=lambda e: e.applyfunc(sp.expand)
    )


class _CountBackward(torch.autograd.Function):
    """Identity whose backward counts how many vector-Jacobian products pass through it."""

    calls = 0

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        _CountBackward.calls += 1
        return grad


@check(
    "9.5 exact trace and Hutchinson in the library",
    9,
    "numeric",
    "samplers.divergence_exact equals the Jacobian trace with d VJPs; divergence_hutchinson uses one VJP per probe, "
    "is unbiased and has the predicted variance",
)
def library_trace_estimators():
    torch.manual_seed(0)
    d, n = 5, 20_000
    net = torch.nn.Sequential(torch.nn.Linear(d, 32), torch.nn.Tanh(), torch.nn.Linear(32, d)).double()

    def f(x, t):
        return _CountBackward.apply(net(x) * (1 + per_example(t, x)))

    x_point = torch.randn(1, d, dtype=torch.float64)
    t_point = torch.full((1,), 0.3, dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(lambda y: net(y) * 1.3, x_point[0])
    _CountBackward.calls = 0
    _, exact = samplers.divergence_exact(f, x_point, t_point)
    exact_vjps = _CountBackward.calls
    _CountBackward.calls = 0
    _, estimates = samplers.divergence_hutchinson(
        f, x_point.expand(n, d), t_point.expand(n), probes=3, generator=torch.Generator().manual_seed(0)
    )
    hutchinson_vjps = _CountBackward.calls
    predicted = sum((jacobian[i, j] + jacobian[j, i]).item() ** 2 for i in range(d) for j in range(i + 1, d)) / 3
    trace = torch.trace(jacobian).item()
    return all_of(
        [
            within(exact.item(), trace, 1e-12, "divergence_exact vs trace of the autograd Jacobian"),
            within(exact_vjps, d, 0, "VJPs for the exact trace (d = 5)"),
            within(hutchinson_vjps, 3, 0, "VJPs for Hutchinson with 3 probes"),
            within(estimates.mean().item(), trace, 4 * math.sqrt(predicted / n), "Hutchinson mean vs trace (4 s.e.)"),
            within(
                estimates.var().item() / predicted,
                1.0,
                0.05,
                "Hutchinson variance / predicted sum_{i<j}(A_ij+A_ji)^2 / probes",
            ),
        ],
        {"trace": trace, "predicted_variance": predicted},
    )
