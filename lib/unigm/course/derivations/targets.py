"""Result 3, continued: the three things a diffusion network can predict (eps, x_0, v; Salimans & Ho
2022, arXiv:2202.00512) give one loss up to a weight of the SNR, the same currency in which result 3
compares flow matching with diffusion (its check 3.7 is the linear path's weight (1-t)^-2).

On x_t = alpha x_0 + sigma eps, a prediction eps_hat implies x0_hat = (x_t - sigma eps_hat) / alpha and
v_hat = alpha eps_hat - sigma x0_hat; the checks call the library's weights (unigm.diffusion.targets),
so they fail if those are wrong."""

from __future__ import annotations

import sympy as sp
import torch

from unigm import data
from unigm.diffusion import DDPM, targets

from .core import all_of, check, misstatement, sympy_equal, within

alpha, sigma = sp.symbols("alpha sigma", positive=True)
x0, eps, eps_hat = sp.symbols("x_0 epsilon epsilon_hat", real=True)
u_ = sp.Symbol("u", positive=True)  # abar = 1 / (1 + u) keeps 0 < abar < 1; SNR = 1 / u


def implied_errors(alpha_, sigma_):
    """(eps, x_0, v) errors implied by an error in eps_hat, at x_t = alpha x_0 + sigma eps."""
    xt = alpha_ * x0 + sigma_ * eps
    x0_hat = (xt - sigma_ * eps_hat) / alpha_
    v, v_hat = alpha_ * eps - sigma_ * x0, alpha_ * eps_hat - sigma_ * x0_hat
    return {"epsilon": eps - eps_hat, "x0": x0 - x0_hat, "v": v - v_hat}


@check(
    "3.11 eps, x0 and v losses differ by an SNR weight",
    3,
    "sympy",
    "on the VP path |x0 - x0_hat|^2 = |eps - eps_hat|^2 / SNR and |v - v_hat|^2 = (1 + 1/SNR) |eps - eps_hat|^2, "
    "equal to the library's weights (diffusion.targets) at SNR = abar / (1 - abar)",
)
def target_weights():
    abar = 1 / (1 + u_)
    snr = abar / (1 - abar)
    errors = implied_errors(sp.sqrt(abar), sp.sqrt(1 - abar))
    names = list(targets.TARGETS)
    lhs = sp.Matrix([errors[name] ** 2 for name in names])
    rhs = sp.Matrix([targets.prediction_target(name).eps_weight(snr) * (eps - eps_hat) ** 2 for name in names])
    return sympy_equal(lhs, rhs, simplify=lambda e: e.applyfunc(sp.simplify))


@check(
    "3.12 DDPM losses = weighted eps loss",
    3,
    "numeric",
    "on one batch, DDPM.loss with prediction eps, x0 and v (the direct target MSE) and with EDM's preconditioned "
    "x0 equals the model's eps_weight(SNR) |eps - eps_hat|^2 of the implied eps_hat (DDPM.weighted_eps_loss)",
)
def ddpm_losses_are_weighted_eps_losses():
    x = data.toy("two_moons").sample(512, torch.Generator().manual_seed(0)).double()
    parts, values = [], {}
    configs = {name: {"prediction": name} for name in targets.TARGETS}
    configs["x0 preconditioned"] = {"prediction": "x0", "precondition": True, "sigma_data": 0.7}
    for name, config in configs.items():
        torch.manual_seed(0)
        model = DDPM((2,), DDPM.Config(**config)).double()
        with torch.no_grad():
            direct = model.loss(x, generator=torch.Generator().manual_seed(1)).item()
            weighted = model.weighted_eps_loss(x, generator=torch.Generator().manual_seed(1)).item()
        values[name] = direct
        parts.append(within(weighted, direct, 1e-9 * direct, f"{name}: weighted eps loss vs DDPM.loss"))
    return all_of(parts, values)


@check(
    "3.13 the v loss is not (1 + SNR) times the eps loss",
    3,
    "misstatement",
    "(1 + SNR) is the v loss's weight relative to the x0 loss; relative to the eps loss it is 1 + 1/SNR",
)
def misstatement_v_weight():
    x = data.toy("two_moons").sample(512, torch.Generator().manual_seed(0)).double()
    torch.manual_seed(0)
    model = DDPM((2,), DDPM.Config(prediction="v")).double()

    def weighted_eps_loss(weight):  # the library's draws, the weight given
        x0_ = model.check_input(x)
        t, noise = model.training_draw(x0_, torch.Generator().manual_seed(1))
        with torch.no_grad():
            eps_hat_ = model.predict_eps(model.noise(x0_, noise, t), t)
        w = weight(model.gaussian_path.snr(t))[:, None]
        return (w * (eps_hat_ - noise) ** 2).mean().item()

    with torch.no_grad():
        direct = model.loss(x, generator=torch.Generator().manual_seed(1)).item()
    return misstatement(
        within(weighted_eps_loss(lambda snr: 1 + snr), direct, 1e-9 * direct, "(1 + SNR) |eps - eps_hat|^2 vs v loss"),
        within(weighted_eps_loss(targets.prediction_target("v").eps_weight), direct, 1e-9 * direct,
               "(1 + 1/SNR) |eps - eps_hat|^2 vs v loss"),
    )


@check(
    "3.14 preconditioned x0 prediction (EDM) is v prediction when sigma_data = 1",
    3,
    "sympy",
    "for data of scale sigma_data, the library's c_skip is the Gaussian posterior-mean coefficient "
    "alpha sd^2 / (alpha^2 sd^2 + sigma^2), F's target (x_0 - c_skip x_t) / c_out has unit variance, the loss "
    "|x_0 - x0_hat|^2 / c_out^2 is eps_weight_x0_preconditioned times the eps loss; at sd = 1: (c_skip, c_out) "
    "= (alpha, sigma), F = -v and the weight is the v loss's",
)
def preconditioned_x0_is_v():
    sd, snr = sp.symbols("sigma_data SNR", positive=True)
    alpha_, sigma_ = sp.sqrt(snr / (1 + snr)), 1 / sp.sqrt(1 + snr)  # VP: alpha^2 + sigma^2 = 1
    c_skip, c_out = (sp.nsimplify(c) for c in targets.preconditioning(snr, sd))  # its ** 0.5 -> sqrt
    xt = alpha_ * x0 + sigma_ * eps
    f_target = sp.expand((x0 - c_skip * xt) / c_out)
    # x_0 ~ (0, sd^2), eps ~ (0, 1) independent: Var of a x_0 + b eps is a^2 sd^2 + b^2
    variance = f_target.coeff(x0) ** 2 * sd**2 + f_target.coeff(eps) ** 2
    x0_hat = (xt - sigma_ * eps_hat) / alpha_  # the x_0 an eps_hat implies
    weight = sp.simplify(((x0 - x0_hat) / c_out) ** 2 / (eps - eps_hat) ** 2)
    v = alpha_ * eps - sigma_ * x0
    at_one = {"c_skip": c_skip.subs(sd, 1), "c_out": c_out.subs(sd, 1), "F target": f_target.subs(sd, 1)}
    lhs = sp.Matrix([c_skip, variance, weight, at_one["c_skip"], at_one["c_out"], at_one["F target"],
                     targets.eps_weight_x0_preconditioned(snr, 1)])
    rhs = sp.Matrix([alpha_ * sd**2 / (alpha_**2 * sd**2 + sigma_**2), 1, targets.eps_weight_x0_preconditioned(snr, sd),
                     alpha_, sigma_, -v, targets.eps_weight_v(snr)])
    return sympy_equal(lhs, rhs, simplify=lambda e: e.applyfunc(sp.simplify))
