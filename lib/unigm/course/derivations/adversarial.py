"""Result 4 (the optimal GAN discriminator and the Jensen-Shannon divergence) and result 5
(f-divergences, their Fenchel conjugates, and why WGAN is not one of them).

f-GAN (Nowozin et al. 2016, arXiv:1606.00709): D_f(P || Q) = E_Q f(p/q) >= sup_T E_P T - E_Q f*(T),
f*(t) = sup_u (u t - f(u)); equality at T = f'(p/q). The library's table is unigm.gan.F_DIVERGENCES."""

from __future__ import annotations

import math

import numpy as np
import sympy as sp
import torch
import torch.nn.functional as F
from scipy.optimize import minimize_scalar
from scipy.stats import wasserstein_distance

from unigm.gan import F_DIVERGENCES, FGAN, discriminator_loss

from .core import (Outcome, all_of, at_least, check, misstatement, quadrature_1d, same_condition, sympy_all,
                   sympy_equal, within)

p, q = sp.symbols("p q", positive=True)  # the two densities at one point x
D = sp.Symbol("D", positive=True)


# -- result 4 -----------------------------------------------------------------------------------
@check("4.1 optimal discriminator", 4, "sympy", "p log D + q log(1-D) is maximised at D* = p/(p+q) (concave in D)")
def optimal_discriminator():
    value = p * sp.log(D) + q * sp.log(1 - D)
    (critical,) = sp.solve(sp.diff(value, D), D)
    curvature = sp.simplify(sp.diff(value, D, 2).subs(D, critical))
    return sympy_all(
        [sympy_equal(critical, p / (p + q)), sympy_equal(curvature, -((p + q) ** 3) / (p * q))],
        "the only critical point is p/(p+q), where the second derivative -(p+q)^3/(pq) < 0",
    )


@check(
    "4.2 C(G) = -log 4 + 2 JSD",
    4,
    "sympy",
    "pointwise p log D* + q log(1-D*) = -(p+q) log 2 + p log(p/m) + q log(q/m), m = (p+q)/2; integrated: -log 4 + 2 "
    "JSD",
)
def value_at_optimum():
    m = (p + q) / 2
    value = p * sp.log(p / (p + q)) + q * sp.log(q / (p + q))
    return sympy_equal(
        value,
        -(p + q) * sp.log(2) + p * sp.log(p / m) + q * sp.log(q / m),
        simplify=lambda e: sp.simplify(sp.expand_log(e, force=True)),
    )


@check("4.3 logit of D* = log p - log q", 4, "sympy", "log(D*/(1-D*)) = log p_data - log p_g")
def logit_of_optimal_discriminator():
    d_star = p / (p + q)
    return sympy_equal(
        sp.log(d_star / (1 - d_star)),
        sp.log(p) - sp.log(q),
        simplify=lambda e: sp.simplify(sp.expand_log(sp.simplify(e), force=True)),
    )


def normal(mean: float, std: float) -> torch.distributions.Normal:
    """A float64 Normal (float32 parameters would break normalisation at the 1e-8 level)."""
    return torch.distributions.Normal(torch.tensor(mean, dtype=torch.float64), torch.tensor(std, dtype=torch.float64))


def mixture_pair(x: torch.Tensor):
    """log p_data (a two-component mixture) and log p_g (a wide Gaussian) on a 1D grid or batch."""
    log_p = torch.logsumexp(torch.stack([normal(-1.5, 0.5).log_prob(x), normal(1.0, 0.3).log_prob(x)]), 0) - math.log(2)
    log_q = normal(0.0, 1.5).log_prob(x)
    return log_p, log_q


def mixture_pair_on_grid(half_width: float):
    """Quadrature nodes and weights on [-half_width, half_width] with the mixture pair's log-densities
    and densities there: (x, w, log_p, log_q, p, q)."""
    x, w = quadrature_1d(-half_width, half_width)
    log_p, log_q = mixture_pair(x)
    return x, w, log_p, log_q, log_p.exp(), log_q.exp()


def sample_pair(n: int, g: torch.Generator):
    k = torch.randint(2, (n,), generator=g)
    x_p = torch.where(
        k == 0,
        -1.5 + 0.5 * torch.randn(n, generator=g, dtype=torch.float64),
        1.0 + 0.3 * torch.randn(n, generator=g, dtype=torch.float64),
    )
    return x_p, 1.5 * torch.randn(n, generator=g, dtype=torch.float64)


@check(
    "4.4 D* and JSD by quadrature",
    4,
    "numeric",
    "on a 1D mixture: V(D*) = -log 4 + 2 JSD by quadrature, perturbing D* lowers V, F_DIVERGENCES['jensen_shannon'] "
    "gives 2 JSD, and the library's discriminator_loss at logit log p - log q estimates log 4 - 2 JSD",
)
def optimal_discriminator_numeric():
    x, w, log_p, log_q, dens_p, dens_q = mixture_pair_on_grid(12.0)
    logit = log_p - log_q

    def value(logits):  # V(D) = E_p log D + E_q log(1 - D), with D = sigmoid(logit)
        return (w * (dens_p * -F.softplus(-logits) + dens_q * -F.softplus(logits))).sum().item()

    log_m = torch.logaddexp(log_p, log_q) - math.log(2)
    jsd = 0.5 * (w * (dens_p * (log_p - log_m) + dens_q * (log_q - log_m))).sum().item()
    js = F_DIVERGENCES["jensen_shannon"]
    d_f = (w * dens_q * js.f(torch.exp(logit))).sum().item()
    g = torch.Generator().manual_seed(0)
    x_p, x_q = sample_pair(200_000, g)
    (lp_p, lq_p), (lp_q, lq_q) = mixture_pair(x_p), mixture_pair(x_q)
    library = discriminator_loss(lp_p - lq_p, lp_q - lq_q).item()
    terms = torch.cat([F.softplus(-(lp_p - lq_p)), F.softplus(lp_q - lq_q)])
    standard_error = 2 * terms.std().item() / math.sqrt(len(terms))
    parts = [
        within(value(logit), -math.log(4) + 2 * jsd, 1e-10, "V(D*) vs -log 4 + 2 JSD"),
        at_least(
            value(logit) - max(value(logit + 0.3 * torch.sin(x)), value(logit - 0.2)), 1e-4, "V(D*) - V(perturbed D)"
        ),
        within(d_f, 2 * jsd, 1e-9, "D_f with the library's JS generator vs 2 JSD"),
        within(
            library, math.log(4) - 2 * jsd, 4 * standard_error, "gan.discriminator_loss at D* vs log 4 - 2 JSD (4 s.e.)"
        ),
    ]
    return all_of(parts, {"jsd": jsd, "V(D*)": value(logit)})


# -- result 5 -----------------------------------------------------------------------------------
u = sp.Symbol("u", positive=True)
u_real = sp.Symbol("u", real=True)
t = sp.Symbol("t", real=True)

HALF = sp.Rational(1, 2)
GENERATORS = {  # f(u), the variable it is written in (u = p/q >= 0 always), and the conjugate derived below
    "kl": (u * sp.log(u), u),
    "reverse_kl": (-sp.log(u), u),
    "pearson": ((u_real - 1) ** 2, u_real),  # a polynomial: solved on R, then restricted to u >= 0 (step 5.4)
    "jensen_shannon": (u * sp.log(u) - (u + 1) * sp.log((u + 1) / 2), u),
    "total_variation": (sp.Abs(u_real - 1) / 2, u_real),
}
STATED_CONJUGATES = {  # what the lecture states, f*(t) = sup_{u >= 0} (u t - f(u)), checked against the derivation
    "kl": sp.exp(t - 1),
    "reverse_kl": -1 - sp.log(-t),
    "pearson": sp.Piecewise((-1, t < -2), (t + t**2 / 4, True)),  # below -2 the sup sits at u = 0
    "jensen_shannon": -sp.log(2 - sp.exp(t)),
    "total_variation": sp.Piecewise((-HALF, t < -HALF), (t, t <= HALF), (sp.oo, True)),
}
NUMERIC_BOUNDS = {  # the interval of u for the numeric supremum: u >= 0, wide enough to hold the maximiser
    "kl": (1e-12, 100.0),
    "reverse_kl": (1e-12, 200.0),
    "pearson": (0.0, 10.0),
    "jensen_shannon": (1e-12, 1000.0),
    "total_variation": (0.0, 10.0),
}


def derive_conjugate(name: str):
    """f*(t) = u* t - f(u*) at the stationary point f'(u*) = t (f smooth and strictly convex)."""
    f, var = GENERATORS[name]
    (u_star,) = sp.solve(sp.Eq(sp.diff(f, var), t), var)
    return sp.simplify(u_star * t - f.subs(var, u_star)), u_star


@check(
    "5.1 generators: f(1) = 0, convex",
    5,
    "sympy",
    "each f has f(1) = 0; f'' > 0 for kl, reverse_kl, pearson, jensen_shannon (|u-1|/2 is convex as a norm)",
)
def generators_are_convex():
    second_derivatives = {"kl": 1 / u, "reverse_kl": 1 / u**2, "pearson": 2, "jensen_shannon": 1 / (u * (u + 1))}
    outcomes = [sympy_equal(f.subs(var, 1), 0) for f, var in GENERATORS.values()]
    for name, expected in second_derivatives.items():
        f, var = GENERATORS[name]
        outcomes.append(sympy_equal(sp.diff(f, var, 2), expected))
        outcomes[-1].passed = outcomes[-1].passed and bool(sp.sympify(expected).is_positive)
    return sympy_all(outcomes, "f(1) = 0 for all five; f'' = 1/u, 1/u^2, 2, 1/(u(u+1)), all > 0 for u > 0")


def _conjugate_check(name: str, simplify):
    derived, u_star = derive_conjugate(name)
    outcome = sympy_equal(derived, STATED_CONJUGATES[name], simplify=simplify)
    outcome.detail = f"u* = {sp.sstr(u_star)}; " + outcome.detail
    return outcome


@check("5.2 conjugate of KL", 5, "sympy", "f = u log u: f'(u*) = t gives u* = e^(t-1), f*(t) = e^(t-1)")
def conjugate_kl():
    return _conjugate_check("kl", sp.simplify)


@check("5.3 conjugate of reverse KL", 5, "sympy", "f = -log u: u* = -1/t (t < 0), f*(t) = -1 - log(-t)")
def conjugate_reverse_kl():
    r = sp.Symbol("r", positive=True)  # t = -r < 0
    return _conjugate_check("reverse_kl", lambda e: sp.simplify(sp.expand_log(e.subs(t, -r), force=True)))


@check(
    "5.4 conjugate of Pearson chi^2",
    5,
    "sympy",
    "f = (u-1)^2: u* = 1 + t/2 >= 0 iff t >= -2, f*(t) = t + t^2/4 there; for t < -2 the concave u t - f(u) "
    "falls from u = 0 on, so f*(t) = -f(0) = -1",
)
def conjugate_pearson():
    r = sp.Symbol("r", positive=True)
    f, var = GENERATORS["pearson"]
    derived, u_star = derive_conjugate("pearson")
    stated = STATED_CONJUGATES["pearson"]
    return sympy_all(
        [
            sympy_equal(derived, stated, simplify=lambda e: sp.simplify(e.subs(t, r - 2))),  # t > -2
            same_condition(sp.solve_univariate_inequality(u_star >= 0, t), t >= -2, "u* >= 0 iff t >= -2"),
            sympy_equal(sp.diff(var * t - f, var).subs(var, 0), t + 2),  # slope at u = 0, negative for t < -2
            sympy_equal((var * t - f).subs(var, 0), stated, simplify=lambda e: sp.simplify(e.subs(t, -2 - r))),
        ],
        "u* = 1 + t/2; f* = t + t^2/4 for t >= -2 and -1 (at u = 0) below",
    )


@check(
    "5.5 conjugate of Jensen-Shannon",
    5,
    "sympy",
    "f = u log u - (u+1) log((u+1)/2) (D_f = 2 JSD): u* = e^t/(2 - e^t), f*(t) = -log(2 - e^t), t < log 2",
)
def conjugate_jensen_shannon():
    w = sp.Symbol("w", positive=True)  # w = e^t in (0, 2); 2 - w = 2 / (1 + r), r > 0
    r = sp.Symbol("r", positive=True)

    def simplify(e):
        e = e.subs(t, sp.log(w)).subs(w, 2 * r / (1 + r))
        return sp.simplify(sp.expand_log(sp.simplify(e), force=True))

    return _conjugate_check("jensen_shannon", simplify)


@check(
    "5.6 conjugate of total variation",
    5,
    "sympy",
    "f = |u-1|/2 on u >= 0: u t - f(u) has slopes t + 1/2 on [0, 1] and t - 1/2 on [1, inf), so f*(t) = -1/2 "
    "(at u = 0) for t < -1/2, t (at the kink u = 1) on [-1/2, 1/2], +infinity for t > 1/2",
)
def conjugate_total_variation():
    f, var = GENERATORS["total_variation"]
    objective = var * t - f
    left, right = objective.subs(sp.Abs(var - 1), 1 - var), objective.subs(sp.Abs(var - 1), var - 1)
    stated, r = STATED_CONJUGATES["total_variation"], sp.Symbol("r", positive=True)
    # a linear function on [0, 1] peaks at u = 0 if its slope is negative, at u = 1 otherwise; on [1, inf)
    # it is unbounded iff its slope is positive. One representative t in each of the three regions:
    regions = {"t < -1/2": -HALF - r, "-1/2 <= t <= 1/2": -HALF + r / (1 + r), "t > 1/2": HALF + r}
    peak = {"t < -1/2": left.subs(var, 0), "-1/2 <= t <= 1/2": left.subs(var, 1), "t > 1/2": sp.oo}

    def evaluate(e):
        return sp.simplify(e.doit())

    parts = [
        sympy_equal(sp.Derivative(left, var), t + HALF, simplify=evaluate),
        sympy_equal(sp.Derivative(right, var), t - HALF, simplify=evaluate),
        same_condition(sp.reduce_inequalities([t - HALF > 0], t), t > HALF, "unbounded on [1, inf) iff t > 1/2"),
    ]
    for region, value in regions.items():
        parts.append(sympy_equal(peak[region].subs(t, value), stated.subs(t, value), note=f"f* on {region}")
                     if peak[region] is not sp.oo else Outcome(stated.subs(t, value) == sp.oo, f"f* = oo on {region}"))
    return sympy_all(parts, "f*(t) = -1/2 below -1/2 (sup at u = 0), t on [-1/2, 1/2] (at u = 1), +inf above 1/2")


def numeric_supremum(f_torch, t_value: float, bounds) -> float:
    """sup_u (u t - f(u)) by bounded Brent on the library's own f."""
    result = minimize_scalar(
        lambda v: -(v * t_value - f_torch(torch.tensor(v, dtype=torch.float64)).item()),
        bounds=bounds,
        method="bounded",
        options={"xatol": 1e-12, "maxiter": 2000},
    )
    return -float(result.fun)


def _library_conjugate_check(name: str):
    entry = F_DIVERGENCES[name]
    v = torch.linspace(-4, 4, 33, dtype=torch.float64)
    T = entry.activation(v)
    f_star = sp.lambdify(t, STATED_CONJUGATES[name], "numpy")
    library = entry.conjugate(T).numpy()
    derived = np.broadcast_to(np.asarray(f_star(T.numpy()), dtype=float), library.shape)
    supremum = np.array([numeric_supremum(entry.f, float(tv), NUMERIC_BOUNDS[name]) for tv in T])
    f_sym, var = GENERATORS[name]
    grid = torch.linspace(0.05, 5, 50, dtype=torch.float64)
    f_numeric = sp.lambdify(var, f_sym, "numpy")(grid.numpy())
    return all_of(
        [
            within(float(np.abs(library - derived).max()), 0.0, 1e-10, f"{name}: max |library f* - sympy f*|"),
            within(
                float(np.abs(library - supremum).max()),
                0.0,
                1e-6,
                f"{name}: max |library f* - numeric sup_u (u t - f(u))|",
            ),
            within(
                float(np.abs(entry.f(grid).numpy() - f_numeric).max()), 0.0, 1e-12, f"{name}: max |library f - sympy f|"
            ),
            _activation_in_domain(entry),
        ]
    )


def _activation_in_domain(entry) -> Outcome:
    """Every critic output v, however large, must give a T = activation(v) where f* is finite (the bound
    is -infinity or undefined elsewhere), i.e. the library's conjugate is finite there."""
    v = torch.linspace(-30, 30, 601, dtype=torch.float64)  # beyond +-30 float64 rounds open ranges onto their ends
    T = entry.activation(v)
    finite = bool(torch.isfinite(entry.conjugate(T)).all())
    return Outcome(finite, f"{entry.name}: f*(activation(v)) finite for v in [-30, 30] "
                           f"(T in [{T.min().item():.4g}, {T.max().item():.4g}]): {finite}")


for _number, _name in enumerate(F_DIVERGENCES, start=7):
    check(
        f"5.{_number} library {_name}",
        5,
        "numeric",
        f"gan.F_DIVERGENCES['{_name}']: f and f* agree with sympy and with a numeric sup_u (u t - f(u)) at T = "
        f"activation(v)",
    )(lambda _name=_name: _library_conjugate_check(_name))


@check(
    "5.12 f-GAN bound is tight at T* = f'(p/q)",
    5,
    "numeric",
    "for all five library entries, E_P T - E_Q f*(T) equals D_f(P||Q) at T* = f'(p/q) and is lower at 0.9 T* "
    "(quadrature)",
)
def variational_bound_is_tight():
    x, w, log_p, log_q, dens_p, dens_q = mixture_pair_on_grid(8.0)
    ratio = torch.exp(log_p - log_q)
    parts = []
    for name, entry in F_DIVERGENCES.items():
        f_sym, var = GENERATORS[name]
        derivative = sp.lambdify(var, sp.diff(f_sym, var), "numpy")
        T_star = torch.as_tensor(np.asarray(derivative(ratio.numpy()), dtype=float)).expand_as(ratio)
        d_f = (w * dens_q * entry.f(ratio)).sum().item()

        def bound(T):
            return (w * (dens_p * T - dens_q * entry.conjugate(T))).sum().item()

        parts.append(within(bound(T_star), d_f, 1e-8, f"{name}: bound at T* vs D_f"))
        parts.append(at_least(d_f - bound(0.9 * T_star), 1e-6, f"{name}: D_f - bound at 0.9 T*"))
    return all_of(parts)


@check(
    "5.13 WGAN is an IPM, not an f-divergence",
    5,
    "numeric",
    "every library D_f is unchanged when both distributions are scaled by 2, while W1 (an IPM) doubles; JSD "
    "saturates at log 2 for far-apart Gaussians while W1 grows",
)
def wgan_is_not_an_f_divergence():
    x, w = quadrature_1d(-20.0, 20.0, nodes=40_001)

    def d_f(entry, mean_q, std):
        log_p, log_q = normal(0.0, std).log_prob(x), normal(mean_q, std).log_prob(x)
        return (w * log_q.exp() * entry.f(torch.exp(log_p - log_q))).sum().item()

    def jsd(mean_q, std):  # in logs: far-apart densities overflow the ratio p/q
        log_p, log_q = normal(0.0, std).log_prob(x), normal(mean_q, std).log_prob(x)
        log_m = torch.logaddexp(log_p, log_q) - math.log(2)
        return 0.5 * (w * (log_p.exp() * (log_p - log_m) + log_q.exp() * (log_q - log_m))).sum().item()

    parts = []
    for name, entry in F_DIVERGENCES.items():
        small, large = d_f(entry, 1.0, 0.5), d_f(entry, 2.0, 1.0)
        parts.append(
            within(small, large, 1e-6 * max(1.0, abs(large)), f"{name}: D_f(N(0,.5),N(1,.5)) vs D_f(N(0,1),N(2,1))")
        )
    g = torch.Generator().manual_seed(0)
    z_p, z_q = torch.randn(20_000, generator=g).numpy(), torch.randn(20_000, generator=g).numpy()
    w1 = wasserstein_distance(0.5 * z_p, 0.5 * z_q + 1.0)
    w1_scaled = wasserstein_distance(z_p, z_q + 2.0)
    parts.append(within(w1_scaled / w1, 2.0, 1e-9, "W1 after scaling both by 2 / W1 before"))
    jsd_far = [jsd(m, 0.05) for m in (1.0, 2.0, 4.0)]
    parts.append(within(max(jsd_far) - min(jsd_far), 0.0, 1e-9, "JSD spread for shifts 1, 2, 4 of N(0, 0.05^2)"))
    parts.append(within(jsd_far[0], math.log(2), 1e-9, "JSD at shift 1 vs log 2 (saturated)"))
    parts.append(within(wasserstein_distance(0.05 * z_p, 0.05 * z_q + 4.0), 4.0, 0.01, "W1 at shift 4"))
    return all_of(parts)


@check(
    "5.14 JS and TV conjugates",
    5,
    "misstatement",
    "-log(1 - e^t) (the conjugate of u log u - (u+1) log(u+1)) is not the JS conjugate; the TV conjugate is neither "
    "t on all of R nor +infinity below -1/2 (it is -1/2 there, u = p/q >= 0)",
)
def misstatement_js_tv_conjugates():
    js, tv = F_DIVERGENCES["jensen_shannon"], F_DIVERGENCES["total_variation"]
    t_js = [-2.0, -1.0, -0.5]
    wrong_js = max(
        abs(-math.log(1 - math.exp(tv_)) - numeric_supremum(js.f, tv_, NUMERIC_BOUNDS["jensen_shannon"]))
        for tv_ in t_js
    )
    right_js = max(
        abs(
            js.conjugate(torch.tensor(tv_, dtype=torch.float64)).item()
            - numeric_supremum(js.f, tv_, NUMERIC_BOUNDS["jensen_shannon"])
        )
        for tv_ in t_js
    )
    # TV, sup over 0 <= u <= m: at t = 0.8 it grows without bound as m grows; at t = -0.8 it stays at -1/2
    sup_small, sup_large = (numeric_supremum(tv.f, 0.8, (0.0, m)) for m in (10.0, 1000.0))
    below_small, below_large = (numeric_supremum(tv.f, -0.8, (0.0, m)) for m in (10.0, 1000.0))
    t_inside = 0.5 * math.tanh(1.3)  # what the library's activation produces
    right_tv = abs(tv.conjugate(torch.tensor(t_inside)).item() - numeric_supremum(tv.f, t_inside, (0.0, 1000.0)))
    library_below = tv.conjugate(torch.tensor(-0.8, dtype=torch.float64)).item()
    wrong = all_of(
        [
            within(wrong_js, 0.0, 1e-6, "JS: max |-log(1-e^t) - sup_u (u t - f(u))|"),
            within(sup_large, 0.8, 1e-6, "TV: sup over 0 <= u <= 1000 at t = 0.8 vs the claimed f*(0.8) = 0.8"),
            at_least(below_large - below_small, 100.0, "TV at t = -0.8: sup grows with the interval (claimed f* = +inf)"),
        ]
    )
    right = all_of(
        [
            within(right_js, 0.0, 1e-6, "JS: max |-log(2-e^t) - sup_u (u t - f(u))|"),
            within(right_tv, 0.0, 1e-6, "TV: |f*(t) - sup| at t = tanh(1.3)/2 inside [-1/2, 1/2]"),
            at_least(sup_large - sup_small, 100.0, "TV at t = 0.8: sup grows with the interval (f* = +inf)"),
            within(below_large, -0.5, 1e-6, "TV: sup over 0 <= u <= 1000 at t = -0.8 vs -1/2"),
            within(library_below, -0.5, 0.0, "TV: library f*(-0.8) vs -1/2"),
        ]
    )
    return misstatement(wrong, right)


def _inverse_activation(activation, T: torch.Tensor) -> torch.Tensor:
    """The critic output v with activation(v) = T (every library activation is monotone), by bisection."""
    low, high = torch.full_like(T, -60.0), torch.full_like(T, 60.0)
    sign = 1.0 if activation(high[:1]) > activation(low[:1]) else -1.0  # -exp(v) (reverse KL) decreases
    for _ in range(64):  # 120 / 2^64: below float64's resolution of v
        mid = (low + high) / 2
        above = sign * activation(mid) > sign * T
        low, high = torch.where(above, low, mid), torch.where(above, mid, high)
    return (low + high) / 2


@check(
    "5.15 the f-GAN players share one bound",
    5,
    "numeric",
    "for all five divergences, FGAN.variational_bound with the optimal critic estimates D_f(P||Q) from samples "
    "(P = N(1/2, 1), Q = N(0, 1)), "
    "FGAN.discriminator_loss is minus that bound, and FGAN.generator_loss moves with it: d loss/d fake logits = "
    "d bound/d fake logits (the generator minimises what the discriminator maximises)",
)
def f_gan_players():
    P, Q = normal(0.5, 1.0), normal(0.0, 1.0)  # every density ratio moment is finite (log p/q is linear)
    x, w = quadrature_1d(-12.0, 12.0)
    g = torch.Generator().manual_seed(0)
    n = 40_000
    x_p, x_q = 0.5 + torch.randn(n, generator=g, dtype=torch.float64), torch.randn(n, generator=g, dtype=torch.float64)
    parts = []
    for name, entry in F_DIVERGENCES.items():
        f_sym, var = GENERATORS[name]
        derivative = sp.lambdify(var, sp.diff(f_sym, var), "numpy")
        d_f = (w * Q.log_prob(x).exp() * entry.f(torch.exp(P.log_prob(x) - Q.log_prob(x)))).sum().item()  # quadrature

        def optimal_logits(points):  # T* = f'(p/q), kept just inside an open activation range (TV: +-1/2)
            ratio = torch.exp(P.log_prob(points) - Q.log_prob(points))
            T = torch.as_tensor(np.asarray(derivative(ratio.numpy()), dtype=float)).expand_as(ratio)
            return _inverse_activation(entry.activation, T.clamp(-0.5 + 1e-9, 0.5 - 1e-9) if name == "total_variation" else T)

        model = FGAN((1,), FGAN.Config(divergence=name)).double()
        real, fake = optimal_logits(x_p), optimal_logits(x_q).requires_grad_(True)
        bound = model.variational_bound(real, fake)
        error = 4 * math.sqrt((entry.activation(real).var() + entry.conjugate(entry.activation(fake.detach())).var()).item() / n)
        (d_bound,) = torch.autograd.grad(bound, fake)
        (d_generator,) = torch.autograd.grad(model.generator_loss(fake), fake)
        parts += [
            within(bound.item(), d_f, error, f"{name}: variational_bound at T* vs D_f (4 s.e.)"),
            within((model.discriminator_loss(real, fake) + bound).abs().item(), 0.0, 0.0, f"{name}: discriminator_loss + bound"),
            within((d_generator - d_bound).abs().max().item(), 0.0, 1e-12, f"{name}: max |d generator_loss - d bound|"),
        ]
    return all_of(parts)
