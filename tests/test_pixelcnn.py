"""PixelCNN, the gated PixelCNN (unigm.autoregressive.pixelcnn) and the pixel transformer
(unigm.autoregressive.transformer): the three models of binary images in raster order.

Oracles: causality measured by gradients for every output pixel (no logit depends on its own pixel
or a later one); the blind spot, present in the masked stack and absent in the two-stack model,
also from gradients; the exact likelihood summed over all 2^(H W) images of a small image is 1; the
masks written out by hand; raster sampling costs H * W network evaluations and its samples follow the
model's own conditionals (the first pixel's frequency against sigmoid(logit))."""
import itertools

import pytest
import torch

from unigm import samplers, zoo
from unigm.autoregressive import (GatedPixelCNN, MaskedConv2d, PixelCNN, PixelTransformer, raster_before,
                                  receptive_field)
from unigm.tensors import ShapeError

MODELS = {"pixelcnn": PixelCNN, "gated_pixelcnn": GatedPixelCNN, "pixel_transformer": PixelTransformer}
SMALL = {"pixelcnn": dict(channels=8), "gated_pixelcnn": dict(channels=8), "pixel_transformer": dict(width=16, heads=2)}


def small(name, shape=(1, 5, 6), **config):
    torch.manual_seed(0)
    return zoo.make(name, shape, **{**SMALL[name], **config})


def test_masks_by_hand():
    a = MaskedConv2d("A", 1, 1, 3).mask
    b = MaskedConv2d("B", 1, 1, 3).mask
    torch.testing.assert_close(a, torch.tensor([[1.0, 1, 1], [1, 0, 0], [0, 0, 0]]))
    torch.testing.assert_close(b, torch.tensor([[1.0, 1, 1], [1, 1, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match="mask_type must be 'A' or 'B'"):
        MaskedConv2d("C", 1, 1, 3)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        MaskedConv2d("A", 1, 1, 4)


@pytest.mark.parametrize("name", MODELS)
def test_no_output_depends_on_its_pixel_or_a_later_one(name):
    model = small(name)
    _, height, width = model.event_shape
    for row, col in itertools.product(range(height), range(width)):
        seen = receptive_field(model, row, col)
        allowed = raster_before(height, width, row, col)
        assert not (seen & ~allowed).any(), (name, row, col, seen.int())
        if row or col:
            assert seen.any(), (name, row, col)  # every pixel but the first sees something


def test_pixelcnn_has_a_blind_spot_and_the_gated_pixelcnn_does_not():
    """Deep enough that the field reaches every earlier pixel of an 8 x 8 image: the masked stack
    still misses pixels above and to the right; the two stacks see every earlier pixel."""
    row, col = 6, 3
    before = raster_before(8, 8, row, col)
    plain = receptive_field(small("pixelcnn", (1, 8, 8), layers=8), row, col)
    gated = receptive_field(small("gated_pixelcnn", (1, 8, 8), layers=8), row, col)
    blind = before & ~plain
    assert blind.any() and torch.equal(gated, before), (plain.int(), gated.int())
    rows, cols = blind.nonzero(as_tuple=True)
    assert (rows < row).all() and (cols > col).all()  # the wedge above and to the right
    attention = receptive_field(small("pixel_transformer", (1, 8, 8), depth=1), row, col)
    assert torch.equal(attention, before)  # one attention layer already sees every earlier pixel


@pytest.mark.parametrize("name", MODELS)
def test_the_likelihood_sums_to_one_over_every_image(name):
    model = small(name, (1, 3, 3)).double()
    images = torch.tensor(list(itertools.product([0.0, 1.0], repeat=9)), dtype=torch.float64).reshape(-1, 1, 3, 3)
    with torch.no_grad():
        total = model.log_prob(images).logsumexp(0)
    assert abs(total.item()) < 1e-10, total.item()


@pytest.mark.parametrize("name", MODELS)
def test_sampling_costs_one_evaluation_per_pixel_and_follows_the_model(name):
    model = small(name, (1, 4, 5))
    with samplers.count_nfe() as nfe:
        x = model.sample(2000, generator=torch.Generator().manual_seed(1))
    assert nfe.count == 20 and x.shape == (2000, 1, 4, 5) and set(x.unique().tolist()) <= {0.0, 1.0}
    with torch.no_grad():
        p_first = torch.sigmoid(model.logits(torch.zeros(1, 1, 4, 5))[0, 0, 0, 0]).item()  # depends on nothing
    frequency = x[:, 0, 0, 0].mean().item()
    assert abs(frequency - p_first) < 4 * (p_first * (1 - p_first) / 2000) ** 0.5 + 1e-3, (frequency, p_first)
    again = model.sample(2000, generator=torch.Generator().manual_seed(1))
    assert torch.equal(x, again)


@pytest.mark.parametrize("name", MODELS)
def test_clear_errors(name):
    model = small(name, (1, 4, 4))
    with pytest.raises(ValueError, match="binary images"):
        model.log_prob(torch.full((2, 1, 4, 4), 0.5))
    with pytest.raises(ShapeError, match="expects a batch of shape"):
        model.log_prob(torch.zeros(2, 1, 4, 5))
    with pytest.raises(ShapeError, match="one-channel images"):
        zoo.make(name, (3, 4, 4))
    with pytest.raises(ValueError, match="steps must be None"):
        model.sample(2, steps=5)
    with pytest.raises(ValueError, match="outside"):
        receptive_field(model, 4, 0)
