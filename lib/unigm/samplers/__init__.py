"""The solver layer: samplers as plain functions of a callable f(x, t) -> tensor shaped like x.

t is passed as a tensor of shape (B,); samplers run from t = 1 (noise) to t = 0 (data) unless
told otherwise. Because they only see a callable, they work with an analytic score or velocity
exactly as with a network. `count_nfe()` counts the network evaluations any sampler spends.

    ode.py         time_grid, euler, heun, rk4 (and their one-step functions), integrate
    sde.py         euler_maruyama, langevin, predictor_corrector (Langevin corrector), reverse-SDE and
                   probability-flow builders (VP, VE)
    diffusion.py   ddim_step, ddim (eta = 1: DDPM's ancestral sampler), respaced_times (fewer steps than training),
                   dpm_solver2_step, dpm_solver2 (DPM-Solver-2 in lambda = log(alpha / sigma)), lambda_of_t, t_of_lambda
    likelihood.py  divergence_exact, divergence_hutchinson, ode_log_prob
    nfe.py         count_nfe
    fast.py        fast_sampler: the Euler / Heun loop built once into a graph (torch.jit.trace, torch.compile)
    order.py       measured_order (the global order p in error ~ C h^p)
"""
from ..densities import standard_normal_log_prob
from .diffusion import ddim, ddim_step, dpm_solver2, dpm_solver2_step, lambda_of_t, respaced_times, t_of_lambda
from .fast import FastSampler, fast_sampler
from .likelihood import divergence_exact, divergence_hutchinson, ode_log_prob
from .nfe import NFECounter, count_nfe
from .ode import Field, euler, euler_step, heun, heun_step, integrate, rk4, rk4_step, time_grid
from .order import measured_order
from .sde import (euler_maruyama, euler_maruyama_step, langevin, langevin_snr_step, predictor_corrector,
                  probability_flow, probability_flow_ve, probability_flow_vp, reverse_sde, reverse_sde_ve,
                  reverse_sde_vp, vp_drift)

__all__ = [
    "Field", "NFECounter", "count_nfe", "ddim", "ddim_step", "divergence_exact", "divergence_hutchinson", "euler",
    "euler_maruyama", "euler_maruyama_step", "euler_step", "heun", "heun_step", "integrate", "langevin",
    "langevin_snr_step", "ode_log_prob", "predictor_corrector", "probability_flow", "probability_flow_ve",
    "probability_flow_vp", "respaced_times", "reverse_sde", "reverse_sde_ve", "reverse_sde_vp", "rk4", "rk4_step",
    "standard_normal_log_prob", "time_grid", "vp_drift",
    "dpm_solver2", "dpm_solver2_step", "lambda_of_t", "measured_order", "t_of_lambda",
    "FastSampler", "fast_sampler",
]
