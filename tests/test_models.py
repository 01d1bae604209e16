"""The zoo and its first four models: contract, clear errors, and oracles for each loss."""
import math

import pytest
import torch
import torch.nn.functional as F

from unigm import zoo
from unigm.base import FlowBased, Implicit, LikelihoodBased, Representation, ScoreBased, ShapeError
from unigm.diffusion import DDPM
from unigm.schedules import alpha_bar_vp_linear, beta_vp_linear
from unigm.flows import FlowMatching
from unigm.gan import GAN, discriminator_loss, generator_loss_non_saturating, r1_penalty
from unigm.vae import VAE, gaussian_log_prob, kl_to_standard_normal

PARADIGM = {"vae": LikelihoodBased, "gan": Implicit, "flow_matching": FlowBased, "ddpm": ScoreBased}


IMAGE_ONLY = {"pixelcnn": (1, 8, 8), "gated_pixelcnn": (1, 8, 8), "pixel_transformer": (1, 8, 8)}  # one channel
IMAGE_ONLY["next_frame"] = (2, 8, 8)  # models frames (C, H, W), here those of unigm.world.env
IMAGE_ONLY.update(jepa=(1, 8, 8), jepa_shared=(1, 8, 8))  # patches of images (C, H, W)
IMAGE_ONLY["mar"] = (1, 8, 8)  # 2x2-patch tokens of images (C, H, W)
IMAGE_ONLY["vjepa"] = (4, 2, 8, 8)  # tubelets of clips (T, C, H, W) of unigm.world.env
IMAGE_ONLY["transfusion"] = (1, 8, 8)  # 2x2 patches of captioned digits (C, H, W)
IMAGE_ONLY["var"] = (1, 8, 8)  # square one-channel images: multi-scale token maps


def test_zoo_lists_and_builds_every_model():
    assert set(PARADIGM) <= set(zoo.names())
    for name in zoo.names():
        model = zoo.make(name, IMAGE_ONLY.get(name, (2,)))
        # every model is of one paradigm; a Representation (JEPA) learns embeddings, not a distribution
        assert model.name == name and isinstance(model, (LikelihoodBased, Implicit, FlowBased, ScoreBased,
                                                         Representation))
        if name in PARADIGM:
            assert isinstance(model, PARADIGM[name])
        if name in zoo.names_2d():  # every 2D model has a training recipe; image models say they have none
            assert {"steps", "batch_size", "lr"} <= set(zoo.recipe(name).fit_kwargs())
        else:
            with pytest.raises(KeyError, match=f"{name} has no 2d recipe; models with one: .*ddpm"):
                zoo.recipe(name)
    assert set(PARADIGM) <= set(zoo.names_2d())


def test_zoo_errors_name_the_alternatives():
    with pytest.raises(KeyError, match="registered models: .*ddpm.*vae"):
        zoo.make("diffusion", (2,))
    with pytest.raises(TypeError, match="no config option.*widht.*options are"):
        zoo.make("vae", (2,), widht=3)
    with pytest.raises(ShapeError, match="event_shape"):
        zoo.make("vae", (0,))


@pytest.mark.parametrize("name", list(PARADIGM))
def test_contract_shapes_and_input_errors(name):
    torch.manual_seed(0)
    model = zoo.make(name, (2,), hidden=16)
    x = torch.randn(8, 2)
    assert model.loss(x).shape == ()
    assert model.sample(5, steps=4).shape == (5, 2)
    if name == "gan":
        with pytest.raises(NotImplementedError):
            model.log_prob(x)
    else:
        assert model.log_prob(x[:3], steps=4).shape == (3,) if name != "vae" else model.log_prob(x[:3]).shape == (3,)
    with pytest.raises(ShapeError, match=r"expects a batch of shape \(B, 2\); got \(8, 3\)"):
        model.loss(torch.randn(8, 3))
    with pytest.raises(ShapeError, match="floating-point"):
        model.loss(torch.ones(8, 2, dtype=torch.long))
    with pytest.raises(ShapeError, match="torch.Tensor"):
        model.loss([[0.0, 1.0]])
    with pytest.raises(ValueError, match="positive int"):
        model.sample(-1)


def test_models_take_image_shaped_events():
    model = zoo.make("flow_matching", (1, 8, 8), hidden=32)
    assert model.loss(torch.rand(4, 1, 8, 8)).shape == ()
    assert model.sample(3, steps=2).shape == (3, 1, 8, 8)


# -- VAE ------------------------------------------------------------------------------------------
def test_vae_densities_match_torch_distributions():
    x, mean, log_std = torch.randn(5, 3), torch.randn(5, 3), 0.3 * torch.randn(5, 3)
    normal = torch.distributions.Normal(mean, log_std.exp())
    torch.testing.assert_close(gaussian_log_prob(x, mean, log_std), normal.log_prob(x).sum(-1))
    kl = torch.distributions.kl_divergence(normal, torch.distributions.Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(kl_to_standard_normal(mean, log_std), kl)


def test_vae_bounds_approach_the_exact_marginal_from_below():
    """With a 2D latent, log p(x) = log int p(x|z) p(z) dz is computed by quadrature on a grid.
    In expectation ELBO <= IWAE_k <= log p(x) (Burda et al. 2016, Thm. 1), and with k = 20,000
    the importance-weighted estimate is within 0.01 nats of the exact value."""
    torch.manual_seed(0)
    model = VAE((2,), VAE.Config(hidden=32, depth=2)).double()
    with torch.no_grad():
        model.decoder.layers[-1].bias[2:] = -0.5  # decoder std ~ 0.6 so the integrand is smooth
    x = torch.randn(4, 2, dtype=torch.float64)
    grid = torch.linspace(-7, 7, 561, dtype=torch.float64)
    zz = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        mean, log_std = model.decode(zz)
        log_integrand = gaussian_log_prob(x[:, None], mean[None], log_std[None]) - 0.5 * zz.pow(2).sum(-1) - math.log(2 * math.pi)
    exact = torch.logsumexp(log_integrand, dim=1) + 2 * math.log(grid[1] - grid[0])
    torch.manual_seed(1)
    with torch.no_grad():
        elbo = torch.stack([model.elbo(x) for _ in range(4000)])
    iwae_4 = torch.stack([model.log_prob(x, k=4) for _ in range(1000)])
    sem = lambda a: a.std(0) / math.sqrt(len(a))  # noqa: E731
    assert torch.all(elbo.mean(0) + 3 * sem(elbo) < exact)
    assert torch.all(elbo.mean(0) < iwae_4.mean(0)) and torch.all(iwae_4.mean(0) < exact + 3 * sem(iwae_4))
    torch.testing.assert_close(model.log_prob(x, k=20_000), exact, atol=0.01, rtol=0)


def test_vae_kl_warmup_weight_rises_linearly():
    model = VAE((2,), VAE.Config(hidden=8, kl_warmup_steps=4))
    weights = []
    for _ in range(6):
        weights.append(model.kl_weight())
        model.after_update(torch.randn(3, 2))  # the trainer calls this after each optimiser step
    assert weights == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    model.loss(torch.randn(3, 2))
    assert model.updates.item() == 6  # computing a loss does not advance the warm-up


# -- GAN ------------------------------------------------------------------------------------------
def test_gan_losses_are_binary_cross_entropy():
    real, fake = torch.randn(10), torch.randn(10)
    expected_d = F.binary_cross_entropy_with_logits(real, torch.ones(10)) + F.binary_cross_entropy_with_logits(fake, torch.zeros(10))
    torch.testing.assert_close(discriminator_loss(real, fake), expected_d)
    torch.testing.assert_close(generator_loss_non_saturating(fake), F.binary_cross_entropy_with_logits(fake, torch.ones(10)))
    # with probabilities instead of logits: the textbook form -log D(x) - log(1 - D(G(z)))
    d_real, d_fake = torch.sigmoid(real), torch.sigmoid(fake)
    torch.testing.assert_close(discriminator_loss(real, fake), -(d_real.log().mean() + (1 - d_fake).log().mean()))


def test_r1_penalty_is_the_squared_input_gradient_norm():
    """For a linear discriminator D(x) = w.x + b the input gradient is w everywhere: R1 = |w|^2."""
    linear = torch.nn.Linear(3, 1)
    real = torch.randn(7, 3, requires_grad=True)
    torch.testing.assert_close(r1_penalty(linear(real), real), linear.weight.pow(2).sum())


def test_gan_declares_discriminator_then_generator():
    model = GAN((2,))
    players = model.players()
    assert [p.name for p in players] == ["discriminator", "generator"]
    assert players[0].module is model.discriminator and players[1].module is model.generator


# -- DDPM -----------------------------------------------------------------------------------------
def test_vp_schedule_is_exp_of_integrated_beta_with_boundary_values():
    from scipy.integrate import quad

    for t in (0.1, 0.5, 0.9):
        integral, _ = quad(lambda s: beta_vp_linear(s), 0, t)
        assert alpha_bar_vp_linear(torch.tensor(t, dtype=torch.float64)).item() == pytest.approx(math.exp(-integral))
    assert alpha_bar_vp_linear(torch.tensor(0.0)).item() == 1.0
    assert alpha_bar_vp_linear(torch.tensor(1.0, dtype=torch.float64)).item() == pytest.approx(math.exp(-10.05))
    # T = 1000 discretisation: beta_i = beta(i/T)/T spans Ho et al.'s 1e-4 .. 0.02
    assert beta_vp_linear(0.0) / 1000 == pytest.approx(1e-4) and beta_vp_linear(1.0) / 1000 == pytest.approx(0.02)


def test_ddpm_forward_process_moments_match_the_closed_form():
    model = DDPM((2,))
    x0 = torch.tensor([[1.5, -2.0]]).expand(200_000, 2)
    t = torch.full((200_000,), 0.3)
    xt = model.noise(x0, torch.randn(200_000, 2, generator=torch.Generator().manual_seed(0)), t)
    a = alpha_bar_vp_linear(torch.tensor(0.3))
    torch.testing.assert_close(xt.mean(0), a.sqrt() * x0[0], atol=0.01, rtol=0)
    torch.testing.assert_close(xt.var(0), (1 - a).expand(2), atol=0.01, rtol=0)


class GaussianDDPM(DDPM):
    """DDPM with the exact noise predictor for data N(0, s^2 I):
    E[eps | x_t] = sqrt(1 - a) x_t / (a s^2 + 1 - a), a = alpha_bar(t)."""

    s = 0.5

    def predict_eps(self, x, t):
        a = self.alpha_bar(t)[:, None]
        return (1 - a).sqrt() * x / (a * self.s**2 + 1 - a)


def test_ddpm_sampler_and_likelihood_with_the_exact_predictor():
    torch.manual_seed(0)
    model = GaussianDDPM((2,))
    samples = model.sample(50_000)
    assert samples.std().item() == pytest.approx(GaussianDDPM.s, rel=0.02)
    x = torch.randn(20, 2) * 0.5
    exact = torch.distributions.Normal(0.0, GaussianDDPM.s).log_prob(x).sum(1)
    # the ODE starts at t = 1/T, where the marginal is N(0, s^2 a + 1 - a): compare with that
    t0 = torch.tensor(1 / model.config.num_steps)
    a = model.alpha_bar(t0)
    exact_t0 = torch.distributions.Normal(0.0, (a * GaussianDDPM.s**2 + 1 - a).sqrt()).log_prob(x).sum(1)
    log_prob = model.log_prob(x)
    torch.testing.assert_close(log_prob, exact_t0, atol=2e-3, rtol=0)
    assert (log_prob - exact).abs().max() < 0.05


# -- Flow matching --------------------------------------------------------------------------------
def test_flow_matching_target_is_the_time_derivative_of_the_path():
    model = FlowMatching((2,))
    x0, x1, t = torch.randn(6, 2), torch.randn(6, 2), torch.rand(6)
    h = 1e-3
    xt, target = model.path(x0, x1, t)
    xt_h, _ = model.path(x0, x1, t + h)
    torch.testing.assert_close((xt_h - xt) / h, target, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(model.path(x0, x1, torch.zeros(6))[0], x0)
    torch.testing.assert_close(model.path(x0, x1, torch.ones(6))[0], x1)


class GaussianFlow(FlowMatching):
    """Flow matching with the exact marginal velocity for data N(m, s^2 I) (see test_samplers)."""

    m, s = torch.tensor([1.0, -0.5]), 0.6

    def velocity(self, x, t):
        t = t[:, None]
        var = (1 - t) ** 2 * self.s**2 + t**2
        return -self.m + (t - (1 - t) * self.s**2) / var * (x - (1 - t) * self.m)


def test_flow_matching_loss_is_minimised_by_the_marginal_velocity():
    """At the exact velocity the loss equals its irreducible part E|x1 - x0 - v|^2 > 0, and any
    perturbation of v increases it (the conditional-FM gradient equals the marginal one)."""
    class Shifted(GaussianFlow):
        def velocity(self, x, t):
            return super().velocity(x, t) + 0.1

    torch.manual_seed(0)
    exact, shifted = GaussianFlow((2,)), Shifted((2,))
    x = exact.m + exact.s * torch.randn(200_000, 2)
    torch.manual_seed(1)
    best = exact.loss(x).item()
    torch.manual_seed(1)
    worse = shifted.loss(x).item()
    assert worse - best == pytest.approx(0.01, abs=1e-3)  # |0.1|^2 per dimension, averaged


def test_flow_matching_sampler_and_likelihood_with_the_exact_velocity():
    torch.manual_seed(0)
    model = GaussianFlow((2,))
    samples = model.sample(50_000)
    torch.testing.assert_close(samples.mean(0), model.m, atol=0.02, rtol=0)
    x = model.m + model.s * torch.randn(10, 2)
    exact = torch.distributions.Normal(model.m, model.s).log_prob(x).sum(1)
    torch.testing.assert_close(model.log_prob(x), exact, atol=1e-4, rtol=0)


# -- FSQ ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("levels", [(8, 5, 5, 5), (7, 5, 5, 5, 5), (2, 3), (4,)])
def test_fsq_has_exactly_L_levels_per_channel(levels):
    from unigm.vae import FSQ

    fsq = FSQ(levels)
    z = torch.linspace(-20, 20, 100_001)[:, None].expand(-1, len(levels))
    codes = fsq(z)
    for i, L in enumerate(levels):
        assert len(torch.unique(codes[:, i])) == L  # L levels, not 2L + 1
    assert codes.abs().max() <= 1
    assert fsq.codebook_size == math.prod(levels)
    book = fsq.implicit_codebook()
    assert len(torch.unique(book, dim=0)) == fsq.codebook_size
    torch.testing.assert_close(fsq.codes_to_indices(book), torch.arange(fsq.codebook_size))


def test_fsq_straight_through_gradient_is_that_of_the_bound():
    from unigm.vae import FSQ

    fsq = FSQ((5, 4))
    z = torch.randn(16, 2, requires_grad=True)
    fsq(z).sum().backward()
    z2 = z.detach().clone().requires_grad_(True)
    (fsq.bound(z2) / fsq.scale).sum().backward()
    torch.testing.assert_close(z.grad, z2.grad)
    with pytest.raises(ValueError, match="at least 2 levels"):
        FSQ((1, 3))
