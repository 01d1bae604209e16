"""Oracles for the VAE, flow and GAN families of lecture 01."""
import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.optimize import linear_sum_assignment

from unigm import data, zoo
from unigm.flows import CNF, HutchinsonCNF, OTFlowMatching, RealNVP, RectifiedFlow, straightness
from unigm.gan import F_DIVERGENCES, FGAN, R3GAN, WGANClip, WGANGP, WGANSN, AdaIN, MinimaxGAN, StyleGAN
from unigm.samplers import divergence_exact, ode_log_prob, standard_normal_log_prob
from unigm.train import fit
from unigm.vae import (BernoulliVAE, BetaVAE, FSQVAE, VQVAE, code_perplexity, gaussian_log_prob)


# -- VAE family -----------------------------------------------------------------------------------
def test_beta_vae_weights_the_rate_while_training_only():
    model = BetaVAE((2,), BetaVAE.Config(beta=3.0, kl_warmup_steps=0, hidden=8))
    x = torch.randn(16, 2)
    torch.manual_seed(0)
    reconstruction, kl = model.elbo_terms(x)
    torch.manual_seed(0)
    assert model.loss(x).item() == pytest.approx(-(reconstruction - 3.0 * kl).mean().item(), rel=1e-6)
    model.eval()
    torch.manual_seed(0)
    assert model.loss(x).item() == pytest.approx(-(reconstruction - kl).mean().item(), rel=1e-6)


def test_bernoulli_decoder_is_the_bernoulli_log_likelihood():
    torch.manual_seed(0)
    model = BernoulliVAE((1, 4, 4), BernoulliVAE.Config(latent_dim=2, hidden=16))
    x = torch.randint(0, 2, (5, 16)).float()
    z = torch.randn(5, 2)
    expected = torch.distributions.Bernoulli(logits=model.decoder(z)).log_prob(x).sum(-1)
    torch.testing.assert_close(model.decoder_log_prob(x, z), expected)
    with pytest.raises(ValueError, match="binary"):
        model.loss(torch.rand(5, 1, 4, 4))


def test_bernoulli_vae_bound_approaches_the_exact_marginal():
    """log p(x) = log sum over a z-grid of p(x|z) p(z) dz; IWAE(k=20,000) within 0.01 nats of it."""
    torch.manual_seed(0)
    model = BernoulliVAE((6,), BernoulliVAE.Config(latent_dim=2, hidden=16)).double()
    x = torch.randint(0, 2, (3, 6)).double()
    grid = torch.linspace(-7, 7, 401, dtype=torch.float64)
    zz = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        log_integrand = model.decoder_log_prob(x[:, None].expand(-1, len(zz), -1), zz[None].expand(3, -1, -1))
        log_integrand = log_integrand - 0.5 * zz.pow(2).sum(-1) - math.log(2 * math.pi)
    exact = torch.logsumexp(log_integrand, dim=1) + 2 * math.log(grid[1] - grid[0])
    torch.testing.assert_close(model.log_prob(x, k=20_000), exact, atol=0.01, rtol=0)


def _vq_terms_grads(model, term, x):
    model.zero_grad()
    model.loss_terms(x)[term].backward()
    return {name: p.grad is not None and p.grad.abs().sum().item() > 0 for name, p in
            [("encoder", next(model.encoder.parameters())), ("decoder", next(model.decoder.parameters())),
             ("codebook", model.codebook.weight)]}


def test_vqvae_losses_send_gradients_where_they_belong():
    """Reconstruction -> decoder and (straight through) encoder; codebook term -> codebook only;
    commitment term -> encoder only (van den Oord et al. 2017, eq. 3)."""
    torch.manual_seed(0)
    model = VQVAE((1, 8, 8), VQVAE.Config(codebook_size=16, hidden=32))
    x = torch.rand(32, 1, 8, 8)
    assert _vq_terms_grads(model, "reconstruction", x) == {"encoder": True, "decoder": True, "codebook": False}
    assert _vq_terms_grads(model, "codebook", x) == {"encoder": False, "decoder": False, "codebook": True}
    assert _vq_terms_grads(model, "commitment", x) == {"encoder": True, "decoder": False, "codebook": False}


def test_vqvae_straight_through_passes_codes_forward_and_gradients_back():
    torch.manual_seed(0)
    model = VQVAE((1, 8, 8), VQVAE.Config(codebook_size=16, hidden=32))
    z_e = torch.randn(4, model.config.latents, model.config.code_dim, requires_grad=True)
    z_q, indices, _ = model.quantize(z_e)
    torch.testing.assert_close(z_q, model.codebook(indices))  # forward: the nearest codes
    distances = torch.cdist(z_e.detach().reshape(-1, model.config.code_dim), model.codebook.weight)
    assert torch.equal(indices.flatten(), distances.argmin(1))
    z_q.sum().backward()
    torch.testing.assert_close(z_e.grad, torch.ones_like(z_e))  # backward: identity


def test_dead_codes_are_restarted_on_encoder_outputs():
    torch.manual_seed(0)
    model = VQVAE((1, 8, 8), VQVAE.Config(codebook_size=8, hidden=32, restart_every=1))
    with torch.no_grad():
        model.codebook.weight[1:] = 100.0  # far away: never the nearest code
    x = torch.rand(16, 1, 8, 8)
    model.train()
    model.loss(x)  # step 1: codes 1..7 unused -> restarted
    assert model.restarts.item() == 7
    z_e = model.encode(x).detach().reshape(-1, model.config.code_dim)
    for code in model.codebook.weight[1:].detach():
        assert torch.isclose(z_e, code).all(1).any()


def test_code_perplexity_counts_effectively_used_codes():
    assert code_perplexity(torch.arange(10).repeat(5), 16) == pytest.approx(10.0)
    assert code_perplexity(torch.zeros(50, dtype=torch.long), 16) == pytest.approx(1.0)


def test_fsq_vae_has_no_codebook_and_its_indices_round_trip():
    torch.manual_seed(0)
    model = FSQVAE((1, 8, 8), FSQVAE.Config(levels=(5, 3), code_dim=2, codebook_size=15, hidden=32))
    assert not hasattr(model, "codebook") and set(model.loss_terms(torch.rand(4, 1, 8, 8))) == {"reconstruction", "indices", "z_e"}
    z_q, indices, _ = model.quantize(model.encode(torch.rand(6, 1, 8, 8)))
    torch.testing.assert_close(model.codes_to_latents(indices), z_q)
    with pytest.raises(ValueError, match="need code_dim=2 and codebook_size=15"):
        FSQVAE((1, 8, 8), FSQVAE.Config(levels=(5, 3), code_dim=3, codebook_size=15))


def test_quantized_autoencoders_sample_after_training():
    torch.manual_seed(0)
    model = VQVAE((1, 8, 8), VQVAE.Config(codebook_size=8, hidden=32))
    with pytest.raises(RuntimeError, match="train the model first"):
        model.sample(2)
    fit(model, torch.rand(64, 1, 8, 8), steps=5, progress=False)
    assert model.sample(3).shape == (3, 1, 8, 8)


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
    from unigm.metrics import count_forward_calls
    flow = RealNVP((2,), RealNVP.Config(layers=4, hidden=16))
    with count_forward_calls(flow) as nfe:
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


# -- GAN family -----------------------------------------------------------------------------------
def test_minimax_generator_minimises_log_one_minus_d():
    logits = torch.randn(50)
    expected = torch.log(1 - torch.sigmoid(logits)).mean()
    torch.testing.assert_close(MinimaxGAN((2,)).generator_loss(logits), expected)


def test_wgan_clip_keeps_critic_weights_in_the_box():
    torch.manual_seed(0)
    model = WGANClip((2,), WGANClip.Config(hidden=16, clip=0.05))
    fit(model, data.toy("two_moons"), steps=3, lr=1e-2, progress=False)
    assert all(p.abs().max() <= 0.05 + 1e-7 for p in model.discriminator.parameters())


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


def test_spectral_norm_makes_each_critic_layer_1_lipschitz():
    torch.manual_seed(0)
    model = WGANSN((2,), WGANSN.Config(hidden=32))
    model.train()
    for _ in range(30):  # power iterations run in each training-mode forward
        model.discriminator(torch.randn(4, 2))
    for module in model.discriminator.modules():
        if isinstance(module, torch.nn.Linear):
            assert torch.linalg.matrix_norm(module.weight, ord=2).item() == pytest.approx(1.0, abs=1e-3)


def test_r3gan_pairing_loss_and_both_penalties():
    real, fake = torch.randn(20), torch.randn(20)
    model = R3GAN((2,), R3GAN.Config(r1_gamma=0.5))
    torch.testing.assert_close(model.discriminator_loss(real, fake), torch.nn.functional.softplus(fake - real).mean())
    torch.testing.assert_close(model.generator_loss(fake, real), torch.nn.functional.softplus(real - fake).mean())
    linear = torch.nn.Linear(2, 1)  # gradient w everywhere: R1 = R2 = |w|^2
    x, y = torch.randn(8, 2, requires_grad=True), torch.randn(8, 2, requires_grad=True)
    penalty = model.penalty(x, y, linear(x), linear(y))
    assert penalty.item() == pytest.approx(0.5 * 0.5 * (2 * linear.weight.pow(2).sum()).item(), rel=1e-6)  # gamma/2 (R1 + R2)


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
