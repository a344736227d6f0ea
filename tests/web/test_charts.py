"""The revenue chart's geometry: exact, proportional, and labelled."""

from decimal import Decimal as D

import pytest

from billing.web.charts import BOTTOM, HEIGHT, TOP, nice_ceiling, stacked_bars


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (D("1810.26"), D(2000)),
        (D("2000"), D(2000)),
        (D("2000.01"), D(2500)),
        (D("0.3"), D("0.5")),
        (D("7"), D(10)),
        (D("96"), D(100)),
        (D("101"), D(200)),
    ],
)
def test_nice_ceiling(value, expected):
    assert nice_ceiling(value) == expected


def test_bars_stack_to_their_totals_against_the_axis():
    chart = stacked_bars(
        ["2026-09", "2026-10"],
        [("Product analytics", [D("1000"), D("1500")]), ("Surveys", [D("0"), D("500")])],
        "USD",
    )
    plot = HEIGHT - TOP - BOTTOM
    # axis top is 2,000: October's 2,000 fills the plot, September's 1,000 half of it
    assert [t.label for t in chart.ticks] == ["0", "500", "1,000", "1,500", "2,000"]
    heights = [D(r.height) for r in chart.rects]
    assert heights == [plot / 2, plot * 3 / 4, plot / 4]  # the zero is not drawn
    assert [r.series for r in chart.rects] == [0, 0, 1]
    october = [r for r in chart.rects if "2026-10" in r.title]
    assert D(october[0].y) + D(october[0].height) == D(chart.baseline)  # sits on the axis
    assert D(october[1].y) + D(october[1].height) == D(october[0].y)  # stacked on top
    assert chart.rects[2].title == "Surveys, 2026-10: 500 USD"
    assert [label.text for label in chart.labels] == ["2026-09", "2026-10"]


def test_negative_and_empty_figures_draw_nothing_but_keep_the_axis():
    chart = stacked_bars(["2026-09"], [("Refunds", [D("-5")])], "USD")
    assert chart.rects == ()
    assert chart.ticks[-1].label == "1"
