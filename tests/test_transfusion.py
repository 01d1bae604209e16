"""Transfusion (unigm.world.transfusion): the mask, causality by gradients, the loss as DDPM's, tokens, sampling."""
import pytest
import torch
import torch.nn.functional as F

from unigm import zoo
from unigm.base import ShapeError
from unigm.samplers import count_nfe
from unigm.schedules import alpha_bar_vp_linear
from unigm.world import Transfusion, detokenize, tokenize, transfusion_mask
from unigm.world.transfusion import BOI, BOS, EOI, EOS, VOCAB, WORDS


def small(**config):
    torch.manual_seed(0)
    return zoo.make("transfusion", (1, 8, 8), width=16, depth=2, heads=2, **config).double().eval()


def test_mask_is_causal_across_and_bidirectional_within_the_image():
    # length 6, image at positions 2, 3, 4: rows are queries, columns keys
    expected = torch.tensor([[1, 0, 0, 0, 0, 0],
                             [1, 1, 0, 0, 0, 0],
                             [1, 1, 1, 1, 1, 0],
                             [1, 1, 1, 1, 1, 0],
                             [1, 1, 1, 1, 1, 0],
                             [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(transfusion_mask(6, 2, 3), expected)
    assert torch.equal(transfusion_mask(5, 1, 0), torch.ones(5, 5).tril().bool())  # no image: plain causal
    with pytest.raises(ValueError, match="does not fit"):
        transfusion_mask(4, 2, 3)


def test_outputs_depend_only_on_what_the_mask_allows():
    """d(output at i) / d(input at j) is nonzero exactly where the mask allows i to see j (through the layers,
    the image block and causality compose to the same pattern, so one layer or two give the same support)."""
    model = small()
    before = torch.tensor([[BOS, 3, EOS, BOI]])
    after = torch.tensor([[EOI]])
    patches = torch.randn(1, 16, 4, dtype=torch.float64)
    t = torch.tensor([0.3], dtype=torch.float64)
    width, start, length = model.config.width, 4, 4 + 16 + 1
    inputs = torch.randn(1, length, width, dtype=torch.float64, requires_grad=True)

    def hooked(module, args, output):  # replace the sequence's embeddings by `inputs`, to differentiate them
        return args[0] * 0 + inputs

    handle = model.blocks.register_forward_pre_hook(lambda m, args: (hooked(m, args, None), *args[1:]))
    logits, eps = model(before, patches, t, after)
    allowed = transfusion_mask(length, start, 16)
    for i in (1, 3, 4, 5, 19, 20):
        out = logits[0, i].sum() if not start <= i < start + 16 else eps[0, i - start].sum()
        grad, = torch.autograd.grad(out, inputs, retain_graph=True)
        depends = grad[0].abs().sum(-1) > 0
        assert torch.equal(depends, allowed[i]), (i, depends.int().tolist())
    handle.remove()
    # the spot checks the brief names: a text logit ignores later positions; an image position sees the image's
    # later positions but nothing after the image
    assert not allowed[1, 2:].any() and allowed[5, 19] and not allowed[5, 20:].any()


def test_diffusion_loss_is_the_ddpm_epsilon_mse():
    model = small()
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(5, 1, 8, 8, dtype=torch.float64, generator=g)
    eps = torch.randn(5, 1, 8, 8, dtype=torch.float64, generator=g)
    t, words = torch.tensor([0.001, 0.1, 0.5, 0.9, 1.0], dtype=torch.float64), torch.tensor([0, 3, 9, 1, 5])
    loss, _ = model.diffusion_loss(x0, words, t, eps)
    # directly: x_t = sqrt(a) (2 x0 - 1) + sqrt(1 - a) eps, patches of 2x2 in raster order
    a = alpha_bar_vp_linear(t)[:, None, None, None]
    x_t = a.sqrt() * (2 * x0 - 1) + (1 - a).sqrt() * eps

    def patches(x):  # (B, 1, 8, 8) -> (B, 16, 4), patch (r, c) = x[2r:2r+2, 2c:2c+2] flattened
        return torch.stack([x[:, 0, 2 * r:2 * r + 2, 2 * c:2 * c + 2].reshape(len(x), 4)
                            for r in range(4) for c in range(4)], 1)

    before = torch.stack([torch.full((5,), BOS), words, torch.full((5,), EOS), torch.full((5,), BOI)], 1)
    _, eps_hat = model(before, patches(x_t), t, torch.full((5, 1), EOI))
    torch.testing.assert_close(loss, (eps_hat - patches(eps)).pow(2).mean())
    torch.testing.assert_close(model.unpatchify(model.patchify(x0)), x0)  # patchify round trip


def test_next_token_loss_is_cross_entropy_of_the_text_tokens():
    model = small()
    x0, words = torch.rand(3, 1, 8, 8, dtype=torch.float64), torch.tensor([2, 4, 6])
    before, after = model.image_to_text_sequences(words)
    logits, _ = model(before, model.patchify(2 * x0 - 1), torch.zeros(3, dtype=torch.float64), after)
    # BOS BOI [image at 2..17] EOI word EOS: BOI follows position 0, EOI the image's last position 17, the word
    # follows EOI (18) and EOS the word (19)
    picks = [(0, BOI), (17, EOI), (18, None), (19, EOS)]
    terms = [F.cross_entropy(logits[b, p][None], torch.tensor([words[b] if tok is None else tok]))
             for b in range(3) for p, tok in picks]
    torch.testing.assert_close(model.captioning_loss(x0, words), torch.stack(terms).mean())


def test_tokenizer_round_trip_and_errors():
    assert tokenize(list(WORDS)).tolist() == list(range(10))
    assert detokenize(tokenize(["seven", " Three ", "zero"])) == ["seven", "three", "zero"]
    assert detokenize([BOS, EOS]) == ["<bos>", "<eos>"] and VOCAB == 15
    with pytest.raises(ValueError, match="unknown caption 'eleven'; the vocabulary is zero, one"):
        tokenize("eleven")


def test_shapes_determinism_nfe_and_captions():
    model = small(guidance=2.0)
    labels = torch.tensor([0, 5, 9])

    def draw():
        return model.sample(3, labels, steps=7, generator=torch.Generator().manual_seed(3))

    with count_nfe() as nfe:
        x = draw()
    assert nfe.count == 7  # one transformer pass per reverse step, guidance included (one doubled batch)
    assert x.shape == (3, 1, 8, 8) and x.dtype == torch.float64 and 0 <= x.min() and x.max() <= 1
    assert torch.equal(x, draw()) and not torch.equal(x, model.sample(3, labels, steps=7))
    assert torch.equal(draw(), model.sample(3, ["zero", "five", "nine"], steps=7,
                                            generator=torch.Generator().manual_seed(3)))
    captions, predicted = model.caption(x), model.caption_labels(x)
    assert len(captions) == 3 and predicted.shape == (3,) and predicted.dtype == torch.long
    assert all(-1 <= p < 10 for p in predicted.tolist())
    loss = model.loss(x, labels, generator=torch.Generator().manual_seed(0))
    assert loss.shape == () and torch.isfinite(loss)
    torch.testing.assert_close(loss, model.loss(x, labels, generator=torch.Generator().manual_seed(0)))


def test_clear_errors():
    model = small()
    with pytest.raises(ValueError, match="unknown caption 'ten'"):
        model.sample(1, ["ten"])
    with pytest.raises(ValueError, match="needs captions"):
        model.sample(2)
    with pytest.raises(ValueError, match="labels 0..9"):
        model.sample(2, torch.tensor([3, 10]))
    with pytest.raises(ShapeError, match=r"conditions of shape \(2,\)"):
        model.sample(2, torch.tensor([3]))
    with pytest.raises(ShapeError, match=r"expects a batch of shape \(B, 1, 8, 8\); got \(2, 1, 7, 7\)"):
        model.caption(torch.rand(2, 1, 7, 7, dtype=torch.float64))
    with pytest.raises(ShapeError, match="multiples of patch"):
        zoo.make("transfusion", (1, 7, 7))
    with pytest.raises(NotImplementedError, match="defines none"):
        model.log_prob(torch.rand(2, 1, 8, 8))
    assert isinstance(model, Transfusion)
