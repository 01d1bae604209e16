"""Oracles for the VAE family (unigm.vae): bounds against quadrature, losses against their
definitions, pure losses, state updated in after_update, generators instead of the global RNG."""
import math

import pytest
import torch
import torch.nn.functional as F

from unigm import densities, zoo
from unigm.train import fit
from unigm.vae import (FSQVAE, LOG_2PI, VAE, VQVAE, BernoulliVAE, BetaVAE, FSQVAEConfig, code_perplexity,
                       gaussian_log_prob, kl_to_standard_normal)

IMAGE = (1, 8, 8)
SMALL = {"vae": dict(hidden=16), "beta_vae": dict(hidden=16), "bernoulli_vae": dict(hidden=16),
         "vqvae": dict(codebook_size=16, hidden=32, restart_every=1), "fsq_vae": dict(levels=(5, 3), hidden=32)}


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def batch_for(name, n=16):
    """A batch each model accepts: binary images for the Bernoulli VAE, images in [0, 1) otherwise."""
    x = torch.rand(n, *IMAGE, generator=gen(123))
    return (x > 0.5).float() if name == "bernoulli_vae" else x


def trained_a_little(name):
    """A model with some training state (warm-up counter, code counts), built from seed 0."""
    torch.manual_seed(0)
    model = zoo.make(name, IMAGE, **SMALL[name])
    model.after_update(batch_for(name))
    return model


# -- the family's public face ---------------------------------------------------------------------
def test_densities_are_re_exported_not_redefined():
    assert gaussian_log_prob is densities.gaussian_log_prob and kl_to_standard_normal is densities.kl_to_standard_normal
    assert LOG_2PI == densities.LOG_2PI == math.log(2 * math.pi)


def test_only_the_gaussian_vaes_have_a_2d_recipe():
    assert zoo.recipe("vae").min_quality["two_moons"] > zoo.recipe("beta_vae").min_quality["two_moons"]
    for name in ("vae", "beta_vae"):
        assert (zoo.recipe(name).steps, zoo.recipe(name).lr) == (3000, 2e-3) and name in zoo.names_2d()
    for name in ("bernoulli_vae", "vqvae", "fsq_vae"):
        assert name in zoo.names() and name not in zoo.names_2d()
        with pytest.raises(KeyError, match=f"{name} has no 2d recipe"):
            zoo.recipe(name)


# -- the contract: pure losses, generators, after_update ------------------------------------------
@pytest.mark.parametrize("name", list(SMALL))
def test_loss_leaves_every_parameter_and_buffer_unchanged(name):
    model = trained_a_little(name).train()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    model.loss(batch_for(name), generator=gen()).backward()
    after = model.state_dict()
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), f"loss() changed {key}"


@pytest.mark.parametrize("name", list(SMALL))
def test_same_generator_same_loss_and_samples_and_the_global_rng_untouched(name):
    model = trained_a_little(name)
    x = batch_for(name)
    global_state = torch.random.get_rng_state()
    losses = [model.loss(x, generator=gen(7)) for _ in range(2)]
    samples = [model.sample(5, generator=gen(8)) for _ in range(2)]
    assert torch.equal(torch.random.get_rng_state(), global_state)
    assert torch.equal(*losses) and torch.equal(*samples) and samples[0].shape == (5, *IMAGE)
    if isinstance(model, VAE):  # the reparameterisation noise and the prior draws really come from the generator
        assert not torch.equal(losses[0], model.loss(x, generator=gen(9)))
        assert not torch.equal(samples[0], model.sample(5, generator=gen(9)))
        bounds = [model.log_prob(x, k=4, generator=gen(3)) for _ in range(2)]
        assert torch.equal(*bounds) and torch.equal(torch.random.get_rng_state(), global_state)


def test_after_update_advances_the_kl_warmup_by_one_step():
    model = VAE((2,), VAE.Config(hidden=8, kl_warmup_steps=4))
    x = torch.randn(3, 2)
    weights = []
    for _ in range(6):
        weights.append(model.kl_weight())
        reconstruction, kl = model.elbo_terms(x, generator=gen())
        expected = -(reconstruction - weights[-1] * kl).mean().item()
        assert model.loss(x, generator=gen()).item() == pytest.approx(expected, rel=1e-6)
        model.after_update(x)
    assert weights == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0] and model.updates.item() == 6
    model.eval()  # evaluation: the true -ELBO whatever the warm-up
    model.updates.zero_()
    reconstruction, kl = model.elbo_terms(x, generator=gen())
    assert model.loss(x, generator=gen()).item() == pytest.approx(-(reconstruction - kl).mean().item(), rel=1e-6)


def test_vq_after_update_adds_the_batch_code_histogram():
    """Counts by hand: encoder MLP, then the nearest code by squared distance, per latent position."""
    torch.manual_seed(0)
    model = VQVAE(IMAGE, VQVAE.Config(codebook_size=16, hidden=32, restart_every=0))
    x = torch.rand(32, *IMAGE, generator=gen(1))
    model.usage += torch.arange(16.0)  # earlier counts stay
    before = model.usage.clone()
    with torch.no_grad():
        z_e = model.encoder(x.reshape(32, -1)).reshape(32, model.config.latents, model.config.code_dim)
        nearest = (z_e[:, :, None, :] - model.codebook.weight).pow(2).sum(-1).argmin(-1)  # (B, m)
    expected = torch.zeros_like(before)
    for position in range(model.config.latents):
        for code in nearest[:, position]:
            expected[position, code] += 1
    model.after_update(x)
    torch.testing.assert_close(model.usage - before, expected, rtol=0, atol=0)
    assert model.window_usage.sum() == 32 * model.config.latents and model.updates.item() == 1


def test_fsq_after_update_counts_its_codes_and_folds_the_batch_into_batchnorm_statistics():
    torch.manual_seed(0)
    model = FSQVAE(IMAGE, FSQVAE.Config(levels=(5, 4), hidden=32))
    x = torch.rand(64, *IMAGE, generator=gen(2))
    with torch.no_grad():
        z_e = model.encoder(x.reshape(64, -1)).reshape(-1, 2)  # (B m, d)
    # codes by hand: normalise with the batch statistics, bound, round, mixed radix (Mentzer et al. 2023)
    z = (z_e - z_e.mean(0)) / torch.sqrt(z_e.var(0, unbiased=False) + 1e-5)
    levels = torch.tensor([5.0, 4.0])
    half, offset = (levels - 1) * (1 - 1e-3) / 2, torch.tensor([0.0, 0.5])
    digits = torch.round(torch.tanh(z + torch.atanh(offset / half)) * half - offset) + torch.floor(levels / 2)
    index = (digits[:, 0] + 5 * digits[:, 1]).long().reshape(64, model.config.latents)
    reference = torch.nn.BatchNorm1d(2, affine=False)
    reference(z_e)  # PyTorch's own update of the running statistics
    model.after_update(x)
    expected = torch.stack([torch.bincount(index[:, p], minlength=20) for p in range(model.config.latents)])
    torch.testing.assert_close(model.usage, expected.float(), rtol=0, atol=0)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(model.normalise.state_dict()[key], value)


# -- the Gaussian VAEs ------------------------------------------------------------------------------
def test_beta_vae_weights_the_rate_while_training_only():
    model = BetaVAE((2,), BetaVAE.Config(beta=3.0, kl_warmup_steps=0, hidden=8))
    x = torch.randn(16, 2)
    reconstruction, kl = model.elbo_terms(x, generator=gen())
    assert model.loss(x, generator=gen()).item() == pytest.approx(-(reconstruction - 3.0 * kl).mean().item(), rel=1e-6)
    model.eval()
    assert model.loss(x, generator=gen()).item() == pytest.approx(-(reconstruction - kl).mean().item(), rel=1e-6)


def test_bernoulli_decoder_is_the_bernoulli_log_likelihood_and_samples_it():
    torch.manual_seed(0)
    model = BernoulliVAE((1, 4, 4), BernoulliVAE.Config(latent_dim=2, hidden=16))
    x = torch.randint(0, 2, (5, 16)).float()
    z = torch.randn(5, 2)
    expected = torch.distributions.Bernoulli(logits=model.decoder(z)).log_prob(x).sum(-1)
    torch.testing.assert_close(model.decoder_log_prob(x, z), expected)
    with pytest.raises(ValueError, match="binary"):
        model.loss(torch.rand(5, 1, 4, 4))
    with torch.no_grad():  # 20,000 draws at one z: frequencies within 5 standard errors of sigmoid(logits)
        draws = model.decoder_sample(z[:1].expand(20_000, -1), generator=gen())
        p = torch.sigmoid(model.decoder(z[:1]))[0]
    assert set(draws.unique().tolist()) <= {0.0, 1.0}
    assert torch.all((draws.mean(0) - p).abs() < 5 * torch.sqrt(p * (1 - p) / 20_000) + 1e-6)


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
    torch.testing.assert_close(model.log_prob(x, k=20_000, generator=gen()), exact, atol=0.01, rtol=0)


def test_elbo_is_a_bound_that_importance_sampling_tightens():
    """ELBO = E_q log p(x|z) - KL(q(z|x) || N(0, I)): on one draw, the library's reconstruction term minus the
    KL of torch.distributions; averaged over draws it lies below the IWAE bound (k = 4096), itself <= log p(x)."""
    torch.manual_seed(0)
    model = VAE((2,), VAE.Config(latent_dim=2, hidden=16)).double().eval()
    x = torch.randn(5, 2, generator=gen(1), dtype=torch.float64)
    with torch.no_grad():
        mean, log_std = model.encode(x)
        kl = torch.distributions.kl_divergence(torch.distributions.Normal(mean, log_std.exp()),
                                               torch.distributions.Normal(0.0, 1.0)).sum(-1)
        reconstruction, _ = model.elbo_terms(x, generator=gen(2))
        torch.testing.assert_close(model.elbo(x, generator=gen(2)), reconstruction - kl)
        elbo = model.elbo(x.repeat(2000, 1), generator=gen(3)).reshape(2000, 5).mean(0)
        assert (elbo < model.log_prob(x, k=4096, generator=gen(4))).all()


# -- VQ-VAE -------------------------------------------------------------------------------------------
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
    model = VQVAE(IMAGE, VQVAE.Config(codebook_size=16, hidden=32))
    x = torch.rand(32, *IMAGE)
    assert set(model.loss_terms(x)) == {"reconstruction", "codebook", "commitment"}
    torch.testing.assert_close(model.loss(x), sum(model.loss_terms(x).values()))
    assert _vq_terms_grads(model, "reconstruction", x) == {"encoder": True, "decoder": True, "codebook": False}
    assert _vq_terms_grads(model, "codebook", x) == {"encoder": False, "decoder": False, "codebook": True}
    assert _vq_terms_grads(model, "commitment", x) == {"encoder": True, "decoder": False, "codebook": False}


def test_vqvae_straight_through_passes_codes_forward_and_gradients_back():
    torch.manual_seed(0)
    model = VQVAE(IMAGE, VQVAE.Config(codebook_size=16, hidden=32))
    z_e = torch.randn(4, model.config.latents, model.config.code_dim, requires_grad=True)
    z_q, indices, _ = model.quantize(z_e)
    torch.testing.assert_close(z_q, model.codebook(indices))  # forward: the nearest codes
    distances = torch.cdist(z_e.detach().reshape(-1, model.config.code_dim), model.codebook.weight)
    assert torch.equal(indices.flatten(), distances.argmin(1))
    z_q.sum().backward()
    torch.testing.assert_close(z_e.grad, torch.ones_like(z_e))  # backward: identity


def test_dead_codes_restart_on_the_farthest_encoder_outputs_first():
    """Farthest-first traversal by hand: each dead code goes, in index order, to the batch output
    farthest from every live or already placed code; nothing is drawn from the global RNG."""
    torch.manual_seed(0)
    model = VQVAE(IMAGE, VQVAE.Config(codebook_size=8, hidden=32, restart_every=1))
    with torch.no_grad():
        model.codebook.weight[1:] = 100.0  # far away: never the nearest code, so 1..7 are dead
    x = torch.rand(16, *IMAGE, generator=gen(4))
    with torch.no_grad():
        z = model.encoder(x.reshape(16, -1)).reshape(-1, model.config.code_dim)  # (N, d)
    placed, picks = [model.codebook.weight[0].detach().clone()], []
    for _ in range(7):
        distance = torch.stack([(z - code).pow(2).sum(1).sqrt() for code in placed]).min(0).values
        picks.append(int(distance.argmax()))
        placed.append(z[picks[-1]])
    worst_before = torch.cdist(z, model.codebook.weight.detach()).min(1).values.max()
    global_state = torch.random.get_rng_state()
    model.after_update(x)  # step 1 of restart_every=1: codes 1..7 unused -> restarted
    assert torch.equal(torch.random.get_rng_state(), global_state)
    assert model.restarts.item() == 7 and len(set(picks)) == 7 and model.window_usage.sum() == 0
    torch.testing.assert_close(model.codebook.weight[1:].detach(), z[picks], rtol=0, atol=0)
    worst_after = torch.cdist(z, model.codebook.weight.detach()).min(1).values.max()
    assert worst_after < worst_before


def test_codes_in_use_are_never_restarted_and_the_window_resets():
    torch.manual_seed(0)
    model = VQVAE(IMAGE, VQVAE.Config(codebook_size=8, hidden=32, restart_every=2))
    x = torch.rand(16, *IMAGE, generator=gen(5))
    model.after_update(x)  # step 1: no restart yet
    assert model.restarts.item() == 0
    used = model.window_usage > 0
    kept = model.codebook.weight[used].detach().clone()
    model.after_update(x)  # step 2: restart the unused codes only
    assert model.restarts.item() == int((~used).sum())
    torch.testing.assert_close(model.codebook.weight[used].detach(), kept, rtol=0, atol=0)
    assert model.window_usage.sum() == 0


def test_code_perplexity_counts_effectively_used_codes():
    assert code_perplexity(torch.arange(10).repeat(5), 16) == pytest.approx(10.0)
    assert code_perplexity(torch.zeros(50, dtype=torch.long), 16) == pytest.approx(1.0)


def test_the_code_prior_draws_each_position_with_its_training_frequencies():
    model = VQVAE(IMAGE, VQVAE.Config(latents=2, codebook_size=4, hidden=8))
    with pytest.raises(RuntimeError, match="train the model first"):
        model.sample(2)
    model.usage.copy_(torch.tensor([[1.0, 0.0, 3.0, 6.0], [0.0, 5.0, 5.0, 0.0]]))
    codes = model.sample_codes(40_000, generator=gen())
    frequencies = torch.stack([torch.bincount(codes[:, p], minlength=4) for p in range(2)]) / 40_000
    probs = model.usage / model.usage.sum(1, keepdim=True)
    assert torch.all(frequencies[probs == 0] == 0)  # a code never used is never drawn
    assert torch.all((frequencies - probs).abs() < 5 * torch.sqrt(probs * (1 - probs) / 40_000) + 1e-9)


@pytest.mark.parametrize("name", ["vqvae", "fsq_vae"])
def test_quantized_autoencoders_sample_after_training(name):
    torch.manual_seed(0)
    model = zoo.make(name, IMAGE, **SMALL[name])
    fit(model, torch.rand(64, *IMAGE), steps=5, batch_size=32, progress=False)
    assert model.usage.sum() == 5 * 32 * model.config.latents  # after_update counted each step's batch
    assert model.sample(3).shape == (3, *IMAGE)


# -- FSQ-VAE ------------------------------------------------------------------------------------------
def test_fsq_vae_has_no_codebook_and_its_indices_round_trip():
    torch.manual_seed(0)
    model = FSQVAE(IMAGE, FSQVAE.Config(levels=(5, 3), hidden=32))
    assert not hasattr(model, "codebook") and model.num_codes == 15
    assert set(model.loss_terms(torch.rand(4, *IMAGE))) == {"reconstruction"}
    assert not any("codebook" in key or "restart" in key for key in model.state_dict())
    model.eval()  # with the running statistics too
    z_q, indices, _ = model.quantize(model.encode(torch.rand(6, *IMAGE)))
    torch.testing.assert_close(model.codes_to_latents(indices), z_q)


def test_fsq_vae_config_cannot_disagree_with_its_levels():
    config = FSQVAEConfig(levels=[5, 3])
    assert (config.levels, config.code_dim, config.codebook_size) == ((5, 3), 2, 15)
    for option in ("code_dim", "codebook_size"):
        with pytest.raises(TypeError):
            FSQVAEConfig(levels=(5, 3), **{option: 2})
        with pytest.raises(TypeError, match=f"no config option.*{option}"):
            zoo.make("fsq_vae", IMAGE, **{option: 2})
    model = zoo.make("fsq_vae", IMAGE, levels=(8, 8, 8), hidden=16)
    assert model.fsq.codebook_size == model.num_codes == 512 and model.usage.shape == (4, 512)
    with pytest.raises(ValueError, match="at least 2 levels"):
        FSQVAE(IMAGE, FSQVAEConfig(levels=(1, 3)))
