"""VAR, next-scale prediction (unigm.autoregressive.var).

Oracles: the residual bookkeeping round trip (the token maps, turned back into FSQ codes, rebuild exactly
the quantized latent f_hat the tokenizer's own pass produced, and every scale's code lies on the FSQ grid);
block causality from gradients (the logits of scale k depend on the code maps of scales < k only) and from
discrete changes of finer tokens; the exact likelihood summed over every token configuration of a tiny model
is 1; sampling costs one transformer evaluation per scale (plus the decoder); the tokenizer stays frozen
after its phase; clear errors."""
import itertools

import pytest
import torch

from unigm import samplers, zoo
from unigm.tensors import ShapeError
from unigm.train import fit

SMALL = dict(levels=(3, 2), channels=4, hidden=8, width=16, heads=2, dropout=0.0)


def small(shape=(1, 8, 8), **config):
    torch.manual_seed(0)
    return zoo.make("var", shape, **{**SMALL, **config})


@pytest.mark.parametrize("scales", [(1, 2, 3, 4), (1, 2, 4, 8)])
def test_the_residual_sum_of_the_token_maps_rebuilds_the_quantized_latent_exactly(scales):
    model = small(scales=scales).double()
    t = model.tokenizer
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        f = t.encoder(x)
        f_hat, codes = t.quantize(f)
        tokens = t.codes_to_tokens(codes)
        assert [tuple(tk.shape) for tk in tokens] == [(5, s * s) for s in scales]
        assert all(int(tk.max()) < t.vocab == 6 for tk in tokens)
        rebuilt = t.tokens_to_codes(tokens, torch.float64)
        for z, back in zip(codes, rebuilt):
            assert torch.equal(z, back)  # codes on the FSQ grid survive index and back bit for bit
        torch.testing.assert_close(t.f_hat(rebuilt), f_hat, atol=1e-12, rtol=0)
        torch.testing.assert_close(model.reconstruct(x), t.decode(f_hat), atol=1e-12, rtol=0)
        # the bookkeeping: after the last scale the residual is f - f_hat; each scale quantized what the
        # coarser ones left, so replaying the sum scale by scale gives the same residuals the encoder saw
        partial = torch.zeros_like(f)
        for k, z in enumerate(codes):
            residual = t.down(f - partial, k)
            expected = t.fsq(t.project_in[k](residual).movedim(1, -1)).movedim(-1, 1)
            assert torch.equal(expected, z)
            partial = partial + t.contribution(k, z)
        torch.testing.assert_close(partial, f_hat, atol=1e-12, rtol=0)


def test_the_logits_of_each_scale_depend_on_coarser_scales_only():
    model = small().double()
    scales, offsets = (1, 2, 3, 4), model.offsets
    codes = [torch.randn(1, 2, s, s, dtype=torch.float64, requires_grad=True) for s in scales]
    logits = model(model.inputs(codes, 1))
    for k in range(len(scales)):
        grads = torch.autograd.grad(logits[0, offsets[k]:offsets[k + 1]].square().sum(), codes, retain_graph=True,
                                    allow_unused=True)
        reached = [g is not None and bool(g.abs().sum() > 0) for g in grads]
        assert reached == [j < k for j in range(len(scales))], (k, reached)


def test_changing_finer_tokens_leaves_the_coarser_scales_log_probabilities_unchanged():
    model = small()
    g = torch.Generator().manual_seed(4)
    tokens = [torch.randint(0, 6, (3, n), generator=g) for n in model.lengths]
    changed = [tk.clone() for tk in tokens]
    changed[2] = (changed[2] + 1) % 6
    changed[3] = (changed[3] + 2) % 6
    with torch.no_grad():
        a = model(model.inputs(model.tokenizer.tokens_to_codes(tokens), 3))
        b = model(model.inputs(model.tokenizer.tokens_to_codes(changed), 3))
    head = model.offsets[3]  # scales 0, 1 and 2 see tokens of scales 0 and 1 only
    torch.testing.assert_close(a[:, :head], b[:, :head], atol=0, rtol=0)
    assert not torch.allclose(a[:, head:], b[:, head:])  # scale 3 does see scale 2


def test_the_token_likelihood_sums_to_one_over_every_configuration():
    model = small((1, 2, 2), scales=(1, 2), levels=(3,), channels=2).double()
    every = torch.tensor(list(itertools.product(range(3), repeat=5)))  # 1 + 4 tokens, 3^5 configurations
    with torch.no_grad():
        total = model.tokens_log_prob([every[:, :1], every[:, 1:]]).logsumexp(0)
    assert abs(total.item()) < 1e-10


def test_sampling_costs_one_transformer_evaluation_per_scale():
    model = small()
    with samplers.count_nfe() as nfe:
        tokens = model.sample_tokens(50, generator=torch.Generator().manual_seed(2))
    assert nfe.count == 4 and [tuple(t.shape) for t in tokens] == [(50, 1), (50, 4), (50, 9), (50, 16)]
    with samplers.count_nfe() as nfe:
        x = model.sample(50, generator=torch.Generator().manual_seed(2))
    assert nfe.count == 4 + 1  # and one decoder pass
    assert x.shape == (50, 1, 8, 8) and 0 <= x.min() and x.max() <= 1
    torch.testing.assert_close(x, model.decode_tokens(tokens), atol=0, rtol=0)  # same seed, same tokens


def test_the_tokenizer_trains_first_then_stays_frozen():
    model = small(tokenizer_steps=3)
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    head_before = model.head.weight.clone()
    tokenizer_before = {k: v.clone() for k, v in model.tokenizer.state_dict().items()}
    fit(model, x, steps=3, batch_size=16, progress=False)
    assert torch.equal(model.head.weight, head_before)  # phase 1 leaves the transformer alone
    assert not torch.equal(model.tokenizer.encoder[0].weight, tokenizer_before["encoder.0.weight"])
    tokenizer = {k: v.clone() for k, v in model.tokenizer.state_dict().items()}
    fit(model, x, steps=3, batch_size=16, progress=False)
    assert model.in_transformer_phase and not torch.equal(model.head.weight, head_before)
    assert all(torch.equal(v, model.tokenizer.state_dict()[k]) for k, v in tokenizer.items())


def test_shapes_and_clear_errors():
    model = small()
    x = torch.rand(3, 1, 8, 8)
    assert model.token_log_prob(x).shape == (3,) and model.reconstruct(x).shape == (3, 1, 8, 8)
    assert model.loss(x).shape == ()
    with pytest.raises(ShapeError, match="square one-channel"):
        zoo.make("var", (1, 8, 6))
    with pytest.raises(ValueError, match="scales must increase strictly from 1"):
        zoo.make("var", (1, 8, 8), scales=(2, 4))
    with pytest.raises(ValueError, match="finest scale must be the image size 8 or half"):
        zoo.make("var", (1, 8, 8), scales=(1, 2))
    with pytest.raises(ValueError, match="steps must be None"):
        model.sample(2, steps=10)
    with pytest.raises(ShapeError, match=r"expects a batch of shape \(B, 1, 8, 8\)"):
        model.token_log_prob(torch.rand(3, 8, 8))
    with pytest.raises(ShapeError, match="list of 4 token maps"):
        model.tokens_log_prob([torch.zeros(2, 1, dtype=torch.long)])
    with pytest.raises(ShapeError, match=r"shapes \(B, s\^2\)"):
        model.decode_tokens([torch.zeros(2, n + 1, dtype=torch.long) for n in model.lengths])
    with pytest.raises(ValueError, match=r"integers \(torch.long\) in \[0, 6\)"):
        model.decode_tokens([torch.full((2, n), 6) for n in model.lengths])
    with pytest.raises(NotImplementedError, match="token_log_prob"):
        model.log_prob(x)
