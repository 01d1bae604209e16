"""VAR, next-scale prediction (unigm.autoregressive.var).

Oracles: the token maps decode to exactly what the tokenizer's own quantization reconstructs (the
two paths through the residual scheme agree); block causality from gradients (a scale's logits
depend on the coarser scales' inputs only); the exact likelihood summed over every token
configuration of a tiny model is 1; sampling costs one transformer evaluation per scale plus the
decoder; the tokenizer stays frozen after its phase."""
import itertools

import pytest
import torch

from unigm import samplers, zoo
from unigm.tensors import ShapeError
from unigm.train import fit

SMALL = dict(codebook_size=6, code_dim=4, hidden=8, width=16, heads=2, dropout=0.0)


def small(shape=(1, 8, 8), **config):
    torch.manual_seed(0)
    return zoo.make("var", shape, **{**SMALL, **config})


def test_token_maps_have_one_map_per_scale_and_decode_to_the_tokenizers_reconstruction():
    model = small()
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    tokens = model.tokenizer.tokenize(x)
    assert [t.shape for t in tokens] == [(5, 1), (5, 4), (5, 16), (5, 64)]
    with torch.no_grad():
        f_hat = model.tokenizer.quantize(model.tokenizer.encoder(x))[0]
        torch.testing.assert_close(model.reconstruct(x), model.tokenizer.decode(f_hat), atol=1e-6, rtol=1e-5)


def test_each_scales_logits_depend_on_coarser_scales_only():
    model = small().double()
    offsets = [0, 1, 5, 21, 85]
    features = torch.randn(1, 85, 4, dtype=torch.float64, requires_grad=True)
    for k in range(4):
        (grad,) = torch.autograd.grad(model(features)[0, offsets[k]:offsets[k + 1]].sum(), features)
        seen = grad[0].abs().sum(1) != 0
        allowed = torch.arange(85) < offsets[k + 1]
        allowed[0] = False  # position 0 is the start vector, whatever its input
        assert torch.equal(seen, allowed), k


def test_the_token_likelihood_sums_to_one_over_every_configuration():
    model = small((1, 2, 2), scales=(1, 2), codebook_size=3).double()
    every = torch.tensor(list(itertools.product(range(3), repeat=5)))  # 1 + 4 tokens
    with torch.no_grad():
        total = model.tokens_log_prob([every[:, :1], every[:, 1:]]).logsumexp(0)
    assert abs(total.item()) < 1e-10


def test_sampling_costs_one_evaluation_per_scale_plus_the_decoder():
    model = small()
    with samplers.count_nfe() as nfe:
        x = model.sample(50, generator=torch.Generator().manual_seed(2))
    assert nfe.count == 4 + 1 and x.shape == (50, 1, 8, 8) and 0 <= x.min() and x.max() <= 1
    assert torch.equal(x, model.sample(50, generator=torch.Generator().manual_seed(2)))


def test_the_tokenizer_trains_first_then_stays_frozen():
    model = small(tokenizer_steps=3)
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    transformer_before = model.head.weight.clone()
    fit(model, x, steps=3, batch_size=16, progress=False)
    assert torch.equal(model.head.weight, transformer_before)  # phase 1 leaves the transformer alone
    tokenizer = {k: v.clone() for k, v in model.tokenizer.state_dict().items()}
    fit(model, x, steps=3, batch_size=16, progress=False)
    assert all(torch.equal(v, model.tokenizer.state_dict()[k]) for k, v in tokenizer.items())
    assert not torch.equal(model.head.weight, transformer_before) and model.in_transformer_phase


def test_clear_errors():
    with pytest.raises(ShapeError, match="square one-channel"):
        zoo.make("var", (1, 8, 6))
    with pytest.raises(ValueError, match="scales must increase from 1"):
        zoo.make("var", (1, 8, 8), scales=(2, 4, 8))
    with pytest.raises(ValueError, match="steps must be None"):
        small().sample(2, steps=4)
    with pytest.raises(NotImplementedError):
        small().log_prob(torch.rand(2, 1, 8, 8))
