"""The lecture explorers (unigm.course.explorers): every update computes what the library computes, moves
the figure, stays readable, and answers fast; without a kernel the widget builds and the static figure of
the default state is there."""
import io
import math

import matplotlib
import numpy as np

matplotlib.use("Agg")
import ipywidgets as widgets  # noqa: E402
import IPython.display  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.image import imread  # noqa: E402

from unigm import data, metrics, samplers, schedules  # noqa: E402
from unigm.course import explorers  # noqa: E402
from unigm.course.figures import check_readable, moving_average  # noqa: E402
from unigm.densities import GaussianMixtureOnPath  # noqa: E402
from unigm.flows import FlowMatching  # noqa: E402
from unigm.frontier import interpolants  # noqa: E402
from unigm.gan import GAN  # noqa: E402
from unigm.paths import linear_path  # noqa: E402
from unigm.train import fit  # noqa: E402

FAST = 0.5  # seconds: one update (recompute, redraw, PNG) on a cached or closed-form path


def timed_updates(explorer, settings, label: str | None = None) -> float:
    """Median wall time of explorer.update(**values) over `settings` (rendering included); printed (pytest -s)."""
    seconds = []
    for values in settings:
        explorer.update(**values)
        seconds.append(explorer.seconds)
    median = sorted(seconds)[len(seconds) // 2]
    print(f"{label or type(explorer).__name__}: median update {median * 1000:.0f} ms, max {max(seconds) * 1000:.0f} ms")
    return median


def close(a, b, tol=1e-12):
    return torch.allclose(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64),
                          atol=tol, rtol=0)


def offsets(collection):
    return torch.as_tensor(np.asarray(collection.get_offsets()), dtype=torch.float64)


# -- 1. noise schedules ------------------------------------------------------------------------------------------
def test_noise_schedule_explorer_computes_the_library_schedules_and_redraws():
    explorer = explorers.NoiseScheduleExplorer()
    assert explorer.values == {"schedule": "VP-linear", "t": 0.3}
    cloud = explorer.ax_cloud.collections[1]
    before = offsets(cloud).clone()

    explorer.update(schedule="VP-linear", t=0.5)
    t = torch.tensor(0.5, dtype=torch.float64)
    alpha_bar = schedules.alpha_bar_vp_linear(t)
    assert math.isclose(explorer.alpha_bar, alpha_bar.item(), rel_tol=1e-12)
    assert math.isclose(explorer.snr, schedules.snr(alpha_bar).item(), rel_tol=1e-9)
    assert close(explorer.x_t, alpha_bar.sqrt() * explorer.x0 + (1 - alpha_bar).sqrt() * explorer.eps)
    assert close(explorer.x_t_flow, 0.5 * explorer.x0 + 0.5 * explorer.eps)
    assert close(offsets(cloud), explorer.x_t, 1e-6) and not close(offsets(cloud), before, 1e-3)
    assert explorer._markers[0].get_ydata()[0] == explorer.alpha_bar

    explorer.update(schedule="cosine", t=0.7)
    assert math.isclose(explorer.alpha_bar, schedules.alpha_bar_cosine(torch.tensor(0.7, dtype=torch.float64)).item(),
                        rel_tol=1e-12)
    explorer.update(schedule="linear (flow matching)", t=0.25)  # the VP alpha_bar with the line's SNR (lecture 02)
    assert math.isclose(explorer.alpha_bar, schedules.alpha_bar_of_linear_path(0.25), rel_tol=1e-12)
    assert close(explorer.x_t, explorer.x_t_flow)
    explorer.update(schedule="VE", t=0.6)
    sigma = schedules.sigma_ve(torch.tensor(0.6, dtype=torch.float64), sigma_max=10.0)
    assert close(explorer.x_t, explorer.x0 + sigma * explorer.eps)
    assert math.isclose(explorer.log_snr, -2 * math.log(sigma.item()), rel_tol=1e-12)
    assert explorer.ax_cloud.get_xlim()[1] > 3.5  # the VE cloud needs wider axes
    check_readable(explorer.figure)

    settings = [{"t": t} for t in (0.1, 0.2, 0.4, 0.8, 0.9)] + [{"schedule": "cosine"}]
    assert timed_updates(explorer, settings) < FAST


def test_a_control_change_is_an_update_and_unknown_controls_are_refused():
    explorer = explorers.NoiseScheduleExplorer()
    explorer.controls["t"].value = 0.8  # what a slider moved in a live kernel does
    assert explorer.values["t"] == 0.8
    at_08 = schedules.alpha_bar_vp_linear(torch.tensor(0.8, dtype=torch.float64)).item()
    assert math.isclose(explorer.alpha_bar, at_08, rel_tol=1e-12)
    assert explorer.view.value != explorer.default_png
    explorer.update(t=1.5)  # a slider clamps to its range; the explorer uses what the slider holds
    assert explorer.values["t"] == 1.0 and explorer.alpha_bar < 1e-4
    with pytest.raises(ValueError, match="unknown control"):
        explorer.update(time=0.5)


# -- 2. stochastic interpolants --------------------------------------------------------------------------------
@pytest.mark.parametrize("schedule, gamma, name", [("linear", 0.5, "linear+gamma0.5"),
                                                   ("trigonometric", 0.0, "trigonometric"), ("vp", 0.3, "vp+gamma0.3")])
def test_interpolant_explorer_moves_particles_along_the_library_path(schedule, gamma, name):
    explorer = explorers.InterpolantExplorer()
    before = offsets(explorer._particles).clone()
    explorer.update(schedule=schedule, gamma=gamma, t=0.3)
    library = interpolants.make_schedule(name)
    t = torch.tensor(0.3, dtype=torch.float64)
    alpha, beta, g = library.alpha(t), library.beta(t), library.gamma(t)
    assert explorer.schedule.name == library.name
    assert close(explorer.particles, alpha * explorer.x0 + beta * explorer.x1 + g * explorer.z)
    assert math.isclose(explorer.coefficients["gamma"], gamma * math.sqrt(0.3 * 0.7), abs_tol=1e-12)
    drawn = offsets(explorer._particles)
    assert close(drawn, explorer.particles, 1e-6) and not close(drawn, before, 1e-3)
    grid = explorer.grid[:, None]
    a, b, c = library.alpha(grid), library.beta(grid), library.gamma(grid)
    first = a * explorer.x0[0] + b * explorer.x1[0] + c * explorer.z[0]
    assert close(explorer.paths[:, 0], first)  # the drawn path of particle 0
    check_readable(explorer.figure)
    if schedule == "linear":
        explorer.play.value = 40  # the Play button walks t in 50 frames
        assert explorer.values["t"] == 0.8
        assert timed_updates(explorer, [{"t": t} for t in (0.0, 0.25, 0.5, 0.75, 1.0)] + [{"gamma": 1.0}]) < FAST


# -- 3. samplers -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exact_field():
    """The exact velocity of eight Gaussians on the linear path (cheap and exact), and a 500-point reference."""
    dist = data.toy("eight_gaussians")
    return GaussianMixtureOnPath.from_toy(dist, linear_path()), metrics.reference(dist, n=500)


def test_sampler_explorer_measures_the_same_g_as_the_metrics(exact_field):
    mixture, ref = exact_field
    explorer = explorers.SamplerExplorer(mixture, ref, solver="euler", steps=2, steps_options=(2, 8),
                                         solvers=("euler", "heun"), precompute="now")
    assert set(explorer.cached()) == {("euler", 2), ("euler", 8), ("heun", 2), ("heun", 8)}
    before = offsets(explorer._samples).clone()
    explorer.update(solver="heun", steps=8)
    direct = samplers.heun(mixture.velocity, explorer.x1, 8)
    quality = metrics.sample_quality(direct, ref)
    assert torch.equal(explorer.current.samples, direct) and explorer.current.nfe == 16
    assert math.isclose(explorer.current.gap_closed, quality.gap_closed, rel_tol=1e-9)
    assert explorer.current.gap_closed > explorer.result("euler", 2).gap_closed + 0.2  # more steps, better solver
    assert explorer.current.trajectories.shape == (9, explorer.particles, 2)
    assert close(explorer.current.trajectories[-1], direct[:explorer.particles])
    drawn = offsets(explorer._samples)
    assert close(drawn, direct[:explorer.shown], 1e-6) and not close(drawn, before, 1e-3)
    assert len(explorer._quality["heun"].get_xdata()) == 2  # G against NFE: both heun settings drawn
    check_readable(explorer.figure)
    settings = [{"solver": s, "steps": k} for s in ("euler", "heun") for k in (2, 8)] + [{"steps": 2}]
    assert timed_updates(explorer, settings) < FAST  # cached: only a redraw


def test_sampler_explorer_precomputes_in_the_background_and_takes_a_plain_callable(exact_field):
    mixture, ref = exact_field
    explorer = explorers.SamplerExplorer(lambda x, t: mixture.velocity(x, t), ref, solver="rk4", steps=4,
                                         steps_options=(1, 4), solvers=("euler", "rk4"), precompute="background")
    assert explorer.wait(timeout=60)
    assert set(explorer.cached()) == set(explorer.settings)
    first = explorer.result("rk4", 4)
    assert explorer.result("rk4", 4) is first  # computed once
    assert first.gap_closed > 0.8 and first.nfe == 16
    print(f"SamplerExplorer: one uncached setting (solve + W2 on {len(ref.test)} points) "
          f"{max(r.seconds for r in explorer.cached().values()) * 1000:.0f} ms at most")


# -- 4. training playback --------------------------------------------------------------------------------------
def small_gan():
    torch.manual_seed(0)
    return GAN((2,), GAN.Config(hidden=32, depth=2))


def small_flow_matching():
    torch.manual_seed(0)
    return FlowMatching((2,), FlowMatching.Config(hidden=32, depth=2, sample_steps=4))


@pytest.mark.parametrize("make", [small_gan, small_flow_matching], ids=["gan", "flow_matching"])
def test_training_playback_shows_the_recorded_snapshots(make):
    moons = data.toy("two_moons")
    recording = explorers.record_snapshots(make(), moons, steps=60, every=20, n_samples=300, keep_state=True,
                                           batch_size=128, lr=2e-3, seed=0)
    assert recording.steps == [0, 20, 40, 60]
    assert not torch.equal(recording.snapshots[0].samples, recording.snapshots[-1].samples)  # training moved them
    plain = make()
    fit(plain, moons, steps=60, batch_size=128, lr=2e-3, seed=0, progress=False)
    for key, value in plain.state_dict().items():  # recording does not change training
        assert torch.equal(recording.snapshots[-1].state_dict[key], value), key

    player = explorers.TrainingPlayback(recording)
    assert player.values["step"] == 60
    before = offsets(player._samples).clone()
    player.update(step=20)
    assert player.snapshot.step == 20 and torch.equal(player.samples, recording.snapshots[1].samples)
    assert close(offsets(player._samples), recording.snapshots[1].samples, 1e-6)
    assert not close(offsets(player._samples), before, 1e-3)
    for name, values in recording.history.losses.items():
        assert math.isclose(player.losses_at_step[name], moving_average(values, player.window)[19].item())
    player.update(step=35)  # between snapshots: the latest one before
    assert player.snapshot.step == 20
    check_readable(player.figure)
    label = f"TrainingPlayback ({make.__name__})"
    assert timed_updates(player, [{"step": s} for s in (0, 20, 40, 60, 40)], label) < FAST


# -- without a kernel ------------------------------------------------------------------------------------------
def test_without_a_kernel_the_widget_builds_and_show_leaves_the_static_default_figure(monkeypatch):
    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kwargs: shown.append(obj))
    explorer = explorers.InterpolantExplorer()
    default = explorer.default_png
    assert default.startswith(b"\x89PNG") and explorer.view.value == default
    image = imread(io.BytesIO(default))
    width, height = explorer.figure.get_size_inches() * explorer.dpi
    assert image.shape[:2] == (round(height), round(width))
    explorer.update(t=0.9)
    explorer.show()
    assert isinstance(shown[0], IPython.display.Image) and shown[0].data == default  # the default state, not t = 0.9
    assert shown[1] is explorer.widget and isinstance(explorer.widget, widgets.VBox)
    assert explorer.view in explorer.widget.children and explorer.view.value != default
    bundle = explorer.widget._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    shown.clear()
    explorer.show(static=False)
    assert shown == [explorer.widget]

