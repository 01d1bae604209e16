"""One figure style for every lecture, readable when projected, and the plots lectures share.

`use_course_style()` is called once at the top of each notebook. Fonts are at least 12 pt at
the default figure width (a projector shows a notebook figure at roughly its printed size),
axes keep their ticks, and every helper here labels its axes: a figure without units or
labels teaches nothing from the back of a room.
"""
from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import torch

MIN_FONT_PT = 12
COURSE_STYLE = {
    "font.size": 13,
    "axes.titlesize": 14,
    "axes.labelsize": 13,
    "xtick.labelsize": 12,
    "ytick.labelsize": 12,
    "legend.fontsize": 12,
    "figure.titlesize": 15,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 2.0,
    "figure.dpi": 100,
    "savefig.bbox": "tight",
}


def use_course_style() -> None:
    """Apply the course's matplotlib style (COURSE_STYLE) to every later figure."""
    mpl.rcParams.update(COURSE_STYLE)


def scatter2d(ax, points, title: str | None = None, lim: float | tuple | None = 3.5, size: float = 3.0,
              **kwargs) -> None:
    """A 2D point cloud with labelled axes and equal aspect (the toy data live in x1, x2)."""
    points = points.detach().cpu() if isinstance(points, torch.Tensor) else points
    ax.scatter(points[:, 0], points[:, 1], s=size, alpha=0.5, **kwargs)
    if title:
        ax.set_title(title)
    if lim is not None:
        xlim, ylim = (lim, lim) if not isinstance(lim, tuple) else lim
        ax.set_xlim(-xlim, xlim)
        ax.set_ylim(-ylim, ylim)
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")


def moving_average(values, window: int) -> torch.Tensor:
    """Trailing mean over `window` points (shorter at the start), to read a noisy training curve."""
    v = torch.as_tensor(values, dtype=torch.float64)
    cumulative = torch.cat([torch.zeros(1, dtype=v.dtype), v.cumsum(0)])
    index = torch.arange(1, len(v) + 1)
    start = (index - window).clamp(min=0)
    return (cumulative[index] - cumulative[start]) / (index - start)


def plot_losses(ax, history, title: str | None = None, window: int = 50, ylabel: str = "loss") -> None:
    """Training curves of a unigm.train.History: one line per player, smoothed over `window` steps."""
    for name, values in history.losses.items():
        ax.plot(range(1, len(values) + 1), moving_average(values, window), label=name)
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if len(history.losses) > 1:
        ax.legend()


def check_readable(fig) -> None:
    """Raise if a figure has an axis without labels or text smaller than MIN_FONT_PT."""
    for ax in fig.axes:
        if ax.get_visible() and ax.axison and (not ax.get_xlabel() or not ax.get_ylabel()):
            raise AssertionError(f"axes {ax.get_title()!r} has an unlabelled axis")
    for text in fig.findobj(mpl.text.Text):
        if text.get_visible() and text.get_text() and text.get_fontsize() < MIN_FONT_PT:
            raise AssertionError(f"text {text.get_text()!r} is {text.get_fontsize()} pt, below {MIN_FONT_PT}")


def markdown_table(rows, columns, digits: int = 3) -> str:
    """A list of dicts as a Markdown table (a string to `display(Markdown(...))`): one column per
    key in `columns`, floats with `digits` decimals, None (or a missing key) as n/a."""
    def cell(value):
        if isinstance(value, float):
            return f"{value:.{digits}f}"
        return "n/a" if value is None else str(value)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def plot_training_curves(histories, ncols: int = 4, window: int = 50, panel_size=(4.2, 3.2),
                         ylabel: str = "loss"):
    """One `plot_losses` panel per trained model, `histories` a dict title -> History; returns
    the figure (unused grid cells removed)."""
    import math

    n = len(histories)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows), squeeze=False)
    for ax, (title, history) in zip(axes.flat, histories.items()):
        plot_losses(ax, history, title=title, window=window, ylabel=ylabel)
    for ax in list(axes.flat)[n:]:
        fig.delaxes(ax)
    fig.tight_layout()
    return fig


def image_rows(rows, ncols: int = 12, panel_width: float = 1.0, row_height: float = 1.3, title_size: float = 13):
    """One row of images per entry of `rows` (a dict title -> images (N, 1, H, W) in [0, 1]), the first
    `ncols` of each, grey levels inverted (ink is dark), no axes, the title at the left of the row;
    returns the figure. The course's figure for samples and reconstructions of digits."""
    height = row_height * len(rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(panel_width * ncols, height), squeeze=False)
    for row_axes, (title, images) in zip(axes, rows.items()):
        for ax, image in zip(row_axes, images[:ncols]):
            ax.imshow(torch.as_tensor(image)[0].detach().cpu().numpy(), cmap="gray_r", vmin=0, vmax=1)
        for ax in row_axes:
            ax.set_axis_off()
        row_axes[0].set_title(title, loc="left", fontsize=title_size)  # may run over the next panels: they have none
    title_inches = 2.2 * title_size / 72  # a title's line and its padding, above every row
    fig.subplots_adjust(left=0.005, right=0.995, bottom=0.01, top=1 - title_inches / height, wspace=0.08,
                        hspace=title_inches / (row_height - title_inches))  # fixed margins: tight_layout would
    return fig  # shrink every panel to fit a title wider than its own panel


def segment_crossings(a, b) -> int:
    """How many pairs of the segments a[i] -> b[i] (a, b: (n, 2)) cross each other in the plane
    (proper crossings: each segment has the other's endpoints strictly on opposite sides)."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)

    def side(p, q, r):  # sign of the cross product (q - p) x (r - p), for every pair (i, j)
        u, v = q - p, r - p
        return torch.sign(u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0])

    ai, bi, aj, bj = a[:, None], b[:, None], a[None, :], b[None, :]
    crossing = (side(ai, bi, aj) * side(ai, bi, bj) < 0) & (side(aj, bj, ai) * side(aj, bj, bi) < 0)
    return int(torch.triu(crossing, diagonal=1).sum())


def plot_pairs(ax, x0, x1, title: str | None = None, lim: float = 3.5, labels=("data $x_0$", "noise $x_1$")) -> None:
    """A coupling drawn as straight segments from each x0[i] to its partner x1[i] (both (n, 2)),
    the conditional paths x_t = (1 - t) x0 + t x1 of flow matching; axes labelled."""
    from matplotlib.collections import LineCollection

    x0 = torch.as_tensor(x0).detach().cpu()
    x1 = torch.as_tensor(x1).detach().cpu()
    ax.add_collection(LineCollection(torch.stack([x0, x1], 1).numpy(), colors="0.45", linewidths=0.8, alpha=0.8))
    ax.scatter(x0[:, 0], x0[:, 1], s=12, color="k", label=labels[0], zorder=3)
    ax.scatter(x1[:, 0], x1[:, 1], s=12, color="C0", label=labels[1], zorder=3)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("coordinate 1")
    ax.set_ylabel("coordinate 2")
    if title:
        ax.set_title(title)
    ax.legend(loc="lower right")


def plot_idea_chain(steps, fontsize: float = 13, width: float = 15.0,
                    headers=("idea", "what it gives, and the limit the next idea removes")):
    """A history map read top to bottom: each idea in a box, and beside it what it gives and the
    limit that the next idea removes. `steps` is a list of (idea, note) strings, oldest first
    (the note may be empty). Returns the figure; every text is `fontsize` pt (>= MIN_FONT_PT)."""
    n = len(steps)
    fig, ax = plt.subplots(figsize=(width, 0.78 * (n + 1) + 0.4))
    if headers:
        ax.text(0.01, n, headers[0], ha="left", va="center", fontsize=fontsize, fontweight="bold")
        ax.text(0.40, n, headers[1], ha="left", va="center", fontsize=fontsize, fontweight="bold")
    for i, (idea, note) in enumerate(steps):
        y = n - 1 - i
        ax.text(0.01, y, idea, ha="left", va="center", fontsize=fontsize,
                bbox=dict(boxstyle="round", facecolor="#e8f0fe", edgecolor="#4a72b0"))
        if note:
            ax.text(0.40, y, note, ha="left", va="center", fontsize=fontsize, color="#333333")
        if i < n - 1:
            ax.annotate("", xy=(0.05, y - 0.72), xytext=(0.05, y - 0.28), arrowprops=dict(arrowstyle="->", lw=1.5))
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.5, n + 0.5)
    ax.axis("off")
    return fig


__all__ = ["COURSE_STYLE", "MIN_FONT_PT", "check_readable", "markdown_table", "moving_average", "plot_idea_chain",
           "plot_losses", "plot_pairs", "plot_training_curves", "scatter2d", "segment_crossings",
           "use_course_style", "plt"]
