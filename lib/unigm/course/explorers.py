"""Interactive explorers for the lectures: move a slider, see the schedule, path, sampler or training
run change, in well under a second on a laptop CPU.

    NoiseScheduleExplorer()            VP-linear, cosine, VE and the flow-matching line: signal fraction,
                                       log-SNR and the two moons noised to a chosen t           (lecture 01, 7.1)
    InterpolantExplorer()              x_t = alpha x0 + beta x1 + gamma z: particles along the path and
                                       the three coefficients, for a schedule and a gamma amplitude (lecture 05, 1)
    SamplerExplorer(model, ref)        Euler / Heun / RK4 with a number of steps: trajectories and the
                                       measured G, cached per setting                             (lecture 03, 5)
    TrainingPlayback(recording)        samples and loss curve at each saved step of a training run;
                                       record_snapshots(model, data, steps, every) records one  (lecture 01, 6)

Every explorer has the same face: `controls` (name -> ipywidgets control), `values` (their current
values), `update(**values)` (what a control change calls: recompute, redraw, re-render; tests call it
directly), `figure` (a matplotlib Figure, not registered with pyplot, so the inline backend never
shows it a second time), `view` (an ipywidgets Image holding the figure as PNG), `widget` (controls
above the view), `seconds` (the wall time of the latest update, rendering included), `default_png`
(the figure of the default state) and `show()`. Each keeps what it computed as attributes, so a test
can check the numbers against the library.

Why every update ends in a PNG inside an Image widget: it works with every matplotlib backend (no
ipympl needed) and every frontend that renders widgets, and a property of a widget is the one thing a
slider callback can change reliably (outputs displayed from a callback are dropped by JupyterLab
unless captured, and `update_display` from a callback does not reach ordinary outputs:
jupyter-widgets/ipywidgets#1844). On a 2-core CPU an update takes ~0.1 s (1x2 figures) to ~0.2 s (the
2x2 noise explorer), nearly all of it drawing and PNG encoding; the numbers behind it are cached or closed-form
(SamplerExplorer's first visit to a setting excepted, see there).

Why `show()` always displays the static figure of the default state first, then the widget: the
kernel cannot tell whether a frontend will render the widget. nbval, nbclient and the course's HTML
export all run a real ipykernel (so "is there a kernel?" is always yes); what a static page lacks is the
frontend's widget manager, which the kernel never hears about. A single output carrying both the
widget view and a PNG fallback does not help either: nbconvert's HTML exporter ranks the widget view
first and shows an empty box when no widget state or no network is there. So `show()` never guesses:
a plain image/png output (seen by every renderer: the course's HTML, GitHub, nbviewer, nbval's stored
notebook), then the live widget. In a live notebook the static picture stays above the widget as the
default state to compare with; `show(static=False)` leaves it out.
"""
from __future__ import annotations

import io
import math
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

import ipywidgets as widgets
import matplotlib as mpl
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter

from .. import data as datasets
from .. import metrics, samplers, schedules
from ..frontier import interpolants
from ..train import History, fit
from .figures import COURSE_STYLE, MIN_FONT_PT, moving_average

__all__ = ["Explorer", "InterpolantExplorer", "NOISE_SCHEDULES", "NoiseScheduleExplorer", "Recording",
           "SOLVERS", "SamplerExplorer", "SamplerResult", "Snapshot", "TrainingPlayback", "noise_coefficients",
           "record_snapshots"]

RENDER_STYLE = {**COURSE_STYLE, "savefig.bbox": "standard"}  # a fixed layout: "tight" would draw twice
FAINT = "0.75"  # grey of the reference points behind a cloud


class Explorer:
    """What every explorer shares: controls -> values -> update() -> figure -> PNG in `view`.

    A subclass makes `controls` (a dict name -> ipywidgets value widget) in its __init__, then calls
    `_start(rows)`; it implements `_build()` (the figure and its artists, in the course style),
    `_compute()` (numbers from `self.values`) and `_draw()` (move the artists; no new axes)."""

    dpi = 100

    def _start(self, rows: list | None = None) -> None:
        with mpl.rc_context(RENDER_STYLE):  # every label, title and legend gets the course's sizes
            self.figure = figure = self._build()
        FigureCanvasAgg(figure)  # its own canvas: never shown by pyplot's inline backend
        for ax in figure.axes:
            ax.tick_params(labelsize=MIN_FONT_PT)  # ticks are made at draw time: fix their size now
        self.values = {name: control.value for name, control in self.controls.items()}
        self._syncing = False
        for name, control in self.controls.items():
            control.observe(lambda change, name=name: self._on_control(name, change["new"]), names="value")
        self.view = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        rows = rows if rows is not None else [widgets.HBox(list(self.controls.values()))]
        self.widget = widgets.VBox([*rows, self.view])
        self._compute()
        with mpl.rc_context(RENDER_STYLE):
            self._draw()
            figure.tight_layout()  # once, for the default state: the margins then stay fixed
            figure.set_layout_engine(None)  # (tight_layout leaves a placeholder engine that costs a draw per save)
        self.default_png = self.png()
        self.view.value = self.default_png
        self.seconds = 0.0

    def _on_control(self, name, value) -> None:
        if not self._syncing:
            self.update(**{name: value})

    def update(self, **values) -> None:
        """Set controls (by name) to `values`, recompute, redraw and re-render the view; what a
        control change calls. Values are read back from the controls (a slider clamps to its range)."""
        start = time.perf_counter()
        unknown = set(values) - set(self.controls)
        if unknown:
            raise ValueError(f"unknown control(s) {sorted(unknown)}; this explorer has {sorted(self.controls)}")
        self._syncing = True
        try:
            for name, value in values.items():
                self.controls[name].value = value
        finally:
            self._syncing = False
        self.values = {name: control.value for name, control in self.controls.items()}
        self._compute()
        with mpl.rc_context(RENDER_STYLE):  # set_title, set_xlabel ... read the font sizes at call time
            self._draw()
        self.view.value = self.png(compress_level=1)
        self.seconds = time.perf_counter() - start

    def png(self, compress_level: int = 6) -> bytes:
        """The figure as it is now, as PNG bytes (course style, fixed layout); updates use compress_level=1
        (10% larger, 10% faster to make)."""
        buffer = io.BytesIO()
        with mpl.rc_context(RENDER_STYLE):
            self.figure.savefig(buffer, format="png", dpi=self.dpi, pil_kwargs={"compress_level": compress_level})
        return buffer.getvalue()

    def show(self, static: bool = True) -> None:
        """Display the static figure of the default state (see the module docstring), then the widget."""
        import IPython.display as ipd

        if static:
            ipd.display(ipd.Image(data=self.default_png, format="png"))
        ipd.display(self.widget)

    def _build(self) -> Figure:
        raise NotImplementedError

    def _compute(self) -> None:
        raise NotImplementedError

    def _draw(self) -> None:
        raise NotImplementedError


def _course_figure(nrows: int, ncols: int, figsize) -> tuple[Figure, list]:
    figure = Figure(figsize=figsize)
    return figure, list(figure.subplots(nrows, ncols, squeeze=False).flat)


def _label_cloud(ax, lim: float) -> None:
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")


# -- 1. noise schedules ------------------------------------------------------------------------------------------
NOISE_SCHEDULES = ("VP-linear", "cosine", "VE", "linear (flow matching)")
LOG_SNR_LIMIT = 12.0  # the log-SNR axis shows [-12, 12]; beyond it the curves leave the plot


def noise_coefficients(schedule: str, t, ve_sigma_max: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha_t, sigma_t) of x_t = alpha_t x0 + sigma_t eps (float64) for one of NOISE_SCHEDULES:
    VP-linear and cosine alpha = sqrt(alpha_bar), sigma = sqrt(1 - alpha_bar) (unigm.schedules); VE alpha = 1,
    sigma = sigma_ve(t) from 0.01 to ve_sigma_max (10, as the course's score_sde_ve); the flow-matching line
    alpha = 1 - t, sigma = t."""
    t = torch.as_tensor(t, dtype=torch.float64)
    if schedule in ("VP-linear", "cosine"):
        alpha_bar = schedules.alpha_bar_vp_linear(t) if schedule == "VP-linear" else schedules.alpha_bar_cosine(t)
        return alpha_bar.sqrt(), (1 - alpha_bar).clamp(min=0).sqrt()
    if schedule == "VE":
        return torch.ones_like(t), schedules.sigma_ve(t, sigma_max=ve_sigma_max)
    if schedule == "linear (flow matching)":
        return 1 - t, t
    raise ValueError(f"unknown schedule {schedule!r}; choose from {NOISE_SCHEDULES}")


class NoiseScheduleExplorer(Explorer):
    """Pick a schedule and a time t. Curves (precomputed on a grid of `grid` times): the signal
    fraction alpha^2 / (alpha^2 + sigma^2) = SNR / (1 + SNR), which is alpha_bar on the VP paths (and
    schedules.alpha_bar_of_linear_path on the flow-matching line), and log-SNR, all four schedules with the
    chosen one bold and a marker at t. Clouds: the same `n` two-moons points and noise, noised to t by the
    chosen schedule (x_t = alpha x0 + sigma eps: sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) eps, or x0 + sigma eps
    for VE) and by flow matching ((1 - t) x0 + t eps), side by side. Attributes after update: alpha, sigma,
    alpha_bar (the signal fraction), snr, log_snr (floats), x_t, x_t_flow ((n, 2))."""

    def __init__(self, schedule: str = "VP-linear", t: float = 0.3, n: int = 600, grid: int = 401,
                 ve_sigma_max: float = 10.0, seed: int = 0):
        self.ve_sigma_max = ve_sigma_max
        g = torch.Generator().manual_seed(seed)
        self.x0 = datasets.toy("two_moons").sample(n, g).double()  # (n, 2)
        self.eps = torch.randn(n, 2, generator=g, dtype=torch.float64)
        self.grid = torch.linspace(0, 1, grid, dtype=torch.float64)
        self.curves = {}
        for name in NOISE_SCHEDULES:
            alpha, sigma = noise_coefficients(name, self.grid, ve_sigma_max)
            self.curves[name] = {"signal_fraction": alpha**2 / (alpha**2 + sigma**2),
                                 "log_snr": (2 * alpha.log() - 2 * sigma.log()).clamp(-30, 30)}
        self.controls = {
            "schedule": widgets.Dropdown(options=NOISE_SCHEDULES, value=schedule, description="schedule"),
            "t": widgets.FloatSlider(value=t, min=0.0, max=1.0, step=0.01, description="t", readout_format=".2f"),
        }
        self._start()

    def _build(self) -> Figure:
        t = self.controls["t"].value
        figure, (self.ax_signal, self.ax_log_snr, self.ax_cloud, self.ax_flow) = _course_figure(2, 2, (11, 9.5))
        self._lines = {}
        for k, name in enumerate(NOISE_SCHEDULES):
            curves = self.curves[name]
            self._lines[name] = (
                self.ax_signal.plot(self.grid, curves["signal_fraction"], color=f"C{k}", label=name)[0],
                self.ax_log_snr.plot(self.grid, curves["log_snr"], color=f"C{k}")[0])
        self.ax_signal.set(xlabel="time t (0 data, 1 noise)", ylabel="signal fraction", ylim=(-0.03, 1.03),
                           title=r"signal fraction $\alpha^2/(\alpha^2+\sigma^2)$")
        self.ax_signal.legend(loc="lower left")
        self.ax_log_snr.set(xlabel="time t (0 data, 1 noise)", ylabel=r"log-SNR  $\log(\alpha^2/\sigma^2)$",
                            ylim=(-LOG_SNR_LIMIT, LOG_SNR_LIMIT))
        self._t_lines = [ax.axvline(t, color="k", lw=1, ls="--") for ax in (self.ax_signal, self.ax_log_snr)]
        self._markers = [ax.plot([], [], "o", color="k", ms=9, zorder=5)[0] for ax in (self.ax_signal, self.ax_log_snr)]
        self._clouds = []
        for ax in (self.ax_cloud, self.ax_flow):
            ax.scatter(self.x0[:, 0], self.x0[:, 1], s=3, color=FAINT)
            self._clouds.append(ax.scatter(self.x0[:, 0], self.x0[:, 1], s=4, color="C0", alpha=0.6))
        _label_cloud(self.ax_flow, 3.5)
        return figure

    def _compute(self):
        name, t = self.values["schedule"], self.values["t"]
        alpha, sigma = noise_coefficients(name, t, self.ve_sigma_max)
        self.alpha, self.sigma = alpha.item(), sigma.item()
        self.alpha_bar = alpha.item() ** 2 / (alpha.item() ** 2 + sigma.item() ** 2)
        self.snr = math.inf if self.sigma == 0 else self.alpha**2 / self.sigma**2
        self.log_snr = math.log(self.snr) if 0 < self.snr < math.inf else (math.inf if self.snr else -math.inf)
        self.x_t = alpha * self.x0 + sigma * self.eps  # (n, 2)
        self.x_t_flow = (1 - t) * self.x0 + t * self.eps  # (n, 2)

    def _draw(self):
        name, t = self.values["schedule"], self.values["t"]
        for key, (signal, log_snr) in self._lines.items():
            for line in (signal, log_snr):
                line.set(linewidth=3.5 if key == name else 1.5, alpha=1.0 if key == name else 0.35,
                         zorder=3 if key == name else 2)
        for line in self._t_lines:
            line.set_xdata([t, t])
        shown_log_snr = min(max(self.log_snr, -LOG_SNR_LIMIT + 0.3), LOG_SNR_LIMIT - 0.3)  # keep the marker visible
        self._markers[0].set_data([t], [self.alpha_bar])
        self._markers[1].set_data([t], [shown_log_snr])
        self.ax_log_snr.set_title(f"SNR = {self.snr:.3g}  (log-SNR = {self.log_snr:.2f})")
        self._clouds[0].set_offsets(self.x_t.numpy())
        self._clouds[1].set_offsets(self.x_t_flow.numpy())
        lim = 3.5 if name != "VE" else max(3.5, 3.0 * math.sqrt(1 + self.sigma**2))  # VE: the cloud grows to 3 sigma
        _label_cloud(self.ax_cloud, lim)
        self.ax_cloud.set_title(f"{name.split(' ')[0]} at t = {t:.2f}" + (f" (axes to {lim:.1f})" if lim > 3.5 else ""))
        self.ax_flow.set_title(f"flow matching at t = {t:.2f}")


# -- 2. stochastic interpolants --------------------------------------------------------------------------------
class InterpolantExplorer(Explorer):
    """x_t = alpha_t x0 + beta_t x1 + gamma_t z with the schedules of unigm.frontier.interpolants: a base
    schedule (linear, trigonometric, vp) plus a latent term of amplitude `gamma` (gamma_t = gamma sqrt(t (1 - t)),
    with_gamma; the preset "linear+gamma0.5" is linear with gamma = 0.5). Left: `n` particles (fixed pairs of
    two-moons data x0 and noise x1, and a fixed z) at time t, coloured by where they start, with the whole path
    of a few of them; right: alpha, beta, gamma against t with markers at t. A Play button walks t from 0 to 1.
    Attributes after update: schedule (the library Schedule), coefficients {alpha, beta, gamma} at t (floats),
    particles ((n, 2), float64), curves {alpha, beta, gamma} on `grid`."""

    SCHEDULES = ("linear", "trigonometric", "vp")

    def __init__(self, schedule: str = "linear", gamma: float = 0.0, t: float = 0.5, n: int = 500,
                 paths_shown: int = 40, grid: int = 101, frames: int = 50, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.x0 = datasets.toy("two_moons").sample(n, g).double()  # (n, 2)
        self.x1 = torch.randn(n, 2, generator=g, dtype=torch.float64)
        self.z = torch.randn(n, 2, generator=g, dtype=torch.float64)
        self.grid = torch.linspace(0, 1, grid, dtype=torch.float64)
        self.paths_shown = paths_shown
        self._schedules: dict[tuple[str, float], interpolants.Schedule] = {}
        self.controls = {
            "schedule": widgets.Dropdown(options=self.SCHEDULES, value=schedule, description="schedule"),
            "gamma": widgets.FloatSlider(value=gamma, min=0.0, max=1.5, step=0.05, description="gamma amp."),
            "t": widgets.FloatSlider(value=t, min=0.0, max=1.0, step=0.01, description="t", readout_format=".2f"),
        }
        self.play = widgets.Play(value=round(t * frames), min=0, max=frames, step=1, interval=150, description="play")
        self.play.observe(lambda change: self.update(t=change["new"] / frames), names="value")
        self._start(rows=[widgets.HBox([self.controls["schedule"], self.controls["gamma"]]),
                          widgets.HBox([self.controls["t"], self.play])])

    def _build(self) -> Figure:
        t = self.controls["t"].value
        figure, (self.ax_particles, self.ax_curves) = _course_figure(1, 2, (12.5, 5.6))
        self.ax_particles.scatter(self.x0[:, 0], self.x0[:, 1], s=3, color=FAINT)
        self._paths = LineCollection([], colors="0.45", linewidths=0.8, alpha=0.6)
        self.ax_particles.add_collection(self._paths)
        self._particles = self.ax_particles.scatter(self.x0[:, 0], self.x0[:, 1], s=7, c=self.x0[:, 0].numpy(),
                                                    cmap="viridis", zorder=3)
        _label_cloud(self.ax_particles, 3.5)
        self._curves = {name: self.ax_curves.plot([], [], color=color, label=rf"$\{name}_t$")[0]
                        for name, color in (("alpha", "C0"), ("beta", "C1"), ("gamma", "C2"))}
        self._markers = {name: self.ax_curves.plot([], [], "o", color=line.get_color(), ms=9)[0]
                         for name, line in self._curves.items()}
        self._t_line = self.ax_curves.axvline(t, color="k", lw=1, ls="--")
        self.ax_curves.set(xlabel="time t (0 data, 1 noise)", ylabel="coefficient", xlim=(0, 1), ylim=(-0.05, 1.05))
        self.ax_curves.legend(loc="center right")
        return figure

    def schedule_for(self, name: str, gamma: float) -> interpolants.Schedule:
        """The library schedule: make_schedule(name) or make_schedule(f"{name}+gamma{gamma}") (cached)."""
        key = (name, round(float(gamma), 6))
        if key not in self._schedules:
            self._schedules[key] = interpolants.make_schedule(name if key[1] == 0 else f"{name}+gamma{key[1]:g}")
        return self._schedules[key]

    @torch.no_grad()
    def _compute(self):
        self.schedule = self.schedule_for(self.values["schedule"], self.values["gamma"])
        t = torch.tensor(self.values["t"], dtype=torch.float64)
        self.coefficients = {name: getattr(self.schedule, name)(t).item() for name in ("alpha", "beta", "gamma")}
        c = self.coefficients
        self.particles = c["alpha"] * self.x0 + c["beta"] * self.x1 + c["gamma"] * self.z  # (n, 2)
        self.curves = {name: getattr(self.schedule, name)(self.grid) for name in ("alpha", "beta", "gamma")}
        k = self.paths_shown
        a, b, g = (self.curves[name][:, None, None] for name in ("alpha", "beta", "gamma"))  # (G, 1, 1)
        self.paths = a * self.x0[:k] + b * self.x1[:k] + g * self.z[:k]  # (G, k, 2)

    def _draw(self):
        t = self.values["t"]
        self._particles.set_offsets(self.particles.numpy())
        self._paths.set_segments(list(self.paths.transpose(0, 1).numpy()))
        for name, line in self._curves.items():
            line.set_data(self.grid.numpy(), self.curves[name].numpy())
            self._markers[name].set_data([t], [self.coefficients[name]])
        self._t_line.set_xdata([t, t])
        c = self.coefficients
        self.ax_particles.set_title(rf"$x_t=\alpha x_0+\beta x_1+\gamma z$ at t = {t:.2f}")
        self.ax_curves.set_title(rf"{self.schedule.name}: $\alpha$ = {c['alpha']:.2f}, $\beta$ = {c['beta']:.2f}, "
                                 rf"$\gamma$ = {c['gamma']:.2f}")


# -- 3. samplers -----------------------------------------------------------------------------------------------
G_AXIS_FLOOR = -2.0  # the G axis stops here: one Euler step can score far below
SOLVERS = {"euler": (samplers.euler, 1), "heun": (samplers.heun, 2), "rk4": (samplers.rk4, 4)}  # (solver, NFE/step)


@dataclass(frozen=True)
class SamplerResult:
    """One (solver, steps) setting: samples (n, D) from the fixed starting noise, the trajectories of the
    first particles ((steps + 1, particles, D)), NFE, W2 to the reference's held-out data and G."""

    solver: str
    steps: int
    nfe: int
    samples: torch.Tensor
    trajectories: torch.Tensor
    w2: float
    gap_closed: float
    seconds: float


class SamplerExplorer(Explorer):
    """Solve a trained 2D model's ODE from fixed noise at t = 1 to t_end with Euler, Heun or RK4 and a number
    of steps; left: the trajectories of a few particles and the samples over the held-out data, right: G
    against NFE for every setting computed so far, the chosen one circled.

    model: anything with velocity(x, t) (FlowMatching, StochasticInterpolant, GaussianMixtureOnPath: exact and
    cheap), else probability_flow_velocity(x, t) (DDPM, score SDEs), else a callable f(x, t). t_end: where the
    ODE stops (default 0; 1e-3 for probability-flow fields, whose score divides by sigma_t = 0 at t = 0). The
    start x1 ~ N(0, prior_std^2 I), prior_std from the model where it has one (VE score SDEs), else 1.
    G = ref.gap_closed(W2(samples, ref.test)), the n = len(ref.test) samples from one seeded draw: the same
    G as metrics.sample_quality (without its MMD, which would add ~0.2 s).

    Latency (2-core CPU, 2,000 points): every (solver, steps) result is cached, so a setting seen before answers
    in the time of a redraw (~0.1 s). A new one costs the ODE solve plus one exact W2: 0.7-1.1 s. The grid
    solvers x steps_options can be computed ahead: precompute=None (the default: each setting on first use, so
    nothing runs behind later cells of a notebook, which may be timing something), "background" (a daemon
    thread started at construction, the default setting first: the 18 settings of the default grid take ~12 s,
    after which every setting is instant; for live sessions) or "now" (~13 s before returning; the static figure
    then shows the whole G-against-NFE curve). `wait()` blocks until a precomputed grid is done."""

    def __init__(self, model, ref: metrics.Reference, solver: str = "euler", steps: int = 8,
                 steps_options=(1, 2, 4, 8, 16, 32), solvers=tuple(SOLVERS), particles: int = 16,
                 shown: int = 1000, t_end: float | None = None, precompute: str | None = None,
                 seed: int = 0):
        if precompute not in ("background", "now", None):
            raise ValueError(f"precompute must be 'background', 'now' or None, got {precompute!r}")
        unknown = set(solvers) - set(SOLVERS)
        if unknown:
            raise ValueError(f"unknown solver(s) {sorted(unknown)}; choose from {sorted(SOLVERS)}")
        self.ref, self.particles, self.shown, self.precompute = ref, particles, shown, precompute
        self.field, pf = self._field(model)
        self.t_end = (1e-3 if pf else 0.0) if t_end is None else t_end
        parameter = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
        device = parameter.device if parameter is not None else "cpu"
        prior_std = float(getattr(model, "prior_std", 1.0))  # VE score SDEs start from N(0, sigma_max^2 I)
        self.x1 = prior_std * torch.randn(len(ref.test), ref.test.shape[1],
                                          generator=torch.Generator().manual_seed(seed)).to(device)  # (n, D)
        self.settings = [(s, k) for s in solvers for k in steps_options]
        self._results: dict[tuple[str, int], Future] = {}
        self._lock = threading.Lock()
        self.precomputed = threading.Event()
        self.controls = {
            "solver": widgets.Dropdown(options=tuple(solvers), value=solver, description="solver"),
            "steps": widgets.SelectionSlider(options=tuple(steps_options), value=steps, description="steps"),
        }
        if precompute == "now":
            self._precompute()
        self._start()
        if precompute == "background":
            threading.Thread(target=self._precompute, daemon=True, name="SamplerExplorer").start()

    def _build(self) -> Figure:
        solvers = self.controls["solver"].options
        figure, (self.ax_paths, self.ax_quality) = _course_figure(1, 2, (12.5, 5.6))
        test = self.ref.test[:self.shown].cpu()
        self.ax_paths.scatter(test[:, 0], test[:, 1], s=3, color=FAINT)
        self._samples = self.ax_paths.scatter([], [], s=4, color="C0", alpha=0.6)
        self._paths = LineCollection([], colors="C3", linewidths=1.2)
        self.ax_paths.add_collection(self._paths)
        self._starts = self.ax_paths.scatter([], [], s=25, color="C3", marker="x", zorder=4)
        _label_cloud(self.ax_paths, 3.5)
        self._quality = {s: self.ax_quality.plot([], [], "o-", color=f"C{k}", label=s)[0]
                         for k, s in enumerate(solvers)}
        self._current = self.ax_quality.plot([], [], "o", ms=16, mfc="none", mec="k", mew=2)[0]
        self.ax_quality.axhline(1.0, color="0.5", lw=1, ls=":")
        self.ax_quality.set_xscale("log", base=2)
        nfes = [k * SOLVERS[s][1] for s, k in self.settings]
        self.ax_quality.set_xticks(sorted(set(nfes)))
        self.ax_quality.xaxis.set_major_formatter(ScalarFormatter())
        self.ax_quality.xaxis.set_minor_formatter(NullFormatter())
        self.ax_quality.set(xlabel="network evaluations (NFE)", ylabel="G (1 = fresh data)",
                            xlim=(min(nfes) / 1.5, max(nfes) * 1.5))
        self.ax_quality.legend(loc="lower right")
        return figure

    @staticmethod
    def _field(model):
        if hasattr(model, "velocity"):
            return model.velocity, False
        if hasattr(model, "probability_flow_velocity"):
            return model.probability_flow_velocity, True
        if callable(model):
            return model, False
        raise TypeError(f"{type(model).__name__} has no velocity or probability_flow_velocity and is not callable")

    def _precompute(self):
        default = (self.controls["solver"].value, self.controls["steps"].value)
        for setting in [default] + [s for s in self.settings if s != default]:
            self.result(*setting)
        self.precomputed.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the precomputed grid is done (True) or `timeout` seconds have passed (False); False at
        once when no grid was asked for (precompute=None)."""
        return self.precompute is not None and self.precomputed.wait(timeout)

    def result(self, solver: str, steps: int) -> SamplerResult:
        """The cached result of one setting, computed on first request (once, whichever thread asks)."""
        key = (solver, int(steps))
        with self._lock:
            future, owner = self._results.get(key), False
            if future is None:
                future, owner = Future(), True
                self._results[key] = future
        if owner:
            try:
                future.set_result(self._solve(*key))
            except BaseException as error:
                future.set_exception(error)
        return future.result()

    def cached(self) -> dict[tuple[str, int], SamplerResult]:
        """The settings computed so far."""
        with self._lock:
            done = {key: f for key, f in self._results.items() if f.done() and f.exception() is None}
        return {key: f.result() for key, f in done.items()}

    @torch.no_grad()
    def _solve(self, solver: str, steps: int) -> SamplerResult:
        if solver not in SOLVERS:
            raise ValueError(f"unknown solver {solver!r}; choose from {sorted(SOLVERS)}")
        start = time.perf_counter()
        method, per_step = SOLVERS[solver]
        trajectory = []
        samples = method(self.field, self.x1, steps, t_end=self.t_end, trajectory=trajectory).cpu()
        paths = torch.stack([x[:self.particles].cpu() for x in trajectory])  # (steps + 1, particles, D)
        try:
            w2 = metrics.wasserstein2(samples, self.ref.test)
        except ValueError:  # NaN or inf samples: the solver diverged
            w2 = math.nan
        return SamplerResult(solver, steps, steps * per_step, samples, paths, w2, self.ref.gap_closed(w2),
                             time.perf_counter() - start)

    def _compute(self):
        self.current = self.result(self.values["solver"], self.values["steps"])

    def _draw(self):
        r = self.current
        self._samples.set_offsets(r.samples[:self.shown].numpy())
        self._paths.set_segments(list(r.trajectories.transpose(0, 1).numpy()))
        self._starts.set_offsets(r.trajectories[0].numpy())
        self.ax_paths.set_title(f"{r.solver}, {r.steps} steps (NFE {r.nfe}): G = {r.gap_closed:.2f}")
        done = self.cached()
        values = []
        for solver, line in self._quality.items():
            points = sorted((res.nfe, res.gap_closed) for (s, _), res in done.items() if s == solver)
            line.set_data([p[0] for p in points], [p[1] for p in points])
            values += [p[1] for p in points if math.isfinite(p[1])]
        self._current.set_data([r.nfe], [r.gap_closed])
        low = min([0.0, *values]) - 0.1
        self.ax_quality.set_ylim(max(low, G_AXIS_FLOOR), 1.15)
        cut = ", axis cut at -2" if low < G_AXIS_FLOOR else ""
        self.ax_quality.set_title(f"G against NFE ({len(done)} of {len(self.settings)} settings{cut})")


# -- 4. training playback --------------------------------------------------------------------------------------
@dataclass
class Snapshot:
    """The model at one training step: samples from a fixed noise draw, and its weights when kept."""

    step: int
    samples: torch.Tensor  # (n, D), on the CPU
    state_dict: dict | None = None


@dataclass
class Recording:
    """A training run as saved snapshots: what TrainingPlayback plays back."""

    snapshots: list[Snapshot]
    history: History  # losses of every step, one series per player
    data: torch.Tensor | None = None  # data points drawn behind the samples
    every: int = 1

    @property
    def steps(self) -> list[int]:
        return [s.step for s in self.snapshots]


def record_snapshots(model, data, steps: int, every: int, *, n_samples: int = 1000, sample_steps: int | None = None,
                     keep_state: bool = False, sample_seed: int = 0, **fit_kwargs) -> Recording:
    """Train `model` on `data` with unigm.train.fit for `steps` steps and save a Snapshot at step 0 (before
    training), every `every` steps and at the end: `n_samples` samples from the same seeded noise each time
    (so what moves is the model, not the noise; the draws use their own generator, so recording does not change
    training), and a copy of the weights if keep_state. fit_kwargs go to fit (progress off by default)."""
    if not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be a positive int, got {every!r}")
    snapshots: list[Snapshot] = []

    @torch.no_grad()
    def snapshot(step, model, history=None):
        if snapshots and snapshots[-1].step == step:
            return False
        training = model.training
        model.eval()
        kwargs = {"steps": sample_steps} if sample_steps is not None else {}
        samples = model.sample(n_samples, generator=torch.Generator().manual_seed(sample_seed), **kwargs)
        model.train(training)
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()} if keep_state else None
        snapshots.append(Snapshot(step, samples.detach().cpu().reshape(n_samples, -1), state))
        return False

    snapshot(0, model)
    fit_kwargs.setdefault("progress", False)
    history = fit(model, data, steps=steps, callbacks=[snapshot], callback_every=every, **fit_kwargs)
    if hasattr(data, "sample"):
        shown = data.sample(n_samples, torch.Generator().manual_seed(sample_seed + 1))
    else:
        shown = torch.as_tensor(data)[:n_samples]
    return Recording(snapshots, history, shown.detach().cpu().reshape(len(shown), -1), every)


class TrainingPlayback(Explorer):
    """Play back a Recording: a step slider (and a Play button that walks it) shows the samples saved at the
    latest snapshot at or before that step, over the data, and the loss curves (smoothed over `window` steps,
    one per player) with a marker at that step. Everything was computed at record time, so a change only
    redraws. Attributes after update: snapshot (the Snapshot shown), samples ((n, D)), losses_at_step
    {player: smoothed loss}."""

    def __init__(self, recording: Recording, step: int | None = None, window: int | None = None,
                 lim: float = 3.5, interval_ms: int = 400, title: str = "samples"):
        self.recording, self.title = recording, title
        steps = recording.steps
        total = len(next(iter(recording.history.losses.values()), []))
        self.window = window or max(1, total // 25)
        self.smoothed = {name: moving_average(values, self.window) for name, values in recording.history.losses.items()}
        self.controls = {"step": widgets.IntSlider(value=steps[-1] if step is None else step, min=steps[0],
                                                   max=steps[-1], step=recording.every, description="step")}
        self.play = widgets.Play(value=self.controls["step"].value, min=steps[0], max=steps[-1], step=recording.every,
                                 interval=interval_ms, description="play")
        widgets.jslink((self.play, "value"), (self.controls["step"], "value"))  # the frontend moves the slider
        self.lim = lim
        self._start(rows=[widgets.HBox([self.play, self.controls["step"]])])

    def _build(self) -> Figure:
        recording, steps = self.recording, self.recording.steps
        figure, (self.ax_samples, self.ax_loss) = _course_figure(1, 2, (12.5, 5.6))
        if recording.data is not None:
            self.ax_samples.scatter(recording.data[:, 0], recording.data[:, 1], s=3, color=FAINT)
        self._samples = self.ax_samples.scatter([], [], s=5, color="C0", alpha=0.6)
        _label_cloud(self.ax_samples, self.lim)
        self._markers = {}
        for k, (name, values) in enumerate(self.smoothed.items()):
            self.ax_loss.plot(range(1, len(values) + 1), values, color=f"C{k}", label=name)
            self._markers[name] = self.ax_loss.plot([], [], "o", color=f"C{k}", ms=9, zorder=5)[0]
        self._step_line = self.ax_loss.axvline(steps[-1], color="k", lw=1, ls="--")
        self.ax_loss.set(xlabel="training step", ylabel=f"loss (mean of {self.window} steps)")
        if len(self.smoothed) > 1:
            self.ax_loss.legend(loc="best")
        return figure

    def snapshot_at(self, step: int) -> Snapshot:
        """The latest snapshot at or before `step` (the first one before it)."""
        earlier = [s for s in self.recording.snapshots if s.step <= step]
        return earlier[-1] if earlier else self.recording.snapshots[0]

    def _compute(self):
        self.snapshot = self.snapshot_at(self.values["step"])
        self.samples = self.snapshot.samples
        index = max(self.snapshot.step, 1) - 1  # history index of that step (step 0: the first loss)
        self.losses_at_step = {name: float(values[min(index, len(values) - 1)])
                               for name, values in self.smoothed.items() if len(values)}

    def _draw(self):
        step = self.snapshot.step
        self._samples.set_offsets(self.samples[:, :2].numpy())
        for name, marker in self._markers.items():
            marker.set_data([max(step, 1)], [self.losses_at_step[name]])
        self._step_line.set_xdata([step, step])
        last = self.recording.snapshots[-1].step
        self.ax_samples.set_title(f"{self.title} at step {step} of {last}")
        self.ax_loss.set_title("training loss, marker at that step")
