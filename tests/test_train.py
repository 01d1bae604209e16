"""The trainer: determinism, NaN detection, EMA, callbacks, adversarial players, checkpoints."""
import pytest
import torch

from unigm import data, zoo
from unigm.base import GenerativeModel, ShapeError
from unigm.train import NonFiniteLossError, cosine_lr, fit, load_checkpoint, save_checkpoint


class Quadratic(GenerativeModel):
    """A one-parameter 'model' whose loss is |mean(x) - theta|^2: fit moves theta to the data mean."""

    name = "quadratic"

    def __init__(self):
        super().__init__((2,))
        self.theta = torch.nn.Parameter(torch.zeros(2))

    def loss(self, x):
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
        def loss(self, x):
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
        def loss(self, x, y):
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
