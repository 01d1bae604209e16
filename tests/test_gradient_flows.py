"""Wasserstein gradient flows with particles and unbalanced OT (unigm.frontier.gradient_flows), against
oracles: the closed-form Gaussian JKO step of lecture 02 (derivations 7.4), the exact Ornstein-Uhlenbeck
flow, the exact law of Euler-Maruyama on a quadratic potential, ot.sinkhorn / ot.emd and a log-domain
generalised Sinkhorn written here."""
import math
import warnings

import numpy as np
import ot
import pytest
import torch
from scipy.optimize import minimize
from scipy.special import logsumexp

from unigm.frontier import gradient_flows as gf


def standardised_gaussian(n, mean, std, dim=1, seed=0):
    """n points whose empirical mean and (population) std are exactly mean and std in each coordinate,
    and their exact log-density under N(mean, std^2 I)."""
    z = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    z = (z - z.mean(0)) / z.std(0, unbiased=False)
    log_density = (-0.5 * z.pow(2) - math.log(std) - 0.5 * math.log(2 * math.pi)).sum(1)
    return mean + std * z, log_density


def moments(x):
    return x.mean().item(), x.std(unbiased=False).item()


# ---------------------------------------------------------------- the JKO step

def test_gaussian_jko_step_is_the_lecture_02_closed_form():
    """gaussian_jko_step reproduces derivations 7.4 (jko_minimiser) for N(0, 1), and for N(mu, sigma^2)
    it is the minimiser of W2^2 / (2 tau) + KL (scipy on the explicit objective)."""
    from unigm.course.derivations.dynamics import jko_minimiser, m_k, s_k, tau

    m_star, s_star = jko_minimiser()
    for m0, s0, step in [(2.0, 0.5, 0.1), (-1.0, 1.7, 0.5)]:
        at = {m_k: m0, s_k: s0, tau: step}
        assert gf.gaussian_jko_step(m0, s0, step) == pytest.approx((float(m_star.subs(at)), float(s_star.subs(at))),
                                                                    abs=1e-12)
    mu, sigma, m0, s0, step = 1.0, 2.0, -1.0, 0.7, 0.3

    def objective(z):
        m, s = z[0], math.exp(z[1])
        return ((m - m0) ** 2 + (s - s0) ** 2) / (2 * step) + gf.gaussian_kl(m, s, mu, sigma)

    result = minimize(objective, np.array([m0, math.log(s0)]), method="BFGS", options={"gtol": 1e-10})
    expected = (result.x[0], math.exp(result.x[1]))
    assert gf.gaussian_jko_step(m0, s0, step, mu, sigma) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("target_mean, target_std, step", [(0.0, 1.0, 0.1), (0.0, 1.0, 0.5), (1.0, 2.0, 0.3)])
def test_affine_particle_jko_step_matches_the_closed_form(target_mean, target_std, step):
    """The affine-map JKO step on Gaussian particles moves their moments exactly as the closed form does
    at their empirical moments (1e-6), and the population moments within sampling error."""
    g = torch.Generator().manual_seed(1)
    x = 2.0 + 0.5 * torch.randn(1000, 1, generator=g, dtype=torch.float64)
    result = gf.jko_step(x, gf.gaussian_energy(target_mean, target_std), step)
    expected = gf.gaussian_jko_step(*moments(x), step, target_mean, target_std)
    assert moments(result.particles) == pytest.approx(expected, abs=1e-6)
    assert moments(result.particles) == pytest.approx(gf.gaussian_jko_step(2.0, 0.5, step, target_mean, target_std),
                                                      abs=0.05)
    assert result.transport == pytest.approx((expected[0] - x.mean().item()) ** 2
                                             + (expected[1] - moments(x)[1]) ** 2, abs=1e-8)  # = W2^2 (Brenier)


def test_jko_is_stationary_at_the_target_and_unadjusted_langevin_is_not():
    """Implicit (JKO) steps leave pi = N(0, 1) exactly where it is; explicit Euler-Maruyama with step tau
    drifts to the variance 1 / (1 - tau / 2) (its own fixed point: s^2 = (1 - tau)^2 s^2 + 2 tau)."""
    x, _ = standardised_gaussian(2000, 0.0, 1.0)
    step = gf.jko_step(x, gf.gaussian_energy(), 0.2)
    assert (step.particles - x).abs().max().item() < 1e-6
    g = torch.Generator().manual_seed(2)
    y = torch.randn(20_000, 1, generator=g, dtype=torch.float64)
    y = gf.langevin_flow(y, gf.gaussian_energy(), t_end=10.0, steps=50, generator=g)
    assert y.var().item() == pytest.approx(1 / (1 - 0.2 / 2), abs=0.03)


# ---------------------------------------------------------------- the flow: JKO, Langevin, Fokker-Planck

def test_jko_flow_langevin_and_fokker_planck_agree_to_first_order_in_tau():
    """From N(2, 0.5^2) toward N(0, 1) over time 1: the particle JKO flow equals the closed-form JKO iterates
    (1e-6); JKO (implicit Euler) and Euler-Maruyama (explicit) each differ from the exact OU flow by at most
    0.4 tau in mean and std at t = 0.5 and 1, and halving tau halves that error (first order: ratio 2);
    the Langevin particles follow their own exact Gaussian law within sampling error (n = 20,000)."""
    m0, s0 = 2.0, 0.5
    x, _ = standardised_gaussian(2000, m0, s0)
    errors = {}
    for step in (0.1, 0.05):
        steps = round(1 / step)
        flow = gf.jko_flow(x, gf.gaussian_energy(), step, steps)
        iterates = gf.gaussian_jko_iterates(m0, s0, step, steps)
        g = torch.Generator().manual_seed(3)
        y = m0 + s0 * torch.randn(20_000, 1, generator=g, dtype=torch.float64)
        for k in (steps // 2, steps):
            t = k * step
            exact = gf.fokker_planck_gaussian(m0, s0, t)
            assert moments(flow.trajectory[k]) == pytest.approx(iterates[k], abs=1e-6)
            y = gf.langevin_flow(y, gf.gaussian_energy(), t_end=0.5, steps=steps // 2, generator=g)
            euler = (m0 * (1 - step) ** k, math.sqrt((1 - step) ** (2 * k) * s0**2
                                                     + 2 * step * sum((1 - step) ** (2 * i) for i in range(k))))
            assert moments(y) == pytest.approx(euler, abs=0.02)
            for name, approx in (("jko", iterates[k]), ("langevin", euler)):
                error = max(abs(approx[0] - exact[0]), abs(approx[1] - exact[1]))
                assert error <= 0.4 * step, (name, t, step, error)
                errors[name, t, step] = error
    for name in ("jko", "langevin"):
        for t in (0.5, 1.0):
            assert errors[name, t, 0.1] / errors[name, t, 0.05] == pytest.approx(2.0, abs=0.3), (name, t)


def test_free_energy_is_the_exact_kl_and_decreases_along_jko_steps():
    """With rho_0's log-density at the particles, the tracked free energy mean(V + log rho) + log Z is the
    closed-form KL(rho_k || N(0, 1)) of the JKO iterates (1e-6), and it decreases at every step."""
    x, log_density = standardised_gaussian(2000, 2.0, 0.5)
    flow = gf.jko_flow(x, gf.gaussian_energy(), 0.1, 10, log_density=log_density)
    kl = [gf.gaussian_kl(m, s) for m, s in gf.gaussian_jko_iterates(2.0, 0.5, 0.1, 10)]
    assert np.array(flow.free_energy) + 0.5 * math.log(2 * math.pi) == pytest.approx(kl, abs=1e-6)
    assert all(after < before for before, after in zip(flow.free_energy, flow.free_energy[1:]))


def test_neural_jko_flow_tracks_the_closed_form_and_decreases_the_free_energy():
    """T(x) = x + tau MLP(x) (log-det by autograd, no density estimate): on N(2, 0.5^2) -> N(0, 1) its
    moments stay within 0.01 of the exact JKO iterates at t = 0.5 and 1, and the free energy decreases."""
    torch.manual_seed(0)
    x, log_density = standardised_gaussian(400, 2.0, 0.5)
    step = 0.1
    flow = gf.jko_flow(x, gf.gaussian_energy(), step, 10, make_map=lambda d: gf.ResidualMap(d, step, hidden=16),
                       log_density=log_density, iterations=25)
    iterates = gf.gaussian_jko_iterates(2.0, 0.5, step, 10)
    for k in (5, 10):
        assert moments(flow.trajectory[k]) == pytest.approx(iterates[k], abs=0.01)
    assert all(after < before for before, after in zip(flow.free_energy, flow.free_energy[1:]))


def test_neural_jko_flow_on_a_double_well_follows_langevin():
    """A non-Gaussian target in 2D, V = 2 (x_0^2 - 1)^2 + x_1^2 / 2: after time 1 the neural JKO particles are
    about as close to fine-step Langevin (tau / 20) as two Langevin runs are to each other (W2 <= 2 x that
    noise floor; 0.8-1.5 x over seeds 0-4, the starting cloud 3-4 x), and the free energy decreases."""
    from unigm.metrics import wasserstein2

    def energy(x):
        return 2 * (x[:, 0] ** 2 - 1) ** 2 + 0.5 * x[:, 1] ** 2

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(4)
    start = torch.tensor([0.3, 1.0], dtype=torch.float64)
    x = start + 0.5 * torch.randn(300, 2, generator=g, dtype=torch.float64)
    flow = gf.jko_flow(x, energy, 0.2, 5, make_map=lambda d: gf.ResidualMap(d, 0.2, hidden=16), iterations=20)
    assert all(after < before for before, after in zip(flow.free_energy, flow.free_energy[1:]))
    langevin = [gf.langevin_flow(start + 0.5 * torch.randn(300, 2, generator=g, dtype=torch.float64), energy,
                                 t_end=1.0, steps=100, generator=g) for _ in range(2)]
    floor = wasserstein2(*langevin)
    assert wasserstein2(flow.particles, langevin[0]) <= 2 * floor
    assert wasserstein2(x, langevin[0]) > 2.5 * floor


# ---------------------------------------------------------------- unbalanced optimal transport

def log_domain_unbalanced_sinkhorn(a, b, cost, reg, reg_m, iterations=600):
    """Chizat et al. 2018, Alg. 1 in the log domain, entropy reg KL(P | a b^T): the oracle for POT."""
    f, g, k = np.zeros(len(a)), np.zeros(len(b)), reg_m / (reg_m + reg)
    for _ in range(iterations):
        f = -k * reg * logsumexp((g[None] - cost) / reg + np.log(b)[None], axis=1)
        g = -k * reg * logsumexp((f[:, None] - cost) / reg + np.log(a)[:, None], axis=0)
    return np.exp(np.log(a)[:, None] + np.log(b)[None] + (f[:, None] + g[None] - cost) / reg)


def clouds(seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(30, 2)), rng.normal(size=(40, 2)) + [1.0, 0.0]


def test_unbalanced_plan_is_the_generalised_sinkhorn_solution():
    xs, xt = clouds()
    a, b = np.full(30, 1 / 30), np.full(40, 2 / 40)
    for reg_m in (0.1, 1.0, 5.0):
        plan = gf.unbalanced_plan(a, b, xs, xt, reg=0.2, reg_m=reg_m)
        expected = log_domain_unbalanced_sinkhorn(a, b, ot.dist(xs, xt), 0.2, reg_m)
        assert np.abs(plan.plan - expected).sum() < 1e-6
        assert plan.source_marginal == pytest.approx(plan.plan.sum(1))


def test_unbalanced_plan_tends_to_sinkhorn_and_its_marginal_error_shrinks_as_reg_m_grows():
    """Equal masses: the L1 distance to ot.sinkhorn's plan and the marginal deviation
    |P 1 - a|_1 + |P^T 1 - b|_1 both decrease as reg_m grows, to below 1% of the mass at reg_m = 1000."""
    xs, xt = clouds()
    a, b = np.full(30, 1 / 30), np.full(40, 1 / 40)
    balanced = ot.sinkhorn(a, b, ot.dist(xs, xt), 0.5, numItermax=10_000, stopThr=1e-12)
    distances, deviations = [], []
    for reg_m in (0.1, 1.0, 10.0, 100.0, 1000.0):
        plan = gf.unbalanced_plan(a, b, xs, xt, reg=0.5, reg_m=reg_m)
        distances.append(np.abs(plan.plan - balanced).sum())
        deviations.append(np.abs(plan.source_marginal - a).sum() + np.abs(plan.target_marginal - b).sum())
    assert all(after < before for before, after in zip(distances, distances[1:])), distances
    assert all(after < before for before, after in zip(deviations, deviations[1:])), deviations
    assert distances[-1] < 0.01 and deviations[-1] < 0.01


def test_unbalanced_ot_destroys_the_extra_cluster_and_creates_the_new_one():
    """The lecture's example (source mass 1, target mass 1.5). Balanced OT (normalised) moves all the extra
    source cluster's mass, over squared distances >= 16; unbalanced OT with reg_m = 2 moves under 1% of it:
    it destroys that cluster at the source and creates the new one at the target (> 95% of each)."""
    ex = gf.two_cluster_example()
    balanced = gf.balanced_plan(ex.a, ex.b, ex.xs, ex.xt)
    extra_share = ex.a[ex.source_extra].sum() / ex.a.sum()
    assert balanced.source_marginal[ex.source_extra].sum() == pytest.approx(extra_share, abs=1e-9)
    plan = gf.unbalanced_plan(ex.a, ex.b, ex.xs, ex.xt, reg=0.1, reg_m=2.0)
    change = gf.mass_change(plan, ex.a, ex.b)
    assert plan.source_marginal[ex.source_extra].sum() < 0.01 * ex.a[ex.source_extra].sum()
    assert plan.target_marginal[ex.target_extra].sum() < 0.01 * ex.b[ex.target_extra].sum()
    assert change.destroyed[ex.source_extra].sum() > 0.95 * ex.a[ex.source_extra].sum()
    assert change.created[ex.target_extra].sum() > 0.95 * ex.b[ex.target_extra].sum()
    assert change.total_created - change.total_destroyed == pytest.approx(ex.b.sum() - ex.a.sum(), abs=1e-12)


def test_total_transported_mass_lies_between_the_two_masses_once_mass_is_dear():
    """Where creating or destroying mass costs more than moving it (reg_m = 100, 1000 on the example), the
    plan's total mass lies between the two totals 1 and 1.5, tending to their geometric mean sqrt(1.5) (the
    KL penalties' compromise); where it is cheap (reg_m = 2) both sides lose mass and it falls below both."""
    ex = gf.two_cluster_example()
    totals = {reg_m: gf.unbalanced_plan(ex.a, ex.b, ex.xs, ex.xt, reg=0.5, reg_m=reg_m).transported
              for reg_m in (2.0, 100.0, 1000.0)}
    for reg_m in (100.0, 1000.0):
        assert ex.a.sum() < totals[reg_m] < ex.b.sum(), totals
    assert totals[1000.0] == pytest.approx(math.sqrt(1.5), abs=0.02)
    assert totals[2.0] < ex.a.sum()


def test_unbalanced_plan_raises_instead_of_returning_a_wrong_plan():
    ex = gf.two_cluster_example()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(FloatingPointError, match="raise reg"):
            gf.unbalanced_plan(ex.a, ex.b, ex.xs, ex.xt, reg=0.1, reg_m=1000.0)  # exp(potential / reg) overflows
