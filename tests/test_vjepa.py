"""V-JEPA (unigm.world.vjepa): tubelets, space-time masks, the stop-gradient and the EMA, the probes."""
import numpy as np
import pytest
import torch

from unigm import zoo
from unigm.base import Representation, ShapeError
from unigm.train import fit
from unigm.world import env
from unigm.world.vjepa import (VJEPA, ball_labels, ridge_probe, sincos_positions_3d, space_time_masks, tubelets,
                               untubelets)

CLIP = (4, 2, 8, 8)  # 4 frames of the toy world
TINY = dict(width=24, depth=1, heads=2, predictor_width=24, predictor_depth=1, predictor_heads=2)


def tiny(**config):
    torch.manual_seed(0)
    return zoo.make("vjepa", CLIP, **{**TINY, **config})


def clips(n, seed=0, frames=4):
    return env.rollouts(n, frames - 1, torch.Generator().manual_seed(seed))[0]


def test_shapes_contract_and_clear_errors():
    model = tiny()
    x = clips(6)
    assert isinstance(model, Representation) and isinstance(model, VJEPA) and model.grid == (2, 4, 4)
    assert model.loss(x).shape == () and model.embed(x).shape == (6, 24)
    with pytest.raises(ShapeError, match=r"expects a batch of shape \(B, 4, 2, 8, 8\); got \(6, 3, 2, 8, 8\)"):
        model.loss(x[:, :3])
    with pytest.raises(ShapeError, match="floating-point"):
        model.embed(x.long())
    with pytest.raises(ShapeError, match=r"clips \(T, C, H, W\)"):
        zoo.make("vjepa", (2, 8, 8))
    with pytest.raises(ShapeError, match="T must be a multiple of 2"):
        zoo.make("vjepa", (3, 2, 8, 8))
    with pytest.raises(ShapeError, match="H and W of 3"):
        zoo.make("vjepa", CLIP, patch=3)
    with pytest.raises(ValueError, match="no context"):
        zoo.make("vjepa", CLIP, target_blocks=4, max_side=2)
    with pytest.raises(ValueError, match="divisible by 6"):
        zoo.make("vjepa", CLIP, width=32)
    with pytest.raises(ValueError, match="ema_decay"):
        zoo.make("vjepa", CLIP, ema_decay=1.0)
    with pytest.raises(NotImplementedError, match="no sampler"):
        model.sample(3)
    with pytest.raises(NotImplementedError, match="no likelihood"):
        model.log_prob(x)


def test_tubelets_round_trip_and_order():
    x = torch.randn(3, 6, 2, 8, 8)
    tokens = tubelets(x, 2, 2)  # a 3 x 4 x 4 grid of tubelets of 2 frames x 2 channels x 2 x 2 pixels
    assert tokens.shape == (3, 48, 16)
    assert torch.equal(untubelets(tokens, (6, 2, 8, 8), 2, 2), x)
    y = torch.randn(3, 48, 16)
    assert torch.equal(tubelets(untubelets(y, (6, 2, 8, 8), 2, 2), 2, 2), y)
    for index, (t, row, col) in ((0, (0, 0, 0)), (5, (0, 1, 1)), (19, (1, 0, 3)), (46, (2, 3, 2))):
        tube = x[:, 2 * t:2 * t + 2, :, 2 * row:2 * row + 2, 2 * col:2 * col + 2]  # (3, frames, C, p, p)
        assert torch.equal(tokens[:, index], tube.reshape(3, -1))
    with pytest.raises(ShapeError, match=r"\(B, T, C, H, W\)"):
        tubelets(torch.randn(3, 2, 8, 8), 2, 2)
    with pytest.raises(ShapeError, match=r"must be \(B, 48, 16\)"):
        untubelets(torch.randn(3, 47, 16), (6, 2, 8, 8), 2, 2)


def test_3d_positions_are_distinct_and_per_axis():
    pos = sincos_positions_3d(2, 4, 4, 12)  # (32, 12): channels 0-3 time, 4-7 row, 8-11 column
    assert pos.shape == (32, 12) and len(torch.unique(pos, dim=0)) == 32
    t, r, c = torch.meshgrid(torch.arange(2), torch.arange(4), torch.arange(4), indexing="ij")
    for axis, coordinate in enumerate((t, r, c)):
        torch.testing.assert_close(pos[:, 4 * axis], torch.sin(coordinate.flatten().float()))  # frequency 1
        torch.testing.assert_close(pos[:, 4 * axis + 2], torch.cos(coordinate.flatten().float()))


def test_space_time_masks_hide_the_claimed_blocks_in_every_frame():
    grid = (3, 4, 4)
    targets, rects = space_time_masks(40, grid, 2, 1, 2, torch.Generator().manual_seed(3))
    again, _ = space_time_masks(40, grid, 2, 1, 2, torch.Generator().manual_seed(3))
    other, _ = space_time_masks(40, grid, 2, 1, 2, torch.Generator().manual_seed(4))
    assert targets.shape == (40, 48) and torch.equal(targets, again) and not torch.equal(targets, other)
    for b in range(40):
        expected = torch.zeros(3, 4, 4, dtype=torch.bool)
        for top, left, height, width in rects[b].tolist():
            expected[:, top:top + height, left:left + width] = True  # the block, in every time slice
        assert torch.equal(targets[b], expected.flatten())
    per_frame = targets.reshape(40, 3, 16)
    assert torch.equal(per_frame[:, 0], per_frame[:, 1]) and torch.equal(per_frame[:, 0], per_frame[:, 2])
    assert per_frame[:, 0].sum(1).min() >= 1 and per_frame[:, 0].sum(1).max() <= 8


def test_the_context_encoder_and_the_loss_do_not_depend_on_hidden_tubelets():
    """Gradient check: the context encoder's outputs at visible tubelets have zero gradient with respect to
    the hidden tubelets, and so has the whole loss (the target encoder, which sees them, is under no_grad)."""
    model = tiny()
    tokens = model.tokens(clips(4)).requires_grad_(True)
    targets = model.masks(4, torch.Generator().manual_seed(0))
    assert torch.equal(targets, model.masks(4, torch.Generator().manual_seed(0)))
    out = model.encoder(tokens, visible=~targets)
    (grad,) = torch.autograd.grad(out[~targets].pow(2).sum(), tokens)
    assert grad[targets].abs().max() == 0 and grad[~targets].abs().max() > 0

    x = clips(4, seed=1).requires_grad_(True)
    model.loss(x, generator=torch.Generator().manual_seed(5)).backward()
    hidden = model.masks(4, torch.Generator().manual_seed(5))  # the masks the loss drew
    per_tubelet = tubelets(x.grad, 2, 2).abs().amax(-1)  # (B, L)
    assert per_tubelet[hidden].max() == 0 and per_tubelet[~hidden].max() > 0


def test_ema_target_gets_no_gradient_and_moves_by_the_closed_form():
    model = tiny(ema_decay=0.9)
    model.loss(clips(8)).backward()
    assert all(p.grad is None and not p.requires_grad for p in model.target_encoder.parameters())
    assert all(p.grad is not None for p in model.encoder.parameters())
    with torch.no_grad():
        for p in model.encoder.parameters():  # move the online weights so that the EMA has something to do
            p.add_(torch.randn_like(p))
    before = [p.clone() for p in model.target_encoder.parameters()]
    model.after_update()
    for bar, old, theta in zip(model.target_encoder.parameters(), before, model.encoder.parameters()):
        torch.testing.assert_close(bar, 0.9 * old + 0.1 * theta)


def test_training_lowers_the_loss():
    model = tiny()
    losses = fit(model, clips(512), steps=120, batch_size=64, lr=3e-3, progress=False).losses["loss"]
    assert np.mean(losses[-15:]) < 0.7 * np.mean(losses[:15])


def test_ball_labels_are_the_true_state():
    generator = torch.Generator().manual_seed(2)
    state = env.reset(300, generator)
    frames = [env.render(state)]
    for _ in range(3):
        state = env.step(state, torch.randint(5, (300,), generator=generator))
        frames.append(env.render(state))
    position, velocity = ball_labels(torch.stack(frames, 1))
    assert torch.equal(position, state.ball.float())
    assert torch.equal(velocity, 2 * (state.velocity[:, 0] > 0) + (state.velocity[:, 1] > 0))
    assert set(velocity.tolist()) == {0, 1, 2, 3}
    with pytest.raises(ShapeError, match="T >= 2"):
        ball_labels(torch.stack(frames, 1)[:, :1])
    with pytest.raises(ValueError, match="one pixel"):
        ball_labels(torch.stack([frames[0], frames[0]], 1))


def test_ridge_probe_is_the_closed_form_on_standardised_features():
    """R^2 of w = (Z^T Z + alpha I)^-1 Z^T (y - mean y) on standardised training features Z (sd with 1/N)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5)) * [1, 2, 3, 4, 5] + 1
    y = x @ rng.normal(size=(5, 2)) + rng.normal(size=(300, 2))
    mean, sd = x[:200].mean(0), x[:200].std(0)
    z, z_test = (x[:200] - mean) / sd, (x[200:] - mean) / sd
    w = np.linalg.solve(z.T @ z + 3.0 * np.eye(5), z.T @ (y[:200] - y[:200].mean(0)))
    residual = y[200:] - (z_test @ w + y[:200].mean(0))
    r2 = 1 - (residual**2).sum(0) / ((y[200:] - y[200:].mean(0)) ** 2).sum(0)
    assert ridge_probe(x[:200], y[:200], x[200:], y[200:], alpha=3.0) == pytest.approx(r2.mean(), rel=1e-9)
    assert ridge_probe(torch.tensor(x[:200]), torch.tensor(y[:200, 0]), x[200:], y[200:, 0], alpha=3.0) == \
        pytest.approx(r2[0], rel=1e-9)
    with pytest.raises(ShapeError, match=r"features \(N, D\)"):
        ridge_probe(x[:200, 0], y[:200], x[200:], y[200:])
