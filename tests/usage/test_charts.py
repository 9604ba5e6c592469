"""The usage chart's geometry (usage.charts): no database."""

from datetime import date, timedelta

import pytest

from usage.charts import stacked_bars


def _days(*totals: int) -> dict[date, dict[str, int]]:
    first = date(2026, 11, 1)
    return {first + timedelta(days=n): ({"standard": total} if total else {}) for n, total in enumerate(totals)}


@pytest.mark.parametrize(
    ("totals", "labels"),
    [
        ((0, 0, 0), [0, 1, 2, 3, 4]),  # no usage: found from outside labelled 0 0 0 0 1
        ((1,), [0, 1, 2, 3, 4]),
        ((3, 7), [0, 2, 4, 6, 8]),
        ((25,), [0, 10, 20, 30, 40]),
        ((95, 12), [0, 25, 50, 75, 100]),
        ((1000,), [0, 250, 500, 750, 1000]),
        ((1001,), [0, 500, 1000, 1500, 2000]),
    ],
)
def test_the_y_axis_labels_are_distinct_whole_steps_from_zero_that_reach_the_largest_day(totals, labels):
    chart = stacked_bars(_days(*totals))

    assert [value for _, value in chart.ticks] == labels
    assert chart.maximum == labels[-1]


def test_each_label_sits_at_its_value_and_the_largest_bar_reaches_its_own_height():
    chart = stacked_bars(_days(30, 60))

    scale = chart.plot_height / chart.maximum
    for y, value in chart.ticks:
        assert y == pytest.approx(chart.plot_bottom - value * scale, abs=0.01)
    tallest = chart.bars[1].segments[0]
    assert tallest.height == pytest.approx(60 * scale, abs=0.01)
    assert tallest.y >= chart.plot_top
