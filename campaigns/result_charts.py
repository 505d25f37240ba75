"""Server-rendered SVG charts of a campaign's results: sends over time, the per-variant funnel, and
conversion with its 95 % interval as error bars.

Plain geometry, as ``segmentation.charts`` and ``insights.charts``: the templates draw the shapes
computed here, so the charts need no script. Numbers reach the SVG only as coordinates; names are
text nodes, escaped by the template.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from campaigns.selectors import CampaignResults, GroupResult

SERIES = 6  # colour classes series-0 .. series-5, reused beyond
STAGES = (("sent", "Sent"), ("opened", "Opened"), ("clicked", "Clicked"), ("converted", "Converted"))


def nice_max(value: float) -> float:
    """A round axis top at or above ``value`` (1, 2, 5 times a power of 10; any positive value)."""
    if value <= 0:
        return 1
    magnitude = 1.0
    while magnitude * 10 <= value:
        magnitude *= 10
    while magnitude > value:
        magnitude /= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def percent_label(rate: float) -> str:
    value = rate * 100
    return f"{value:.0f} %" if value >= 10 or value == 0 else f"{value:.1f} %"


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class TimeBar:
    x: float
    y: float
    height: float
    at: datetime
    value: int


@dataclass(frozen=True)
class TimeChart:
    width: int
    height: int
    left: int
    bottom: float
    bar_width: float
    bars: list[TimeBar]
    ticks: list[Tick]
    labels: list[Tick]
    unit: str


def time_chart(
    points: list[tuple[datetime, int]], unit: str, *, width: int = 440, height: int = 200
) -> TimeChart | None:
    """One bar per hour or day of sends, on an axis from 0 to a round top; None without sends."""
    if not points:
        return None
    left, top, bottom = 48, 10, height - 26
    top_value = nice_max(max(value for _, value in points))
    step = (width - left - 8) / len(points)
    bar = max(2.0, step * 0.7)
    bars = []
    for i, (at, value) in enumerate(points):
        tall = value / top_value * (bottom - top)
        bars.append(
            TimeBar(round(left + i * step + (step - bar) / 2, 1), round(bottom - tall, 1), round(tall, 1), at, value)
        )
    ticks = [Tick(bottom, "0"), Tick(top, f"{top_value:,.0f}")]
    if top_value % 2 == 0:
        ticks.insert(1, Tick((top + bottom) / 2, f"{top_value / 2:,.0f}"))
    every = max(1, len(points) // 6)
    fmt = "%H:%M" if unit == "hour" else "%d %b"
    labels = [
        Tick(round(left + i * step + step / 2, 1), at.strftime(fmt).lstrip("0") if unit == "day" else at.strftime(fmt))
        for i, (at, _) in enumerate(points)
        if i % every == 0
    ][:7]
    return TimeChart(width, height, left, bottom, round(bar, 1), bars, ticks, labels, unit)


@dataclass(frozen=True)
class FunnelBar:
    series: int
    name: str
    stage: str
    count: int
    share: str
    x: float
    y: float
    height: float


@dataclass(frozen=True)
class FunnelChart:
    width: int
    height: int
    left: int
    top: int
    bottom: int
    bar_width: float
    bars: list[FunnelBar]
    stages: list[Tick]
    ticks: list[Tick]


def funnel_chart(variants: list[GroupResult], *, width: int = 440, height: int = 220) -> FunnelChart | None:
    """Per stage (sent, opened, clicked, converted) one bar per variant, its height the share of the
    variant's sent messages; None when nothing was sent."""
    if not any(v.sent for v in variants):
        return None
    left, top, bottom = 44, 24, height - 30
    slot = (width - left - 8) / len(STAGES)
    inner = slot * 0.78
    bar = min(56.0, inner / max(len(variants), 1))
    bars = []
    stages = []
    for s, (key, label) in enumerate(STAGES):
        start = left + s * slot + (slot - bar * len(variants)) / 2
        stages.append(Tick(round(left + s * slot + slot / 2, 1), label))
        for i, variant in enumerate(variants):
            count = getattr(variant, key)
            share = count / variant.sent if variant.sent else 0.0
            tall = share * (bottom - top)
            bars.append(
                FunnelBar(
                    i % SERIES,
                    variant.name,
                    label,
                    count,
                    percent_label(share),
                    round(start + i * bar + 1, 1),
                    round(bottom - tall, 1),
                    round(tall, 1),
                )
            )
    ticks = [Tick(round(bottom - (bottom - top) * f, 1), f"{int(f * 100)} %") for f in (0, 0.5, 1)]
    return FunnelChart(width, height, left, top, bottom, round(max(bar - 2, 2.0), 1), bars, stages, ticks)


@dataclass(frozen=True)
class IntervalRow:
    series: int  # -1: the holdout
    name: str
    y: float
    rate: str
    low_label: str
    high_label: str
    x: float
    low: float
    high: float


@dataclass(frozen=True)
class IntervalChart:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: float
    rows: list[IntervalRow]
    ticks: list[Tick]


def interval_chart(results: CampaignResults, *, width: int = 760, row_height: int = 40) -> IntervalChart | None:
    """Each variant's conversion (and the holdout's) as a dot with its 95 % interval as an error
    bar, on one axis from 0 to a round top; None while no group has a rate."""
    groups = [(i % SERIES, g) for i, g in enumerate(results.variants)]
    if results.holdout.exposed:
        groups.append((-1, results.holdout))
    shown = [(series, g) for series, g in groups if g.conversion_rate is not None and g.interval is not None]
    if not shown:
        return None
    left, right, top = (120 if width > 500 else 76), width - 16, 12
    height = top + row_height * len(shown) + 28
    bottom = top + row_height * len(shown)
    axis_top = nice_max(max(g.interval[1] for _, g in shown if g.interval) * 100) / 100

    def x(rate: float) -> float:
        return round(left + rate / axis_top * (right - left), 1)

    rows = []
    for n, (series, g) in enumerate(shown):
        assert g.conversion_rate is not None
        assert g.interval is not None
        low, high = g.interval
        rows.append(
            IntervalRow(
                series,
                "Holdout" if series == -1 else g.name,
                top + row_height * n + row_height / 2,
                percent_label(g.conversion_rate),
                percent_label(low),
                percent_label(high),
                x(g.conversion_rate),
                x(low),
                x(high),
            )
        )
    fractions = (0, 0.25, 0.5, 0.75, 1) if width > 500 else (0, 0.5, 1)
    ticks = [Tick(x(axis_top * f), percent_label(axis_top * f)) for f in fractions]
    return IntervalChart(width, height, left, right, top, bottom, rows, ticks)
