"""Consistency models (Song, Dhariwal, Chen & Sutskever 2023, arXiv:2303.01469) on the course's time axis.

A consistency function maps every point of a probability-flow (PF) ODE trajectory to the trajectory's
data end, f(x_t, t) = x_{t_min} for all t in [t_min, 1], so one evaluation f(x_1, 1) turns noise into a
sample. The ODE is that of the paper (and of Karras et al. 2022, arXiv:2206.00364): the VE path
    x_t = x_0 + sigma(t) z,   sigma(t) = sigma_max t^rho   (t = 0 data, t = 1 noise),
so equal steps in t from t_min = (sigma_min / sigma_max)^(1/rho) to 1 are the paper's discretisation,
equal steps in sigma^(1/rho) (Sec. 5; rho = 7). Any Gaussian path alpha_t x_0 + sigma_t z has this PF-ODE
in y = x / alpha_t at noise level s = sigma_t / alpha_t (lecture 02, result 3): dy/ds = E[z | y]
(Karras et al. 2022, eq. 4), which is how a DDPM (VP path) or flow-matching (linear path) teacher is read.
    f(x, t) = c_skip(t) x + c_out(t) F(c_in(t) x, t),  c_skip(t_min) = 1, c_out(t_min) = 0    (eq. 5, App. C)
    CD (Alg. 2):  d(f(x_{t_{n+1}}, t_{n+1}), f^-(x_hat_{t_n}, t_n)), x_hat one Heun step of the teacher (eq. 6-7)
    CT (Alg. 3):  d(f(x_0 + sigma_{n+1} z, t_{n+1}), f^-(x_0 + sigma_n z, t_n)), one shared z    (eq. 10)
f^- is the target network, an EMA of f's weights, theta^- <- mu theta^- + (1 - mu) theta (eq. 8), never
trained by gradients. d is the squared l2 distance with lambda = 1 in CD; CT takes the pseudo-Huber metric
and lambda = 1 / (sigma_{n+1} - sigma_n) of improved CT (Song & Dhariwal 2023, arXiv:2310.14189) and a
shorter N(k) schedule (s1 = 35), without which it does not converge in the quick profile's 3,000 updates.
Sampling is Alg. 1 (multistep), NFE = steps. The 2D defaults (sigma_max = 20, sigma_data = 0.5) are measured.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass

import torch

from ..base import FlowBased, GenerativeModel, Implicit, ScoreBased, ShapeError
from ..nets import MLP
from ..paths import GaussianPath
from ..registry import Recipe, register
from ..tensors import as_time, per_example, randint, randn_like
from .ddpm import DDPM


# -- the VE path of the paper and the boundary parametrisation ------------------------------------
def sigma_karras(t, sigma_max: float = 80.0, rho: float = 7.0):
    """sigma(t) = sigma_max t^rho: equal steps in t are Karras et al.'s (2022, eq. 5) steps in sigma^(1/rho)."""
    return sigma_max * torch.as_tensor(t) ** rho


def karras_path(sigma_max: float = 80.0, rho: float = 7.0) -> GaussianPath:
    """x_t = x_0 + sigma(t) z (alpha_t = 1): the VE path of the paper on t in [0, 1]."""
    return GaussianPath(
        "karras",
        alpha=lambda t: torch.ones_like(torch.as_tensor(t)),
        sigma=lambda t: sigma_karras(t, sigma_max, rho),
        d_alpha=lambda t: torch.zeros_like(torch.as_tensor(t)),
        d_sigma=lambda t: sigma_max * rho * torch.as_tensor(t) ** (rho - 1),
        d_sigma_squared=lambda t: 2 * sigma_max**2 * rho * torch.as_tensor(t) ** (2 * rho - 1),
    )


def c_skip(sigma, sigma_min: float, sigma_data: float):
    """sigma_data^2 / ((sigma - sigma_min)^2 + sigma_data^2) (App. C): 1 at sigma = sigma_min."""
    return sigma_data**2 / ((sigma - sigma_min) ** 2 + sigma_data**2)


def c_out(sigma, sigma_min: float, sigma_data: float):
    """sigma_data (sigma - sigma_min) / sqrt(sigma_data^2 + sigma^2) (App. C): 0 at sigma = sigma_min."""
    return sigma_data * (sigma - sigma_min) / (sigma_data**2 + sigma**2) ** 0.5


def c_in(sigma, sigma_data: float):
    """1 / sqrt(sigma^2 + sigma_data^2): the network sees inputs of unit variance (Karras et al. 2022, Table 1)."""
    return 1 / (sigma**2 + sigma_data**2) ** 0.5


@torch.no_grad()
def multistep_sampling(f, x, times, noise_level, generator=None):
    """Alg. 1: x <- f(x, times[0]); then for each later time tau, re-noise to tau and denoise,
    x <- f(x + noise_level(tau) z, tau), z ~ N(0, I). f: (x, t (B,)) -> x; NFE = len(times)."""
    x = f(x, as_time(times[0], x))
    for tau in times[1:]:
        x = f(x + noise_level(tau) * randn_like(x, generator), as_time(tau, x))
    return x


# -- the consistency model -----------------------------------------------------------------------
@dataclass
class ConsistencyConfig:
    hidden: int = 128
    depth: int = 3
    time_dim: int = 32
    sigma_min: float = 0.002  # epsilon of the paper
    sigma_max: float = 20.0  # T (the paper: 80 for images in [-1, 1]); the 2D toys lie within |x| < 3
    rho: float = 7.0
    sigma_data: float = 0.5  # the paper's value; measured better than the toys' own std ~ 1 (CD, two moons)
    sample_steps: int = 1  # default NFE of sample()


class ConsistencyModel(Implicit):
    """f_theta and its EMA target f_theta^- with the boundary parametrisation, and Alg. 1.
    Subclasses define `loss` (CD or CT) and `target_decay` (mu of eq. 8)."""

    Config = ConsistencyConfig

    def __init__(self, event_shape, config: ConsistencyConfig | None = None):
        config = config or self.Config()
        super().__init__(event_shape, config)
        if not 0 < config.sigma_min < config.sigma_max or config.sigma_data <= 0 or config.rho <= 0:
            raise ValueError("need 0 < sigma_min < sigma_max, sigma_data > 0 and rho > 0, got "
                             f"{config.sigma_min}, {config.sigma_max}, {config.sigma_data}, {config.rho}")
        self.net = MLP(self.event_dim, self.event_dim, config.hidden, config.depth, time_dim=config.time_dim)
        self.target_net = copy.deepcopy(self.net).requires_grad_(False)  # theta^-, moved by after_update only
        self.gaussian_path = karras_path(config.sigma_max, config.rho)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))  # optimiser steps taken

    @property
    def t_min(self) -> float:
        """The data end of the trajectories: sigma(t_min) = sigma_min."""
        return (self.config.sigma_min / self.config.sigma_max) ** (1 / self.config.rho)

    def sigma(self, t):
        return sigma_karras(t, self.config.sigma_max, self.config.rho)

    def grid(self, num_scales: int) -> torch.Tensor:
        """t_1 = t_min < ... < t_N = 1, equal steps in t (float64, (N,))."""
        if not isinstance(num_scales, int) or num_scales < 2:
            raise ValueError(f"the discretisation needs at least 2 times, got {num_scales!r}")
        return torch.linspace(self.t_min, 1.0, num_scales, dtype=torch.float64)

    def check_time(self, t, x) -> torch.Tensor:
        """t (a float, 0-dim or (B,)) -> (B,) in x's dtype; a float is converted directly to it, so that
        t = t_min gives exactly the t_min of consistency_function in float64 too."""
        t = as_time(t if isinstance(t, torch.Tensor) else torch.tensor(t, dtype=x.dtype), x)
        if (t < self.t_min - 1e-6).any() or (t > 1 + 1e-6).any():
            raise ValueError(f"consistency times lie in [t_min, 1] = [{self.t_min:.4g}, 1], got {t.min().item():.4g}"
                             f" .. {t.max().item():.4g}")
        return t

    def consistency_function(self, x, t, net) -> torch.Tensor:
        """f(x, t) = c_skip x + c_out F(c_in x, t) (eq. 5); c_skip - 1 and c_out are exactly 0 at t_min, since
        sigma(t) - sigma(t_min) is then computed from equal inputs, so f(x, t_min) = x exactly."""
        t = self.check_time(t, x)
        sigma, sigma_min = self.sigma(t), self.sigma(torch.full_like(t, self.t_min))
        data_std = self.config.sigma_data
        skip = per_example(c_skip(sigma, sigma_min, data_std), x)
        out = per_example(c_out(sigma, sigma_min, data_std), x)
        scaled = per_example(c_in(sigma, data_std), x) * x
        return skip * x + out * self.unflat(net(self.flat(scaled), t))

    def f(self, x, t):  # f_theta: (B, *E), (B,) -> (B, *E)
        return self.consistency_function(x, t, self.net)

    @torch.no_grad()
    def f_target(self, x, t):  # f_theta^- (eq. 8): no gradient reaches the target network
        return self.consistency_function(x, t, self.target_net)

    def distance(self, a, b):
        """d(a, b) = |a - b|^2 per example, (B,) (the paper's l2 metric)."""
        return (a - b).pow(2).flatten(1).sum(1)

    def target_decay(self) -> float:  # mu of eq. 8 at the current update
        raise NotImplementedError

    def trains_consistency(self) -> bool:  # False while a subclass trains something else (CD's own teacher)
        return True

    def after_update(self, *batch):
        """theta^- <- mu theta^- + (1 - mu) theta (eq. 8), then count the update."""
        if self.trains_consistency():
            mu = self.target_decay()
            for target, online in zip(self.target_net.parameters(), self.net.parameters()):
                target.lerp_(online, 1 - mu)
        self.updates += 1

    @torch.no_grad()
    def sample(self, n, steps=None, *, times=None, generator=None):
        """Alg. 1 with NFE = steps: x = f(sigma_max z, 1), then re-noise to each of `times` (steps - 1
        decreasing times in (t_min, 1); default equally spaced in t) and denoise again."""
        steps = self.config.sample_steps if steps is None else steps
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise ValueError(f"steps must be a positive int, got {steps!r}")
        if times is None:
            times = torch.linspace(1.0, self.t_min, steps + 1, dtype=torch.float64)[1:-1]
        times = torch.as_tensor(times, dtype=torch.float64).reshape(-1)
        if len(times) != steps - 1 or (times >= 1).any() or (times <= self.t_min).any() or (times.diff() >= 0).any():
            raise ValueError(f"times must be {steps - 1} decreasing times in (t_min, 1) = ({self.t_min:.4g}, 1), "
                             f"got {times.tolist()}")
        x = self.config.sigma_max * self.randn(self.check_n(n), *self.event_shape, generator=generator)
        sigma_min = self.config.sigma_min

        def noise_level(tau):  # x_tau = x + sqrt(sigma(tau)^2 - sigma_min^2) z (Alg. 1)
            return math.sqrt(float(self.sigma(torch.tensor(tau, dtype=torch.float64))) ** 2 - sigma_min**2)

        return multistep_sampling(self.f, x, [1.0, *times.tolist()], noise_level, generator)


# -- consistency distillation --------------------------------------------------------------------
def noise_prediction(teacher: GenerativeModel, x, t):
    """E[z | x_t] of a trained model on its Gaussian path: from its score (ScoreBased) or velocity (FlowBased)."""
    path = teacher.gaussian_path
    if isinstance(teacher, FlowBased):
        return path.eps_from_velocity(x, teacher.velocity(x, t), t)
    return path.eps_from_score(teacher.score(x, t), t)


def time_of_noise_level(path: GaussianPath, s, iterations: int = 60) -> torch.Tensor:
    """The t in [0, 1] with sigma_t / alpha_t = s on a Gaussian path (increasing in t), by bisection (float64)."""
    s = torch.as_tensor(s, dtype=torch.float64)
    one = torch.ones((), dtype=torch.float64)
    top = path.sigma(one) / path.alpha(one)  # inf on the linear path
    if (s > top).any() or (s < 0).any():
        raise ValueError(f"noise levels must lie in [0, {top.item():.4g}] on the {path.name} path, got up to "
                         f"{s.max().item():.4g}; lower sigma_max")
    low, high = torch.zeros_like(s), torch.ones_like(s)
    for _ in range(iterations):
        mid = (low + high) / 2
        above = path.sigma(mid) / path.alpha(mid) > s
        low, high = torch.where(above, low, mid), torch.where(above, mid, high)
    return (low + high) / 2


@dataclass
class ConsistencyDistillationConfig(ConsistencyConfig):
    num_scales: int = 18  # N: the grid t_1 < ... < t_N (the paper's CIFAR-10 value, Heun solver)
    mu: float = 0.9  # target EMA decay (the paper: 0.95 on CIFAR-10); two moons, 2 steps: G 0.96 vs 0.88 with 0.95
    teacher_steps: int = 1500  # the first fit steps train the built-in DDPM teacher; 0 with from_teacher
    teacher_ema: float = 0.995  # the built-in teacher is distilled with its weights averaged over those steps


@register("consistency_distillation", recipes={"2d": Recipe(steps=3500, lr=1e-2, ema_decay=0.995,
                                                            min_quality={"two_moons": 0.75, "eight_gaussians": 0.85})})
class ConsistencyDistillation(ConsistencyModel):
    """CD (Alg. 2) from a PF-ODE teacher: `from_teacher(trained_model)` (a DDPM, score SDE or flow-matching
    model trained before), or, built by the zoo, a DDPM (epsilon) trained in the same fit for the first
    config.teacher_steps steps (with its own EMA), then frozen: fit(make("consistency_distillation", ...))."""

    Config = ConsistencyDistillationConfig

    def __init__(self, event_shape, config: ConsistencyDistillationConfig | None = None,
                 teacher: GenerativeModel | None = None):
        config = config or self.Config()
        super().__init__(event_shape, config)
        if config.teacher_steps < 0 or not 0 <= config.mu < 1:
            raise ValueError(f"need teacher_steps >= 0 and 0 <= mu < 1, got {config.teacher_steps}, {config.mu}")
        self.teacher = DDPM(event_shape) if teacher is None else teacher
        if not isinstance(self.teacher, (ScoreBased, FlowBased)) or not hasattr(self.teacher, "gaussian_path"):
            raise TypeError(f"the teacher must be a ScoreBased or FlowBased model on a Gaussian path (DDPM, "
                            f"ScoreSDE, FlowMatching), got {type(self.teacher).__name__}")
        if tuple(self.teacher.event_shape) != self.event_shape:
            raise ShapeError(f"the teacher models events of shape {self.teacher.event_shape}, the student "
                             f"{self.event_shape}")
        if config.teacher_steps:  # the EMA of the teacher while it trains, copied into it at the switch
            self.teacher_average = copy.deepcopy(self.teacher).requires_grad_(False)
        grid = self.grid(config.num_scales)
        self.register_buffer("grid_times", grid.to(torch.get_default_dtype()), persistent=False)  # (N,)
        teacher_times = time_of_noise_level(self.teacher.gaussian_path, self.sigma(grid))  # same s = sigma / alpha
        self.register_buffer("teacher_times", teacher_times.to(torch.get_default_dtype()), persistent=False)

    @classmethod
    def from_teacher(cls, teacher: GenerativeModel, config: ConsistencyDistillationConfig | None = None,
                     **overrides) -> "ConsistencyDistillation":
        """A student distilling an already trained model (a frozen copy of it; the original is left alone):
        every fit step is a CD step. overrides: config fields, e.g. num_scales=40."""
        config = dataclasses.replace(config or cls.Config(), **overrides, teacher_steps=0)
        frozen = copy.deepcopy(teacher).eval().requires_grad_(False)
        return cls(teacher.event_shape, config, teacher=frozen).to(teacher.device, teacher.dtype)

    def trains_consistency(self) -> bool:
        return int(self.updates) >= self.config.teacher_steps

    def target_decay(self) -> float:
        return self.config.mu

    def after_update(self, *batch):
        """While the teacher trains, average its weights (EMA); after its last step, load the average."""
        if not self.trains_consistency():
            average, teacher = self.teacher_average.parameters(), self.teacher.parameters()
            for shadow, weight in zip(average, teacher):
                shadow.lerp_(weight, 1 - self.config.teacher_ema)
            if int(self.updates) + 1 == self.config.teacher_steps:
                self.teacher.load_state_dict(self.teacher_average.state_dict())
        super().after_update(*batch)

    # -- the teacher's PF-ODE in y = x / alpha, s = sigma / alpha: dy/ds = E[z | y] ---------------
    def teacher_noise(self, y, n):
        """E[z | y] at grid index n (B,): the teacher's noise prediction at x = alpha y, its own time."""
        t = self.teacher_times[n]
        (alpha,) = self.teacher.gaussian_path.coefficients(t, y, "alpha")
        return noise_prediction(self.teacher, alpha * y, t)

    def teacher_step(self, y, n):
        """x_hat_{t_n} from x_{t_{n+1}} = y by one Heun step of the teacher's PF-ODE (eq. 6; Karras Alg. 1)."""
        h = per_example(self.sigma(self.grid_times[n]) - self.sigma(self.grid_times[n + 1]), y)
        slope = self.teacher_noise(y, n + 1)
        euler = y + h * slope
        return y + h / 2 * (slope + self.teacher_noise(euler, n))

    @torch.no_grad()
    def sample_teacher(self, n, *, generator=None):
        """The teacher's PF-ODE from sigma_max z to sigma_min by Heun on the student's grid: what CD distils
        into one step (NFE = 2 (N - 1))."""
        y = self.config.sigma_max * self.randn(self.check_n(n), *self.event_shape, generator=generator)
        for index in range(self.config.num_scales - 2, -1, -1):
            y = self.teacher_step(y, torch.full((n,), index, device=y.device))
        return y

    def training_draw(self, x0, generator=None):
        """n uniform in {0, ..., N - 2} (t_n, t_{n+1} adjacent), then z ~ N(0, I) (in this order)."""
        n = randint(0, self.config.num_scales - 1, (x0.shape[0],), x0, generator)
        return n, randn_like(x0, generator)

    def distillation_loss(self, x, *, generator=None):
        """L_CD = E d(f(x_{t_{n+1}}, t_{n+1}), f^-(x_hat_{t_n}, t_n)), x_{t_{n+1}} = x_0 + sigma_{n+1} z (eq. 7)."""
        x0 = self.check_input(x)
        n, z = self.training_draw(x0, generator)
        x_next = self.gaussian_path.sample(x0, z, self.grid_times[n + 1])
        with torch.no_grad():
            target = self.f_target(self.teacher_step(x_next, n), self.grid_times[n])
        return self.distance(self.f(x_next, self.grid_times[n + 1]), target).mean()  # lambda = 1

    def loss(self, x, *, generator=None):
        """The teacher's own loss for the first config.teacher_steps optimiser steps, then L_CD."""
        if not self.trains_consistency():
            return self.teacher.loss(x, generator=generator)
        return self.distillation_loss(x, generator=generator)


# -- consistency training ------------------------------------------------------------------------
def num_scales_ct(k: int, total: int, s0: int = 2, s1: int = 150) -> int:
    """N(k) = ceil(sqrt(k / K ((s1 + 1)^2 - s0^2) + s0^2) - 1) + 1 (App. C): s0 at k = 0, s1 + 1 at k >= K."""
    k = min(k, total)
    return math.ceil(math.sqrt(k / total * ((s1 + 1) ** 2 - s0**2) + s0**2) - 1) + 1


def target_decay_ct(num_scales: int, s0: int = 2, mu0: float = 0.9) -> float:
    """mu(k) = exp(s0 log mu0 / N(k)) (App. C): the target moves more slowly as the grid gets finer.
    mu0 = 0 gives mu = 0: the target is the online network under stop-gradient (Song & Dhariwal 2023)."""
    return math.exp(s0 * math.log(mu0) / num_scales) if mu0 > 0 else 0.0


@dataclass
class ConsistencyTrainingConfig(ConsistencyConfig):
    s0: int = 2  # initial discretisation steps (App. C)
    s1: int = 35  # final discretisation steps; the paper's 150 (for 800k updates) collapses in 3,000 (G -2.7)
    mu0: float = 0.9  # target EMA decay at the start; 0: no EMA (iCT), measured G 0.96 vs 0.81 on two moons
    total_steps: int = 3000  # K, the updates over which N(k) grows (the quick recipe's steps; N stays at s1 + 1 after)
    huber_c: float = 0.0076  # c of the pseudo-Huber metric: 10 x iCT's 0.00054 sqrt(D), D = 2


@register("consistency_training", recipes={"2d": Recipe(steps=3000, lr=1e-2, ema_decay=0.995,
                                                        min_quality={"two_moons": 0.7, "eight_gaussians": 0.85})})
class ConsistencyTraining(ConsistencyModel):
    """CT (Alg. 3): no teacher; the pair x_0 + sigma_{n+1} z, x_0 + sigma_n z shares z, so the PF-ODE step
    of CD is replaced by the data point itself (the score's unbiased estimator, Thm. 2). Two changes of
    improved CT (Song & Dhariwal 2023, arXiv:2310.14189, Sec. 3.3-3.4): the pseudo-Huber metric and the weight
    lambda(sigma_n) = 1 / (sigma_{n+1} - sigma_n); with the paper's l2 and lambda = 1, G was 0.61 on two moons
    (1 step, 3,000 updates), with them 0.81."""

    Config = ConsistencyTrainingConfig

    def __init__(self, event_shape, config: ConsistencyTrainingConfig | None = None):
        config = config or self.Config()
        super().__init__(event_shape, config)
        if config.s0 < 1 or config.s1 < config.s0 or config.total_steps < 1 or not 0 <= config.mu0 < 1:
            raise ValueError("need 1 <= s0 <= s1, total_steps >= 1 and 0 <= mu0 < 1, got "
                             f"{config.s0}, {config.s1}, {config.total_steps}, {config.mu0}")

    def num_scales(self) -> int:  # N(k) at the current update k
        c = self.config
        return num_scales_ct(int(self.updates), c.total_steps, c.s0, c.s1)

    def target_decay(self) -> float:
        return target_decay_ct(self.num_scales(), self.config.s0, self.config.mu0)

    def training_pair(self, x0, generator=None):
        """(x_{t_{n+1}}, t_{n+1}, x_{t_n}, t_n) = (x_0 + sigma_{n+1} z, ., x_0 + sigma_n z, .) with one z,
        n uniform in {0, ..., N(k) - 2}."""
        grid = self.grid(self.num_scales()).to(x0)
        n = randint(0, len(grid) - 1, (x0.shape[0],), x0, generator)
        z = randn_like(x0, generator)
        t_next, t_now = grid[n + 1], grid[n]
        return self.gaussian_path.sample(x0, z, t_next), t_next, self.gaussian_path.sample(x0, z, t_now), t_now

    def distance(self, a, b):
        """Pseudo-Huber d(a, b) = sqrt(|a - b|^2 + c^2) - c (iCT, Sec. 3.3): l2 near 0, l1 for outliers, (B,)."""
        c = self.config.huber_c
        return ((a - b).pow(2).flatten(1).sum(1) + c**2).sqrt() - c

    def loss(self, x, *, generator=None):
        """L_CT = E lambda(sigma_n) d(f(x_0 + sigma_{n+1} z, t_{n+1}), f^-(x_0 + sigma_n z, t_n)) (eq. 10),
        lambda(sigma_n) = 1 / (sigma_{n+1} - sigma_n) (iCT, Sec. 3.4)."""
        x_next, t_next, x_now, t_now = self.training_pair(self.check_input(x), generator)
        weight = 1 / (self.sigma(t_next) - self.sigma(t_now))
        return (weight * self.distance(self.f(x_next, t_next), self.f_target(x_now, t_now))).mean()
