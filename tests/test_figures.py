"""The course's figure style: readable fonts, labelled axes, smoothed training curves."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from unigm.course import figures  # noqa: E402
from unigm.train import History  # noqa: E402


@pytest.fixture(autouse=True)
def course_style():
    with matplotlib.rc_context():
        figures.use_course_style()
        yield
        plt.close("all")


def test_the_style_sets_every_font_at_least_the_readable_minimum():
    for key in ("font.size", "axes.titlesize", "axes.labelsize", "xtick.labelsize", "ytick.labelsize",
                "legend.fontsize"):
        assert matplotlib.rcParams[key] >= figures.MIN_FONT_PT, key


def test_helpers_label_their_axes_and_pass_the_readability_check():
    fig, (left, right) = plt.subplots(1, 2)
    figures.scatter2d(left, torch.randn(100, 2), "samples")
    figures.plot_losses(right, History(losses={"generator": [1.0] * 10, "discriminator": [2.0] * 10}))
    figures.check_readable(fig)
    assert len(right.get_lines()) == 2 and right.get_legend() is not None


def test_readability_check_rejects_small_text_and_unlabelled_axes():
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    with pytest.raises(AssertionError, match="unlabelled"):
        figures.check_readable(fig)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("tiny", fontsize=7)
    with pytest.raises(AssertionError, match="7"):
        figures.check_readable(fig)


def test_moving_average_is_the_trailing_mean():
    values = [1.0, 3.0, 5.0, 7.0]
    torch.testing.assert_close(figures.moving_average(values, 2), torch.tensor([1.0, 2.0, 4.0, 6.0], dtype=torch.float64))
    torch.testing.assert_close(figures.moving_average(values, 10), torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64))


def test_segment_crossings_counts_proper_crossings_only():
    a = torch.tensor([[0.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    b = torch.tensor([[1.0, 1.0], [1.0, 0.0], [6.0, 5.0]])  # an X, and a far-away segment
    assert figures.segment_crossings(a, b) == 1
    assert figures.segment_crossings(a[[0, 2]], b[[0, 2]]) == 0
    # parallel segments never cross; sorting 1D pairs (the OT plan) removes every crossing
    x0, x1 = torch.randn(50, generator=torch.Generator().manual_seed(0)), torch.randn(50)
    lift = lambda v, y: torch.stack([v, torch.full_like(v, y)], 1)  # noqa: E731  points on two lines
    assert figures.segment_crossings(lift(x0.sort().values, 0.0), lift(x1.sort().values, 1.0)) == 0
    assert figures.segment_crossings(lift(x0, 0.0), lift(x1, 1.0)) > 0


def test_markdown_table_formats_floats_and_missing_values():
    table = figures.markdown_table([dict(model="a", G=0.5), dict(model="b", G=None)], ["model", "G", "NLL"], digits=2)
    assert table.splitlines() == ["| model | G | NLL |", "|---|---|---|", "| a | 0.50 | n/a |", "| b | n/a | n/a |"]


def test_image_rows_draws_each_row_of_images_under_its_title():
    images = torch.rand(20, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    fig = figures.image_rows({"data": images, "model": images[:5]}, ncols=12)
    axes = fig.axes
    assert len(axes) == 24 and axes[0].get_title(loc="left") == "data" and axes[12].get_title(loc="left") == "model"
    drawn = [ax for ax in axes if ax.images]
    assert len(drawn) == 12 + 5 and not any(ax.axison for ax in axes)  # a short row leaves blank panels
    torch.testing.assert_close(torch.as_tensor(drawn[13].images[0].get_array()), images[1, 0], check_dtype=False)
    assert drawn[0].images[0].get_clim() == (0, 1)
