"""WaveNet on mu-law codes (unigm.autoregressive.wavenet) and the signals it is trained on.

Oracles: mu-law against its closed form (and a round trip within half a code in the compressed
domain); causality by gradients (logit t depends on no input at t or later, and on every input in
its receptive field); the likelihood summed over all sequences of a tiny model is 1; sampling costs
T network evaluations and its first code follows the model's own first distribution."""
import itertools
import math

import pytest
import torch

from unigm import data, runtime, samplers, zoo
from unigm.autoregressive import WaveNet, mu_law_compress, mu_law_decode, mu_law_encode
from unigm.tensors import ShapeError


def test_mu_law_closed_form_and_round_trip():
    x = torch.linspace(-1, 1, 2001, dtype=torch.float64)
    mu = 255
    torch.testing.assert_close(mu_law_compress(x, 256), torch.sign(x) * torch.log(1 + mu * x.abs()) / math.log(1 + mu))
    codes = mu_law_encode(x, 256)
    assert codes.min() == 0 and codes.max() == 255 and torch.equal(codes, codes.round())
    assert (codes[1:] >= codes[:-1]).all()  # monotone
    back = mu_law_decode(codes, 256)
    half_code = 1 / 255  # half the spacing 2 / 255 of the compressed values
    assert (mu_law_compress(back, 256) - mu_law_compress(x, 256)).abs().max() <= half_code + 1e-12
    torch.testing.assert_close(mu_law_decode(mu_law_encode(back, 256), 256), back)  # centres are fixed points
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        mu_law_encode(torch.tensor([1.5]))


def test_sine_mixtures_are_seeded_and_bounded():
    a = data.sine_mixtures(16, 64, torch.Generator().manual_seed(3))
    b = data.sine_mixtures(16, 64, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (16, 64) and a.abs().max() <= 1
    with pytest.raises(ValueError, match="length >= 2"):
        data.sine_mixtures(4, 1)


def tiny(length=24, **config):
    torch.manual_seed(0)
    return zoo.make("wavenet", (length,), **{"levels": 8, "channels": 8, "layers": 3, **config})


def test_causality_and_receptive_field_by_gradients():
    model = tiny().double()
    assert model.receptive_field == 8  # 1 + (2 - 1)(1 + 2 + 4)
    length, levels = 24, 8
    for t in range(length):
        x = torch.rand(1, levels, length, dtype=torch.float64, generator=torch.Generator().manual_seed(t))
        x.requires_grad_(True)
        (grad,) = torch.autograd.grad(model(x)[0, :, t].sum(), x)
        seen = (grad[0] != 0).any(0).nonzero().flatten().tolist()
        assert seen == list(range(max(0, t - model.receptive_field), t)), (t, seen)


def test_the_likelihood_sums_to_one_over_every_sequence():
    model = zoo.make("wavenet", (3,), levels=4, channels=8, layers=2).double()
    codes = torch.tensor(list(itertools.product(range(4), repeat=3)), dtype=torch.float64)
    with torch.no_grad():
        assert abs(model.log_prob(codes).logsumexp(0).item()) < 1e-10


def test_sampling_costs_t_evaluations_and_follows_the_model():
    model = tiny(10)
    with samplers.count_nfe() as nfe:
        codes = model.sample(3000, generator=torch.Generator().manual_seed(1))
    assert nfe.count == 10 and codes.shape == (3000, 10) and codes.min() >= 0 and codes.max() <= 7
    with torch.no_grad():
        first = torch.softmax(model(torch.zeros(1, 8, 10))[0, :, 0], 0)  # sees nothing
    frequency = torch.bincount(codes[:, 0].long(), minlength=8) / 3000
    assert (frequency - first).abs().max() < 4 * (0.25 / 3000) ** 0.5, (frequency, first)
    assert torch.equal(codes, model.sample(3000, generator=torch.Generator().manual_seed(1)))


def test_sampling_on_prefixes_equals_the_loop_over_whole_sequences():
    """sample() runs step t on the first t + 1 codes; the plain loop (the whole sequence every step)
    must draw exactly the same codes from the same generator."""
    model, n, length = tiny(12), 50, 12
    generator = torch.Generator().manual_seed(4)
    codes = torch.zeros(n, length)
    with torch.no_grad():
        for t in range(length):
            probs = torch.softmax(model(model.one_hot(codes))[:, :, t], dim=1)
            codes[:, t] = torch.multinomial(probs, 1, generator=generator).squeeze(1).float()
    assert torch.equal(model.sample(n, generator=torch.Generator().manual_seed(4)), codes)


def test_clear_errors():
    model = tiny(10)
    with pytest.raises(ValueError, match="integers 0 .. 7"):
        model.log_prob(torch.full((2, 10), 0.5))
    with pytest.raises(ValueError, match="integers 0 .. 7"):
        model.log_prob(torch.full((2, 10), 8.0))
    with pytest.raises(ShapeError, match="1D signals"):
        zoo.make("wavenet", (2, 10))
    with pytest.raises(ValueError, match="steps must be None"):
        model.sample(2, steps=3)


def test_the_signal_recipe_trains_through_a_job():
    """WaveNet's recipe is for the "signal" task (mu-law codes of data.sine_mixtures), not "2d"; a Job
    that names the task trains with it, exactly as fit with the recipe's arguments does."""
    from unigm.train import Job, fit
    from unigm.train.parallel import train_job

    recipe = zoo.recipe("wavenet", "signal")
    assert (recipe.lr, recipe.batch_size) == (3e-3, 32)
    with pytest.raises(KeyError, match="wavenet has no 2d recipe"):
        zoo.recipe("wavenet")
    codes = mu_law_encode(data.sine_mixtures(64, 16, torch.Generator().manual_seed(0)), 8)
    job = Job("wavenet", codes, steps=3, event_shape=(16,), task="signal", config=dict(levels=8, channels=8, layers=2))
    model, history = train_job(job)
    runtime.seed_everything(0)
    reference = zoo.make("wavenet", (16,), levels=8, channels=8, layers=2)
    fit(reference, codes, steps=3, batch_size=32, lr=3e-3, seed=0, progress=False)
    assert history.steps == 3
    for a, b in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b)
