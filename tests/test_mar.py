"""MAR (Li et al. 2024, arXiv:2406.11838): the reveal schedule and orders, the masking's independence of the
unknown tokens, the head's DDPM loss against a direct computation, the head's sampler against a Gaussian
oracle, the sampler's contract and its NFE."""
import math

import pytest
import torch

from unigm import zoo
from unigm.autoregressive import MAR, patchify, reveal_counts, unpatchify
from unigm.base import Implicit, ShapeError
from unigm.samplers import count_nfe

SMALL = dict(width=32, depth=1, heads=2, head_hidden=32, head_depth=2, time_dim=16, dropout=0.0)


def small(**overrides) -> MAR:
    torch.manual_seed(0)
    return zoo.make("mar", (1, 8, 8), **{**SMALL, **overrides})


# -- bookkeeping ------------------------------------------------------------------------------------
def test_reveal_counts_follow_the_cosine_schedule_and_add_up_for_every_k():
    # K = 4, L = 16: floor(16 cos(pi/2 k/4)) = 16, 14, 11, 6, 0 tokens masked before/after each iteration
    left = [math.floor(16 * math.cos(math.pi / 2 * k / 4)) for k in range(5)]
    assert reveal_counts(16, 4) == [a - b for a, b in zip(left[:-1], left[1:])] == [2, 3, 5, 6]
    assert reveal_counts(16, 1) == [16] and reveal_counts(16, 16) == [1] * 16
    for length in (1, 4, 16, 64):
        for k in range(1, length + 1):
            counts = reveal_counts(length, k)
            assert len(counts) == k and sum(counts) == length and min(counts) >= 1
    for bad in (0, 17, 2.0, True):
        with pytest.raises(ValueError, match=r"iterations must be an int in \[1, 16\]"):
            reveal_counts(16, bad)


def test_reveal_plan_reveals_every_token_exactly_once_in_a_random_order():
    model = small()
    like = torch.empty(())
    for k in (1, 3, 8, 16):
        plan = model.reveal_plan(500, k, like, torch.Generator().manual_seed(k))  # (500, 16): iteration per token
        assert plan.shape == (500, 16) and plan.min() >= 0 and plan.max() == k - 1
        expected = torch.tensor(reveal_counts(16, k))
        per_row = torch.stack([torch.bincount(row, minlength=k) for row in plan])  # tokens revealed per iteration
        assert torch.equal(per_row, expected.expand(500, -1))
    # the order is uniformly random: with K = 16 each position is revealed first in ~1/16 of the rows
    plan = model.reveal_plan(16_000, 16, like, torch.Generator().manual_seed(0))
    first = (plan == 0).float().mean(0)  # (16,)
    assert torch.allclose(first, torch.full((16,), 1 / 16), atol=4 * math.sqrt(1 / 16 * 15 / 16 / 16_000))
    again = model.reveal_plan(16_000, 16, like, torch.Generator().manual_seed(0))
    assert torch.equal(plan, again)


def test_training_masks_a_uniform_number_of_tokens():
    """r ~ U(0, 1] and ceil(r L) masked: the count is uniform on {1, ..., L}."""
    model = small()
    masked = model.training_mask(32_000, torch.empty(()), torch.Generator().manual_seed(0))
    counts = torch.bincount(masked.sum(1), minlength=17).float() / 32_000
    assert counts[0] == 0
    assert torch.allclose(counts[1:], torch.full((16,), 1 / 16), atol=4 * math.sqrt(1 / 16 * 15 / 16 / 32_000))


def test_patches_round_trip_and_are_2x2_blocks_in_raster_order():
    x = torch.arange(2 * 64.0).reshape(2, 1, 8, 8)
    tokens = patchify(x, 2)
    assert tokens.shape == (2, 16, 4)
    assert tokens[0, 0].tolist() == [0, 1, 8, 9] and tokens[0, 1].tolist() == [2, 3, 10, 11]
    assert tokens[1, 15].tolist() == [64 + 54, 64 + 55, 64 + 62, 64 + 63]
    assert torch.equal(unpatchify(tokens, (1, 8, 8), 2), x)
    model = small()
    images = torch.rand(3, 1, 8, 8)
    assert model.to_tokens(images).min() >= -1 and model.to_tokens(images).max() <= 1
    torch.testing.assert_close(model.to_images(model.to_tokens(images)), images)


# -- the transformer sees only the known tokens ----------------------------------------------------------
def test_conditions_do_not_depend_on_unknown_token_values():
    model = small(depth=2)
    tokens = torch.randn(4, 16, 4, requires_grad=True)
    known = torch.rand(4, 16, generator=torch.Generator().manual_seed(1)) < 0.5
    z = model.transformer(tokens, known)
    (grad,) = torch.autograd.grad((z * torch.randn_like(z)).sum(), tokens)
    assert torch.all(grad[~known] == 0)  # exactly: unknown values are replaced by the mask embedding
    assert torch.all(grad[known].abs().sum(-1) > 0)  # the known ones do matter
    changed = tokens.detach().clone()
    changed[~known] = 100 * torch.randn_like(changed[~known])
    assert torch.equal(model.transformer(changed, known), z.detach())


# -- the loss is DDPM's epsilon loss on the masked tokens -------------------------------------------------
def test_head_loss_is_the_ddpm_epsilon_loss():
    model = small()
    x0, z = torch.randn(50, 4), torch.randn(50, 32)
    t, eps = torch.rand(50), torch.randn(50, 4)
    alpha_bar = torch.exp(-(0.1 * t + 0.5 * (20 - 0.1) * t**2))[:, None]  # the linear VP schedule, written out
    x_t = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps
    expected = ((eps - model.head(x_t, t, z)) ** 2).sum() / (50 * 4)
    torch.testing.assert_close(model.head_loss(x0, z, t, eps), expected)


def test_loss_scores_only_the_masked_tokens_with_the_drawn_noise():
    """Replay the loss's draws (mask, then t, then eps, from one generator) and compute it by hand."""
    model = small(noise_draws=2).eval()
    x = torch.rand(6, 1, 8, 8)
    loss = model.loss(x, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    masked = model.training_mask(6, torch.empty(()), g)
    tokens = 2 * x - 1
    tokens = tokens.reshape(6, 4, 2, 4, 2).permute(0, 1, 3, 2, 4).reshape(6, 16, 4)  # 2x2 patches by hand
    z = model.transformer(tokens, ~masked)
    x0, cond = tokens[masked].repeat(2, 1), z[masked].repeat(2, 1)
    step = torch.randint(1, 1001, (len(x0),), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    t = step / 1000
    alpha_bar = torch.exp(-(0.1 * t + 9.95 * t**2))[:, None]
    x_t = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps
    torch.testing.assert_close(loss, (eps - model.head(x_t, t, cond)).pow(2).mean())


# -- the head's reverse diffusion, with an exact oracle -----------------------------------------------------
class GaussianOracle(torch.nn.Module):
    """The exact eps-prediction for tokens x_0 ~ N(mu(z), diag(s^2)): with a = sqrt(alpha_bar), sigma =
    sqrt(1 - alpha_bar), x_t ~ N(a mu, a^2 s^2 + sigma^2) and E[eps | x_t] = sigma (x_t - a mu) / (a^2 s^2 + sigma^2)."""

    def __init__(self, model, std):
        super().__init__()
        self.model, self.std = model, std

    def forward(self, x_t, t, z):
        alpha_bar = self.model.alpha_bar(t)[:, None]
        a, sigma, mean = alpha_bar.sqrt(), (1 - alpha_bar).sqrt(), z[:, :4]
        return sigma * (x_t - a * mean) / (a**2 * self.std**2 + sigma**2)


def chain_variance(model, steps, var0):
    """Exact output variance of the respaced ancestral chain (DDIM eta = 1) with the oracle, for a centred
    Gaussian target of variance var0: each step is linear in x_t, x_s = m x_t + sigma z, so the variance
    follows v_s = m^2 v_t + sigma^2 from v = 1 at t = 1. (It is below var0 for few steps: x0_hat is the
    posterior mean, and the chain forgets the posterior's spread; the full chain is close to var0.)"""
    times = torch.round(torch.linspace(1000, 0, steps + 1, dtype=torch.float64)) / 1000
    var = torch.ones_like(var0)
    for t, s in zip(times[:-1], times[1:]):
        a_t, a_s = model.alpha_bar(t), model.alpha_bar(s)
        c = (1 - a_t).sqrt() / (a_t * var0 + 1 - a_t)  # eps_hat = c x_t
        d = (1 - (1 - a_t).sqrt() * c) / a_t.sqrt()  # x0_hat = d x_t
        sigma2 = (1 - a_s) / (1 - a_t) * (1 - a_t / a_s)
        m = a_s.sqrt() * d + (1 - a_s - sigma2).clamp(min=0).sqrt() * c
        var = m**2 * var + sigma2
    return var


def test_head_sampler_draws_the_oracle_targets_distribution():
    model = small()
    std = torch.tensor([0.05, 0.2, 0.5, 1.0])
    model.head = GaussianOracle(model, std)
    n = 20_000
    z = torch.zeros(n, 32)
    z[: n // 2, :4] = torch.tensor([0.5, -0.3, 0.0, 1.0])  # two conditions, two target means
    z[n // 2:, :4] = torch.tensor([-0.5, 0.8, 0.2, -1.0])
    tokens = model.sample_tokens(z, steps=100, generator=torch.Generator().manual_seed(0))
    expected_std = chain_variance(model, 100, std.double() ** 2).sqrt().float()
    # the full 1000-step chain reaches the target's spread to within 8% (the narrowest, sd 0.05: 0.046) ...
    torch.testing.assert_close(chain_variance(model, 1000, std.double() ** 2).sqrt().float(), std, rtol=0.08, atol=0)
    # ... 100 steps fall short of it (sd 0.05 -> 0.033): the bias the chain_variance recursion predicts
    assert torch.all(expected_std < std)
    for half in (slice(0, n // 2), slice(n // 2, n)):
        mean, sample = z[half, :4][0], tokens[half]
        torch.testing.assert_close(sample.mean(0), mean, atol=4 / math.sqrt(n / 2) + 0.005, rtol=0)
        # sample sd of 10,000 draws: relative standard error 1 / sqrt(2 (n - 1)) = 0.7%
        torch.testing.assert_close(sample.std(0), expected_std, rtol=0.03, atol=0)


# -- the sampler's contract ---------------------------------------------------------------------------------
def test_samples_are_images_in_the_unit_interval_and_reproducible():
    model = small().eval()
    assert isinstance(model, Implicit)
    a = model.sample(5, 4, head_steps=5, generator=torch.Generator().manual_seed(0))
    b = model.sample(5, 4, head_steps=5, generator=torch.Generator().manual_seed(0))
    c = model.sample(5, 4, head_steps=5, generator=torch.Generator().manual_seed(1))
    assert a.shape == (5, 1, 8, 8) and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert model.sample(2, head_steps=3).shape == (2, 1, 8, 8)  # default K


@pytest.mark.parametrize("k, head_steps", [(1, 7), (4, 5), (16, 2)])
def test_nfe_counts_transformer_and_head_evaluations_separately(k, head_steps):
    model = small().eval()
    calls = {"transformer": 0, "head": 0}
    hooks = [getattr(model, name).register_forward_pre_hook(lambda m, args, name=name: calls.__setitem__(
        name, calls[name] + 1)) for name in calls]
    with count_nfe() as nfe:
        model.sample(3, k, head_steps=head_steps)
    for hook in hooks:
        hook.remove()
    assert calls == model.nfe(k, head_steps) == {"transformer": k, "head": k * head_steps}
    assert nfe.count == k * (1 + head_steps)
    cost = model.cost()
    assert cost["transformer_parameters"] + cost["head_parameters"] == sum(p.numel() for p in model.parameters())
    assert 0 < cost["head_macs_per_pass"] < cost["transformer_macs_per_pass"]


def test_clear_errors():
    model = small()
    with pytest.raises(ValueError, match=r"iterations must be an int in \[1, 16\]"):
        model.sample(2, 17)
    with pytest.raises(ValueError, match="iterations"):
        model.sample(2, 0)
    with pytest.raises(ValueError, match=r"steps must be an int in \[1, 1000\]"):
        model.sample(2, 2, head_steps=0)
    with pytest.raises(ShapeError, match=r"expects a batch of shape \(B, 1, 8, 8\); got \(3, 1, 8, 6\)"):
        model.loss(torch.rand(3, 1, 8, 6))
    with pytest.raises(ShapeError, match=r"MAR models images \(C, H, W\)"):
        zoo.make("mar", (64,))
    with pytest.raises(ShapeError, match="patch 3 must divide the image size 8x8"):
        zoo.make("mar", (1, 8, 8), patch=3)
    with pytest.raises(ValueError, match="noise_draws"):
        zoo.make("mar", (1, 8, 8), noise_draws=0)
    with pytest.raises(NotImplementedError, match="no exact likelihood"):
        model.log_prob(torch.rand(2, 1, 8, 8))
