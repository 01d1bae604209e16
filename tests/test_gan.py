"""Oracles for the GAN family (unigm.gan): each variant's losses against their closed forms, the
Lipschitz constraints of the WGAN critics, and the contract every GAN keeps: every random draw
comes from the generator it is given, and a variant changes one hook, never undoes another."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from unigm import data, registry, zoo
from unigm.gan import (F_DIVERGENCES, FGAN, GAN, R3GAN, WGAN, WGANGP, WGANSN, AdaIN, MinimaxGAN, StyleGAN,
                       WGANClip, pairing_loss)
from unigm.train import fit

GANS = {"gan": GAN, "minimax_gan": MinimaxGAN, "wgan_clip": WGANClip, "wgan_gp": WGANGP, "wgan_sn": WGANSN,
        "f_gan": FGAN, "stylegan": StyleGAN, "r3gan": R3GAN}


def small(name):
    torch.manual_seed(0)
    return zoo.make(name, (2,), hidden=16)


# -- the registry ---------------------------------------------------------------------------------
def test_every_gan_is_registered_with_a_2d_recipe_and_its_quality_gates():
    for name, cls in GANS.items():
        assert zoo.model_class(name) is cls and cls.name == name
        recipe = zoo.recipe(name, "2d")
        assert recipe.batch_size in (128, 256) and recipe.lr == 1e-3 and recipe.steps >= 300
        assert list(recipe.min_quality) == ["two_moons", "eight_gaussians"]
        assert all(0 < g < 1 for g in recipe.min_quality.values())
    assert WGAN not in registry.MODELS.values()  # the unconstrained dual is a base, not a model


# -- GAN and the minimax game ---------------------------------------------------------------------
def test_minimax_generator_minimises_log_one_minus_d():
    logits = torch.randn(50)
    expected = torch.log(1 - torch.sigmoid(logits)).mean()
    torch.testing.assert_close(MinimaxGAN((2,)).generator_loss(logits), expected)


def record_discriminator_inputs(model):
    inputs = []
    model.discriminator.register_forward_pre_hook(lambda module, args: inputs.append(args[0].detach().clone()))
    return inputs


@pytest.mark.parametrize("name", [n for n in GANS if n != "r3gan"])
def test_generator_objective_evaluates_d_on_fresh_fakes_only(name):
    """The generator's loss of every GAN but R3GAN is a function of D(G(z)) alone: one call of D,
    on G(z) with z drawn from the generator, never on the real batch."""
    model = small(name)
    x = torch.randn(32, 2)
    inputs = record_discriminator_inputs(model)
    model.generator_objective(x, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        fake = model.generator(torch.randn(32, model.config.noise_dim, generator=torch.Generator().manual_seed(3)))
    assert len(inputs) == 1
    torch.testing.assert_close(inputs[0], fake)


# -- determinism: every draw from the generator given ------------------------------------------------
@pytest.mark.parametrize("name", list(GANS))
def test_losses_and_samples_are_pure_functions_of_the_generator(name):
    model = small(name)
    x = torch.randn(32, 2)
    calls = {"loss": lambda m, g: m.loss(x, generator=g),
             "discriminator": lambda m, g: m.discriminator_objective(x, generator=g),
             "generator": lambda m, g: m.generator_objective(x, generator=g),
             "sample": lambda m, g: m.sample(7, generator=g)}
    for what, call in calls.items():
        global_state = torch.get_rng_state()
        # fresh copies: spectral norm's power iteration updates the critic in each training forward
        first = call(copy.deepcopy(model), torch.Generator().manual_seed(11))
        second = call(copy.deepcopy(model), torch.Generator().manual_seed(11))
        other = call(copy.deepcopy(model), torch.Generator().manual_seed(12))
        assert torch.equal(first, second), what
        assert not torch.equal(first, other), what
        assert torch.equal(torch.get_rng_state(), global_state), f"{what} drew from the global RNG"


# -- Wasserstein GANs -----------------------------------------------------------------------------
def test_wgan_clip_keeps_critic_weights_in_the_box():
    torch.manual_seed(0)
    model = WGANClip((2,), WGANClip.Config(hidden=16, clip=0.05))
    fit(model, data.toy("two_moons"), steps=3, lr=1e-2, progress=False)
    assert all(p.abs().max() <= 0.05 + 1e-7 for p in model.discriminator.parameters())


@pytest.mark.parametrize("name", ["wgan_gp", "wgan_sn"])
def test_only_wgan_clip_clips(name):
    """WGAN-GP and WGAN-SN keep their critics Lipschitz by other means; after a training step with a
    large learning rate their raw weights leave the box [-c, c] that WGANClip would enforce."""
    clip = WGANClip.Config().clip
    model = small(name)
    assert not isinstance(model, WGANClip)
    fit(model, data.toy("two_moons"), steps=1, lr=0.5, progress=False)
    assert max(p.abs().max().item() for p in model.discriminator.parameters()) > 2 * clip


def test_wgan_losses_estimate_the_critic_gap():
    real, fake = torch.randn(30), torch.randn(30) + 1
    model = WGANGP((2,))
    torch.testing.assert_close(model.discriminator_loss(real, fake), fake.mean() - real.mean())
    torch.testing.assert_close(model.generator_loss(fake), -fake.mean())


def test_gradient_penalty_of_a_linear_critic():
    model = WGANGP((2,), WGANGP.Config(gp_lambda=10.0))
    linear = torch.nn.Linear(2, 1)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[0.6, 0.0]]))
    model.discriminator = linear
    penalty = model.penalty(torch.randn(8, 2), torch.randn(8, 2), None, None)
    assert penalty.item() == pytest.approx(10 * (0.6 - 1) ** 2)


def test_gradient_penalty_interpolates_with_weights_from_the_generator():
    """lambda E (|grad D(x_hat)| - 1)^2, x_hat = eps x + (1 - eps) G(z), spelled out with the eps
    drawn from a generator seeded like the one the penalty gets."""
    model = small("wgan_gp")
    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    eps = torch.rand(16, 1, generator=torch.Generator().manual_seed(4))
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(model.discriminator(x_hat).sum(), x_hat)
    expected = model.config.gp_lambda * (grad.norm(dim=1) - 1).pow(2).mean()
    penalty = model.penalty(real, fake, None, None, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(penalty, expected)


def test_spectral_norm_makes_each_critic_layer_1_lipschitz():
    torch.manual_seed(0)
    model = WGANSN((2,), WGANSN.Config(hidden=32))
    model.train()
    for _ in range(30):  # power iterations run in each training-mode forward
        model.discriminator(torch.randn(4, 2))
    for module in model.discriminator.modules():
        if isinstance(module, torch.nn.Linear):
            assert torch.linalg.matrix_norm(module.weight, ord=2).item() == pytest.approx(1.0, abs=1e-3)


# -- R3GAN ----------------------------------------------------------------------------------------
def test_r3gan_pairing_loss_and_both_penalties():
    real, fake = torch.randn(20), torch.randn(20)
    model = R3GAN((2,), R3GAN.Config(r1_gamma=0.5))
    torch.testing.assert_close(model.discriminator_loss(real, fake), F.softplus(fake - real).mean())
    torch.testing.assert_close(pairing_loss(fake, real), -F.logsigmoid(fake - real).mean())
    linear = torch.nn.Linear(2, 1)  # gradient w everywhere: R1 = R2 = |w|^2
    x, y = torch.randn(8, 2, requires_grad=True), torch.randn(8, 2, requires_grad=True)
    penalty = model.penalty(x, y, linear(x), linear(y))
    assert penalty.item() == pytest.approx(0.5 * 0.5 * (2 * linear.weight.pow(2).sum()).item(), rel=1e-6)  # gamma/2 (R1 + R2)


def test_r3gan_generator_objective_pairs_each_fake_with_a_real_point():
    """L_G = E softplus(D(x) - D(G(z))), computed by hand with z from an equally seeded generator."""
    model = small("r3gan")
    x = torch.randn(32, 2)
    inputs = record_discriminator_inputs(model)
    value = model.generator_objective(x, generator=torch.Generator().manual_seed(5))
    assert len(inputs) == 2 and any(torch.equal(i, x) for i in inputs)
    with torch.no_grad():
        z = torch.randn(32, model.config.noise_dim, generator=torch.Generator().manual_seed(5))
        expected = F.softplus(model.discriminator(x) - model.discriminator(model.generator(z))).mean()
    torch.testing.assert_close(value.detach(), expected)


# -- f-GAN ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(F_DIVERGENCES))
def test_f_gan_bound_is_tight_at_the_optimal_critic(name):
    """P = N(0.5, 1), Q = N(0, 1) on a grid: with T* = f'(p/q) the variational bound
    E_P[T*] - E_Q[f*(T*)] equals D_f(P || Q) = E_Q[f(p/q)]; any other T gives less."""
    f = F_DIVERGENCES[name]
    x = torch.linspace(-10, 10, 20001, dtype=torch.float64)
    dx = (x[1] - x[0]).item()
    p, q = torch.distributions.Normal(0.5, 1.0).log_prob(x).exp(), torch.distributions.Normal(0.0, 1.0).log_prob(x).exp()
    ratio = (p / q).requires_grad_(True)
    (f_prime,) = torch.autograd.grad(f.f(ratio).sum(), ratio)
    t_star = f_prime.detach().clamp(-0.5, 0.5) if name == "total_variation" else f_prime.detach()
    divergence = (q * f.f(p / q)).sum().item() * dx
    bound = ((p * t_star).sum() - (q * f.conjugate(t_star)).sum()).item() * dx
    assert bound == pytest.approx(divergence, abs=1e-4)
    worse = ((p * 0.9 * t_star).sum() - (q * f.conjugate(0.9 * t_star)).sum()).item() * dx
    assert worse < bound
    model = FGAN((1,), FGAN.Config(divergence=name))
    assert model.variational_bound(torch.zeros(3), torch.zeros(3)).item() == pytest.approx(
        (f.activation(torch.zeros(1)) - f.conjugate(f.activation(torch.zeros(1)))).item())


def test_f_divergences_match_scipy_on_discrete_distributions():
    """D_f(P || Q) = sum_x q f(p/q) with the library's generators against independent references:
    scipy's relative entropy (KL both ways), Jensen-Shannon distance (D_f = 2 JSD, Nowozin et al. Table 1),
    Pearson chi^2 = sum (p - q)^2 / q and total variation = sum |p - q| / 2."""
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import entropy

    g = torch.Generator().manual_seed(0)
    p, q = (torch.rand(12, generator=g, dtype=torch.float64) + 0.05 for _ in range(2))
    p, q = p / p.sum(), q / q.sum()
    reference = {"kl": entropy(p, q), "reverse_kl": entropy(q, p), "pearson": ((p - q) ** 2 / q).sum().item(),
                 "jensen_shannon": 2 * jensenshannon(p, q) ** 2, "total_variation": 0.5 * (p - q).abs().sum().item()}
    assert set(reference) == set(F_DIVERGENCES)
    for name, expected in reference.items():
        assert (q * F_DIVERGENCES[name].f(p / q)).sum().item() == pytest.approx(expected, rel=1e-10), name


def _sup_over_ratios(f, t, high):
    """sup_{0 <= u <= high} (u t - f(u)) (u = p/q is never negative) by bounded Brent, scipy."""
    from scipy.optimize import minimize_scalar

    result = minimize_scalar(lambda v: -(v * t - f(torch.tensor(v, dtype=torch.float64)).item()),
                             bounds=(1e-12, high), method="bounded", options={"xatol": 1e-12})
    return -result.fun


@pytest.mark.parametrize("name", list(F_DIVERGENCES))
def test_f_gan_activations_map_into_the_domain_of_the_conjugate(name):
    """Wherever the critic's activation can send it, f*(T) is finite and is the supremum over u >= 0;
    the supremum is bounded there (it does not grow when the search interval grows)."""
    f = F_DIVERGENCES[name]
    T = f.activation(torch.linspace(-6, 6, 13, dtype=torch.float64))
    library = f.conjugate(T)
    assert torch.isfinite(library).all(), (name, T)
    for t, value in zip(T.tolist(), library.tolist()):
        near, far = _sup_over_ratios(f.f, t, 1e3), _sup_over_ratios(f.f, t, 1e5)
        assert far == pytest.approx(near, abs=1e-6), (name, t)
        assert value == pytest.approx(near, abs=1e-6), (name, t)


def test_total_variation_conjugate_on_nonnegative_ratios():
    """f = |u - 1|/2 on u >= 0: f*(t) = -1/2 for t < -1/2 (sup at u = 0), t on [-1/2, 1/2], +inf above."""
    conjugate = F_DIVERGENCES["total_variation"].conjugate
    t = torch.tensor([-3.0, -0.8, -0.5, 0.2, 0.5, 0.8], dtype=torch.float64)
    torch.testing.assert_close(conjugate(t), torch.tensor([-0.5, -0.5, -0.5, 0.2, 0.5, math.inf], dtype=torch.float64))
    assert _sup_over_ratios(F_DIVERGENCES["total_variation"].f, -0.8, 1e5) == pytest.approx(-0.5, abs=1e-9)


@pytest.mark.parametrize("name", list(F_DIVERGENCES))
def test_f_gan_players_play_the_saddle_point_of_the_bound(name):
    """Nowozin et al. eq. 6: the discriminator maximises B = E_P[T] - E_Q[f*(T)] (its loss is -B) and the
    generator minimises B, whose part it can move is -E_Q[f*(T(G(z)))]: the generator's loss and B have the
    same gradient with respect to the fake logits, and opposite to the discriminator's."""
    model = FGAN((1,), FGAN.Config(divergence=name)).double()
    g = torch.Generator().manual_seed(0)
    real = torch.randn(64, 1, generator=g, dtype=torch.float64)
    fake = torch.randn(64, 1, generator=g, dtype=torch.float64).requires_grad_(True)
    bound = model.variational_bound(real, fake)
    (d_bound,) = torch.autograd.grad(bound, fake)
    (d_generator,) = torch.autograd.grad(model.generator_loss(fake), fake)
    (d_discriminator,) = torch.autograd.grad(model.discriminator_loss(real, fake), fake)
    assert d_bound.abs().sum() > 0
    torch.testing.assert_close(d_generator, d_bound)
    torch.testing.assert_close(d_discriminator, -d_bound)


def test_f_gan_rejects_unknown_divergences():
    with pytest.raises(KeyError, match="unknown f-divergence 'hellinger'"):
        zoo.make("f_gan", (2,), divergence="hellinger")


# -- StyleGAN -------------------------------------------------------------------------------------
def test_stylegan_generator_is_mapping_then_synthesis_and_adain_normalises():
    torch.manual_seed(0)
    model = StyleGAN((2,), StyleGAN.Config(hidden=16))
    z = torch.randn(5, model.config.noise_dim)
    torch.testing.assert_close(model.generator(z), model.generator.synthesize(model.generator.mapping(z)))
    adain = AdaIN(6, 3)
    with torch.no_grad():
        adain.style.weight.zero_()
        adain.style.bias.zero_()
    out = adain(torch.randn(4, 6) * 5 + 2, torch.randn(4, 3))
    torch.testing.assert_close(out.mean(-1), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(-1), torch.ones(4), atol=1e-4, rtol=0)
