"""Oracles for the GAN family (unigm.gan): each variant's losses against their closed forms, the
Lipschitz constraints of the WGAN critics, and the contract every GAN keeps: every random draw
comes from the generator it is given, and a variant changes one hook, never undoes another."""
import copy

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
