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


def _nice_maximum(value: int) -> int:
    if value <= 0:
        return 1
    magnitude = 10 ** (len(str(value)) - 1)
    for step in (1, 2, 2.5, 5, 10):
        candidate = int(step * magnitude)
        if candidate >= value:
            return candidate
    return value


def stacked_bars(
    days: dict[date, dict[str, int]], *, width: int = 960, height: int = 260, label_every: int = 5
) -> Chart:
    """Bars per day (in date order), stacked by query type, scaled to the largest day."""
    query_types = sorted({query_type for credits in days.values() for query_type in credits})
    colors = {query_type: PALETTE[n % len(PALETTE)] for n, query_type in enumerate(query_types)}
    left, right, top, bottom = 48, 8, 10, height - 24
    maximum = _nice_maximum(max((sum(credits.values()) for credits in days.values()), default=0))
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
    ticks = [(round(bottom - (bottom - top) * part / 4, 2), int(maximum * part / 4)) for part in range(5)]
    return Chart(width, height, top, bottom, bars, list(colors.items()), ticks, maximum)
