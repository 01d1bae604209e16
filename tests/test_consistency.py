"""Consistency models (CD and CT): oracles with closed forms, and the quality gates after training.

For data N(m, S^2 I) the PF-ODE of every Gaussian path, read in y = x / alpha_t at noise level
s = sigma_t / alpha_t, is dy/ds = s (y - m) / (S^2 + s^2): (y - m) / sqrt(S^2 + s^2) is constant along a
trajectory, so the exact consistency function is linear, f*(y, s) = m + sqrt((S^2 + s_min^2) / (S^2 + s^2)) (y - m).
Plugging it (and the exact teacher of a DDPM or a flow-matching model) into the models checks the CD loss,
the teacher's Heun step and the time conversions independently of any training.
"""
import math

import pytest
import torch

from unigm import zoo
from unigm.base import ShapeError
from unigm.diffusion import DDPM, ConsistencyDistillation, ConsistencyTraining
from unigm.diffusion.consistency import c_out, c_skip, multistep_sampling, num_scales_ct, target_decay_ct
from unigm.flows import FlowMatching
from unigm.samplers import count_nfe

F64 = torch.float64
MEAN, STD = torch.tensor([1.0, -0.5], dtype=F64), 0.6


class ExactDDPM(DDPM):
    """E[eps | x_t] for data N(m, S^2 I) on the VP path: sigma (x - alpha m) / (alpha^2 S^2 + sigma^2)."""

    def predict_eps(self, x, t):
        alpha, sigma = self.gaussian_path.coefficients(t, x, "alpha", "sigma")
        return sigma * (x - alpha * MEAN) / (alpha**2 * STD**2 + sigma**2)


class ExactFlow(FlowMatching):
    """The marginal velocity of the linear path for data N(m, S^2 I) (as in test_models)."""

    def velocity(self, x, t):
        t = t[:, None]
        variance = (1 - t) ** 2 * STD**2 + t**2
        return -MEAN + (t - (1 - t) * STD**2) / variance * (x - (1 - t) * MEAN)


def exact_student(teacher, data_std=STD, **config):
    """A CD student of `teacher` whose consistency function is the closed form of data N(m, data_std^2 I)."""

    class Exact(ConsistencyDistillation):
        def consistency_function(self, x, t, net):
            s, s_min = self.sigma(self.check_time(t, x))[:, None], self.config.sigma_min
            return MEAN + ((data_std**2 + s_min**2) / (data_std**2 + s**2)).sqrt() * (x - MEAN)

    return Exact.from_teacher(teacher, **config)


def gaussian_batch(n=4096, seed=0):
    return MEAN + STD * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=F64)


# -- the parametrisation -----------------------------------------------------------------------
@pytest.mark.parametrize("cls", [ConsistencyDistillation, ConsistencyTraining])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_boundary_condition_holds_exactly(cls, dtype):
    """f(x, t_min) = x bit for bit, for the online and the target network, untrained and with large outputs."""
    torch.manual_seed(0)
    model = cls((2,)).to(dtype)
    with torch.no_grad():
        model.net.layers[-1].bias.fill_(1e3)  # F is far from 0: only c_out = 0 can cancel it
    x = 5 * torch.randn(64, 2, dtype=dtype)
    assert torch.equal(model.f(x, model.t_min), x) and torch.equal(model.f_target(x, model.t_min), x)
    assert model.sigma(torch.tensor(model.t_min, dtype=F64)).item() == pytest.approx(model.config.sigma_min, rel=1e-12)
    assert not torch.allclose(model.f(x, 0.5), x)  # away from the boundary the network acts


def test_c_skip_and_c_out_are_the_papers_and_reduce_to_karras():
    """App. C of the paper; with sigma_min = 0 they are EDM's c_skip = sd^2 / (s^2 + sd^2),
    c_out = s sd / sqrt(s^2 + sd^2) (Karras et al. 2022, Table 1)."""
    sigma, eps, sd = torch.tensor([0.002, 0.1, 1.0, 20.0], dtype=F64), 0.002, 0.5
    torch.testing.assert_close(c_skip(sigma, eps, sd), sd**2 / ((sigma - eps) ** 2 + sd**2))
    torch.testing.assert_close(c_out(sigma, eps, sd), sd * (sigma - eps) / (sd**2 + sigma**2).sqrt())
    assert c_skip(sigma, eps, sd)[0] == 1 and c_out(sigma, eps, sd)[0] == 0
    torch.testing.assert_close(c_skip(sigma, 0.0, sd), sd**2 / (sigma**2 + sd**2))
    torch.testing.assert_close(c_out(sigma, 0.0, sd), sigma * sd / (sigma**2 + sd**2).sqrt())
    assert c_skip(torch.tensor(1e6, dtype=F64), eps, sd) < 1e-12  # pure noise: f = c_out F only


def test_time_grid_is_the_papers_discretisation():
    """t_i = (eps^(1/rho) + (i - 1) / (N - 1) (T^(1/rho) - eps^(1/rho)))^rho, i = 1..N (Sec. 5), as sigma(t_i)."""
    model = ConsistencyTraining((2,))
    c, N = model.config, 18
    i = torch.arange(1, N + 1, dtype=F64)
    low, high = c.sigma_min ** (1 / c.rho), c.sigma_max ** (1 / c.rho)
    paper = (low + (i - 1) / (N - 1) * (high - low)) ** c.rho
    torch.testing.assert_close(model.sigma(model.grid(N)), paper, rtol=1e-12, atol=0)


def test_ct_schedules_of_appendix_c():
    assert num_scales_ct(0, 1000) == 2 and num_scales_ct(1000, 1000) == 151 and num_scales_ct(5000, 1000) == 151
    values = [num_scales_ct(k, 1000) for k in range(0, 1001, 50)]
    assert values == sorted(values)
    assert num_scales_ct(500, 1000) == math.ceil(math.sqrt(0.5 * (151**2 - 4) + 4) - 1) + 1
    assert target_decay_ct(3) == pytest.approx(0.9 ** (2 / 3)) and target_decay_ct(151) > target_decay_ct(3)
    assert target_decay_ct(40, mu0=0.0) == 0.0  # iCT: the target is the online network


# -- the two losses ------------------------------------------------------------------------------
def test_ct_pairs_share_their_noise():
    model = ConsistencyTraining((2,))
    model.updates.fill_(1500)  # N(k) > 2: pairs anywhere on the grid
    x0 = torch.randn(512, 2)
    x_next, t_next, x_now, t_now = model.training_pair(x0, torch.Generator().manual_seed(0))
    grid = model.grid(model.num_scales()).float()
    index = torch.searchsorted(grid, t_now)
    assert torch.equal(grid[index], t_now) and torch.equal(grid[index + 1], t_next)  # adjacent times
    z_next, z_now = (x_next - x0) / model.sigma(t_next)[:, None], (x_now - x0) / model.sigma(t_now)[:, None]
    torch.testing.assert_close(z_next, z_now, rtol=1e-4, atol=1e-4)
    assert len(t_now.unique()) > 10


@pytest.mark.parametrize("name", ["cd", "ct"])
def test_target_network_receives_no_gradient_and_follows_the_ema(name):
    torch.manual_seed(0)
    model = ConsistencyTraining((2,)) if name == "ct" else ConsistencyDistillation.from_teacher(DDPM((2,)))
    with torch.no_grad():  # let online and target differ
        for p in model.net.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.loss(torch.randn(64, 2), generator=torch.Generator().manual_seed(1)).backward()
    assert all(p.grad is None and not p.requires_grad for p in model.target_net.parameters())
    assert all(p.grad is None for p in model.teacher.parameters()) if name == "cd" else True
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.net.parameters())
    target, online = [p.clone() for p in model.target_net.parameters()], list(model.net.parameters())
    mu = model.target_decay()
    model.after_update(torch.randn(64, 2))  # what the trainer calls after each optimiser step (eq. 8)
    for new, old, theta in zip(model.target_net.parameters(), target, online):
        torch.testing.assert_close(new, mu * old + (1 - mu) * theta)


@pytest.mark.parametrize("teacher_cls", [ExactDDPM, ExactFlow], ids=["ddpm_vp_path", "flow_matching_linear_path"])
def test_cd_loss_of_the_exact_consistency_function(teacher_cls):
    """With the exact teacher and f = f*, the CD loss is only Heun's local error: O(h^3) per step, so the
    loss falls like h^6 as the grid is refined; with the exact ODE step it is 0. A wrong f (the consistency
    function of the wrong data std) that still meets the boundary condition pays much more."""
    teacher = teacher_cls((2,)).double()
    x0, g = gaussian_batch(), lambda: torch.Generator().manual_seed(2)  # noqa: E731
    losses = [exact_student(teacher, num_scales=N).loss(x0, generator=g()).item() for N in (10, 20, 40)]
    assert losses[-1] < 1e-7 and losses[0] / losses[1] > 40 and losses[1] / losses[2] > 40, losses  # ~ 2.1^6
    wrong = exact_student(teacher, data_std=0.9, num_scales=20).loss(x0, generator=g()).item()
    assert wrong > 100 * losses[1], (wrong, losses)

    class ExactStep(type(exact_student(teacher))):  # the closed-form flow map from s_{n+1} to s_n
        def teacher_step(self, y, n):
            s_from, s_to = self.sigma(self.grid_times[n + 1])[:, None], self.sigma(self.grid_times[n])[:, None]
            return MEAN + ((STD**2 + s_to**2) / (STD**2 + s_from**2)).sqrt() * (y - MEAN)

    exact = ExactStep.from_teacher(teacher, num_scales=20)
    assert exact.loss(x0, generator=g()).item() < 1e-20


def test_teacher_heun_step_follows_the_closed_form_flow_map():
    """One Heun step of the exact DDPM teacher, converted to y = x / alpha: third-order local error."""
    model = exact_student(ExactDDPM((2,)).double(), num_scales=40)
    y = MEAN + 3 * torch.randn(100, 2, dtype=F64, generator=torch.Generator().manual_seed(3))
    n = torch.full((100,), 30)
    s_from, s_to = model.sigma(model.grid_times[31]), model.sigma(model.grid_times[30])
    exact = MEAN + ((STD**2 + s_to**2) / (STD**2 + s_from**2)).sqrt() * (y - MEAN)
    error = (model.teacher_step(y, n) - exact).abs().max().item()
    assert error < 1e-3 * (s_from - s_to).item(), error


# -- sampling ------------------------------------------------------------------------------------
def test_multistep_sampling_with_one_step_is_the_one_step_sampler():
    torch.manual_seed(0)
    model = ConsistencyTraining((2,))
    with count_nfe() as nfe:
        one = model.sample(100, steps=1, generator=torch.Generator().manual_seed(4))
    assert nfe.count == 1
    x_T = model.config.sigma_max * torch.randn(100, 2, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.equal(one, model.f(x_T, 1.0))
    assert torch.equal(model.sample(100, generator=torch.Generator().manual_seed(4)), one)  # default: 1 step
    with count_nfe() as nfe:
        model.sample(100, steps=4)
    assert nfe.count == 4


def test_multistep_renoises_with_the_papers_noise_level():
    """Alg. 1 with f = identity: x_T = sigma_max z_0, plus sqrt(sigma(tau)^2 - sigma_min^2) z_k at each later tau."""

    class Identity(ConsistencyTraining):
        def consistency_function(self, x, t, net):
            return x

    model, times = Identity((2,)).double(), [0.8, 0.5]
    out = model.sample(10, steps=3, times=times, generator=torch.Generator().manual_seed(5))
    g, c = torch.Generator().manual_seed(5), model.config
    expected = c.sigma_max * torch.randn(10, 2, generator=g, dtype=F64)
    for tau in times:
        level = math.sqrt((c.sigma_max * tau**c.rho) ** 2 - c.sigma_min**2)
        expected += level * torch.randn(10, 2, generator=g, dtype=F64)
    torch.testing.assert_close(out, expected)
    identity = multistep_sampling(lambda y, t: y, torch.zeros(10, 2), [1.0], None)  # one time: one call, no noise
    assert torch.equal(identity, torch.zeros(10, 2))


def test_clear_errors_on_bad_input():
    model = ConsistencyTraining((2,))
    for steps in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="steps must be a positive int"):
            model.sample(10, steps=steps)
    with pytest.raises(ValueError, match="decreasing times"):
        model.sample(10, steps=3, times=[0.5, 0.7])
    with pytest.raises(ValueError, match="decreasing times"):
        model.sample(10, steps=2, times=[0.5, 0.4])
    with pytest.raises(ShapeError, match=r"expects a batch of shape \(B, 2\)"):
        model.loss(torch.randn(8, 3))
    with pytest.raises(ValueError, match="positive int"):
        model.sample(0)
    with pytest.raises(ValueError, match="consistency times lie in"):
        model.f(torch.randn(4, 2), 0.01)
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        zoo.make("consistency_training", (2,), sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(TypeError, match="ScoreBased or FlowBased"):
        ConsistencyDistillation.from_teacher(ConsistencyTraining((2,)))
    with pytest.raises(ShapeError, match="teacher models events of shape"):
        ConsistencyDistillation((3,), teacher=DDPM((2,)))
    with pytest.raises(ValueError, match="lower sigma_max"):  # the DDPM reaches sigma / alpha ~ 152 at t = 1
        ConsistencyDistillation.from_teacher(DDPM((2,)), sigma_max=500.0)


# Quality after training (1 and 2 steps of CD, 1 step of CT) is asserted in tests/test_quality.py,
# on the models it trains for the zoo's gates.
