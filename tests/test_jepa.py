"""JEPA (unigm.world.jepa): masks, the stop-gradient and the EMA, collapse, and the measurements."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unigm import data, zoo
from unigm.base import Representation, ShapeError
from unigm.train import fit
from unigm.world.jepa import (JEPA, SharedTargetJEPA, block_masks, effective_rank, embedding_std, few_label_probe,
                              linear_probe, patchify)

TINY = dict(width=16, depth=1, heads=2, predictor_width=16, predictor_depth=1, predictor_heads=2)


def tiny(name="jepa", **config):
    torch.manual_seed(0)
    return zoo.make(name, (1, 8, 8), **{**TINY, **config})


def test_shapes_contract_and_clear_errors():
    model = tiny()
    x = torch.rand(6, 1, 8, 8)
    assert isinstance(model, Representation) and isinstance(zoo.make("jepa_shared", (1, 8, 8)), SharedTargetJEPA)
    assert model.loss(x).shape == () and model.embed(x).shape == (6, 16)
    with pytest.raises(ShapeError, match=r"expects a batch of shape \(B, 1, 8, 8\); got \(6, 1, 8, 7\)"):
        model.loss(torch.rand(6, 1, 8, 7))
    with pytest.raises(ShapeError, match="floating-point"):
        model.embed(torch.ones(2, 1, 8, 8, dtype=torch.long))
    with pytest.raises(ShapeError, match="images"):
        zoo.make("jepa", (2,))
    with pytest.raises(ShapeError, match="multiples of patch"):
        zoo.make("jepa", (1, 8, 8), patch=3)
    with pytest.raises(ValueError, match="no context"):
        zoo.make("jepa", (1, 8, 8), target_blocks=4, max_side=2)
    with pytest.raises(NotImplementedError, match="embedding.*no sampler"):
        model.sample(3)
    with pytest.raises(NotImplementedError, match="no likelihood"):
        model.log_prob(x)


def test_patchify_cuts_raster_ordered_patches():
    x = torch.randn(3, 2, 8, 8)
    patches = patchify(x, 2)  # (3, 16, 8)
    assert patches.shape == (3, 16, 8)
    for index, (row, col) in ((0, (0, 0)), (5, (1, 1)), (7, (1, 3)), (14, (3, 2))):
        torch.testing.assert_close(patches[:, index], x[:, :, 2 * row:2 * row + 2, 2 * col:2 * col + 2].reshape(3, -1))


def test_block_masks_are_seeded_rectangles_inside_the_grid():
    targets, rects = block_masks(50, (4, 4), 2, 1, 2, torch.Generator().manual_seed(3))
    again, _ = block_masks(50, (4, 4), 2, 1, 2, torch.Generator().manual_seed(3))
    other, _ = block_masks(50, (4, 4), 2, 1, 2, torch.Generator().manual_seed(4))
    assert torch.equal(targets, again) and not torch.equal(targets, other)
    top, left, height, width = rects.unbind(-1)
    assert height.min() == 1 and height.max() == 2 and width.min() == 1 and width.max() == 2  # both sides drawn
    assert (top >= 0).all() and (left >= 0).all() and (top + height <= 4).all() and (left + width <= 4).all()
    for b in range(50):  # targets are exactly the union of the claimed rectangles
        expected = torch.zeros(4, 4, dtype=torch.bool)
        for t, l, h, w in rects[b].tolist():
            expected[t:t + h, l:l + w] = True
        assert torch.equal(targets[b], expected.flatten())
    assert targets.sum(1).min() >= 1 and targets.sum(1).max() <= 8  # 2 blocks of at most 2 x 2


def test_the_context_encoder_never_sees_the_targets():
    """Encoder outputs at context positions do not change when the target patches change: context and
    targets are disjoint, and the model draws the same masks from the same generator."""
    model = tiny()
    patches = model.patches(torch.rand(4, 1, 8, 8))
    targets = model.masks(4, torch.Generator().manual_seed(0))
    assert torch.equal(targets, model.masks(4, torch.Generator().manual_seed(0)))
    scrambled = torch.where(targets[..., None], torch.randn_like(patches), patches)
    with torch.no_grad():
        a, b = model.encoder(patches, visible=~targets), model.encoder(scrambled, visible=~targets)
    torch.testing.assert_close(a[~targets], b[~targets])
    assert not torch.allclose(a[targets], b[targets])  # the hidden positions' outputs do depend on them


def test_ema_target_gets_no_gradient_and_moves_by_the_closed_form():
    model = tiny(ema_decay=0.9)
    model.target_encoder.requires_grad_(True)  # even so: the stop-gradient is in the code, not in this flag
    model.loss(torch.rand(8, 1, 8, 8), generator=torch.Generator().manual_seed(0)).backward()
    assert all(p.grad is None for p in model.target_encoder.parameters())
    assert all(p.grad is not None for p in model.encoder.parameters())
    assert all(p.grad is not None for p in model.predictor.parameters())
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(torch.randn_like(p))  # as if an optimiser had moved theta
    before = [(t.clone(), c.clone()) for t, c in zip(model.target_encoder.parameters(), model.encoder.parameters())]
    with torch.no_grad():
        model.after_update(torch.rand(8, 1, 8, 8))
    for (t, c), after in zip(before, model.target_encoder.parameters()):
        torch.testing.assert_close(after, 0.9 * t + 0.1 * c)


def test_shared_target_backpropagates_through_the_targets():
    model = tiny("jepa_shared")
    assert not hasattr(model, "target_encoder")
    x, seed = torch.rand(8, 1, 8, 8), 1
    model.loss(x, generator=torch.Generator().manual_seed(seed)).backward()
    shared = [p.grad.clone() for p in model.encoder.parameters()]
    model.zero_grad()
    plain = model.target
    model.target = lambda patches: plain(patches).detach()  # the same loss with a stop-gradient
    model.loss(x, generator=torch.Generator().manual_seed(seed)).backward()
    assert any(not torch.allclose(a, p.grad) for a, p in zip(shared, model.encoder.parameters()))


@pytest.mark.parametrize("name", ["jepa_shared", "jepa"])
def test_a_constant_encoder_is_a_perfect_predictor_of_itself(name):
    """Collapse minimises the loss (of both variants: only the EMA and the stop-gradient's dynamics avoid it)."""
    model = tiny(name)
    c = torch.randn(16)
    with torch.no_grad():
        for encoder in {model.encoder, getattr(model, "target_encoder", model.encoder)}:
            encoder.norm.weight.zero_()
            encoder.norm.bias.copy_(c)  # every token of every image -> c
        model.predictor.project_out.weight.zero_()
        model.predictor.project_out.bias.copy_(F.layer_norm(c, (16,)))
    assert model.loss(torch.rand(8, 1, 8, 8)).item() == 0.0
    z = model.embed(torch.rand(20, 1, 8, 8))
    assert embedding_std(z) < 1e-7 and effective_rank(z) == pytest.approx(1.0)


def test_collapse_measures_match_hand_computed_values():
    # rows normalised: (0.6, 0.8) and (1, 0); per-dimension sd (1/N) 0.2 and 0.4
    assert embedding_std(torch.tensor([[3.0, 4.0], [1.0, 0.0]])) == pytest.approx(0.3)
    assert embedding_std(torch.tensor([[1.0, 2.0]]).repeat(5, 1)) == 0.0
    assert effective_rank(torch.eye(3)) == pytest.approx(3.0)
    p = np.array([0.75, 0.25])  # singular values 3 and 1
    assert effective_rank(torch.diag(torch.tensor([3.0, 1.0]))) == pytest.approx(math.exp(-(p * np.log(p)).sum()))
    assert effective_rank(torch.ones(6, 4)) == pytest.approx(1.0) and effective_rank(torch.zeros(3, 2)) == 0.0
    with pytest.raises(ShapeError, match=r"\(N, D\)"):
        effective_rank(torch.ones(4))


def test_linear_probe_is_standardised_logistic_regression():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = rng.normal(size=(300, 5)) * [1, 10, 100, 1, 1] + y[:, None] * [1, 0, 0, 2, 0]
    scaler = StandardScaler().fit(x[:200])
    direct = LogisticRegression(C=0.5, max_iter=5000, random_state=0).fit(scaler.transform(x[:200]), y[:200])
    expected = (direct.predict(scaler.transform(x[200:])) == y[200:]).mean()
    assert linear_probe(torch.tensor(x[:200]), torch.tensor(y[:200]), x[200:], y[200:], C=0.5) == expected
    assert 0.5 < expected < 1.0  # informative features, not a trivial task
    one = few_label_probe(x[:200], y[:200], x[200:], y[200:], per_class=5, seeds=(7,))
    rng = np.random.default_rng(7)  # one generator, classes in increasing order
    chosen = np.concatenate([rng.choice(np.flatnonzero(y[:200] == k), 5, replace=False) for k in range(3)])
    assert one == linear_probe(x[chosen], y[chosen], x[200:], y[200:], seed=7)
    with pytest.raises(ShapeError, match=r"features \(N, D\) and labels \(N,\)"):
        linear_probe(x[:200], y[:100], x[200:], y[200:])


def test_training_decreases_the_loss_and_the_shared_variant_collapses():
    images = data.dequantize(data.digits("train").images, data.DIGIT_LEVELS, torch.Generator().manual_seed(0))
    test = images[:200]
    for name in ("jepa", "jepa_shared"):
        model = tiny(name)
        std_before = embedding_std(model.embed(test))
        losses = fit(model, images, steps=150, batch_size=64, lr=3e-3, progress=False).losses["loss"]
        assert np.mean(losses[-15:]) < 0.6 * np.mean(losses[:15]), name
        if name == "jepa_shared":  # the embeddings of different images become nearly identical
            assert embedding_std(model.embed(test)) < 0.2 * std_before
