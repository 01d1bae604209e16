"""Score SDEs (VP and VE): oracles with the exact score of Gaussian data, the samplers, the contract.

For data N(m, s^2 I) every marginal of a Gaussian path is Gaussian, p_t = N(alpha_t m, v_t I) with
v_t = alpha_t^2 s^2 + sigma_t^2, so the score -(x - alpha_t m) / v_t is known exactly. Plugging it
into the models (a subclass overriding one hook, predict_eps) checks their samplers, likelihood and
loss against closed forms, independently of any training.
"""
import math

import pytest
import torch

from unigm import samplers, zoo
from unigm.base import ScoreBased, ShapeError
from unigm.densities import isotropic_gaussian_log_prob
from unigm.diffusion import VEScoreSDE, VPScoreSDE
from unigm.samplers import count_nfe

F64 = torch.float64
MEAN, STD = torch.tensor([1.0, -0.5], dtype=F64), 0.5
MODELS = {"score_sde_vp": VPScoreSDE, "score_sde_ve": VEScoreSDE}


def exact(cls, data_mean=MEAN):
    """The model of `cls` whose network is replaced by the exact noise prediction for data
    N(data_mean, STD^2 I): eps = -sigma_t score = sigma_t (x - alpha_t m) / v_t."""

    class Exact(cls):
        def marginal(self, t):  # (mean (D,), variance) of p_t
            alpha, sigma = self.gaussian_path.alpha, self.gaussian_path.sigma
            t = torch.as_tensor(t, dtype=F64)
            return alpha(t) * data_mean, alpha(t) ** 2 * STD**2 + sigma(t) ** 2

        def predict_eps(self, x, t):
            alpha, sigma = self.gaussian_path.coefficients(t, x, "alpha", "sigma")
            return sigma * (x - alpha * data_mean) / (alpha**2 * STD**2 + sigma**2)

    return Exact((2,)).double()


def moments_error(x, mean, variance):
    """(|mean error|, max |covariance error|) of samples x (N, 2) against N(mean, variance I)."""
    cov = torch.cov(x.T)
    return (x.mean(0) - mean).norm().item(), (cov - variance * torch.eye(2, dtype=F64)).abs().max().item()


# -- the probability-flow ODE, the reverse SDE, predictor-corrector ----------------------------------
@pytest.mark.parametrize("cls", MODELS.values(), ids=MODELS.keys())
def test_probability_flow_ode_is_the_exact_transport_map(cls):
    """With the exact score the PF-ODE is the affine map x_1 -> alpha m + sqrt(v / v_1) (x_1 - alpha_1 m)
    (to t_min); Heun's error shrinks at second order, and the prior is carried to the Gaussian it
    maps to (the data Gaussian up to the prior's mismatch with p_1)."""
    model = exact(cls)
    (mean, variance), (mean_1, variance_1) = model.marginal(model.config.t_min), model.marginal(1.0)
    errors = []
    for steps in (10, 40, 160):
        trajectory = []
        x = model.sample(20_000, steps, generator=torch.Generator().manual_seed(0), method="ode", trajectory=trajectory)
        target = mean + (variance / variance_1).sqrt() * (trajectory[0] - mean_1)
        errors.append((x - target).abs().max().item())
    assert errors[-1] < 2e-3 and errors[0] / errors[1] > 8 and errors[1] / errors[2] > 8, errors  # 16: 2nd order
    pushed_mean = mean - (variance / variance_1).sqrt() * mean_1  # the image of the prior N(0, prior_std^2 I)
    pushed_variance = variance * model.prior_std**2 / variance_1
    mean_error, cov_error = moments_error(x, pushed_mean, pushed_variance)
    assert mean_error < 0.015 and cov_error < 0.01, (mean_error, cov_error)  # sampling noise ~ 0.005 / 0.003
    assert (pushed_mean - mean).norm() < 0.06 and abs(pushed_variance - variance) < 1e-3  # the prior's mismatch


@pytest.mark.parametrize("method", ["sde", "pc"])
@pytest.mark.parametrize("cls", MODELS.values(), ids=MODELS.keys())
def test_stochastic_samplers_bring_the_prior_to_the_data_gaussian(cls, method):
    model = exact(cls)
    mean, variance = model.marginal(model.config.t_min)
    generator = torch.Generator().manual_seed(0)
    coarse = moments_error(model.sample(20_000, 10, generator=generator, method=method), mean, variance)
    fine = moments_error(model.sample(20_000, 200, generator=generator, method=method), mean, variance)
    assert fine[0] < 0.015 and fine[1] < 0.012, (coarse, fine)  # sampling noise ~ 0.004 / 0.003
    assert max(coarse) > max(fine), (coarse, fine)


def test_predictor_corrector_without_corrector_is_euler_maruyama():
    score = lambda x, t: -x  # noqa: E731  any score
    drift, diffusion = samplers.reverse_sde_ve(score, lambda t: 1 + t)
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    pc = samplers.predictor_corrector(drift, diffusion, score, x, 7, corrector_steps=0,
                                      generator=torch.Generator().manual_seed(1))
    em = samplers.euler_maruyama(drift, diffusion, x, 7, generator=torch.Generator().manual_seed(1), denoise=True)
    assert torch.equal(pc, em)
    with pytest.raises(ValueError, match="corrector_steps"):
        samplers.predictor_corrector(drift, diffusion, score, x, 7, corrector_steps=-1)
    with pytest.raises(ValueError, match="snr must be positive"):
        samplers.predictor_corrector(drift, diffusion, score, x, 7, snr=0.0)


def test_euler_maruyama_denoise_drops_the_last_noise_only():
    drift, diffusion = (lambda x, t: torch.zeros_like(x)), (lambda t: torch.ones_like(t))
    x = torch.zeros(5, 2, dtype=F64)
    assert torch.equal(samplers.euler_maruyama(drift, diffusion, x, 1, denoise=True), x)
    noisy = samplers.euler_maruyama(drift, diffusion, x, 2, generator=torch.Generator().manual_seed(0), denoise=True)
    z = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    torch.testing.assert_close(noisy, math.sqrt(0.5) * z)


def test_langevin_snr_step_takes_the_papers_step_size():
    """eps = 2 alpha (r ||z|| / ||score||)^2 with batch-averaged norms (Song et al. 2021, Alg. 4-5)."""
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    score = lambda y, t: -(y - 1) / 0.3  # noqa: E731
    t, snr, alpha = torch.zeros(16, dtype=F64), 0.2, 0.9
    stepped = samplers.langevin_snr_step(score, x, t, snr, alpha, torch.Generator().manual_seed(1))
    z = torch.randn(16, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    eps = 2 * alpha * (snr * z.norm(dim=1).mean() / score(x, t).norm(dim=1).mean()) ** 2
    torch.testing.assert_close(stepped, x + eps * score(x, t) + (2 * eps).sqrt() * z)


def test_langevin_corrector_alone_relaxes_to_the_target_gaussian():
    """Repeated corrector steps at a fixed t sample p_t: here N(m, v I), started far away; the step
    eps ~ 2 r^2 v leaves ULA's bias of about eps / (2 v) = r^2 on the variance."""
    mean, variance, snr = torch.tensor([2.0, -1.0], dtype=F64), 0.3, 0.16
    score = lambda y, t: -(y - mean) / variance  # noqa: E731
    x, t, g = torch.zeros(20_000, 2, dtype=F64), torch.zeros(20_000, dtype=F64), torch.Generator().manual_seed(0)
    for _ in range(300):
        x = samplers.langevin_snr_step(score, x, t, snr, generator=g)
    mean_error, cov_error = moments_error(x, mean, variance * (1 + snr**2))
    assert mean_error < 0.015 and cov_error < 0.01, (mean_error, cov_error)


# -- likelihood and loss ----------------------------------------------------------------------------
@pytest.mark.parametrize("cls", MODELS.values(), ids=MODELS.keys())
def test_ode_log_likelihood_is_the_gaussian_log_density(cls):
    """log_prob is exact for the model: the prior pulled back through the affine PF-ODE map; and it
    is the data Gaussian's log-density up to the prior's mismatch with p_1."""
    model = exact(cls)
    x = MEAN + STD * torch.randn(200, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    (mean, variance), (mean_1, variance_1) = model.marginal(model.config.t_min), model.marginal(1.0)
    log_prob = model.log_prob(x, steps=50)
    x_1 = mean_1 + (variance_1 / variance).sqrt() * (x - mean)
    pulled_back = model.prior_log_prob(x_1) + torch.log(variance_1 / variance)  # + D/2 log(v_1 / v), D = 2
    torch.testing.assert_close(log_prob, pulled_back, atol=1e-4, rtol=0)
    data = isotropic_gaussian_log_prob((x - mean).pow(2).sum(1), variance, 2)
    assert (log_prob - data).abs().mean() < (0.03 if cls is VPScoreSDE else 0.15)


@pytest.mark.parametrize("cls", MODELS.values(), ids=MODELS.keys())
def test_denoising_score_matching_loss_of_the_exact_score(cls):
    """The exact score's loss is the closed form E_t[Var(eps | x_t)] = E_t[alpha^2 s^2 / v_t], t ~ U[t_min, 1],
    and a wrong score (that of N(m + 0.3, s^2 I)) pays more on the same draws."""
    model = exact(cls)
    x0 = MEAN + STD * torch.randn(100_000, 2, generator=torch.Generator().manual_seed(2), dtype=F64)
    loss = model.loss(x0, generator=torch.Generator().manual_seed(3)).item()
    t = torch.linspace(model.config.t_min, 1, 20_001, dtype=F64)
    alpha, sigma = model.gaussian_path.alpha(t), model.gaussian_path.sigma(t)
    closed_form = torch.trapezoid(alpha**2 * STD**2 / (alpha**2 * STD**2 + sigma**2), t) / (1 - model.config.t_min)
    assert loss == pytest.approx(closed_form.item(), abs=0.01)
    wrong = exact(cls, MEAN + 0.3)
    assert wrong.loss(x0, generator=torch.Generator().manual_seed(3)).item() > loss + 0.01


# -- the contract, errors, determinism, NFE -----------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_contract_shapes_and_errors(name):
    torch.manual_seed(0)
    model = zoo.make(name, (2,), hidden=16)
    assert isinstance(model, ScoreBased) and isinstance(model, MODELS[name])
    x = torch.randn(8, 2)
    assert model.loss(x).shape == () and model.score(x, 0.5).shape == (8, 2)
    for method in ("pc", "sde", "ode"):
        assert model.sample(5, steps=3, method=method).shape == (5, 2)
    assert model.log_prob(x[:3], steps=4).shape == (3,)
    with pytest.raises(ValueError, match="unknown sampling method 'ddim'; choose one of ode, sde, pc"):
        model.sample(5, method="ddim")
    with pytest.raises(ValueError, match="steps must be a positive int"):
        model.sample(5, steps=0)
    with pytest.raises(ShapeError, match=r"expects a batch of shape \(B, 2\); got \(8, 3\)"):
        model.loss(torch.randn(8, 3))
    with pytest.raises(ValueError, match="t_min must lie in"):
        zoo.make(name, (2,), t_min=0.0)
    image = zoo.make(name, (1, 4, 4), hidden=16)
    assert image.sample(2, steps=2).shape == (2, 1, 4, 4) and image.loss(torch.rand(3, 1, 4, 4)).shape == ()


@pytest.mark.parametrize("name", MODELS)
def test_samplers_are_deterministic_given_a_generator_and_count_their_nfe(name):
    torch.manual_seed(0)
    model = zoo.make(name, (2,), hidden=16, corrector_steps=2)
    for method, nfe_per_step in (("pc", 3), ("sde", 1), ("ode", 2)):
        with count_nfe() as nfe:
            a = model.sample(6, 5, generator=torch.Generator().manual_seed(7), method=method)
        b = model.sample(6, 5, generator=torch.Generator().manual_seed(7), method=method)
        c = model.sample(6, 5, generator=torch.Generator().manual_seed(8), method=method)
        assert torch.equal(a, b) and not torch.equal(a, c) and nfe.count == 5 * nfe_per_step, method
    x = torch.randn(8, 2)
    assert model.loss(x, generator=torch.Generator().manual_seed(1)) == model.loss(
        x, generator=torch.Generator().manual_seed(1))
