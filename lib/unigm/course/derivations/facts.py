"""Result 12: small facts, each with its check: WaveNet's receptive field, FSQ's level counts,
the stop-gradients of VQ-VAE, consistency-training pairs, the Euler-Maruyama update of the
VP reverse SDE and the VE SDE's diffusion coefficient."""

from __future__ import annotations

import functools
import math

import sympy as sp
import torch

from unigm import samplers
from unigm.autoregressive import DilatedCausalStack
from unigm.diffusion.score_sde import ve_path
from unigm.schedules import beta_vp_linear, g_squared_ve, sigma_squared_ve_kernel
from unigm.vae import FSQ
from unigm.tensors import per_example

from .core import (
    Outcome,
    all_of,
    at_most,
    check,
    gaussian_expectation,
    linear_sde_variance,
    misstatement,
    positive,
    sympy_all,
    sympy_equal,
    with_library,
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
    "K = 2, L = 10 sees 1024 inputs (the current one and 1023 before it), not 1025: autograd of the library "
    "stack's last output finds exactly these inputs (a second probe, independent of 12.2's impulses)",
)
def misstatement_receptive_field():
    torch.manual_seed(1)
    stack, length = DilatedCausalStack(2, 10).double(), 1500
    x = torch.randn(1, stack.convs[0].in_channels, length, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(stack(x)[0, :, -1].sum(), x)  # which inputs the last output depends on
    seen = torch.nonzero(grad.abs().amax(1)[0] > 0).flatten()
    count, current = len(seen), int(seen[-1]) == length - 1
    return misstatement(
        within(count, 1025, 0, "inputs with d(last output)/d(input) != 0 vs 1025"),
        all_of([within(count, 1024, 0, "inputs with d(last output)/d(input) != 0 vs 1024"),
                within(int(seen[-1]) - int(seen[0]) + 1, 1024, 0, "a contiguous window (first to last seen)"),
                Outcome(current, f"the current input is one of them: {current}")]),
    )


# -- FSQ ----------------------------------------------------------------------------------------
@check(
    "12.4 FSQ has L levels",
    12,
    "sympy",
    "odd L = 2m+1 rounds into {-m..m}, even L = 2m into {-m..m-1}: L integers each, reached when the bound's "
    "half-width (L-1)(1-eps)/2 exceeds the last rounding threshold; nets.FSQ((L,)) reaches exactly these, L = 2..9",
)
def fsq_level_count():
    m, k = sp.symbols("m k", positive=True, integer=True)
    eps = sp.Symbol("epsilon", positive=True)
    odd = sp.summation(1, (k, -m, m))
    even = sp.summation(1, (k, -m, m - 1))
    # odd L: the bound reaches (2m)(1-eps)/2 = m(1-eps), rounded to m iff m(1-eps) > m - 1/2, i.e. eps < 1/(2m)
    threshold = sp.solve(sp.Eq(m * (1 - eps), m - sp.Rational(1, 2)), eps)[0]
    step = sympy_all(
        [sympy_equal(odd, 2 * m + 1), sympy_equal(even, 2 * m), sympy_equal(threshold, 1 / (2 * m))],
        "2m+1 and 2m integers; the top level is reached for eps < 1/(2m) (the library uses eps = 1e-3)",
    )
    wrong = []
    for L in range(2, 10):
        fsq, half = FSQ((L,)), L // 2
        integers = torch.round(fsq(torch.linspace(-8, 8, 8001)[:, None]) * fsq.scale).unique().long().tolist()
        if integers != list(range(-half, half + 1 if L % 2 else half)):
            wrong.append(f"L = {L}: {integers}")
    return with_library(step, Outcome(not wrong, "FSQ((L,)) rounds onto the stated integers for L = 2..9" if not wrong
                                      else "FSQ rounds onto other integers: " + "; ".join(wrong)))


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
    "a channel with L levels has L values, not 2L + 1; the codebook has prod L_i codes: the library's mixed-radix "
    "indices of FSQ((8,5,5,5)) outputs fill exactly 0..999 and decode back to the same codes",
)
def misstatement_fsq_levels():
    levels = (8, 5, 5, 5)
    fsq = FSQ(levels)
    z = 6 * torch.rand(400_000, 4, generator=torch.Generator().manual_seed(2)) - 3  # every level of every channel
    codes = fsq(z)
    indices = fsq.codes_to_indices(codes)
    distinct, largest = len(torch.unique(indices)), int(indices.max())
    round_trip = (fsq.indices_to_codes(indices) - codes).abs().max().item()
    return misstatement(
        within(distinct, math.prod(2 * v + 1 for v in levels), 0, "distinct indices reached vs prod(2L_i+1)"),
        all_of([within(distinct, math.prod(levels), 0, "distinct indices reached vs prod L_i"),
                within(largest, math.prod(levels) - 1, 0, "largest index vs prod L_i - 1"),
                within(round_trip, 0.0, 1e-6, "max |indices_to_codes(codes_to_indices(c)) - c|")]),
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
    step = sympy_all(
        [sympy_equal(z_q.subs(c, e - z_), e), sympy_equal(sp.diff(z_q, z_), 1)],
        "forward value e, derivative 1 (the decoder's gradient passes to the encoder unchanged)",
    )
    vq = _vq_gradients()
    return with_library(step, all_of([
        within(vq["value"], 0.0, 1e-6, "VQVAE.quantize: max |z_q - e|"),
        within(vq["through"], 0.0, 0.0, "VQVAE.quantize: max |d(z_q . c)/d z_e - c|"),
    ]))


@functools.lru_cache(maxsize=1)
def _vq_gradients() -> dict:
    """Where each of VQVAE.quantize's outputs sends its gradient (sums of |gradient|; 0 where none flows)."""
    from unigm.vae import VQVAE

    torch.manual_seed(0)
    model = VQVAE((2,))
    z_e = torch.randn(8, model.config.latents, model.config.code_dim, requires_grad=True)
    z_q, indices, aux = model.quantize(z_e)
    weight = model.codebook.weight

    def grads(scalar):  # a loss cut off from every parameter (wrongly detached) sends no gradient at all
        if not scalar.requires_grad:
            return 0.0, 0.0
        g_z, g_w = torch.autograd.grad(scalar, (z_e, weight), retain_graph=True, allow_unused=True)
        norm = lambda g: 0.0 if g is None else g.abs().sum().item()  # noqa: E731
        return norm(g_z), norm(g_w)

    (codebook_z, codebook_w), (commit_z, commit_w) = grads(aux["codebook"]), grads(aux["commitment"])
    probe = torch.randn_like(z_q)
    (through,) = torch.autograd.grad((z_q * probe).sum(), z_e, retain_graph=True)
    return dict(codebook_z=codebook_z, codebook_w=codebook_w, commit_z=commit_z, commit_w=commit_w,
                through=(through - probe).abs().max().item(),
                value=(z_q - model.codebook(indices)).abs().max().item())


@check(
    "12.8 stop-gradients in the library's VQ-VAE and FSQ",
    12,
    "numeric",
    "VQVAE.quantize: the codebook loss moves only the codebook, the commitment loss only the encoder output, z_q "
    "passes gradients straight through; FSQ's gradient is d bound/dz / scale",
)
def library_stop_gradients():
    vq = _vq_gradients()
    fsq = FSQ((8, 5, 5, 5))
    z = torch.randn(64, 4, requires_grad=True)
    (fsq_grad,) = torch.autograd.grad(fsq(z).sum(), z)
    with torch.enable_grad():
        z2 = z.detach().requires_grad_(True)
        (bound_grad,) = torch.autograd.grad((fsq.bound(z2) / fsq.scale).sum(), z2)
    return all_of(
        [
            within(vq["codebook_z"], 0.0, 0.0, "|d codebook loss / d z_e|"),
            positive(vq["codebook_w"], "|d codebook loss / d codebook|"),
            within(vq["commit_w"], 0.0, 0.0, "|d commitment / d codebook|"),
            positive(vq["commit_z"], "|d commitment / d z_e|"),
            within(vq["through"], 0.0, 0.0, "straight-through: d(z_q . c)/d z_e - c"),
            within(vq["value"], 0.0, 1e-6, "forward value of z_q - e"),
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
    """Pairs (x_{t_n+1}, x_{t_n}) of consistency training (Song et al. 2023, arXiv:2303.01469) on the library's
    VE path x_t = x_0 + sigma_t z (diffusion.score_sde.ve_path), and the library's VE PF-ODE with
    g^2 = schedules.g_squared_ve and the conditional score -(x - x_0)/sigma_t^2, solved by RK4 from t_{n+1} to
    t_n. With shared noise the ODE carries x_{n+1} onto x_n (x - x_0 stays proportional to sigma_t)."""
    path = ve_path(0.01, 10.0)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(n, 2, generator=g, dtype=torch.float64)
    z = torch.randn(n, 2, generator=g, dtype=torch.float64)
    z_other = torch.randn(n, 2, generator=g, dtype=torch.float64) if independent else z
    t_next, t_now = 0.5, 0.45
    x_next, x_now = path.sample(x0, z, t_next), path.sample(x0, z_other, t_now)

    def conditional_score(x, t):
        return -(x - x0) / per_example(path.sigma(t), x) ** 2

    velocity = samplers.probability_flow_ve(conditional_score, lambda t: g_squared_ve(t, 0.01, 10.0))
    return (samplers.rk4(velocity, x_next, 20, t_next, t_now) - x_now).pow(2).sum(1).mean().item()


@check(
    "12.10 consistency pairs share the noise",
    12,
    "misstatement",
    "with independent noise the pair is not an ODE step apart (gap ~ 2 sigma^2 d); with shared noise the library's "
    "VE PF-ODE (g^2 = g_squared_ve) carries x_{n+1} onto x_n",
)
def misstatement_consistency_noise():
    return misstatement(
        within(_consistency_pairs(independent=True), 0.0, 1e-10, "E|ODE(x_{n+1}) - x_n|^2, independent noise"),
        within(_consistency_pairs(independent=False), 0.0, 1e-10, "E|ODE(x_{n+1}) - x_n|^2, shared noise"),
    )


# -- Euler-Maruyama for the VP reverse SDE ------------------------------------------------------
@check(
    "12.11 VP reverse-SDE Euler-Maruyama update",
    12,
    "sympy",
    "a step t -> t - h of dx = [-beta x/2 - beta s] dt + sqrt(beta) dW_bar has mean x + h beta (x/2 + s): DDPM's "
    "ancestral mean to O(h^2); samplers.reverse_sde_vp returns exactly that drift -beta (x/2 + s) and diffusion sqrt(beta)",
)
def euler_maruyama_update():
    x, s = sp.symbols("x s", real=True)
    beta, h = sp.Symbol("beta", positive=True), sp.Symbol("h", positive=True)
    # DDPM ancestral mean with alpha = 1 - beta h, eps = -sqrt(1 - abar) s: (x + beta h s) / sqrt(1 - beta h)
    ddpm_mean = (x + beta * h * s) / sp.sqrt(1 - beta * h)
    step = sympy_equal(sp.series(ddpm_mean, h, 0, 2).removeO(), x + h * beta * (x / 2 + s))
    points = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    times = torch.rand(64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    score = lambda y, t: -y / (1 + per_example(t, y))  # noqa: E731  any score works
    drift, diffusion = samplers.reverse_sde_vp(score, beta_vp_linear)
    beta_t = per_example(beta_vp_linear(times), points)
    return with_library(step, all_of([
        within((drift(points, times) + beta_t * (points / 2 + score(points, times))).abs().max().item(), 0.0, 1e-12,
               "max |reverse_sde_vp drift + beta (x/2 + s)|"),
        within((diffusion(times) - beta_vp_linear(times).sqrt()).abs().max().item(), 0.0, 1e-12,
               "max |reverse_sde_vp diffusion - sqrt(beta)|"),
    ]))


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


# -- the VE SDE ---------------------------------------------------------------------------------
@check(
    "12.13 the VE SDE's g^2 and its reverse",
    12,
    "sympy",
    "sigma(t) = sigma_min (sigma_max/sigma_min)^t gives g^2 = d sigma^2/dt = 2 sigma^2 log(sigma_max/sigma_min) "
    "(schedules.g_squared_ve); with it, samplers.reverse_sde_ve (Euler-Maruyama) and probability_flow_ve carry the "
    "VE-noised N(0, s^2) back to variance s^2 (variance propagated exactly through the linear steps)",
)
def ve_sde_coefficient():
    time, low, high = sp.Symbol("t", real=True), sp.Symbol("sigma_min", positive=True), sp.Symbol("sigma_max", positive=True)
    sigma = low * (high / low) ** time
    g_squared = sp.diff(sigma**2, time)
    step = sympy_equal(g_squared, 2 * sigma**2 * sp.log(high / low), simplify=lambda e: sp.simplify(sp.expand_log(e, force=True)))
    grid = torch.linspace(0, 1, 11, dtype=torch.float64)
    derived = sp.lambdify(time, g_squared.subs({low: 0.01, high: 10.0}), "math")
    library_g2 = max(abs(g_squared_ve(t, 0.01, 10.0).item() / derived(t.item()) - 1) for t in grid)

    s = 0.5  # data N(0, s^2): p_t = N(0, s^2 + sigma(t)^2 - sigma(0)^2), score -x / variance(t)
    def variance(t):
        return s**2 + sigma_squared_ve_kernel(t, 0.01, 10.0)

    def score(x, t):
        return -x / per_example(variance(t), x)

    g2 = functools.partial(g_squared_ve, sigma_min=0.01, sigma_max=10.0)
    drift, diffusion = samplers.reverse_sde_ve(score, g2)
    velocity = samplers.probability_flow_ve(score, g2)
    prior = variance(torch.tensor(1.0, dtype=torch.float64)).item()
    var_sde = linear_sde_variance(drift, diffusion, prior, 10_000)
    var_ode = linear_sde_variance(velocity, None, prior, 10_000)
    return with_library(step, all_of([
        within(library_g2, 0.0, 1e-12, "max relative |g_squared_ve - d sigma^2/dt|"),
        within(var_sde / s**2, 1.0, 0.01, "Var after the reverse SDE / s^2 (Euler-Maruyama, 10^4 steps)"),
        within(var_ode / s**2, 1.0, 0.01, "Var after the PF-ODE / s^2 (Euler, 10^4 steps)"),
    ]))


@check(
    "12.14 'FSQ uses every code'",
    12,
    "misstatement",
    "FSQ has no codebook to collapse, but codes can go unused: encoder outputs near a 2D plane in 4 channels reach "
    "few of vae.FSQ((8,5,5,5))'s 1000 codes, every output still a codebook row",
)
def misstatement_fsq_every_code():
    fsq = FSQ((8, 5, 5, 5))
    g = torch.Generator().manual_seed(0)
    plane = torch.randn(2, 4, generator=g)  # an encoder whose outputs span a plane (a low-dimensional data set)
    z = 1.5 * torch.randn(20_000, 2, generator=g) @ plane + 0.05 * torch.randn(20_000, 4, generator=g)
    used = len(torch.unique(fsq.codes_to_indices(fsq(z))))
    in_range = bool(((fsq.codes_to_indices(fsq(z)) >= 0) & (fsq.codes_to_indices(fsq(z)) < fsq.codebook_size)).all())
    return misstatement(
        within(used, fsq.codebook_size, 0, "codes used by 20,000 encoder outputs vs codebook_size"),
        all_of([at_most(used, fsq.codebook_size // 2, "codes used (of 1000)"),
                Outcome(in_range, f"every output indexes a codebook row: {in_range}")]),
    )
