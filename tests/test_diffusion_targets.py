"""DDPM's three prediction targets (eps, x0, v), DDIM with any eta and respaced ancestral sampling.

Oracles: round trips of the path conversions, the SNR weights checked against the implied errors
and against sympy (lecture 02, checks 3.11-3.14), EDM's preconditioned x0 against the v model it
equals when sigma_data = 1 (same weights, negated output layer), a Gaussian data distribution whose exact denoiser
E[x_0 | x_t] is known in closed form (and whose DDIM eta = 0 map is affine, so its pushforward of
N(0, I) is computed exactly), the DDPM posterior between non-adjacent grid times written out
(Nichol & Dhariwal 2021, arXiv:2102.09672, Sec. 4). DDIM's quality on a trained DDPM: tests/test_quality.py."""
import dataclasses

import pytest
import torch

from unigm import data, samplers, zoo
from unigm.course import derivations
from unigm.diffusion import DDPM, DDPMv, DDPMx0, targets
from unigm.paths import linear_path, vp_path
from unigm.tensors import per_example

PREDICTIONS = list(targets.TARGETS)  # epsilon, x0, v
F64 = torch.float64


def random_batch(n=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = 1.5 * torch.randn(n, 2, generator=g, dtype=F64) + 0.3
    eps = torch.randn(n, 2, generator=g, dtype=F64)
    t = 0.02 + 0.96 * torch.rand(n, generator=g, dtype=F64)
    return x0, eps, t


# -- conversions and weights ----------------------------------------------------------------------
@pytest.mark.parametrize("path", [vp_path(), linear_path()], ids=["vp", "linear"])
def test_conversions_between_eps_x0_and_v_round_trip(path):
    x0, eps, t = random_batch()
    x = path.sample(x0, eps, t)
    torch.testing.assert_close(path.x0_from_eps(x, eps, t), x0, atol=1e-10, rtol=0)
    torch.testing.assert_close(path.eps_from_x0(x, x0, t), eps, atol=1e-10, rtol=0)
    x0_back, eps_back = path.x0_eps_from_v(x, path.v_from_x0_eps(x0, eps, t), t)
    torch.testing.assert_close(x0_back, x0, atol=1e-10, rtol=0)
    torch.testing.assert_close(eps_back, eps, atol=1e-10, rtol=0)
    for name in PREDICTIONS:  # each target, regressed exactly, gives back the pair it came from
        target = targets.prediction_target(name)
        x0_hat, eps_hat = target.to_x0_eps(path, x, target.target(path, x0, eps, t), t)
        torch.testing.assert_close(x0_hat, x0, atol=1e-10, rtol=0, msg=name)
        torch.testing.assert_close(eps_hat, eps, atol=1e-10, rtol=0, msg=name)


@pytest.mark.parametrize("name", PREDICTIONS)
def test_weight_is_the_ratio_of_target_error_to_eps_error(name):
    """For any eps_hat, |target - implied target_hat|^2 / |eps - eps_hat|^2 = eps_weight(SNR), per coordinate."""
    path, target = vp_path(), targets.prediction_target(name)
    x0, eps, t = random_batch()
    x = path.sample(x0, eps, t)
    eps_hat = eps + torch.randn(eps.shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    x0_hat = path.x0_from_eps(x, eps_hat, t)
    ratio = (target.target(path, x0, eps, t) - target.target(path, x0_hat, eps_hat, t)) ** 2 / (eps - eps_hat) ** 2
    torch.testing.assert_close(ratio, per_example(target.eps_weight(path.snr(t)), x).expand_as(ratio),
                               rtol=1e-8, atol=0)


def test_weights_in_closed_form():
    snr = torch.tensor([0.01, 1.0, 100.0], dtype=F64)
    torch.testing.assert_close(targets.eps_weight_epsilon(snr), torch.ones(3, dtype=F64))
    torch.testing.assert_close(targets.eps_weight_x0(snr), 1 / snr)
    torch.testing.assert_close(targets.eps_weight_v(snr), 1 + 1 / snr)  # (1 + SNR) / SNR, not 1 + SNR


@pytest.mark.parametrize("name", PREDICTIONS)
def test_loss_is_the_weighted_eps_loss_of_the_implied_prediction(name):
    x = data.toy("two_moons").sample(256, torch.Generator().manual_seed(0))
    for dtype, rtol in ((F64, 1e-12), (torch.float32, 1e-5)):
        torch.manual_seed(0)
        model = DDPM((2,), DDPM.Config(prediction=name, hidden=32)).to(dtype)
        direct = model.loss(x.to(dtype), generator=torch.Generator().manual_seed(1))
        weighted = model.weighted_eps_loss(x.to(dtype), generator=torch.Generator().manual_seed(1))
        assert weighted.item() == pytest.approx(direct.item(), rel=rtol), (name, dtype)


@pytest.mark.parametrize("sigma_data", [0.5, 1.0, 1.7])
def test_preconditioning_is_the_gaussian_denoiser_with_a_unit_variance_residual(sigma_data):
    """For x_0 ~ N(0, sd^2) the best linear guess E[x_0 | x_t] = alpha sd^2 / (alpha^2 sd^2 + sigma^2) x_t
    is c_skip x_t, and F's target (x_0 - c_skip x_t) / c_out has variance 1 (Monte Carlo, 400k draws)."""
    path = vp_path()
    t = torch.tensor([0.001, 0.05, 0.3, 0.7, 1.0], dtype=F64)
    a, s = path.alpha(t), path.sigma(t)
    c_skip, c_out = targets.preconditioning(path.snr(t), sigma_data)
    torch.testing.assert_close(c_skip, a * sigma_data**2 / (a**2 * sigma_data**2 + s**2), rtol=1e-12, atol=0)
    g = torch.Generator().manual_seed(0)
    x0 = sigma_data * torch.randn(400_000, 1, generator=g, dtype=F64)
    eps = torch.randn(400_000, 1, generator=g, dtype=F64)
    residual = (x0 - c_skip * (a * x0 + s * eps)) / c_out  # (400k, 5): one column per time
    torch.testing.assert_close(residual.var(0), torch.ones(5, dtype=F64), rtol=0.01, atol=0)
    torch.testing.assert_close(targets.eps_weight_x0_preconditioned(path.snr(t), sigma_data),
                               1 / (c_out**2 * path.snr(t)), rtol=1e-12, atol=0)


def test_preconditioned_x0_model_with_unit_sigma_data_is_the_v_model():
    """x0_hat = alpha x_t + sigma F with loss |F - F*|^2 is v prediction with F = -v_hat: copy a v model's
    weights, negate its output layer, and the two models agree on every prediction, loss and sample."""
    torch.manual_seed(0)
    v_model = DDPMv((2,), DDPMv.Config(hidden=32)).double()
    x0_model = DDPMx0((2,), DDPMx0.Config(hidden=32)).double()
    assert x0_model.config.precondition and x0_model.config.sigma_data == 1.0
    state = v_model.state_dict()
    last = [name for name in state if name.startswith("net.")][-2:]  # the output layer's weight and bias
    x0_model.load_state_dict({name: -value if name in last else value for name, value in state.items()})
    x0, eps, t = random_batch(256)
    x = vp_path().sample(x0, eps, t)
    with torch.no_grad():
        torch.testing.assert_close(x0_model.predict_x0(x, t), v_model.predict_x0(x, t), atol=1e-10, rtol=0)
        torch.testing.assert_close(x0_model.predict_eps(x, t), v_model.predict_eps(x, t), atol=1e-9, rtol=0)
        losses = [m.loss(x0, generator=torch.Generator().manual_seed(2)).item() for m in (x0_model, v_model)]
        samples = [m.sample(50, steps=10, generator=torch.Generator().manual_seed(3)) for m in (x0_model, v_model)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-10)
    torch.testing.assert_close(samples[0], samples[1], atol=1e-9, rtol=0)
    plain = DDPMx0((2,), DDPMx0.Config(hidden=32, precondition=False)).double()  # without it: a different model
    plain.load_state_dict(x0_model.state_dict())
    with torch.no_grad():
        assert (plain.predict_x0(x, t) - x0_model.predict_x0(x, t)).abs().max() > 0.1


def test_derivation_checks_fail_when_the_library_weight_is_wrong(monkeypatch):
    for number in ("3.11", "3.12", "3.13"):
        assert derivations.run(number).passed, number
    wrong = dataclasses.replace(targets.TARGETS["v"], eps_weight=lambda snr: 1 + snr)
    monkeypatch.setitem(targets.TARGETS, "v", wrong)
    for number in ("3.11", "3.12", "3.13"):
        assert not derivations.run(number).passed, f"{number} passes with the weight 1 + SNR"


@pytest.mark.parametrize("bug", ["c_skip not divided by alpha", "c_out squared", "weight 1 + SNR / sd^2"])
def test_check_3_14_fails_when_the_preconditioning_is_wrong(monkeypatch, bug):
    assert derivations.run("3.14").passed and derivations.run("3.12").passed
    right_pre, right_weight = targets.preconditioning, targets.eps_weight_x0_preconditioned
    if bug == "c_skip not divided by alpha":
        monkeypatch.setattr(targets, "preconditioning",
                            lambda snr, sd=1.0: (right_pre(snr, sd)[0] * (snr / (1 + snr)) ** 0.5, right_pre(snr, sd)[1]))
    elif bug == "c_out squared":
        monkeypatch.setattr(targets, "preconditioning", lambda snr, sd=1.0: (right_pre(snr, sd)[0], right_pre(snr, sd)[1] ** 2))
    else:
        monkeypatch.setattr(targets, "eps_weight_x0_preconditioned", lambda snr, sd=1.0: 1 + snr / sd**2)
    assert not derivations.run("3.14").passed, bug


# -- the models and their errors ------------------------------------------------------------------
def test_zoo_entries_and_the_default_target():
    assert zoo.make("ddpm", (2,)).config.prediction == "epsilon"
    assert zoo.make("ddpm_x0", (2,)).config.precondition and not zoo.make("ddpm", (2,)).config.precondition
    for name, cls, prediction in (("ddpm_x0", DDPMx0, "x0"), ("ddpm_v", DDPMv, "v")):
        model = zoo.make(name, (2,))
        assert type(model) is cls and isinstance(model, DDPM) and model.config.prediction == prediction
        assert model.target.name == prediction and {"two_moons", "eight_gaussians"} <= set(zoo.recipe(name).min_quality)


def test_clear_errors_for_bad_input():
    with pytest.raises(ValueError, match="unknown prediction target 'score'; choose one of epsilon, x0, v"):
        zoo.make("ddpm", (2,), prediction="score")
    with pytest.raises(ValueError, match="precondition applies to the x0 target"):
        zoo.make("ddpm_v", (2,), precondition=True)
    with pytest.raises(ValueError, match="sigma_data must be positive"):
        zoo.make("ddpm_x0", (2,), sigma_data=0.0)
    model = DDPM((2,), DDPM.Config(hidden=8, num_steps=50))
    with pytest.raises(ValueError, match=r"steps must be an int in \[1, 50\]"):
        model.sample(4, steps=51)
    for eta in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"eta must be in \[0, 1\]"):
            model.sample(4, steps=5, eta=eta)
        with pytest.raises(ValueError, match=r"eta must be in \[0, 1\]"):
            samplers.ddim_step(lambda x, t: x, torch.zeros(2, 2), 0.5, 0.4, model.alpha_bar, eta=eta)
    with pytest.raises(ValueError, match="strictly decreasing"):
        samplers.ddim(lambda x, t: x, torch.zeros(2, 2), None, model.alpha_bar, times=torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="steps = 3 but 3 times make 2 steps"):
        samplers.ddim(lambda x, t: x, torch.zeros(2, 2), 3, model.alpha_bar, times=torch.tensor([1.0, 0.5, 0.0]))


# -- a Gaussian data distribution: the exact denoiser in closed form ----------------------------------
MEAN = torch.tensor([1.0, -0.5], dtype=F64)
COV = torch.tensor([[0.5, 0.2], [0.2, 0.3]], dtype=F64)


def exact_x0_eps(x, a, s):
    """For x_0 ~ N(m, C), x_t = a x_0 + s eps: E[x_0 | x_t] = m + a C K^-1 (x_t - a m),
    E[eps | x_t] = s K^-1 (x_t - a m), K = a^2 C + s^2 I (Gaussian conditioning). a, s: (B, 1)."""
    eye = torch.eye(2, dtype=F64)
    K = a[:, :, None] ** 2 * COV + s[:, :, None] ** 2 * eye  # (B, 2, 2)
    solved = torch.linalg.solve(K, (x - a * MEAN).unsqueeze(-1)).squeeze(-1)  # K^-1 (x_t - a m)
    return MEAN + a * solved @ COV, s * solved  # COV is symmetric


class GaussianOracle(DDPM):
    """The library's DDPM whose network output is replaced by the exact optimum of its target;
    everything else (conversions, samplers) is the library's code."""

    def network_output(self, x, t):
        a, s = self.gaussian_path.coefficients(t, x, "alpha", "sigma")
        a, s = a.reshape(-1, 1).expand(len(x), 1), s.reshape(-1, 1).expand(len(x), 1)  # (B, 1)
        x0, eps = exact_x0_eps(x, a, s)
        return {"epsilon": eps, "x0": x0, "v": a * eps - s * x0}[self.config.prediction]


def oracle(prediction):
    return GaussianOracle((2,), DDPM.Config(prediction=prediction)).double()


@pytest.mark.parametrize("name", PREDICTIONS)
def test_exact_optimum_gives_the_exact_eps_x0_and_v(name):
    model, path = oracle(name), vp_path()
    x0, eps, t = random_batch(256)
    x = path.sample(x0, eps, t)
    a, s = path.coefficients(t, x, "alpha", "sigma")
    x0_exact, eps_exact = exact_x0_eps(x, a, s)
    torch.testing.assert_close(model.predict_x0(x, t), x0_exact, atol=1e-9, rtol=0)
    torch.testing.assert_close(model.predict_eps(x, t), eps_exact, atol=1e-9, rtol=0)
    torch.testing.assert_close(model.predict_v(x, t), a * eps_exact - s * x0_exact, atol=1e-9, rtol=0)
    # Tweedie with the library's score: E[x_0 | x_t] = (x_t + sigma^2 score) / alpha
    torch.testing.assert_close((x + s**2 * model.score(x, t)) / a, x0_exact, atol=1e-9, rtol=0)


def ddim_affine_map(model, steps):
    """DDIM eta = 0 with an affine denoiser is an affine map x_1 -> b + A x_1: run it on 0, e_1, e_2."""
    times = samplers.respaced_times(model.config.num_steps, steps)
    points = torch.cat([torch.zeros(1, 2, dtype=F64), torch.eye(2, dtype=F64)])
    out = samplers.ddim(model.predict_eps, points, None, model.alpha_bar, eta=0.0, times=times)
    return out[0], (out[1:] - out[0]).T  # b (2,), A (2, 2) with columns A e_i


def exact_flow_map(model):
    """The PF-ODE's exact map from t = 1 to 0 for Gaussian data, in x_bar = x / alpha:
    x_bar_0 = m + M (x_bar_1 - m), M = C^1/2 (C + sigma_bar_1^2 I)^-1/2 (C and I commute)."""
    a1 = model.alpha_bar(torch.tensor(1.0, dtype=F64))
    sigma_bar_sq = (1 - a1) / a1
    values, vectors = torch.linalg.eigh(COV)
    M = vectors @ torch.diag((values / (values + sigma_bar_sq)).sqrt()) @ vectors.T
    return MEAN - M @ MEAN, M / a1.sqrt()


@pytest.mark.parametrize("name", PREDICTIONS)
def test_ddim_eta0_maps_the_prior_to_the_data_gaussian(name):
    """N(0, I) pushed through DDIM is N(b, A A^T), exactly; it converges (first order: DDIM is Euler in
    (x_bar, sigma_bar), lecture 02, result 10) to the exact ODE map, whose own distance to N(m, C)
    is the tiny error of starting at N(0, I) instead of p_1 (alpha_1 = e^-5.0)."""
    model = oracle(name)
    b_star, A_star = exact_flow_map(model)
    map_errors, data_errors = [], []
    for steps in (5, 20, 100, 1000):
        b, A = ddim_affine_map(model, steps)
        map_errors.append(max((b - b_star).abs().max().item(), (A - A_star).abs().max().item()))
        data_errors.append(max((b - MEAN).abs().max().item(), (A @ A.T - COV).abs().max().item()))
    assert all(later < earlier for earlier, later in zip(map_errors, map_errors[1:])), map_errors
    assert map_errors[-1] < 2e-3 and map_errors[1] / map_errors[2] > 3, map_errors  # ~ 1/steps
    assert all(later < earlier for earlier, later in zip(data_errors, data_errors[1:])), data_errors
    assert data_errors[-1] < 0.01, data_errors


def test_ddim_does_not_depend_on_which_target_was_learned():
    x1 = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    times = samplers.respaced_times(1000, 20)
    outs = [samplers.ddim(oracle(name).predict_eps, x1, None, oracle(name).alpha_bar, times=times)
            for name in PREDICTIONS]
    for out in outs[1:]:
        torch.testing.assert_close(out, outs[0], atol=1e-8, rtol=0)


# -- samplers: eta, respacing, NFE -----------------------------------------------------------------
def test_eta_one_on_the_full_grid_is_the_ancestral_sampler_and_eta_zero_is_deterministic():
    torch.manual_seed(0)
    model = DDPM((2,), DDPM.Config(hidden=16))
    default = model.sample(300, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    x1 = model.randn(300, 2, generator=g)
    ancestral = samplers.ddim(model.predict_eps, x1, model.config.num_steps, model.alpha_bar, eta=1.0, generator=g)
    assert torch.equal(default, ancestral)
    assert torch.equal(model.sample(300, steps=1000, eta=1.0, generator=torch.Generator().manual_seed(5)), default)
    times = samplers.respaced_times(1000, 50)
    runs = [samplers.ddim(model.predict_eps, x1, None, model.alpha_bar, eta=0.0, times=times,
                          generator=torch.Generator().manual_seed(seed)) for seed in (1, 2)]
    assert torch.equal(runs[0], runs[1])  # eta = 0 draws no noise: the start alone fixes the sample
    first, second = (model.sample(300, steps=50, eta=0.0, generator=torch.Generator().manual_seed(5)) for _ in "ab")
    assert torch.equal(first, second) and torch.equal(first, runs[0])
    half = model.sample(300, steps=50, eta=0.5, generator=torch.Generator().manual_seed(5))
    assert not torch.equal(half, first)


def test_respaced_times_are_a_subsequence_of_the_training_grid():
    T = 1000
    full_grid = torch.arange(T, -1, -1, dtype=F64) / T
    torch.testing.assert_close(samplers.respaced_times(T, T), full_grid, atol=1e-15, rtol=0)
    for steps in (1, 3, 7, 20, 30, 333, 999):
        times = samplers.respaced_times(T, steps)
        indices = times * T
        assert len(times) == steps + 1 and times[0] == 1.0 and times[-1] == 0.0
        torch.testing.assert_close(indices, indices.round(), atol=1e-9, rtol=0)
        assert (indices[:-1] - indices[1:]).min() >= 1
        gaps = (indices[:-1] - indices[1:]).round()
        assert gaps.max() - gaps.min() <= 1  # as even as the grid allows


def posterior_step(x0_hat, x, a_t, a_s, z):
    """q(x_s | x_t, x_0) between any two grid times s < t (Ho et al. 2020, eqs. 6-7, with Nichol &
    Dhariwal's respaced beta = 1 - abar_t / abar_s): mean and variance written out."""
    beta = 1 - a_t / a_s
    mean = (a_s.sqrt() * beta / (1 - a_t)) * x0_hat + ((1 - beta).sqrt() * (1 - a_s) / (1 - a_t)) * x
    variance = beta * (1 - a_s) / (1 - a_t)
    return mean + variance.sqrt() * z if z is not None else mean


@pytest.mark.parametrize("name", PREDICTIONS)
def test_respaced_ancestral_sampling_is_the_ddpm_posterior_between_non_adjacent_times(name):
    torch.manual_seed(0)
    model = DDPM((2,), DDPM.Config(prediction=name, hidden=16)).double()
    steps = 30  # does not divide T = 1000: grid gaps of 33 and 34
    sampled = model.sample(200, steps=steps, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    x = model.randn(200, 2, generator=g)
    times = samplers.respaced_times(1000, steps)
    for t, s in zip(times[:-1], times[1:]):
        z = torch.randn(x.shape, generator=g, dtype=F64) if s > 0 else None
        with torch.no_grad():
            x0_hat = model.predict_x0(x, torch.full((200,), t.item(), dtype=F64))
        x = posterior_step(x0_hat, x, model.alpha_bar(t), model.alpha_bar(s), z)
    torch.testing.assert_close(sampled, x, atol=1e-9, rtol=0)


@pytest.mark.parametrize("name, steps, eta", [("ddpm", 20, 0.0), ("ddpm_x0", 7, 1.0), ("ddpm_v", 33, 0.3)])
def test_nfe_is_the_number_of_steps(name, steps, eta):
    model = zoo.make(name, (2,), hidden=16)
    with samplers.count_nfe() as nfe:
        model.sample(10, steps=steps, eta=eta)
    assert nfe.count == steps


# DDIM with 20 steps against the 1000-step ancestral chain of a trained DDPM: tests/test_quality.py.
