"""The solver layer: samplers as plain functions of a callable f(x, t) -> tensor shaped like x.

t is passed as a tensor of shape (B,); samplers run from t = 1 (noise) to t = 0 (data) unless
told otherwise. Because they only see a callable, they work with an analytic score or velocity
exactly as with a network. `count_nfe()` counts the network evaluations any sampler spends.

    ode.py         time_grid, euler, heun, rk4 (and their one-step functions), integrate
    sde.py         euler_maruyama, langevin, predictor_corrector (Langevin corrector), reverse-SDE and
                   probability-flow builders (VP, VE)
    diffusion.py   ddim_step, ddim (eta = 1: DDPM's ancestral sampler), respaced_times (fewer steps than training)
    likelihood.py  divergence_exact, divergence_hutchinson, ode_log_prob
    nfe.py         count_nfe
"""
from ..densities import standard_normal_log_prob
from .diffusion import ddim, ddim_step, respaced_times
from .likelihood import divergence_exact, divergence_hutchinson, ode_log_prob
from .nfe import NFECounter, count_nfe
from .ode import Field, euler, euler_step, heun, heun_step, integrate, rk4, rk4_step, time_grid
from .sde import (euler_maruyama, euler_maruyama_step, langevin, langevin_snr_step, predictor_corrector,
                  probability_flow, probability_flow_ve, probability_flow_vp, reverse_sde, reverse_sde_ve,
                  reverse_sde_vp, vp_drift)

__all__ = [
    "Field", "NFECounter", "count_nfe", "ddim", "ddim_step", "divergence_exact", "divergence_hutchinson", "euler",
    "euler_maruyama", "euler_maruyama_step", "euler_step", "heun", "heun_step", "integrate", "langevin",
    "langevin_snr_step", "ode_log_prob", "predictor_corrector", "probability_flow", "probability_flow_ve",
    "probability_flow_vp", "respaced_times", "reverse_sde", "reverse_sde_ve", "reverse_sde_vp", "rk4", "rk4_step",
    "standard_normal_log_prob", "time_grid", "vp_drift",
]
