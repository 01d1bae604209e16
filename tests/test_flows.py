"""Oracles for the flow family of lecture 01 (the VAE and GAN families: test_vae.py, test_gan.py)."""
import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.optimize import linear_sum_assignment

from unigm import data, zoo
from unigm.flows import CNF, HutchinsonCNF, OTFlowMatching, RealNVP, RectifiedFlow, straightness
from unigm.samplers import divergence_exact, ode_log_prob, standard_normal_log_prob
from unigm.train import fit


# -- Flow family ----------------------------------------------------------------------------------
def test_realnvp_is_invertible_and_its_log_det_is_the_jacobian():
    torch.manual_seed(0)
    flow = RealNVP((2,), RealNVP.Config(layers=6, hidden=32)).double()
    with torch.no_grad():  # random, non-trivial scales and shifts
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(20, 2, dtype=torch.float64) * 2
    z, log_det = flow.forward_with_log_det(x)
    assert (flow.inverse(z) - x).abs().max() < 1e-5
    for i in range(5):
        jac = torch.autograd.functional.jacobian(lambda v: flow.forward_with_log_det(v[None])[0][0], x[i])
        assert log_det[i].item() == pytest.approx(torch.linalg.slogdet(jac).logabsdet.item(), abs=1e-8)


def test_realnvp_density_integrates_to_one():
    torch.manual_seed(1)
    flow = RealNVP((2,), RealNVP.Config(layers=4, hidden=16))
    grid = torch.linspace(-8, 8, 321)
    xx = torch.stack(torch.meshgrid(grid, grid, indexing="xy"), -1).reshape(-1, 2)
    with torch.no_grad():
        mass = flow.log_prob(xx).double().exp().sum().item() * (grid[1] - grid[0]).item() ** 2
    assert mass == pytest.approx(1.0, abs=2e-3)


def test_realnvp_samples_in_one_network_evaluation():
    from unigm.samplers import count_nfe
    flow = RealNVP((2,), RealNVP.Config(layers=4, hidden=16))
    with count_nfe() as nfe:
        flow.sample(10)
    assert nfe.count == 1


def test_cnf_loss_is_the_ode_negative_log_likelihood_plus_kinetic_energy():
    torch.manual_seed(0)
    model = CNF((2,), CNF.Config(hidden=16, train_ode_steps=4, kinetic_weight=0.0))
    x = torch.randn(32, 2)
    reference = -ode_log_prob(model.velocity, x, standard_normal_log_prob, 4, divergence_exact).mean() / 2
    assert model.loss(x).item() == pytest.approx(reference.item(), rel=1e-5)
    model.config.train_ode_steps = 32  # accurate enough to compare with a fine Euler sum
    nll, kinetic = model.negative_log_likelihood_and_kinetic_energy(x)
    trajectory = []  # the kinetic energy is int |v|^2 dt along the same path
    from unigm.samplers import euler
    euler(model.velocity, x, 2000, t_start=0.0, t_end=1.0, trajectory=trajectory)
    ts = torch.linspace(0, 1, 2001)
    fine = torch.stack([model.velocity(p, t.expand(len(p))).pow(2).sum(1) for p, t in zip(trajectory[:-1], ts[:-1])]).mean(0)
    torch.testing.assert_close(kinetic.detach(), fine.detach(), rtol=0.01, atol=1e-4)
    model.config.kinetic_weight = 0.5
    loss = model.loss(x)
    assert loss.item() == pytest.approx((nll.mean() + 0.5 * kinetic.mean()).item() / 2, rel=1e-5)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.net.parameters() if p.dim() > 1)


def test_hutchinson_cnf_loss_is_unbiased():
    torch.manual_seed(0)
    exact = CNF((2,), CNF.Config(hidden=16, train_ode_steps=2))
    hutch = HutchinsonCNF((2,), CNF.Config(hidden=16, train_ode_steps=2))
    hutch.load_state_dict(exact.state_dict())
    x = torch.randn(64, 2)
    estimates = torch.tensor([hutch.loss(x).item() for _ in range(300)])
    assert abs(estimates.mean().item() - exact.loss(x).item()) < 4 * estimates.std().item() / math.sqrt(300)
    assert estimates.std() > 0  # it is an estimate, not the exact trace


def test_ot_coupling_is_the_optimal_assignment():
    torch.manual_seed(0)
    model = OTFlowMatching((2,))
    x0 = torch.randn(40, 2) * 2
    torch.manual_seed(1)
    x1 = model.coupling(x0)
    torch.manual_seed(1)
    noise = torch.randn_like(x0)
    cost = torch.cdist(x0, noise).pow(2).numpy()
    rows, cols = linear_sum_assignment(cost)
    assert (x1 - x0).pow(2).sum().item() == pytest.approx(cost[rows, cols].sum(), rel=1e-6)
    assert sorted(map(tuple, x1.tolist())) == sorted(map(tuple, noise.tolist()))  # a permutation


def test_reflow_pairs_are_the_flow_map_and_the_student_is_a_copy():
    torch.manual_seed(0)
    teacher = RectifiedFlow((2,), RectifiedFlow.Config(hidden=16))
    x0, x1 = teacher.reflow_pairs(10, steps=8, generator=torch.Generator().manual_seed(0))
    from unigm.samplers import heun
    torch.testing.assert_close(heun(teacher.velocity, x1, 8), x0)
    student = teacher.student()
    assert all(torch.equal(a, b) and a is not b for a, b in zip(teacher.parameters(), student.parameters()))
    fit(student, (x0, x1), steps=2, progress=False)  # trains on the fixed pairs


def test_straightness_is_zero_for_straight_flows_and_matches_a_closed_form():
    x1 = torch.randn(4000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert straightness(lambda x, t: torch.full_like(x, 0.7), x1, steps=16) == pytest.approx(0.0, abs=1e-12)
    # dx/dt = a x run from t = 1 to 0: x_t = x_1 e^{a (t - 1)}, chord x_1 (1 - e^{-a})
    a = 1.5
    c = 1 - math.exp(-a)
    integral, _ = quad(lambda t: (c - a * math.exp(a * (t - 1))) ** 2, 0, 1)
    expected = integral * x1.pow(2).sum(1).mean().item()
    assert straightness(lambda x, t: a * x, x1, steps=2000) == pytest.approx(expected, rel=0.01)
