"""DDPM (Ho et al. 2020, arXiv:2006.11239) on the course's time axis t in [0, 1] (t = 0 data, t = 1 noise).

Forward process (variance preserving):  q(x_t | x_0) = N(sqrt(alpha_bar(t)) x_0, (1 - alpha_bar(t)) I),
the VP Gaussian path of unigm.paths. The network predicts the noise eps_theta(x_t, t), or, with
config.prediction = "x0" or "v", the data or v (Salimans & Ho 2022, arXiv:2202.00512; see
unigm.diffusion.targets); step i of a T-step chain is time t = i / T here. The continuous-time
view (Song et al. 2021, arXiv:2011.13456) gives the score grad log p_t(x) = -eps_theta(x, t) /
sqrt(1 - alpha_bar(t)) and the probability-flow ODE, through which the likelihood is computed.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import samplers
from ..base import ScoreBased
from ..densities import standard_normal_log_prob
from ..nets import MLP
from ..paths import vp_path
from ..registry import Recipe, register
from ..schedules import alpha_bar_vp_linear, beta_vp_linear
from ..tensors import as_time, per_example, randint, randn_like
from .targets import PredictionTarget, eps_weight_x0_preconditioned, prediction_target, preconditioning


@dataclass
class DDPMConfig:
    hidden: int = 128
    depth: int = 3
    time_dim: int = 32
    num_steps: int = 1000  # T, the length of the discrete chain
    beta_min: float = 0.1
    beta_max: float = 20.0
    likelihood_steps: int = 100  # RK4 steps of the probability-flow ODE in log_prob
    prediction: str = "epsilon"  # what the network outputs: "epsilon", "x0" or "v" (unigm.diffusion.targets)
    precondition: bool = False  # x0 only: x0_hat = c_skip x_t + c_out F, loss / c_out^2 (targets.preconditioning)
    sigma_data: float = 1.0  # the data scale the preconditioning assumes


@register("ddpm", recipes={"2d": Recipe(steps=3000, lr=4e-3, ema_decay=0.995,
                                        min_quality={"two_moons": 0.85, "eight_gaussians": 0.85})})
class DDPM(ScoreBased):
    """DDPM with the linear (VP) schedule; the network predicts epsilon (default), x0 or v."""

    Config = DDPMConfig

    def __init__(self, event_shape, config: DDPMConfig | None = None):
        config = config or self.Config()
        super().__init__(event_shape, config)
        self.net = MLP(self.event_dim, self.event_dim, config.hidden, config.depth, time_dim=config.time_dim)
        self.gaussian_path = vp_path(config.beta_min, config.beta_max)
        prediction_target(config.prediction)  # an unknown name fails here, with the valid ones listed
        if config.precondition and config.prediction != "x0":
            raise ValueError(f"precondition applies to the x0 target (EDM's denoiser), not {config.prediction!r}")
        if not config.sigma_data > 0:
            raise ValueError(f"sigma_data must be positive, got {config.sigma_data!r}")

    @property
    def target(self) -> PredictionTarget:
        return prediction_target(self.config.prediction)

    # -- schedule ----------------------------------------------------------------------------
    def alpha_bar(self, t):
        return alpha_bar_vp_linear(t, self.config.beta_min, self.config.beta_max)

    def beta(self, t):
        return beta_vp_linear(t, self.config.beta_min, self.config.beta_max)

    # -- the network and what it implies -----------------------------------------------------
    def network_output(self, x, t):  # (B, *E), (B,) -> (B, *E): the prediction of self.target
        out = self.unflat(self.net(self.flat(x), t))
        if not self.config.precondition:
            return out
        c_skip, c_out = self.preconditioning(t, x)
        return c_skip * x + c_out * out  # Karras et al. 2022, eq. 7, on the VP path

    def preconditioning(self, t, x):
        """(c_skip, c_out) at times t, shaped to broadcast against x (targets.preconditioning)."""
        snr = self.gaussian_path.snr(as_time(t, x))
        return tuple(per_example(c, x) for c in preconditioning(snr, self.config.sigma_data))

    def eps_weight(self, snr):
        """This model's loss as a weight on |eps - eps_hat|^2 (unigm.diffusion.targets)."""
        if self.config.precondition:
            return eps_weight_x0_preconditioned(snr, self.config.sigma_data)
        return self.target.eps_weight(snr)

    def predict_x0_eps(self, x, t):
        """(x0_hat, eps_hat) implied by the network output at x_t = x (the paths' conversions)."""
        return self.target.to_x0_eps(self.gaussian_path, x, self.network_output(x, t), t)

    def predict_eps(self, x, t):  # (B, *E), (B,) -> (B, *E)
        return self.predict_x0_eps(x, t)[1]

    def predict_x0(self, x, t):  # E[x_0 | x_t] at the optimum (Tweedie)
        return self.predict_x0_eps(x, t)[0]

    def predict_v(self, x, t):  # alpha_t eps_hat - sigma_t x0_hat
        return self.gaussian_path.v_from_x0_eps(*self.predict_x0_eps(x, t), t)

    def score(self, x, t):
        t = as_time(t, x)
        return self.gaussian_path.score_from_eps(self.predict_eps(x, t), t)

    def noise(self, x0, eps, t):
        """Sample of q(x_t | x_0): sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps."""
        return self.gaussian_path.sample(x0, eps, t)

    def training_draw(self, x0, generator=None):
        """t_i = i / T with i uniform in {1, ..., T}, then eps ~ N(0, I) (in this order)."""
        T = self.config.num_steps
        t = randint(1, T + 1, (x0.shape[0],), x0, generator).to(x0.dtype) / T
        return t, randn_like(x0, generator)

    def loss(self, x, *, generator=None):
        """L_simple (Ho et al. 2020, eq. 14) on the chosen target: E_{i, x0, eps} |target - net(x_t, t_i)|^2,
        t_i = i / T; for eps it is |eps - eps_theta|^2, for x0 and v the eps loss times
        target.eps_weight(SNR(t_i)) (weighted_eps_loss computes it that way). A preconditioned x0 model
        divides its error by c_out^2 (EDM's lambda): the unit-weight regression of F on its target."""
        x0 = self.check_input(x)
        t, eps = self.training_draw(x0, generator)
        target = self.target.target(self.gaussian_path, x0, eps, t)
        error = self.network_output(self.noise(x0, eps, t), t) - target
        if self.config.precondition:
            error = error / self.preconditioning(t, x0)[1]
        return error.pow(2).mean()

    def weighted_eps_loss(self, x, *, generator=None):
        """The same loss on the same draws, written as eps_weight(SNR) |eps - eps_hat|^2 with eps_hat the
        noise the network's output implies (unigm.diffusion.targets; lecture 02, check 3.12)."""
        x0 = self.check_input(x)
        t, eps = self.training_draw(x0, generator)
        eps_hat = self.predict_eps(self.noise(x0, eps, t), t)
        weight = per_example(self.eps_weight(self.gaussian_path.snr(t)), x0)
        return (weight * (eps_hat - eps).pow(2)).mean()

    @torch.no_grad()
    def sample(self, n, steps=None, *, eta: float = 1.0, generator=None, trajectory: list | None = None):
        """Ancestral sampling (Ho et al. 2020, Alg. 2) on `steps` times of the training grid (default all T;
        fewer: samplers.respaced_times, Nichol & Dhariwal 2021, Sec. 4): DDIM with eta = 1, whose noise is
        the posterior variance beta (1 - alpha_bar(s)) / (1 - alpha_bar(t)) (lecture 02, check 10.6 proves
        the two equal). eta = 0 is deterministic DDIM (Song et al. 2021, arXiv:2010.02502); any eta in
        [0, 1] interpolates. If `trajectory` is a list, every state x_t (the start included) is appended."""
        x = self.randn(self.check_n(n), *self.event_shape, generator=generator)
        times = samplers.respaced_times(self.config.num_steps, steps or self.config.num_steps)
        return samplers.ddim(self.predict_eps, x, None, self.alpha_bar, eta=eta, generator=generator,
                             trajectory=trajectory, times=times)

    def probability_flow_velocity(self, x, t):
        """dx/dt = f - g^2 score / 2 = -beta(t) / 2 (x + score(x, t)) (Song et al. 2021, eq. 13)."""
        t = as_time(t, x)
        return self.gaussian_path.velocity_from_score(self.score(x, t), x, t)

    def log_prob(self, x, steps=None):
        """Log-likelihood through the probability-flow ODE, integrated from t = 1/T (the smallest
        noise level the network was trained on) to t = 1, with a N(0, I) prior at t = 1."""
        x = self.check_input(x)
        t0 = 1.0 / self.config.num_steps

        def velocity_from_t0(y, u):  # u in [0, 1] -> t = t0 + u (1 - t0)
            return (1 - t0) * self.probability_flow_velocity(y, t0 + u * (1 - t0))

        return samplers.ode_log_prob(velocity_from_t0, x, standard_normal_log_prob,
                                     steps or self.config.likelihood_steps)


# -- the other two prediction targets (Salimans & Ho 2022, arXiv:2202.00512) as zoo entries ----------
@dataclass
class DDPMx0Config(DDPMConfig):
    prediction: str = "x0"
    precondition: bool = True


# The plain x0 net (precondition=False, loss |x_0 - net|^2 = eps loss / SNR) reaches only G 0.33 on two
# moons with the 1000-step chain (0.85 with 20 DDIM steps; lecture 01, 7.2): at low noise it must copy
# x_t to within sigma, and every error is amplified by 1 / sqrt(SNR) in the eps it implies. Reweighting
# alone does not fix it (measured, same recipe: max(SNR, 1) weight 0.68; skip x_t + net 0.58, with the
# SNR + 1 weight 0.83); EDM's preconditioning does (0.99 and 1.07 with sigma_data = 1, seed 0).
@register("ddpm_x0", recipes={"2d": Recipe(steps=3000, lr=4e-3, ema_decay=0.995,
                                           min_quality={"two_moons": 0.9, "eight_gaussians": 0.9})})
class DDPMx0(DDPM):
    """DDPM whose network predicts x_0, preconditioned as EDM's denoiser (Karras et al. 2022):
    x0_hat = c_skip x_t + c_out F, loss |x_0 - x0_hat|^2 / c_out^2 = (1 + 1 / (sigma_data^2 SNR)) times
    the eps loss. precondition=False gives the plain x_0 regression (weight 1 / SNR)."""

    Config = DDPMx0Config


@dataclass
class DDPMvConfig(DDPMConfig):
    prediction: str = "v"


@register("ddpm_v", recipes={"2d": Recipe(steps=3000, lr=4e-3, ema_decay=0.995,
                                          min_quality={"two_moons": 0.9, "eight_gaussians": 0.9})})
class DDPMv(DDPM):
    """DDPM whose network predicts v = alpha eps - sigma x_0: the eps loss weighted by 1 + 1 / SNR."""

    Config = DDPMvConfig
