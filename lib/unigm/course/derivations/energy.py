"""Result 6: energy-based views of the families.

An energy E defines p = exp(-E) / Z. Then the ELBO is a negative free energy (entropy with a
PLUS sign), the diffusion score is minus the gradient of a time-dependent energy, and the
optimal GAN logit is a difference of energies. Score matching (Hyvarinen 2005) fits an energy
with E_p[|grad E|^2 / 2 - lap E]; the Laplacian term is what makes it a consistent estimator."""

from __future__ import annotations

import functools
import math

import sympy as sp
import torch
from scipy.optimize import minimize_scalar

from unigm import data
from unigm.vae import VAE, gaussian_log_prob

from .core import all_of, at_least, check, gaussian_expectation, misstatement, sympy_all, sympy_equal, within
from .toys import ExactDDPM, eight_gaussians

K = 3  # a latent variable z in {1, 2, 3}
joint = sp.symbols("p_1:4", positive=True)  # p(x, z = k) at a fixed x
posterior_q = sp.symbols("q_1:4", positive=True)  # q(z = k | x)


def _normalised(expr):
    """Impose q_1 + q_2 + q_3 = 1."""
    return expr.subs(posterior_q[2], 1 - posterior_q[0] - posterior_q[1])


def discrete_elbo():
    return sum(qk * sp.log(pk / qk) for qk, pk in zip(posterior_q, joint))


@check(
    "6.1 ELBO = -E_q[E] + H[q]", 6, "sympy", "with E(x,z) = -log p(x,z): ELBO = -E_q E + H[q], entropy with a plus sign"
)
def elbo_is_negative_free_energy():
    energy = [-sp.log(pk) for pk in joint]
    entropy = -sum(qk * sp.log(qk) for qk in posterior_q)
    return sympy_equal(
        discrete_elbo(),
        -sum(qk * ek for qk, ek in zip(posterior_q, energy)) + entropy,
        simplify=lambda e: sp.simplify(sp.expand_log(sp.expand(e), force=True)),
    )


@check(
    "6.2 log p(x) = ELBO + KL(q||p(z|x))", 6, "sympy", "for any normalised q: log sum_z p(x,z) = ELBO + KL(q || p(z|x))"
)
def elbo_gap_is_kl():
    evidence = sum(joint)
    kl = sum(qk * sp.log(qk / (pk / evidence)) for qk, pk in zip(posterior_q, joint))
    return sympy_equal(
        _normalised(discrete_elbo() + kl),
        sp.log(evidence),
        simplify=lambda e: sp.simplify(sp.expand_log(sp.expand(e), force=True)),
    )


X, Y = sp.symbols("x y", real=True)


@check(
    "6.3 diffusion score = -grad E_t",
    6,
    "sympy",
    "p_t = exp(-E_t)/Z_t gives grad log p_t = -grad E_t (Z_t does not depend on x)",
)
def score_is_minus_energy_gradient():
    E, Z = sp.Function("E_t")(X, Y), sp.Symbol("Z_t", positive=True)
    log_p = sp.log(sp.exp(-E) / Z)
    return sympy_equal(
        sp.Matrix([sp.diff(log_p, v) for v in (X, Y)]),
        sp.Matrix([-sp.diff(E, v) for v in (X, Y)]),
        simplify=lambda e: sp.simplify(e.applyfunc(lambda c: sp.expand_log(c, force=True))),
    )


@check(
    "6.4 GAN logit = energy difference",
    6,
    "sympy",
    "p = e^-E_data/Z_data, q = e^-E_g/Z_g: logit D* = E_g - E_data + log(Z_g/Z_data)",
)
def gan_logit_is_energy_difference():
    e_d, e_g = sp.symbols("E_data E_g", real=True)
    z_d, z_g = sp.symbols("Z_data Z_g", positive=True)
    p, q = sp.exp(-e_d) / z_d, sp.exp(-e_g) / z_g
    d_star = p / (p + q)
    return sympy_equal(
        sp.log(d_star / (1 - d_star)),
        e_g - e_d + sp.log(z_g) - sp.log(z_d),
        simplify=lambda e: sp.simplify(sp.expand_log(sp.simplify(e), force=True)),
    )


@functools.lru_cache(maxsize=1)
def _vae_by_quadrature(seed: int = 0, points: int = 4):
    """An (untrained, seeded) library VAE with a 2D latent: log p(x), ELBO terms and KL(q||p(z|x))
    by quadrature on a z grid, and the library's own Monte Carlo ELBO and importance-weighted bound."""
    torch.manual_seed(seed)
    model = VAE((2,)).double().eval()
    x = data.toy("two_moons").sample(points, torch.Generator().manual_seed(seed)).double()
    side = torch.linspace(-7, 7, 201, dtype=torch.float64)
    z = torch.cartesian_prod(side, side)  # (G, 2)
    cell = (side[1] - side[0]).item() ** 2
    with torch.no_grad():
        mean, log_std = model.encode(x)  # (B, 2)
        zz = z[:, None, :].expand(-1, points, -1)  # (G, B, 2)
        log_joint = model.decoder_log_prob(x, zz) + gaussian_log_prob(zz, torch.zeros_like(zz), torch.zeros_like(zz))
        log_q = gaussian_log_prob(zz, mean, log_std)  # (G, B)
        q = log_q.exp() * cell
        log_evidence = torch.logsumexp(log_joint, 0) + math.log(cell)
        energy_term = (q * -log_joint).sum(0)  # E_q[E(x, z)]
        entropy = -(q * log_q).sum(0)
        kl_posterior = (q * (log_q - (log_joint - log_evidence))).sum(0)
        torch.manual_seed(seed + 1)
        repeats = 4000
        elbo_draws = model.elbo(x.repeat(repeats, 1)).reshape(repeats, points)
        iwae = model.log_prob(x, k=4096)
    closed_entropy = (log_std + 0.5 * math.log(2 * math.pi * math.e)).sum(1)
    return dict(
        log_evidence=log_evidence,
        energy=energy_term,
        entropy=entropy,
        closed_entropy=closed_entropy,
        kl=kl_posterior,
        elbo_mc=elbo_draws.mean(0),
        elbo_se=elbo_draws.std(0) / math.sqrt(repeats),
        iwae=iwae,
        mass=q.sum(0),
    )


@check(
    "6.5 the library VAE's ELBO is a negative free energy",
    6,
    "numeric",
    "for VAE with a 2D latent, by quadrature over z: -E_q[E] + H[q] matches VAE.elbo (MC), ELBO + KL(q||p(z|x)) = "
    "log p(x) with KL >= 0, and the IWAE bound VAE.log_prob(k=4096) is within 0.01 of log p(x)",
)
def vae_free_energy():
    r = _vae_by_quadrature()
    free_energy_elbo = -r["energy"] + r["entropy"]
    parts = [
        within((r["mass"] - 1).abs().max().item(), 0.0, 1e-6, "q mass on the grid - 1"),
        within(
            (r["entropy"] - r["closed_entropy"]).abs().max().item(), 0.0, 1e-6, "max |H[q] quadrature - closed form|"
        ),
        within(
            ((free_energy_elbo - r["elbo_mc"]).abs() / r["elbo_se"]).max().item(),
            0.0,
            4.0,
            "max |(-E_q E + H) - VAE.elbo mean| in standard errors",
        ),
        within(
            (free_energy_elbo + r["kl"] - r["log_evidence"]).abs().max().item(),
            0.0,
            1e-8,
            "max |ELBO + KL(q||p(z|x)) - log p(x)|",
        ),
        at_least(r["kl"].min().item(), 0.0, "min KL(q||p(z|x))"),
        within((r["iwae"] - r["log_evidence"]).abs().max().item(), 0.0, 0.01, "max |IWAE (k = 4096) - log p(x)|"),
    ]
    return all_of(parts, {"log_evidence": r["log_evidence"].tolist(), "elbo": free_energy_elbo.tolist()})


@check(
    "6.6 score = -grad E_t on the mixture",
    6,
    "numeric",
    "autograd of the energy E_t = -log p_t equals minus the analytic mixture score and the library DDPM.score with "
    "the exact predictor",
)
def energy_gradient_is_score():
    mixture = eight_gaussians("vp")
    model = ExactDDPM(mixture)
    x = mixture.sample(500, 0.2, torch.Generator().manual_seed(0)).requires_grad_(True)
    t = torch.full((500,), 0.2, dtype=torch.float64)
    energy = -mixture.log_prob(x, t)
    (grad_energy,) = torch.autograd.grad(energy.sum(), x)
    with torch.no_grad():
        return all_of(
            [
                within(
                    (-grad_energy - mixture.score(x, t)).abs().max().item(),
                    0.0,
                    1e-10,
                    "max |-grad E_t - analytic score|",
                ),
                within(
                    (-grad_energy - model.score(x, t)).abs().max().item(), 0.0, 1e-10, "max |-grad E_t - DDPM.score|"
                ),
            ]
        )


@check(
    "6.7 the sign of the entropy",
    6,
    "misstatement",
    "ELBO = -E_q[E] - H[q] (entropy subtracted) misses log p(x) - KL by 2H and the library's VAE.elbo; "
    "-E_q[E] + H[q] matches both (library VAE, quadrature over z)",
)
def misstatement_entropy_sign():
    r = _vae_by_quadrature()
    target = r["log_evidence"] - r["kl"]

    def matches(elbo, sign):
        return all_of([
            within((elbo - target).abs().max().item(), 0.0, 1e-6, f"max |(-E_q E {sign} H) - (log p - KL)|"),
            within(((elbo - r["elbo_mc"]).abs() / r["elbo_se"]).max().item(), 0.0, 4.0,
                   f"max |(-E_q E {sign} H) - VAE.elbo| in standard errors"),
        ])

    return misstatement(matches(-r["energy"] - r["entropy"], "-"), matches(-r["energy"] + r["entropy"], "+"))


theta = sp.Symbol("theta", positive=True)
z = sp.Symbol("z", real=True)


def _gaussian_energy(x_):
    return x_**2 / (2 * theta**2)  # model p_theta = N(0, theta^2) as an energy


@check(
    "6.8 Hyvarinen's integration by parts",
    6,
    "sympy",
    "data N(0,1), model energy x^2/(2 theta^2): E|grad E - x|^2/2 - E[|grad E|^2/2 - lap E] = 1/2, free of theta",
)
def hyvarinen_integration_by_parts():
    grad_e, lap_e = sp.diff(_gaussian_energy(z), z), sp.diff(_gaussian_energy(z), z, 2)
    explicit = gaussian_expectation((grad_e - z) ** 2 / 2, {z: 1})  # E|s_theta - s_data|^2 / 2, s = -grad E
    hyvarinen = gaussian_expectation(grad_e**2 / 2 - lap_e, {z: 1})
    return sympy_equal(explicit - hyvarinen, sp.Rational(1, 2))


@check(
    "6.9 score matching recovers theta = 1",
    6,
    "sympy",
    "E[|grad E|^2/2 - lap E] = 1/(2 theta^4) - 1/theta^2 is minimised at theta = 1; E|grad E|^2 = 1/theta^4 has no "
    "minimiser (decreases to 0)",
)
def score_matching_minimiser():
    grad_e, lap_e = sp.diff(_gaussian_energy(z), z), sp.diff(_gaussian_energy(z), z, 2)
    hyvarinen = gaussian_expectation(grad_e**2 / 2 - lap_e, {z: 1})
    bare = gaussian_expectation(grad_e**2, {z: 1})
    return sympy_all(
        [
            sympy_equal(hyvarinen, 1 / (2 * theta**4) - 1 / theta**2),
            sympy_equal(sp.Matrix(sp.solve(sp.diff(hyvarinen, theta), theta)), sp.Matrix([1])),
            sympy_equal(bare, 1 / theta**4),
            sympy_equal(sp.diff(bare, theta), -4 / theta**5),
        ],
        "J(theta) = 1/(2 theta^4) - 1/theta^2 has its only critical point at theta = 1; E|grad E|^2 = theta^-4 "
        "decreases everywhere",
    )


def _fit_theta(objective_kind: str, n: int = 20_000) -> float:
    """Fit the energy x^2/(2 theta^2) to N(0,1) samples by minimising a Monte Carlo objective
    built with autograd (grad E and lap E of the energy), over theta in [0.2, 10]."""
    x = torch.randn(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def objective(log_theta: float) -> float:
        th = torch.tensor(log_theta, dtype=torch.float64).exp()
        xx = x.clone().requires_grad_(True)
        energy = xx**2 / (2 * th**2)
        (grad_e,) = torch.autograd.grad(energy.sum(), xx, create_graph=True)
        (lap_e,) = torch.autograd.grad(grad_e.sum(), xx)
        if objective_kind == "hyvarinen":
            return (0.5 * grad_e**2 - lap_e).mean().item()
        return (grad_e**2).mean().item()

    result = minimize_scalar(
        objective, bounds=(math.log(0.2), math.log(10.0)), method="bounded", options={"xatol": 1e-8}
    )
    return math.exp(result.x)


@check(
    "6.10 a bare |grad E|^2 penalty is not score matching",
    6,
    "misstatement",
    "minimising E|grad E|^2 flattens the energy (theta runs to the edge of the search interval); Hyvarinen's "
    "objective recovers theta = 1",
)
def misstatement_bare_gradient_penalty():
    bare, hyvarinen = _fit_theta("bare"), _fit_theta("hyvarinen")
    return misstatement(
        within(bare, 1.0, 0.05, "theta fitted with E|grad E|^2"),
        within(hyvarinen, 1.0, 0.05, "theta fitted with E[|grad E|^2/2 - lap E]"),
    )
