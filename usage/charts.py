"""A stacked bar chart as plain SVG geometry, computed here and drawn by a template (no JS, no CDN)."""

from dataclasses import dataclass, field
from datetime import date

PALETTE = ["#3b5bdb", "#12b76a", "#f79009", "#d92d20", "#7a5af8", "#0ba5ec", "#ee46bc", "#667085"]


@dataclass
class Segment:
    y: float
    height: float
    color: str
    query_type: str
    credits: int


@dataclass
class Bar:
    day: date
    x: float
    width: float
    total: int
    segments: list[Segment] = field(default_factory=list)
    label: str = ""


@dataclass
class Chart:
    width: int
    height: int
    plot_top: int
    plot_bottom: int
    bars: list[Bar]
    legend: list[tuple[str, str]]
    ticks: list[tuple[float, int]]
    maximum: int

    @property
    def plot_height(self) -> int:
        return self.plot_bottom - self.plot_top


TICKS = 4  # intervals on the y axis: labels at 0, 1, 2, 3 and 4 steps


def _tick_step(value: int) -> int:
    """The smallest whole step of 1, 2, 2.5 or 5 times a power of ten whose TICKS steps reach `value`.

    The axis then reads 0, step, 2 x step, ... exactly: a maximum of 1 credit labelled its
    ticks 0 0 0 0 1, and one of 25 put the label 6 where 6.25 was."""
    magnitude = 1
    while True:
        for factor in (1, 2, 2.5, 5):
            step = factor * magnitude
            if step == int(step) and TICKS * step >= value:
                return int(step)
        magnitude *= 10


def stacked_bars(
    days: dict[date, dict[str, int]], *, width: int = 960, height: int = 260, label_every: int = 5
) -> Chart:
    """Bars per day (in date order), stacked by query type, scaled to the largest day."""
    query_types = sorted({query_type for credits in days.values() for query_type in credits})
    colors = {query_type: PALETTE[n % len(PALETTE)] for n, query_type in enumerate(query_types)}
    left, right, top, bottom = 48, 8, 10, height - 24
    step = _tick_step(max((sum(credits.values()) for credits in days.values()), default=0))
    maximum = TICKS * step
    slot = (width - left - right) / max(len(days), 1)
    bars = []
    for n, (day, credits) in enumerate(sorted(days.items())):
        bar = Bar(day=day, x=round(left + n * slot + slot * 0.15, 2), width=round(slot * 0.7, 2), total=0)
        y = float(bottom)
        for query_type in query_types:
            amount = credits.get(query_type, 0)
            if not amount:
                continue
            segment_height = (bottom - top) * amount / maximum
            y -= segment_height
            bar.segments.append(Segment(round(y, 2), round(segment_height, 2), colors[query_type], query_type, amount))
            bar.total += amount
        if n % label_every == 0 or n == len(days) - 1:
            bar.label = day.strftime("%b %d")
        bars.append(bar)
    ticks = [(round(bottom - (bottom - top) * part / TICKS, 2), step * part) for part in range(TICKS + 1)]
    return Chart(width, height, top, bottom, bars, list(colors.items()), ticks, maximum)
