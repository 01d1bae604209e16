"""Result 12: small facts, each with its check: WaveNet's receptive field, FSQ's level counts,
the stop-gradients of VQ-VAE, consistency-training pairs, and the Euler-Maruyama update of the
VP reverse SDE."""

from __future__ import annotations

import math

import sympy as sp
import torch

from unigm import samplers
from unigm.autoregressive import DilatedCausalStack
from unigm.schedules import beta_vp_linear
from unigm.vae import FSQ
from unigm.tensors import per_example

from .core import (
    Outcome,
    all_of,
    at_most,
    check,
    gaussian_expectation,
    misstatement,
    positive,
    sympy_all,
    sympy_equal,
    within,
)

K, L, l_ = sp.symbols("K L l", positive=True, integer=True)


# -- WaveNet ------------------------------------------------------------------------------------
@check(
    "12.1 WaveNet receptive field",
    12,
    "sympy",
    "1 + sum_{l=0}^{L-1} (K-1) 2^l = 1 + (K-1)(2^L - 1); = 1024 for K = 2, L = 10",
)
def receptive_field_formula():
    total = 1 + sp.summation((K - 1) * 2**l_, (l_, 0, L - 1))
    closed = 1 + (K - 1) * (2**L - 1)
    return sympy_all(
        [sympy_equal(total, closed), sympy_equal(closed.subs({K: 2, L: 10}), 1024)],
        "geometric sum; 1 + 1 * 1023 = 1024",
    )


def impulse_support(stack: DilatedCausalStack, position: int = 50, length: int | None = None) -> tuple[int, int]:
    """Feed an impulse at `position` and return (first, last) output positions that respond."""
    length = length or position + stack.receptive_field + 50
    zeros = torch.zeros(1, stack.convs[0].in_channels, length, dtype=torch.float64)
    impulse = zeros.clone()
    impulse[0, :, position] = 1.0
    with torch.no_grad():
        response = (stack(impulse) - stack(zeros)).abs().amax(1)[0]  # (length,)
    moved = torch.nonzero(response > 0).flatten()
    return int(moved[0]), int(moved[-1])


def _probed_receptive_fields():
    torch.manual_seed(0)
    results = {}
    for kernel_size, layers in [(2, 10), (3, 4), (2, 3)]:
        stack = DilatedCausalStack(kernel_size, layers).double()
        first, last = impulse_support(stack)
        results[(kernel_size, layers)] = dict(
            property=stack.receptive_field,
            first=first,
            last=last,
            measured=last - first + 1,
            formula=1 + (kernel_size - 1) * (2**layers - 1),
        )
    return results


@check(
    "12.2 receptive field of the library's stack",
    12,
    "numeric",
    "an impulse into autoregressive.DilatedCausalStack reaches exactly receptive_field outputs, none before the "
    "impulse (causal)",
)
def receptive_field_probe():
    parts = []
    for (kernel_size, layers), r in _probed_receptive_fields().items():
        parts += [
            within(r["measured"], r["formula"], 0, f"K={kernel_size}, L={layers}: measured vs 1 + (K-1)(2^L-1)"),
            within(r["property"], r["formula"], 0, f"K={kernel_size}, L={layers}: receptive_field property"),
            within(r["first"], 50, 0, f"K={kernel_size}, L={layers}: first responding output (impulse at 50)"),
        ]
    return all_of(parts)


@check(
    "12.3 receptive field 1025",
    12,
    "misstatement",
    "K = 2, L = 10 sees 1024 inputs (the current one and 1023 before it), not 1025",
)
def misstatement_receptive_field():
    measured = _probed_receptive_fields()[(2, 10)]["measured"]
    return misstatement(
        within(measured, 1025, 0, "impulse-probed receptive field vs 1025"),
        within(measured, 1024, 0, "impulse-probed receptive field vs 1024"),
    )


# -- FSQ ----------------------------------------------------------------------------------------
@check(
    "12.4 FSQ has L levels",
    12,
    "sympy",
    "odd L = 2m+1 rounds into {-m..m}, even L = 2m into {-m..m-1}: L integers each, reached when the bound's "
    "half-width (L-1)(1-eps)/2 exceeds the last rounding threshold",
)
def fsq_level_count():
    m, k = sp.symbols("m k", positive=True, integer=True)
    eps = sp.Symbol("epsilon", positive=True)
    odd = sp.summation(1, (k, -m, m))
    even = sp.summation(1, (k, -m, m - 1))
    # odd L: the bound reaches (2m)(1-eps)/2 = m(1-eps), rounded to m iff m(1-eps) > m - 1/2, i.e. eps < 1/(2m)
    threshold = sp.solve(sp.Eq(m * (1 - eps), m - sp.Rational(1, 2)), eps)[0]
    return sympy_all(
        [sympy_equal(odd, 2 * m + 1), sympy_equal(even, 2 * m), sympy_equal(threshold, 1 / (2 * m))],
        "2m+1 and 2m integers; the top level is reached for eps < 1/(2m) (the library uses eps = 1e-3)",
    )


def _fsq_levels_seen(levels):
    fsq = FSQ(levels)
    z = torch.linspace(-6, 6, 4001)[:, None].expand(-1, len(levels))
    codes = fsq(z)
    per_channel = [len(torch.unique(codes[:, i])) for i in range(len(levels))]
    return fsq, per_channel


@check(
    "12.5 the library's FSQ",
    12,
    "numeric",
    "vae.FSQ((8,5,5,5)): each channel takes exactly L_i values in [-1,1], codebook_size = 1000 = prod L_i, "
    "implicit_codebook has 1000 distinct codes containing every output",
)
def fsq_library():
    levels = (8, 5, 5, 5)
    fsq, per_channel = _fsq_levels_seen(levels)
    book = fsq.implicit_codebook()
    z = torch.randn(5000, 4, generator=torch.Generator().manual_seed(0)) * 2
    codes = fsq(z)
    in_book = (torch.cdist(codes, book).min(1).values < 1e-6).all().item()
    return all_of(
        [
            within(
                max(abs(a - b) for a, b in zip(per_channel, levels)),
                0,
                0,
                f"levels seen per channel {per_channel} vs {levels}",
            ),
            within(fsq.codebook_size, math.prod(levels), 0, "codebook_size vs prod L_i"),
            within(len(torch.unique(book, dim=0)), 1000, 0, "distinct rows of implicit_codebook"),
            at_most(float(codes.abs().max()), 1.0, "max |code|"),
            Outcome(bool(in_book), f"every FSQ output is a codebook row: {in_book}"),
        ]
    )


@check(
    "12.6 FSQ with 2L+1 levels",
    12,
    "misstatement",
    "a channel with L levels has L values, not 2L + 1; the codebook has prod L_i codes",
)
def misstatement_fsq_levels():
    levels = (8, 5, 5, 5)
    fsq, per_channel = _fsq_levels_seen(levels)
    return misstatement(
        all_of(
            [
                within(per_channel[0], 2 * 8 + 1, 0, "values seen in an L = 8 channel vs 2L+1"),
                within(fsq.codebook_size, math.prod(2 * v + 1 for v in levels), 0, "codebook size vs prod(2L_i+1)"),
            ]
        ),
        all_of(
            [
                within(per_channel[0], 8, 0, "values seen in an L = 8 channel vs L"),
                within(fsq.codebook_size, math.prod(levels), 0, "codebook size vs prod L_i"),
            ]
        ),
    )


# -- stop-gradients -----------------------------------------------------------------------------
@check(
    "12.7 straight-through estimator",
    12,
    "sympy",
    "z_q = z + sg(e - z), sg treated as a constant c = e - z: the value is e and d z_q / d z = 1",
)
def straight_through():
    z_, e, c = sp.symbols("z e c", real=True)
    z_q = z_ + c  # the stop-gradient copy is a constant for differentiation
    return sympy_all(
        [sympy_equal(z_q.subs(c, e - z_), e), sympy_equal(sp.diff(z_q, z_), 1)],
        "forward value e, derivative 1 (the decoder's gradient passes to the encoder unchanged)",
    )


@check(
    "12.8 stop-gradients in the library's VQ-VAE and FSQ",
    12,
    "numeric",
    "VQVAE.quantize: the codebook loss moves only the codebook, the commitment loss only the encoder output, z_q "
    "passes gradients straight through; FSQ's gradient is d bound/dz / scale",
)
def library_stop_gradients():
    from unigm.vae import VQVAE

    torch.manual_seed(0)
    model = VQVAE((2,))
    z_e = torch.randn(8, model.config.latents, model.config.code_dim, requires_grad=True)
    z_q, indices, aux = model.quantize(z_e)
    weight = model.codebook.weight

    def grads(scalar):
        g_z, g_w = torch.autograd.grad(scalar, (z_e, weight), retain_graph=True, allow_unused=True)
        norm = lambda g: 0.0 if g is None else g.abs().sum().item()  # noqa: E731
        return norm(g_z), norm(g_w)

    codebook_z, codebook_w = grads(aux["codebook"])
    commit_z, commit_w = grads(aux["commitment"])
    probe = torch.randn_like(z_q)
    (through,) = torch.autograd.grad((z_q * probe).sum(), z_e, retain_graph=True)
    fsq = FSQ((8, 5, 5, 5))
    z = torch.randn(64, 4, requires_grad=True)
    (fsq_grad,) = torch.autograd.grad(fsq(z).sum(), z)
    with torch.enable_grad():
        z2 = z.detach().requires_grad_(True)
        (bound_grad,) = torch.autograd.grad((fsq.bound(z2) / fsq.scale).sum(), z2)
    return all_of(
        [
            within(codebook_z, 0.0, 0.0, "|d codebook loss / d z_e|"),
            positive(codebook_w, "|d codebook loss / d codebook|"),
            within(commit_w, 0.0, 0.0, "|d commitment / d codebook|"),
            positive(commit_z, "|d commitment / d z_e|"),
            within((through - probe).abs().max().item(), 0.0, 0.0, "straight-through: d(z_q . c)/d z_e - c"),
            within((z_q - model.codebook(indices)).abs().max().item(), 0.0, 1e-6, "forward value of z_q - e"),
            within((fsq_grad - bound_grad).abs().max().item(), 0.0, 1e-6, "FSQ gradient - d bound/dz / scale"),
        ]
    )


# -- consistency-training pairs -----------------------------------------------------------------
@check(
    "12.9 consistency pairs lie on one ODE path",
    12,
    "sympy",
    "given x_0, x_t = x_0 + t z solves the conditional VE PF-ODE dx/dt = (x - x_0)/t; shared-noise pairs differ by "
    "dt^2 d in squared norm, independent ones by (t^2 + (t+dt)^2) d",
)
def consistency_pairs_sympy():
    t, dt = sp.symbols("t Delta", positive=True)
    x0, z1, z2 = sp.symbols("x_0 z z'", real=True)
    path = x0 + t * z1
    shared = gaussian_expectation(((x0 + (t + dt) * z1) - (x0 + t * z1)) ** 2, {z1: 1})
    independent = gaussian_expectation(((x0 + (t + dt) * z1) - (x0 + t * z2)) ** 2, {z1: 1, z2: 1})
    ode_right_side = sp.Mul(sp.Add(path, -x0, evaluate=False), sp.Pow(t, -1), evaluate=False)  # (x - x_0)/t
    shared_label = sp.Symbol(r"\mathbb{E}(x_{t+\Delta}-x_t)^2_\text{shared}")
    independent_label = sp.Symbol(r"\mathbb{E}(x_{t+\Delta}-x_t)^2_\text{independent}")
    return sympy_all(
        [
            sympy_equal(sp.Derivative(path, t), ode_right_side, simplify=lambda e: sp.simplify(e.doit())),
            sympy_equal(shared_label, dt**2, simplify=lambda e: shared - dt**2),
            sympy_equal(
                independent_label,
                t**2 + (t + dt) ** 2,
                simplify=lambda e: sp.expand(independent - t**2 - (t + dt) ** 2),
            ),
        ],
        "x_0 + t z solves the ODE; per dimension: shared gap dt^2 -> 0, independent gap -> 2 t^2",
    )


def _consistency_pairs(independent: bool, n: int = 4096):
    """Pairs (x_{t_n+1}, x_{t_n}) of consistency training (Song et al. 2023, arXiv:2303.01469) and the
    library's Euler step of the VE PF-ODE (sigma = t, g^2 = 2t) with the conditional score -(x - x_0)/t^2."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(n, 2, generator=g, dtype=torch.float64)
    z = torch.randn(n, 2, generator=g, dtype=torch.float64)
    z_other = torch.randn(n, 2, generator=g, dtype=torch.float64) if independent else z
    t_next, t_now = torch.tensor(0.8, dtype=torch.float64), torch.tensor(0.7, dtype=torch.float64)
    x_next, x_now = x0 + t_next * z, x0 + t_now * z_other
    velocity = samplers.probability_flow_ve(lambda x, t: -(x - x0) / per_example(t, x) ** 2, lambda t: 2 * t)
    return (samplers.euler_step(velocity, x_next, t_next, t_now) - x_now).pow(2).sum(1).mean().item()


@check(
    "12.10 consistency pairs share the noise",
    12,
    "misstatement",
    "with independent noise the pair is not an ODE step apart (gap ~ 2 t^2 d); with shared noise the library's Euler "
    "PF-ODE step maps x_{n+1} exactly onto x_n",
)
def misstatement_consistency_noise():
    return misstatement(
        within(_consistency_pairs(independent=True), 0.0, 1e-12, "E|Euler step(x_{n+1}) - x_n|^2, independent noise"),
        within(_consistency_pairs(independent=False), 0.0, 1e-12, "E|Euler step(x_{n+1}) - x_n|^2, shared noise"),
    )


# -- Euler-Maruyama for the VP reverse SDE ------------------------------------------------------
@check(
    "12.11 VP reverse-SDE Euler-Maruyama update",
    12,
    "sympy",
    "a step t -> t - h of dx = [-beta x/2 - beta s] dt + sqrt(beta) dW_bar is x + h beta (x/2 + s) + sqrt(beta h) z, "
    "DDPM's ancestral mean to O(h^2)",
)
def euler_maruyama_update():
    x, s, z, beta, h = sp.symbols("x s z beta h", real=True)
    beta, h = sp.Symbol("beta", positive=True), sp.Symbol("h", positive=True)
    drift = -beta * x / 2 - beta * s  # f - g^2 score
    em = x + drift * (-h) + sp.sqrt(beta * h) * z
    # DDPM ancestral mean with alpha = 1 - beta h, eps = -sqrt(1 - abar) s: (x + beta h s) / sqrt(1 - beta h)
    ddpm_mean = (x + beta * h * s) / sp.sqrt(1 - beta * h)
    return sympy_all(
        [
            sympy_equal(em, x + h * beta * (x / 2 + s) + sp.sqrt(beta * h) * z),
            sympy_equal(sp.series(ddpm_mean, h, 0, 2).removeO(), x + h * beta * (x / 2 + s)),
        ],
        "the update, and its agreement with DDPM's posterior mean to first order in h",
    )


@check(
    "12.12 one library Euler-Maruyama step",
    12,
    "numeric",
    "samplers.euler_maruyama(*samplers.reverse_sde_vp(score, beta)) takes exactly the step x + h beta (x/2 + s) + "
    "sqrt(beta h) z",
)
def library_euler_maruyama_step():
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    score = lambda y, t: -y / (1 + per_example(t, y))  # noqa: E731  any score works
    t, h = 0.6, 0.01
    stepped = samplers.euler_maruyama(
        *samplers.reverse_sde_vp(score, beta_vp_linear),
        x,
        steps=1,
        t_start=t,
        t_end=t - h,
        generator=torch.Generator().manual_seed(1),
    )
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    beta = beta_vp_linear(t)
    tt = torch.full((64,), t, dtype=torch.float64)
    by_hand = x + h * beta * (x / 2 + score(x, tt)) + math.sqrt(beta * h) * z
    return within((stepped - by_hand).abs().max().item(), 0.0, 1e-12, "max |library step - formula|")
