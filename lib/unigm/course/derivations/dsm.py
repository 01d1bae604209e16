"""Result 1 (denoising score matching is DDPM's noise loss) and result 11 (Tweedie's formula).

Notation: a = alpha_bar(t) in (0, 1); q(x_t | x_0) = N(sqrt(a) x_0, (1 - a) I). The kernel is
isotropic, so every identity is checked per coordinate (1D) without loss of generality."""

from __future__ import annotations

import math

import sympy as sp
import torch

from unigm import data
from unigm.diffusion import DDPM
from unigm.tensors import per_example

from .core import Outcome, all_of, check, gaussian_expectation, log_normal_pdf, misstatement, sympy_equal, within
from .toys import ExactDDPM, eight_gaussians

a = sp.Symbol("alphabar", positive=True)  # alpha_bar(t), 0 < a < 1 (rendered as a barred alpha)
x, x0, eps = sp.symbols("x x_0 epsilon", real=True)


def kernel_log_density(x_, x0_):
    return log_normal_pdf(x_, sp.sqrt(a) * x0_, 1 - a)


# -- result 1: DSM <-> DDPM ---------------------------------------------------------------------
@check("1.1 kernel score", 1, "sympy", "grad_x log q(x_t|x_0) = -(x_t - sqrt(abar) x_0) / (1 - abar)")
def kernel_score():
    return sympy_equal(sp.diff(kernel_log_density(x, x0), x), -(x - sp.sqrt(a) * x0) / (1 - a))


@check(
    "1.2 score is scaled noise",
    1,
    "sympy",
    "at x_t = sqrt(abar) x_0 + sqrt(1-abar) eps the kernel score is -eps/sqrt(1-abar), exactly",
)
def score_is_scaled_noise():
    score = sp.diff(kernel_log_density(x, x0), x).subs(x, sp.sqrt(a) * x0 + sp.sqrt(1 - a) * eps)
    return sympy_equal(score, -eps / sp.sqrt(1 - a))


@check(
    "1.3 weighted DSM is L_simple",
    1,
    "sympy",
    "with s = -eps_theta/sqrt(1-abar), (1-abar)|s - score|^2 = |eps_theta - eps|^2",
)
def weighted_dsm_is_l_simple():
    eps_theta = sp.Symbol("epsilon_theta", real=True)
    s_theta, target = -eps_theta / sp.sqrt(1 - a), -eps / sp.sqrt(1 - a)
    return sympy_equal((1 - a) * (s_theta - target) ** 2, (eps_theta - eps) ** 2)


@check(
    "1.4 DSM = explicit SM + const",
    1,
    "sympy",
    "E|s - grad log q(x_t|x_0)|^2 - E|s - grad log p_t(x_t)|^2 does not depend on s (Gaussian data, affine s)",
)
def dsm_equals_explicit_score_matching():
    m, v = sp.Symbol("m", real=True), sp.Symbol("v", positive=True)
    c, d, u = sp.symbols("c d u", real=True)
    x0_ = m + sp.sqrt(v) * u  # x_0 ~ N(m, v), u ~ N(0, 1)
    xt = sp.sqrt(a) * x0_ + sp.sqrt(1 - a) * eps
    s = c * xt + d  # any affine model of the score
    conditional = -(xt - sp.sqrt(a) * x0_) / (1 - a)
    marginal = -(xt - sp.sqrt(a) * m) / (a * v + 1 - a)  # p_t = N(sqrt(a) m, a v + 1 - a)
    gap = gaussian_expectation((s - conditional) ** 2 - (s - marginal) ** 2, {u: 1, eps: 1})
    free_of_s = not ({c, d} & gap.free_symbols)
    label = sp.Symbol(r"\mathbb{E}\|s-\nabla\log q(x_t|x_0)\|^2-\mathbb{E}\|s-\nabla\log p_t(x_t)\|^2")
    return Outcome(
        free_of_s,
        "the expected gap contains neither c nor d" if free_of_s else f"gap depends on s: {gap}",
        lhs=label,
        rhs=gap,
    )


def _dsm_batch(seed: int = 0, n: int = 512):
    """One batch through the library's DDPM: its own loss, and the DSM loss on the same draws."""
    torch.manual_seed(seed)
    model = DDPM((2,)).double()
    x0_batch = data.toy("two_moons").sample(n, torch.Generator().manual_seed(seed)).double()
    library_loss = model.loss(x0_batch, generator=torch.Generator().manual_seed(seed + 1))
    g = torch.Generator().manual_seed(seed + 1)  # the same stream as DDPM.loss's: t first, then eps
    T = model.config.num_steps
    t = torch.randint(1, T + 1, (n,), generator=g).to(x0_batch.dtype) / T
    noise = torch.randn(x0_batch.shape, generator=g, dtype=x0_batch.dtype)
    xt = model.noise(x0_batch, noise, t)
    alpha_bar = per_example(model.alpha_bar(t), xt)
    with torch.enable_grad():  # the target: autograd score of the kernel, from x_t and x_0 only
        xt_leaf = xt.detach().requires_grad_(True)
        kernel = torch.distributions.Normal(alpha_bar.sqrt() * x0_batch, (1 - alpha_bar).sqrt())
        (target,) = torch.autograd.grad(kernel.log_prob(xt_leaf).sum(), xt_leaf)
    with torch.no_grad():
        score = model.score(xt, t)
    return dict(
        model=model,
        x0=x0_batch,
        t=t,
        noise=noise,
        xt=xt,
        alpha_bar=alpha_bar,
        target=target,
        score=score,
        library_loss=library_loss.item(),
    )


@check(
    "1.5 DDPM loss = DSM loss",
    1,
    "numeric",
    "on one batch, DDPM.loss equals the DSM loss with weight 1-abar and DDPM.score; the kernel score is "
    "-eps/sqrt(1-abar)",
)
def ddpm_loss_is_dsm():
    b = _dsm_batch()
    dsm = ((1 - b["alpha_bar"]) * (b["score"] - b["target"]) ** 2).mean().item()
    target_error = (b["target"] + b["noise"] / (1 - b["alpha_bar"]).sqrt()).abs().max().item()
    return all_of(
        [
            within(dsm, b["library_loss"], 1e-10 * b["library_loss"], "DSM loss vs DDPM.loss"),
            within(target_error, 0.0, 1e-9, "max |kernel score + eps/sqrt(1-abar)|"),
        ],
        values={"dsm": dsm, "ddpm_loss": b["library_loss"]},
    )


@check(
    "1.6 sqrt(abar) ~ 1 in DSM",
    1,
    "misstatement",
    "approximating sqrt(abar) by 1 in the DSM target breaks the equality with L_simple; the exact target keeps it",
)
def misstatement_sqrt_alpha_bar():
    b = _dsm_batch()
    approximate_target = -(b["xt"] - b["x0"]) / (1 - b["alpha_bar"])  # sqrt(abar) replaced by 1
    weight = 1 - b["alpha_bar"]
    wrong = ((weight * (b["score"] - approximate_target) ** 2).mean()).item()
    right = ((weight * (b["score"] - b["target"]) ** 2).mean()).item()
    loss = b["library_loss"]
    return misstatement(
        within(wrong, loss, 1e-3 * loss, "DSM with target -(x_t - x_0)/(1-abar) vs DDPM.loss"),
        within(right, loss, 1e-10 * loss, "DSM with target -(x_t - sqrt(abar) x_0)/(1-abar) vs DDPM.loss"),
    )


# -- result 11: Tweedie -------------------------------------------------------------------------
@check("11.1 kernel identity", 11, "sympy", "(1-abar) d/dx N(x; sqrt(abar) x_0, 1-abar) + x N = sqrt(abar) x_0 N")
def tweedie_kernel_identity():
    kernel = sp.exp(kernel_log_density(x, x0))
    return sympy_equal((1 - a) * sp.diff(kernel, x) + x * kernel, sp.sqrt(a) * x0 * kernel)


@check(
    "11.2 Tweedie on two atoms",
    11,
    "sympy",
    "for p_0 = w delta_m1 + (1-w) delta_m2: E[x_0|x_t] = (x_t + (1-abar) grad log p_t) / sqrt(abar)",
)
def tweedie_two_atoms():
    m1, m2 = sp.symbols("m_1 m_2", real=True)
    w = sp.Symbol("w", positive=True)
    n1, n2 = sp.exp(kernel_log_density(x, m1)), sp.exp(kernel_log_density(x, m2))
    p_t = w * n1 + (1 - w) * n2
    posterior_mean = (w * n1 * m1 + (1 - w) * n2 * m2) / p_t  # Bayes
    tweedie = (x + (1 - a) * sp.diff(sp.log(p_t), x)) / sp.sqrt(a)
    return sympy_equal(tweedie, posterior_mean, simplify=lambda e: sp.simplify(sp.together(sp.expand(e))))


@check(
    "11.3 Tweedie on the mixture",
    11,
    "numeric",
    "Tweedie with the library's DDPM.score equals the exact posterior mean, and its residual x_0 - E[x_0|x_t] is "
    "orthogonal to functions of x_t",
)
def tweedie_numeric():
    mixture = eight_gaussians("vp")
    model = ExactDDPM(mixture)
    g = torch.Generator().manual_seed(0)
    n = 20_000
    x0_batch = mixture.sample(n, 0.0, g)
    t = torch.full((n,), 0.3, dtype=torch.float64)
    xt = model.noise(x0_batch, torch.randn(n, 2, generator=g, dtype=torch.float64), t)
    alpha_bar = per_example(model.alpha_bar(t), xt)
    with torch.no_grad():
        tweedie = (xt + (1 - alpha_bar) * model.score(xt, t)) / alpha_bar.sqrt()
    exact = mixture.posterior_mean(xt, t)
    residual = x0_batch - tweedie
    parts = [within((tweedie - exact).abs().max().item(), 0.0, 1e-9, "max |Tweedie - exact posterior mean|")]
    for name, h in [("x_t", xt), ("x_t^2", xt**2), ("sin(3 x_t)", torch.sin(3 * xt))]:
        products = (residual * h).sum(1)
        standard_error = products.std().item() / math.sqrt(n)
        parts.append(within(products.mean().item(), 0.0, 4 * standard_error, f"E[(x_0 - Tweedie) . {name}]"))
    return all_of(parts)
