"""The trainer: determinism, its own RNG, NaN detection, EMA, callbacks, hooks, adversarial
players and frozen parameters, checkpoints."""
import copy

import pytest
import torch

from unigm import data, zoo
from unigm.base import Adversarial, GenerativeModel, Player, ShapeError
from unigm.train import Hook, NonFiniteLossError, cosine_lr, fit, load_checkpoint, save_checkpoint


class Quadratic(GenerativeModel):
    """A one-parameter 'model' whose loss is |mean(x) - theta|^2: fit moves theta to the data mean."""

    name = "quadratic"

    def __init__(self):
        super().__init__((2,))
        self.theta = torch.nn.Parameter(torch.zeros(2))

    def loss(self, x, *, generator=None):
        return (self.check_input(x).mean(0) - self.theta).pow(2).sum()


def test_fit_trains_and_is_deterministic():
    target = torch.tensor([1.0, -2.0])
    dataset = target + 0.1 * torch.randn(1000, 2)
    runs = []
    for _ in range(2):
        model = Quadratic()
        history = fit(model, dataset, steps=300, lr=0.05, progress=False, seed=3)
        runs.append((model.theta.detach().clone(), history.losses["loss"]))
    torch.testing.assert_close(runs[0][0], target, atol=0.05, rtol=0)
    assert torch.equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]


def test_fit_stops_on_nan_with_a_clear_message():
    class Diverging(Quadratic):
        def loss(self, x, *, generator=None):
            return super().loss(x) * float("nan")

    with pytest.raises(NonFiniteLossError, match="loss became nan at step 1.*smaller learning rate"):
        fit(Diverging(), torch.randn(10, 2), steps=5, progress=False)


def test_fit_rejects_bad_data_before_training():
    with pytest.raises(ShapeError, match="expects a batch of shape"):
        fit(Quadratic(), torch.randn(10, 3), steps=5, progress=False)
    with pytest.raises(TypeError, match="a tuple of tensors or an object with .sample"):
        fit(Quadratic(), [[1.0, 2.0]], steps=5, progress=False)
    with pytest.raises(ValueError, match="positive int"):
        fit(Quadratic(), torch.randn(10, 2), steps=0, progress=False)


def test_ema_weights_are_the_exponential_average_of_the_iterates():
    model, decay = Quadratic(), 0.9
    iterates = [model.theta.detach().clone()]  # the average starts from the initial weights

    def record(step, model, history):
        iterates.append(model.theta.detach().clone())

    # record() sees the raw weights after each step (the EMA is copied in only at the end)
    fit(model, torch.randn(100, 2) + 3, steps=20, lr=0.1, ema_decay=decay, callbacks=[record],
        callback_every=1, progress=False)
    ema = iterates[0]
    for w in iterates[1:]:
        ema = decay * ema + (1 - decay) * w
    torch.testing.assert_close(model.theta.detach(), ema)


def test_tuple_data_is_sampled_with_shared_indices():
    class Paired(Quadratic):
        def loss(self, x, y, *, generator=None):
            assert torch.equal(y, 2 * x)  # rows stay paired
            return super().loss(x)

    x = torch.randn(50, 2)
    fit(Paired(), (x, 2 * x), steps=5, progress=False)
    with pytest.raises(ValueError, match="equal length"):
        fit(Paired(), (x, x[:3]), steps=5, progress=False)


def test_callbacks_can_stop_training():
    history = fit(Quadratic(), torch.randn(10, 2), steps=100, callbacks=[lambda s, m, h: s >= 30],
                  callback_every=10, progress=False)
    assert history.steps == 30 and history.stopped_early


def test_cosine_schedule_warms_up_and_decays():
    assert cosine_lr(0.0) < 0.1 and cosine_lr(0.02) == pytest.approx(1.0) and cosine_lr(1.0) == pytest.approx(0.05)


def test_adversarial_players_update_only_their_own_parameters():
    torch.manual_seed(0)
    model = zoo.make("gan", (2,), hidden=16, lr_generator=0.0)
    g0 = [p.detach().clone() for p in model.generator.parameters()]
    d0 = [p.detach().clone() for p in model.discriminator.parameters()]
    history = fit(model, data.toy("two_moons"), steps=3, lr=1e-2, progress=False)
    assert set(history.losses) == {"discriminator", "generator"} and len(history.losses["generator"]) == 3
    assert all(torch.equal(a, b) for a, b in zip(g0, model.generator.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(d0, model.discriminator.parameters()))


# -- the trainer's own RNG ----------------------------------------------------------------------
class NoisyRegression(GenerativeModel):
    """A small MLP denoiser whose loss draws its noise from the generator it is given only."""

    name = "noisy_regression"

    def __init__(self):
        super().__init__((2,))
        self.net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
        self.generators = []

    def loss(self, x, *, generator=None):
        self.generators.append(generator)
        noise = torch.randn(x.shape, generator=generator)
        return (self.net(self.check_input(x) + noise) - noise).pow(2).mean()


def test_fit_leaves_the_global_rng_untouched():
    model, dataset = NoisyRegression(), torch.randn(100, 2)
    before = torch.get_rng_state()
    fit(model, dataset, steps=20, progress=False, seed=5)
    assert torch.equal(torch.get_rng_state(), before)


def test_the_seed_or_generator_alone_decides_the_run():
    initial, dataset = NoisyRegression(), torch.randn(100, 2)

    def run(**how):
        model = copy.deepcopy(initial)
        history = fit(model, dataset, steps=30, lr=1e-2, progress=False, **how)
        return history.losses["loss"], [p.detach().clone() for p in model.parameters()]

    (losses, weights), (same_losses, same_weights) = run(seed=1), run(seed=1)
    assert losses == same_losses and all(torch.equal(a, b) for a, b in zip(weights, same_weights))
    given_losses, _ = run(generator=torch.Generator().manual_seed(1))
    assert given_losses == losses  # seed=s means a fresh generator seeded with s
    other_losses, other_weights = run(seed=2)
    assert other_losses != losses and not all(torch.equal(a, b) for a, b in zip(weights, other_weights))


def test_the_generator_is_passed_to_every_loss_and_draws_the_batches():
    class Source:  # a distribution with .sample(n, generator), recording the generator it gets
        def __init__(self):
            self.generators = []

        def sample(self, n, generator):
            self.generators.append(generator)
            return torch.randn(n, 2, generator=generator)

    model, source, generator = NoisyRegression(), Source(), torch.Generator().manual_seed(0)
    fit(model, source, steps=4, progress=False, generator=generator)
    assert len(model.generators) == 4 and all(g is generator for g in model.generators)
    assert all(g is generator for g in source.generators)
    model = NoisyRegression()
    fit(model, torch.randn(10, 2), steps=2, progress=False, seed=7)
    assert model.generators[0].initial_seed() == 7


# -- adversarial players and frozen parameters --------------------------------------------------
class TwoPlayers(Adversarial, GenerativeModel):
    """Two linear maps taking turns on a reconstruction loss; records what each player's loss
    sees (which parameters require grad) and what its after_step receives."""

    name = "two_players"

    def __init__(self, first_updates=1):
        super().__init__((2,))
        self.first, self.second = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
        self.first_updates = first_updates
        self.seen = {"first": [], "second": []}  # (batch, {parameter name: requires_grad})
        self.after = {"first": [], "second": []}  # (batch, grad enabled)

    def objective(self, name):
        def loss(x, *, generator=None):
            self.seen[name].append((x, {k: p.requires_grad for k, p in self.named_parameters()}))
            return (self.second(self.first(self.check_input(x))) - x.flip(1)).pow(2).mean()
        return loss

    def recorder(self, name):
        return lambda *batch: self.after[name].append((batch, torch.is_grad_enabled()))

    def players(self):
        return [Player("first", self.first, self.objective("first"), updates=self.first_updates,
                       after_step=self.recorder("first")),
                Player("second", self.second, self.objective("second"), after_step=self.recorder("second"))]


def test_a_frozen_parameter_stays_frozen_and_unchanged_in_an_adversarial_model():
    model = TwoPlayers()
    model.first.bias.requires_grad_(False)
    frozen_bias, first_weight = model.first.bias.detach().clone(), model.first.weight.detach().clone()
    flags = {k: p.requires_grad for k, p in model.named_parameters()}
    history = fit(model, torch.randn(100, 2), steps=5, lr=1e-2, progress=False)
    assert set(history.losses) == {"first", "second"} and len(history.losses["second"]) == 5
    assert torch.equal(model.first.bias, frozen_bias) and not torch.equal(model.first.weight, first_weight)
    assert {k: p.requires_grad for k, p in model.named_parameters()} == flags
    # during a turn, exactly the moving player's originally trainable parameters require grad
    first_turn = {"first.weight": True, "first.bias": False, "second.weight": False, "second.bias": False}
    second_turn = {"first.weight": False, "first.bias": False, "second.weight": True, "second.bias": True}
    assert all(seen == first_turn for _, seen in model.seen["first"])
    assert all(seen == second_turn for _, seen in model.seen["second"])


def test_requires_grad_flags_are_restored_when_training_raises():
    class Diverging(TwoPlayers):
        def objective(self, name):
            return lambda x, *, generator=None: super(Diverging, self).objective(name)(x) * float("nan")

    model = Diverging()
    model.second.weight.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    with pytest.raises(NonFiniteLossError, match="first loss became nan at step 1"):
        fit(model, torch.randn(10, 2), steps=3, progress=False)
    assert [p.requires_grad for p in model.parameters()] == flags


def test_a_player_without_trainable_parameters_is_refused():
    model = TwoPlayers()
    model.second.requires_grad_(False)
    with pytest.raises(ValueError, match="'second' has no parameter that requires grad"):
        fit(model, torch.randn(10, 2), steps=1, progress=False)


def test_after_step_receives_the_batch_of_each_update_without_grad():
    model = TwoPlayers(first_updates=2)
    fit(model, torch.randn(100, 2), steps=3, progress=False)
    for name, updates in (("first", 6), ("second", 3)):
        assert len(model.after[name]) == len(model.seen[name]) == updates
        for (batch, grad_enabled), (x, _) in zip(model.after[name], model.seen[name]):
            assert len(batch) == 1 and batch[0] is x and not grad_enabled


def test_after_update_runs_once_per_step_after_the_optimiser_with_the_batch():
    class Counting(Quadratic):
        def __init__(self):
            super().__init__()
            self.at_loss, self.at_update = [], []  # (batch, theta) seen by loss and by after_update

        def loss(self, x, *, generator=None):
            self.at_loss.append((x, self.theta.detach().clone()))
            return super().loss(x)

        def after_update(self, x):
            assert not torch.is_grad_enabled()
            self.at_update.append((x, self.theta.detach().clone()))

    model = Counting()
    fit(model, torch.randn(50, 2) + 1, steps=4, lr=0.1, progress=False)
    assert len(model.at_update) == len(model.at_loss) == 4
    assert all(x_update is x_loss for (x_update, _), (x_loss, _) in zip(model.at_update, model.at_loss))
    # after_update sees the weights of after the step: those the next loss starts from
    assert all(torch.equal(u, next_loss) for (_, u), (_, next_loss) in zip(model.at_update, model.at_loss[1:]))
    assert not torch.equal(model.at_update[0][1], model.at_loss[0][1])


# -- hooks and callbacks ------------------------------------------------------------------------
class Recorder(Hook):
    def __init__(self):
        self.calls = []

    def on_start(self, state):
        self.calls.append(("on_start", state.step))

    def before_optimizer_step(self, state):
        self.calls.append(("before_optimizer_step", state.step, state.player.name))

    def after_optimizer_step(self, state):
        self.calls.append(("after_optimizer_step", state.step, state.player.name))

    def after_training_step(self, state):
        self.calls.append(("after_training_step", state.step))

    def on_end(self, state):
        self.calls.append(("on_end", state.step))


def test_hook_methods_are_called_in_order_the_right_number_of_times():
    recorder = Recorder()
    fit(TwoPlayers(first_updates=2), torch.randn(20, 2), steps=3, hooks=[recorder], progress=False)
    expected = [("on_start", 0)]
    for step in (1, 2, 3):
        for name in ("first", "first", "second"):
            expected += [("before_optimizer_step", step, name), ("after_optimizer_step", step, name)]
        expected.append(("after_training_step", step))
    assert recorder.calls == expected + [("on_end", 3)]


def test_a_hook_can_stop_training_and_sees_clipped_gradients():
    class StopAtTwo(Hook):
        def __init__(self):
            self.norms = []

        def before_optimizer_step(self, state):  # runs after the built-in clipping
            self.norms.append(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in state.parameters])))

        def after_training_step(self, state):
            state.stop = state.step == 2

    hook = StopAtTwo()
    history = fit(Quadratic(), torch.randn(20, 2) + 100, steps=10, grad_clip=0.5, hooks=[hook], progress=False)
    assert history.steps == 2 and history.stopped_early
    torch.testing.assert_close(torch.stack(hook.norms), torch.full((2,), 0.5))  # raw norm ~ 280


def test_callbacks_run_every_n_steps_and_at_the_end():
    steps_seen = []
    history = fit(Quadratic(), torch.randn(10, 2), steps=25, callback_every=10, progress=False,
                  callbacks=[lambda step, model, history: steps_seen.append((step, history.steps))])
    assert steps_seen == [(10, 10), (20, 20), (25, 25)] and not history.stopped_early
    history = fit(Quadratic(), torch.randn(10, 2), steps=20, callback_every=10, progress=False,
                  callbacks=[lambda step, model, history: step == 20])
    assert history.steps == 20 and not history.stopped_early  # asked to stop at the last step: not early


@pytest.mark.parametrize("name", ["vae", "gan", "flow_matching", "ddpm"])
def test_checkpoint_round_trip_rebuilds_the_model(tmp_path, name):
    torch.manual_seed(0)
    model = zoo.make(name, (2,), hidden=16)
    path = save_checkpoint(model, tmp_path / f"{name}.safetensors", script="test", seed=0, steps=0)
    loaded = load_checkpoint(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_checkpoint_errors_and_weights_only_state_dicts(tmp_path):
    model = zoo.make("flow_matching", (2,), hidden=16)
    with pytest.raises(ValueError, match="safetensors"):
        save_checkpoint(model, tmp_path / "model.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.safetensors")
    torch.save(model.state_dict(), tmp_path / "state.pt")
    other = zoo.make("flow_matching", (2,), hidden=16)
    load_checkpoint(tmp_path / "state.pt", other)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), other.parameters()))

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(Exception, match="[Ww]eights only"):
        load_checkpoint(tmp_path / "evil.pt", other)
