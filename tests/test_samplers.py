"""Sampler oracles: convergence orders on a linear ODE, SDE moments in closed form,
divergences against the Jacobian, ODE likelihood against an analytic Gaussian flow."""
import math

import pytest
import torch

from unigm import paths, samplers, schedules
from unigm.densities import GaussianMixtureOnPath


def linear_field(a):
    return lambda x, t: a * x


@pytest.mark.parametrize("method, order", [(samplers.euler, 1), (samplers.heun, 2), (samplers.rk4, 4)])
def test_ode_solvers_converge_at_their_order(method, order):
    """dx/dt = -x from t = 1 to 0: x(0) = x(1) e^{1}. Halving the step divides the error by 2^order."""
    x1 = torch.tensor([[1.0]], dtype=torch.float64)
    exact = math.e
    errors = [abs(method(linear_field(-1.0), x1, steps).item() - exact) for steps in (8, 16, 32)]
    rates = [math.log2(errors[i] / errors[i + 1]) for i in range(2)]
    assert all(abs(r - order) < 0.2 for r in rates), rates


class LinearField(torch.nn.Module):
    """f(x, t) = a x as a network: a module with submodules, so that count_nfe can see it."""

    def __init__(self, a):
        super().__init__()
        self.scale = torch.nn.Linear(1, 1, bias=False)
        torch.nn.init.constant_(self.scale.weight, a)

    def forward(self, x, t):
        return self.scale(x[..., None])[..., 0]


@pytest.mark.parametrize("method, per_step", [(samplers.euler, 1), (samplers.heun, 2), (samplers.rk4, 4)])
def test_solvers_record_trajectories_and_count_network_evaluations(method, per_step):
    f, traj = LinearField(1.0), []
    with samplers.count_nfe() as nfe:
        method(f, torch.ones(3, 2), steps=5, trajectory=traj)
    assert nfe.count == 5 * per_step and len(traj) == 6  # the nested Linear is not counted again
    f(torch.ones(1, 2), torch.zeros(1))
    assert nfe.count == 5 * per_step  # hooks are gone after the block
    with samplers.count_nfe() as nfe:
        samplers.euler(linear_field(1.0), torch.ones(3, 2), steps=5)
    assert nfe.count == 0  # an analytic field is no network
    with pytest.raises(ValueError, match="positive int"):
        samplers.euler(f, torch.ones(1, 1), steps=0)


def test_nfe_counter_survives_an_exception_inside_a_network():
    class Failing(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    with samplers.count_nfe() as nfe:
        with pytest.raises(RuntimeError, match="boom"):
            Failing()(torch.zeros(1))
        torch.nn.Linear(1, 1)(torch.zeros(1, 1))
    assert nfe.count == 2  # the failed call left the nesting depth at zero


def test_euler_maruyama_reproduces_ornstein_uhlenbeck_moments():
    """dx = -x dt + sqrt(2) dW from x(0) = 2 has mean 2 e^{-t} and variance 1 - e^{-2t}."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((200_000, 1), 2.0, dtype=torch.float64)
    x = samplers.euler_maruyama(lambda x, t: -x, lambda t: torch.full_like(t, math.sqrt(2)), x0,
                                steps=200, t_start=0.0, t_end=1.0, generator=g)
    assert x.mean().item() == pytest.approx(2 * math.exp(-1), abs=0.01)
    assert x.var().item() == pytest.approx(1 - math.exp(-2), abs=0.01)


def test_langevin_with_an_analytic_score_samples_the_gaussian():
    g = torch.Generator().manual_seed(0)
    mean, std = 1.5, 0.5
    score = lambda x, t: -(x - mean) / std**2  # noqa: E731
    x = samplers.langevin(score, torch.zeros(20_000, 1, dtype=torch.float64), steps=400, step_size=0.005, generator=g)
    # ULA's stationary variance for a Gaussian is std^2 / (1 - eps / (2 std^2)): 2.5% above here
    assert x.mean().item() == pytest.approx(mean, abs=0.01)
    assert x.std().item() == pytest.approx(std / math.sqrt(1 - 0.005 / (2 * std**2)), rel=0.02)


def test_exact_divergence_is_the_trace_of_the_jacobian():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).double()
    f = lambda x, t: net(x) * (1 + t[:, None])  # noqa: E731
    x, t = torch.randn(4, 3, dtype=torch.float64), torch.rand(4, dtype=torch.float64)
    _, div = samplers.divergence_exact(f, x, t)
    for i in range(4):
        jac = torch.autograd.functional.jacobian(lambda y: f(y[None], t[i:i + 1])[0], x[i])
        assert div[i].item() == pytest.approx(torch.trace(jac).item(), rel=1e-10)


def test_hutchinson_is_unbiased_with_the_predicted_variance():
    """For f(x) = A x and Rademacher probes, v^T A v has mean tr A and variance
    sum_{i != j} A_ij (A_ij + A_ji)."""
    g = torch.Generator().manual_seed(0)
    A = torch.randn(4, 4, generator=g, dtype=torch.float64)
    f = lambda x, t: x @ A.T  # noqa: E731
    x = torch.zeros(20_000, 4, dtype=torch.float64)
    _, est = samplers.divergence_hutchinson(f, x, torch.zeros(20_000, dtype=torch.float64), generator=g)
    off = ~torch.eye(4, dtype=torch.bool)
    predicted_var = (A[off] * (A[off] + A.T[off])).sum().item()
    assert est.mean().item() == pytest.approx(torch.trace(A).item(), abs=4 * math.sqrt(predicted_var / 20_000))
    assert est.var().item() == pytest.approx(predicted_var, rel=0.05)


def test_ode_log_prob_of_the_gaussian_flow_matching_field_is_exact():
    """Data N(m, s^2 I) on the linear path x_t = (1-t) x0 + t x1 has the marginal velocity
    v(x, t) = -m + (t - (1-t) s^2) / sigma_t^2 (x - (1-t) m), sigma_t^2 = (1-t)^2 s^2 + t^2;
    integrating its divergence must give back log N(x; m, s^2 I)."""
    m, s = torch.tensor([1.0, -0.5], dtype=torch.float64), 0.6

    def velocity(x, t):
        t = t[:, None]
        var = (1 - t) ** 2 * s**2 + t**2
        return -m + (t - (1 - t) * s**2) / var * (x - (1 - t) * m)

    x = torch.randn(50, 2, dtype=torch.float64) * 0.8 + m
    log_prob = samplers.ode_log_prob(velocity, x, samplers.standard_normal_log_prob, steps=50)
    exact = torch.distributions.Normal(m, s).log_prob(x).sum(1)
    torch.testing.assert_close(log_prob, exact, atol=1e-6, rtol=0)
    # and the same field, integrated from noise, samples the data distribution
    z = torch.randn(100_000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    samples = samplers.rk4(velocity, z, steps=20)
    torch.testing.assert_close(samples.mean(0), m, atol=0.01, rtol=0)
    torch.testing.assert_close(samples.std(0), torch.full((2,), s, dtype=torch.float64), atol=0.01, rtol=0)


def test_standard_normal_log_prob_matches_torch():
    x = torch.randn(5, 1, 3, 3)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(x).reshape(5, -1).sum(1)
    torch.testing.assert_close(samplers.standard_normal_log_prob(x), expected)


# -- global orders on an exact problem: Gaussian data carried along the VP path -----------------------------
MU, S, T_END = torch.tensor([1.0, -0.5], dtype=torch.float64), 0.5, 1e-2
X1 = torch.tensor([[0.3, -1.2], [-1.5, 0.8], [2.0, 1.0]], dtype=torch.float64)  # (B, D) starting points at t = 1
GAUSSIAN = GaussianMixtureOnPath(MU[None], S, paths.vp_path())  # one component: p_0 = N(MU, S^2 I)


def flow_map(x1, t):
    """The PF-ODE of data N(mu, s^2 I) on the VP path, carried from time 1 to t, in closed form.
    p_t = N(alpha_t mu, v_t I) with v_t = alpha_t^2 s^2 + sigma_t^2 = alpha_bar s^2 + 1 - alpha_bar, and the
    PF-ODE velocity alpha' x / alpha + (alpha' sigma^2 / alpha - (sigma^2)' / 2) score, score = -(x - alpha mu) / v,
    simplifies (using v' = 2 alpha alpha' s^2 + (sigma^2)') to
        dx/dt = alpha'_t mu + v'_t / (2 v_t) (x - alpha_t mu).
    So y = x - alpha_t mu obeys y' = (v' / 2v) y, i.e. y_t = sqrt(v_t / v_1) y_1: an affine map,
        x_t = alpha_t mu + sqrt(v_t / v_1) (x_1 - alpha_1 mu)."""
    alpha_bar = schedules.alpha_bar_vp_linear(torch.as_tensor(t, dtype=torch.float64))
    alpha_bar_1 = schedules.alpha_bar_vp_linear(torch.tensor(1.0, dtype=torch.float64))
    v_t, v_1 = alpha_bar * S**2 + 1 - alpha_bar, alpha_bar_1 * S**2 + 1 - alpha_bar_1
    return alpha_bar.sqrt() * MU + (v_t / v_1).sqrt() * (x1 - alpha_bar_1.sqrt() * MU)


def exact_eps(x, t):
    """E[eps | x_t = x] = -sigma_t grad log p_t(x), exact for the Gaussian."""
    return GAUSSIAN.path.eps_from_score(GAUSSIAN.score(x, t), t)


def solve_gaussian_pf_ode(solver, steps, **options):
    """x at T_END from X1 with `steps` equal steps in t; the eps-solvers see exact eps, the others dx/dt."""
    if solver in (samplers.ddim, samplers.dpm_solver2):
        return solver(exact_eps, X1, steps, schedules.alpha_bar_vp_linear, t_end=T_END, **options)
    return solver(GAUSSIAN.velocity, X1, steps, t_end=T_END, **options)


def test_the_gaussian_flow_map_solves_the_probability_flow_ode():
    """The closed form starts at x_1 and its time derivative (autograd) is the exact PF-ODE velocity."""
    torch.testing.assert_close(flow_map(X1, 1.0), X1, atol=1e-14, rtol=0)
    for t in (0.01, 0.1, 0.5, 0.9):
        t = torch.tensor(t, dtype=torch.float64)
        dx_dt = torch.autograd.functional.jacobian(lambda time: flow_map(X1, time), t)  # (B, D)
        torch.testing.assert_close(dx_dt, GAUSSIAN.velocity(flow_map(X1, t), t), atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("solver, order", [(samplers.euler, 1), (samplers.ddim, 1), (samplers.heun, 2),
                                           (samplers.dpm_solver2, 2), (samplers.rk4, 4)],
                         ids=["euler", "ddim", "heun", "dpm_solver2", "rk4"])
def test_every_ode_solver_reaches_its_global_order_on_the_gaussian_pf_ode(solver, order):
    """Max error at T_END against the closed-form flow map, for 16, 32, 64 steps (past the large-step
    regime, RK4 still far above round-off): the least-squares slope of log error vs log step is the order."""
    steps = [16, 32, 64]
    exact = flow_map(X1, T_END)
    errors = [(solve_gaussian_pf_ode(solver, n) - exact).norm(dim=1).max().item() for n in steps]
    assert samplers.measured_order(errors, steps) == pytest.approx(order, abs=0.3), errors


def test_dpm_solver2_is_second_order_for_any_intermediate_point():
    """r = 1 puts the extra evaluation at the end of the step (the appendix's general form); a step that
    uses eps(u, t_r) alone, right only for r = 1/2, would fall back to first order here."""
    steps = [16, 32, 64]
    exact = flow_map(X1, T_END)
    errors = [(solve_gaussian_pf_ode(samplers.dpm_solver2, n, r=1.0) - exact).norm(dim=1).max().item() for n in steps]
    assert samplers.measured_order(errors, steps) == pytest.approx(2, abs=0.3), errors


def test_dpm_solver2_beats_ddim_at_the_same_nfe_on_the_gaussian():
    """At 128 evaluations (64 DPM-Solver-2 steps, 128 DDIM steps) the second-order solver's error is
    several times smaller; the gap grows like the number of steps (orders 2 vs 1)."""
    exact = flow_map(X1, T_END)
    error_dpm = (solve_gaussian_pf_ode(samplers.dpm_solver2, 64) - exact).norm(dim=1).max().item()
    error_ddim = (solve_gaussian_pf_ode(samplers.ddim, 128) - exact).norm(dim=1).max().item()
    assert error_dpm < error_ddim / 5, (error_dpm, error_ddim)


def test_dpm_solver2_inverts_lambda_and_rejects_bad_input():
    alpha_bar = schedules.alpha_bar_vp_linear
    # t_of_lambda inverts lambda = log(alpha / sigma), i.e. alpha_bar = sigmoid(2 lambda): the closed-form inverse
    lam = torch.tensor([-4.9, -1.0, 0.0, 0.7, 3.4], dtype=torch.float64)
    exact_t = schedules.t_of_alpha_bar_vp_linear(torch.sigmoid(2 * lam))
    torch.testing.assert_close(samplers.t_of_lambda(lam, alpha_bar, 1e-3, 1.0), exact_t, atol=1e-12, rtol=0)
    torch.testing.assert_close(samplers.lambda_of_t(exact_t, alpha_bar), lam, atol=1e-10, rtol=0)
    # two network evaluations a step; the sampler is its one-step function chained
    traj, network = [], LinearField(0.3).double()
    with samplers.count_nfe() as nfe:
        x = samplers.dpm_solver2(network, X1, 3, alpha_bar, trajectory=traj)
    assert nfe.count == 6 and len(traj) == 4
    chained = X1
    for t, s in zip(samplers.time_grid(3, 1.0, 1e-3)[:-1], samplers.time_grid(3, 1.0, 1e-3)[1:]):
        chained = samplers.dpm_solver2_step(network, chained, t, s, alpha_bar)
    torch.testing.assert_close(x, chained, atol=1e-14, rtol=0)
    x = torch.zeros(2, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="positive int"):
        samplers.dpm_solver2(exact_eps, x, 0, alpha_bar)
    with pytest.raises(ValueError, match="strictly decreasing"):
        samplers.dpm_solver2(exact_eps, x, None, alpha_bar, times=[0.5, 0.5, 0.1])
    with pytest.raises(ValueError, match="strictly decreasing"):
        samplers.dpm_solver2(exact_eps, x, None, alpha_bar, times=[0.1, 0.5])
    with pytest.raises(ValueError, match="finite lambda"):  # alpha_bar(0) = 1: lambda = +inf
        samplers.dpm_solver2(exact_eps, x, 4, alpha_bar, t_end=0.0)
    with pytest.raises(ValueError, match="r must be in"):
        samplers.dpm_solver2(exact_eps, x, 4, alpha_bar, r=0.0)


def test_measured_order_is_the_exponent_of_a_power_law():
    steps = [10, 20, 40, 80]
    assert samplers.measured_order([3.0 * n**-2.5 for n in steps], steps) == pytest.approx(2.5, abs=1e-12)
    with pytest.raises(ValueError, match="positive and finite"):
        samplers.measured_order([1e-3, 0.0], [8, 16])
    with pytest.raises(ValueError, match="as many errors"):
        samplers.measured_order([1e-3], [8, 16])
