"""fit's options beyond the plain loop: gradient accumulation, bfloat16 autocast (amp), exact resume.

Oracles: accumulation against a hand-written Adam loop on the concatenated batch; amp against the
float32 run and the autocast state seen inside the loss; resume against the uninterrupted run."""
import copy

import pytest
import torch

from unigm import data, zoo
from unigm.base import Adversarial, GenerativeModel, Player
from unigm.train import Hook, cosine_lr, fit


def realnvp(seed=0):
    torch.manual_seed(seed)
    return zoo.make("realnvp", (2,), hidden=16)  # loss: mean NLL over the batch, no noise drawn


class GradRecorder(Hook):
    def __init__(self):
        self.grads = []

    def before_optimizer_step(self, state):
        self.grads.append([p.grad.detach().clone() for p in state.parameters])


# -- gradient accumulation ----------------------------------------------------------------------
def test_accumulating_micro_batches_is_one_step_on_their_concatenation():
    micro, accumulate, steps, lr = 16, 4, 6, 1e-2
    dataset = data.toy("two_moons").sample(500, torch.Generator().manual_seed(1))
    model, seen = realnvp(), []
    loss = model.loss
    model.loss = lambda x, *, generator=None: (seen.append(x), loss(x))[1]  # record each micro-batch
    recorder = GradRecorder()
    history = fit(model, dataset, steps=steps, batch_size=micro, accumulate=accumulate, lr=lr,
                  hooks=[recorder], progress=False)
    assert len(seen) == steps * accumulate and len(recorder.grads) == steps

    # the oracle: Adam (as fit builds it) on the mean loss of each step's 4 micro-batches at once
    reference = realnvp()
    optimizer = torch.optim.Adam(reference.parameters(), lr=lr, betas=(0.9, 0.999))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: cosine_lr(s / steps))
    reference_losses, reference_grads = [], []
    for step in range(steps):
        big = torch.cat(seen[step * accumulate:(step + 1) * accumulate])  # (4 * micro, 2)
        assert len(big.unique(dim=0)) > micro  # four different micro-batches, not one repeated
        optimizer.zero_grad()
        value = reference.loss(big)
        value.backward()
        reference_losses.append(value.item())
        reference_grads.append([p.grad.clone() for p in reference.parameters()])
        optimizer.step()
        scheduler.step()
    for got, want in zip(recorder.grads, reference_grads):  # scale-sensitive: a sum would be 4x
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(history.losses["loss"], reference_losses, rtol=1e-5, atol=1e-6)
    for p, q in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


class TwoPlayers(Adversarial, GenerativeModel):
    """Two linear maps taking turns; records each player's batches and what after_step receives."""

    name = "two_players"

    def __init__(self):
        super().__init__((2,))
        self.first, self.second = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
        self.seen = {"first": [], "second": []}
        self.after = {"first": [], "second": []}

    def objective(self, name):
        def loss(x, *, generator=None):
            self.seen[name].append(x)
            return (self.second(self.first(self.check_input(x))) - x.flip(1)).pow(2).mean()
        return loss

    def players(self):
        return [Player("first", self.first, self.objective("first"), updates=2,
                       after_step=lambda x: self.after["first"].append(x)),
                Player("second", self.second, self.objective("second"), after_step=lambda x: self.after["second"].append(x))]


def test_accumulation_applies_within_each_update_of_each_player():
    model, steps, accumulate = TwoPlayers(), 3, 3
    history = fit(model, torch.randn(200, 2), steps=steps, batch_size=8, accumulate=accumulate, progress=False)
    for name, updates in (("first", 2), ("second", 1)):
        assert len(model.seen[name]) == steps * updates * accumulate and len(model.after[name]) == steps * updates
        for i, batch in enumerate(model.after[name]):  # after_step gets the update's micro-batches, concatenated
            assert torch.equal(batch, torch.cat(model.seen[name][i * accumulate:(i + 1) * accumulate]))
        assert len(history.losses[name]) == steps


def test_accumulate_one_is_the_plain_loop_and_bad_values_are_refused():
    def run(**how):
        model = realnvp()
        history = fit(model, data.toy("two_moons"), steps=5, batch_size=32, progress=False, **how)
        return history.losses["loss"], [p.detach().clone() for p in model.parameters()]

    (losses, weights), (same_losses, same_weights) = run(), run(accumulate=1)
    assert losses == same_losses and all(torch.equal(a, b) for a, b in zip(weights, same_weights))
    for bad in (0, -1, 2.0):
        with pytest.raises(ValueError, match="accumulate must be a positive int"):
            fit(realnvp(), torch.randn(10, 2), steps=1, accumulate=bad, progress=False)


# -- mixed precision ----------------------------------------------------------------------------
class AutocastProbe(GenerativeModel):
    """An MLP regression with a deterministic loss that records, in each loss, whether CPU
    autocast is on and the dtype of its first matmul's output."""

    name = "autocast_probe"

    def __init__(self):
        super().__init__((2,))
        self.net = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.Tanh(), torch.nn.Linear(64, 2))
        self.seen = []

    def loss(self, x, *, generator=None):
        hidden = self.net[0](self.check_input(x))
        self.seen.append((torch.is_autocast_enabled("cpu"), hidden.dtype))
        return (self.net[2](self.net[1](hidden)).float() - x.flip(1).sin()).pow(2).mean()


def test_amp_on_cpu_runs_the_loss_in_bfloat16_and_tracks_the_float32_run():
    dataset = torch.randn(512, 2, generator=torch.Generator().manual_seed(0))

    def run(amp):
        torch.manual_seed(0)
        model = AutocastProbe()
        history = fit(model, dataset, steps=150, batch_size=64, lr=3e-3, amp=amp, progress=False)
        return model, torch.tensor(history.losses["loss"])

    (fp32, fp32_losses), (default, default_losses), (bf16, bf16_losses) = run(False), run(None), run(True)
    assert set(fp32.seen) == set(default.seen) == {(False, torch.float32)}  # None on CPU: off, as before
    assert torch.equal(fp32_losses, default_losses)
    assert set(bf16.seen) == {(True, torch.bfloat16)}
    assert all(p.dtype == torch.float32 for p in bf16.parameters())  # weights stay float32
    # same weights and batches: the first loss differs only by bfloat16 rounding (8-bit mantissa,
    # relative 2^-8 per operand); training then follows the float32 run: last 30 steps within 3%
    assert abs(bf16_losses[0] / fp32_losses[0] - 1) < 1e-2
    assert fp32_losses[-30:].mean() < 0.5 * fp32_losses[0]  # it did learn
    assert abs(bf16_losses[-30:].mean() / fp32_losses[-30:].mean() - 1) < 0.03


def test_amp_refuses_bad_values_and_devices_without_autocast(monkeypatch):
    with pytest.raises(TypeError, match="amp must be True, False or None"):
        fit(realnvp(), torch.randn(10, 2), steps=1, amp="yes", progress=False)
    monkeypatch.setattr(torch.amp, "is_autocast_available", lambda device_type: False)
    with pytest.raises(ValueError, match="amp=True: PyTorch has no autocast for cpu"):
        fit(realnvp(), torch.randn(10, 2), steps=1, amp=True, progress=False)


# -- exact resume -------------------------------------------------------------------------------
class Crash(Hook):
    def __init__(self, at):
        self.at = at

    def after_training_step(self, state):
        if state.step == self.at:
            raise KeyboardInterrupt(f"simulated crash after step {self.at}")


@pytest.mark.parametrize("name", ["ddpm", "gan"])  # noise in the loss (generator state); two players
def test_resuming_after_a_crash_gives_the_uninterrupted_run_exactly(tmp_path, name):
    moons, path, steps = data.toy("two_moons"), tmp_path / "run.pt", 20
    options = dict(steps=steps, batch_size=32, lr=3e-3, ema_decay=0.9, grad_clip=1.0, progress=False, seed=4)
    torch.manual_seed(0)
    initial = zoo.make(name, (2,), hidden=16)

    reference = copy.deepcopy(initial)
    uninterrupted = fit(reference, moons, **options)  # cosine lr: the schedule's state matters

    with pytest.raises(KeyboardInterrupt):  # checkpoints at steps 5 and 10; dies after step 13
        fit(copy.deepcopy(initial), moons, checkpoint_path=path, checkpoint_every=5, hooks=[Crash(13)], **options)
    torch.manual_seed(1)
    resumed_model = zoo.make(name, (2,), hidden=16)  # another init: everything must come from the file
    resumed = fit(resumed_model, moons, resume_from=path, checkpoint_path=path, checkpoint_every=5, **options)

    assert resumed.losses == uninterrupted.losses and resumed.steps == steps  # the whole curve, exactly
    for (key, a), b in zip(reference.state_dict().items(), resumed_model.state_dict().values()):
        assert torch.equal(a, b), key
    saved = torch.load(path, weights_only=True)  # tensors and plain containers only
    assert saved["step"] == steps and saved["history"]["losses"] == uninterrupted.losses


def test_resume_refuses_what_would_not_continue_exactly(tmp_path):
    path, dataset = tmp_path / "run.pt", torch.randn(50, 2)
    fit(realnvp(), dataset, steps=4, batch_size=8, checkpoint_path=path, progress=False)  # saved at the end
    with pytest.raises(ValueError, match="steps was 4, now 8"):
        fit(realnvp(), dataset, steps=8, batch_size=8, resume_from=path, progress=False)
    with pytest.raises(ValueError, match="batch_size was 8, now 16"):
        fit(realnvp(), dataset, steps=4, batch_size=16, resume_from=path, progress=False)
    with pytest.raises(ValueError, match="hooks"):
        fit(realnvp(), dataset, steps=4, batch_size=8, ema_decay=0.9, resume_from=path, progress=False)
    with pytest.raises(FileNotFoundError, match="no such training-state file"):
        fit(realnvp(), dataset, steps=4, resume_from=tmp_path / "missing.pt", progress=False)
    with pytest.raises(ValueError, match="checkpoint_every needs checkpoint_path"):
        fit(realnvp(), dataset, steps=4, checkpoint_every=2, progress=False)
    with pytest.raises(ValueError, match="checkpoint_every must be a positive int"):
        fit(realnvp(), dataset, steps=4, checkpoint_path=path, checkpoint_every=0, progress=False)
    torch.save(realnvp().state_dict(), tmp_path / "weights.pt")
    with pytest.raises(ValueError, match="not a training state"):
        fit(realnvp(), dataset, steps=4, resume_from=tmp_path / "weights.pt", progress=False)
