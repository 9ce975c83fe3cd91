"""The figure readability check: each defect it looks for is caught on a figure built to have it, and a
clean figure passes."""
import math

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cot_lab.ui.figure_check import assert_readable, figure_problems


def clean_figure() -> Figure:
    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([1, 2, 3], [6.0, 4.5, 4.0], "o-", label="validation")
    ax.axhspan(3.0, 3.2, color="k", alpha=0.1, label="entropy floor ± its standard error")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title("a clean figure")
    ax.legend(loc="upper right")
    return fig


def test_a_clean_figure_has_no_problems():
    assert figure_problems(clean_figure(), must_show_y=[3.0, 6.0], must_show_x=[2.0]) == []
    assert_readable(clean_figure())


def test_overprinted_text_is_caught():
    fig = clean_figure()
    fig.axes[0].text(2, 5.0, "first label")
    fig.axes[0].text(2, 5.0, "second label")
    problems = figure_problems(fig)
    assert problems == ["text 'first label' overprints text 'second label'"]
    with pytest.raises(AssertionError, match=r"1 readability problem\(s\):\n  text 'first label' overprints"):
        assert_readable(fig)


def test_crowded_tick_labels_are_caught():
    fig = Figure(figsize=(2.0, 2.0), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(range(12), range(12), label="y = x")
    ax.legend(loc="upper left")
    ax.set_xticks(range(12), [f"label {i}" for i in range(12)])
    assert any("overprints" in p and "label" in p for p in figure_problems(fig))


def test_slanted_neighbours_whose_boxes_overlap_but_glyphs_do_not_pass():
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    ax.bar(range(5), [3, 1, 4, 1, 5], label="counts")
    ax.legend(loc="upper left")
    ax.set_xticks(range(5), [f"a long category name {i}" for i in range(5)], rotation=45, ha="right",
                  rotation_mode="anchor")
    FigureCanvasAgg(fig).draw()
    boxes = [t.get_window_extent() for t in ax.get_xticklabels()]
    assert boxes[0].x1 > boxes[1].x0  # the axis-aligned boxes do overlap: only the rotated test tells them apart
    assert figure_problems(fig) == []


def test_a_legend_over_a_data_point_is_caught():
    fig = clean_figure()
    ax = fig.axes[0]
    ax.plot([2.9], [5.9], "s", label="the one validation point")  # in the upper right corner, under the legend
    ax.legend(loc="upper right")
    assert figure_problems(fig) == ["the legend hides a point of 'the one validation point'"]


def test_a_legend_over_a_scatter_point_and_a_bar_top_is_caught():
    fig = Figure(figsize=(5, 3.5), layout="constrained")
    ax = fig.add_subplot()
    ax.bar([0, 1, 2], [1.0, 2.0, 9.0], label="latency")
    ax.scatter([0.0], [9.5], label="one measurement")
    ax.set_xlim(-0.5, 2.5)
    ax.set_ylim(0, 10)
    ax.legend(loc="upper right")
    problems = figure_problems(fig)
    assert "the legend hides the top of a bar of 'latency'" in problems
    ax.get_legend().set_loc("upper left")  # the legend itself now sits above the scatter point at x = 0
    assert figure_problems(fig) == ["the legend hides a point of 'one measurement'"]


def test_an_unlabelled_band_is_caught_and_an_annotation_beside_it_explains_it():
    fig = clean_figure()
    ax = fig.axes[0]
    ax.axvspan(1.4, 1.6, color="C2", alpha=0.1)
    problems = figure_problems(fig)
    assert len(problems) == 1 and problems[0].startswith("a band or patch in 'a clean figure' has no label")
    ax.text(1.5, 3.6, "warmup", ha="center")  # words inside the band name it
    assert figure_problems(fig) == []


def test_an_unlabelled_line_is_caught_unless_a_legend_entry_is_drawn_like_it():
    fig = clean_figure()
    ax = fig.axes[0]
    ax.plot([1, 3], [5.5, 5.0], ":", color="C3")
    assert figure_problems(fig)[0].startswith("a line in 'a clean figure' has no label")
    ax.plot([], [], ":", color="grey", label="reference slope (any colour)")
    ax.legend(loc="lower left")
    assert figure_problems(fig) == []


def test_a_value_the_prose_quotes_outside_the_axes_is_caught():
    fig = clean_figure()
    fig.axes[0].set_ylim(3.5, 5.5)  # clips the start near ln V, as the old loss plots did
    problems = figure_problems(fig, must_show_y=[math.log(512)], must_show_x=[2.0, 10.0])
    assert problems == ["y = 6.23832 is outside every panel's y range (3.5 to 5.5)",
                        "x = 10 is outside every panel's x range (0.9 to 3.1)"]


def test_text_off_the_figure_is_caught():
    fig = clean_figure()
    fig.axes[0].annotate("a note that runs far past the right edge of the figure", (2.5, 4.2), fontsize=14)
    assert any(p.startswith("text 'a note that runs far past the right") and p.endswith("runs off the figure")
               for p in figure_problems(fig))


def test_tick_labels_outside_the_view_are_not_counted():
    fig = clean_figure()
    ax = fig.axes[0]
    ax.set_yscale("log")  # log locators place ticks beyond the limits, with stale labels on them
    ax.set_ylim(3.8, 6.2)
    assert figure_problems(fig) == []
