"""Server-rendered SVG charts: a sparkline, a size-over-time line, entries and exits bars, and a bar per
day of any daily count (the dashboard's events per day).

Plain geometry, no library and no script: the templates draw the shapes these
functions compute, so charts render with JavaScript off and print crisply.
Numbers only ever reach the SVG as coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from segmentation.selectors import HistoryDay as Day


def _nice_max(value: int) -> int:
    """A round axis top at or above ``value`` (1, 2, 5 times a power of 10)."""
    if value <= 0:
        return 1
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


@dataclass(frozen=True)
class Sparkline:
    width: int
    height: int
    line: str
    area: str
    end_x: float
    end_y: float


def sparkline(points: list[int], *, width: int = 112, height: int = 28) -> Sparkline | None:
    if len(points) < 2:
        return None
    low, high = min(points), max(points)
    span = (high - low) or 1
    step = (width - 4) / (len(points) - 1)
    coords = [(2 + i * step, height - 3 - (value - low) / span * (height - 6)) for i, value in enumerate(points)]
    line = "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    area = f"{line} L{coords[-1][0]:.1f},{height} L{coords[0][0]:.1f},{height} Z"
    return Sparkline(width, height, line, area, coords[-1][0], coords[-1][1])


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class XLabel:
    x: float
    label: str


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    height: float
    day: date
    value: int


@dataclass(frozen=True)
class SizeChart:
    width: int
    height: int
    left: int
    bottom: float
    line: str
    area: str
    ticks: list[Tick]
    labels: list[XLabel]
    end_x: float
    end_y: float


def _x_labels(days: list[Day], left: int, step: float) -> list[XLabel]:
    every = max(1, len(days) // 5)
    return [
        XLabel(left + i * step + step / 2, f"{day.date.day} {day.date:%b}")
        for i, day in enumerate(days)
        if i % every == 0 or i == len(days) - 1
    ][:7]


def padded(days: list[Day], span: int) -> list[Day]:
    """``days`` preceded by empty days up to ``span``: a young segment's few days sit at the right
    end of the same 30-day axis as an old one's, instead of stretching across the whole chart."""
    if not days or len(days) >= span:
        return days
    first = days[0].date
    before = [Day(first - timedelta(days=n), None, 0, 0) for n in range(span - len(days), 0, -1)]
    return before + days


def size_chart(days: list[Day], *, width: int = 440, height: int = 200) -> SizeChart | None:
    known = [(i, d.size) for i, d in enumerate(days) if d.size is not None]
    if not known:
        return None
    left, top, bottom = 40, 12, height - 26
    top_value = _nice_max(max(size for _, size in known))
    step = (width - left - 8) / len(days)

    def y(value: float) -> float:
        return bottom - value / top_value * (bottom - top)

    coords = [(left + i * step + step / 2, y(size)) for i, size in known]
    line = "M" + " L".join(f"{x:.1f},{yy:.1f}" for x, yy in coords)
    area = f"{line} L{coords[-1][0]:.1f},{bottom} L{coords[0][0]:.1f},{bottom} Z"
    fractions = (0, 0.5, 1) if top_value % 2 == 0 else (0, 1)
    ticks = [Tick(y(top_value * f), f"{round(top_value * f):,}") for f in fractions]
    return SizeChart(
        width, height, left, bottom, line, area, ticks, _x_labels(days, left, step), coords[-1][0], coords[-1][1]
    )


@dataclass(frozen=True)
class FlowChart:
    width: int
    height: int
    left: int
    middle: float
    bar_width: float
    entered: list[Bar]
    exited: list[Bar]
    ticks: list[Tick]
    labels: list[XLabel]


def flow_chart(days: list[Day], *, width: int = 440, height: int = 200) -> FlowChart | None:
    """Entries above the axis, exits below, one pair of bars per day; None when nobody entered or
    left on any of the days (an axis from -1 to +1 around a flat line says nothing)."""
    if not any(d.entered or d.exited for d in days):
        return None
    left, top, bottom = 40, 10, height - 26
    middle = (top + bottom) / 2
    peak = _nice_max(max([d.entered for d in days] + [d.exited for d in days]))
    step = (width - left - 8) / len(days)
    bar = max(2.0, step * 0.62)
    half = middle - top
    entered, exited = [], []
    for i, d in enumerate(days):
        x = left + i * step + (step - bar) / 2
        up = d.entered / peak * half
        down = d.exited / peak * half
        entered.append(Bar(x, middle - up, up, d.date, d.entered))
        exited.append(Bar(x, middle, down, d.date, d.exited))
    ticks = [Tick(top, f"+{peak:,}"), Tick(middle, "0"), Tick(bottom, f"\u2212{peak:,}")]
    return FlowChart(width, height, left, middle, bar, entered, exited, ticks, _x_labels(days, left, step))


@dataclass(frozen=True)
class DailyBars:
    width: int
    height: int
    left: int
    bottom: float
    bar_width: float
    bars: list[Bar]
    ticks: list[Tick]
    labels: list[XLabel]
    total: int
    peak: int


def daily_bars(points: list[tuple[date, int]], *, width: int = 440, height: int = 170) -> DailyBars:
    """One bar per day (oldest first), on an axis from 0 to a round top."""
    left, top, bottom = 48, 10, height - 26
    peak = max([value for _, value in points] + [0])
    axis_top = _nice_max(peak)
    step = (width - left - 8) / max(len(points), 1)
    bar = max(2.0, step * 0.7)
    bars = []
    for i, (day, value) in enumerate(points):
        tall = value / axis_top * (bottom - top)
        bars.append(Bar(left + i * step + (step - bar) / 2, bottom - tall, tall, day, value))
    ticks = [Tick(bottom, "0"), Tick((top + bottom) / 2, f"{axis_top / 2:,.0f}"), Tick(top, f"{axis_top:,}")]
    if axis_top % 2:
        ticks = [ticks[0], ticks[2]]
    days = [Day(date=day, size=None, entered=0, exited=0) for day, _ in points]
    return DailyBars(
        width,
        height,
        left,
        bottom,
        bar,
        bars,
        ticks,
        _x_labels(days, left, step),
        sum(value for _, value in points),
        peak,
    )
