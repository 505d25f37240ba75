"""Server-rendered charts of insights: the funnel's bars and the retention table's heat.

Plain geometry, no library and no script, as ``segmentation.charts``: the templates draw the shapes
computed here. Numbers only ever reach the SVG as coordinates; names are text nodes, escaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Shown for no value: an en dash.
NONE = "\u2013"


@dataclass(frozen=True)
class FunnelBar:
    number: int  # 1-based step number
    event: str
    count: int
    percent: str  # of step 1, as shown
    x: float
    width: float
    y: float  # top of the bar
    height: float
    track_y: float  # top of the faint track (step 1's height)
    label_x: float
    dropped: int  # people of the previous step who did not reach this one


@dataclass(frozen=True)
class FunnelChart:
    width: int
    height: int
    left: int
    top: int
    bottom: int
    bars: list[FunnelBar]
    ticks: list[tuple[float, str]]

    @property
    def track_height(self) -> int:
        return self.bottom - self.top


def _percent(part: int, whole: int) -> str:
    if not whole:
        return NONE
    value = 100 * part / whole
    return f"{value:.0f}%" if value >= 10 or value == 0 else f"{value:.1f}%"


def funnel_chart(steps: list[dict[str, Any]], *, width: int = 760, height: int = 300) -> FunnelChart:
    """One bar per step, its height the share of step 1's people; the faint track behind is step 1's."""
    left, top, bottom = 44, 28, height - 48
    first = steps[0]["count"] if steps else 0
    slot = (width - left - 8) / max(len(steps), 1)
    bar = min(96.0, slot * 0.62)
    bars = []
    for k, step in enumerate(steps):
        share = step["count"] / first if first else 0.0
        bar_height = (bottom - top) * share
        x = left + k * slot + (slot - bar) / 2
        bars.append(
            FunnelBar(
                number=k + 1,
                event=step["event"],
                count=step["count"],
                percent=_percent(step["count"], first),
                x=round(x, 1),
                width=round(bar, 1),
                y=round(bottom - bar_height, 1),
                height=round(bar_height, 1),
                track_y=top,
                label_x=round(x + bar / 2, 1),
                dropped=(steps[k - 1]["count"] - step["count"]) if k else 0,
            )
        )
    ticks = [(round(bottom - (bottom - top) * f, 1), f"{int(f * 100)}%") for f in (0, 0.5, 1)]
    return FunnelChart(width, height, left, top, bottom, bars, ticks)


@dataclass(frozen=True)
class HeatCell:
    offset: int
    count: int
    percent: str
    heat: int  # 0..10, the CSS class heat-N


@dataclass(frozen=True)
class HeatRow:
    start: str
    size: int
    cells: list[HeatCell]


def heat_rows(cohorts: list[dict[str, Any]]) -> list[HeatRow]:
    rows = []
    for cohort in cohorts:
        size = cohort["size"]
        cells = [
            HeatCell(
                offset=n,
                count=count,
                percent=_percent(count, size),
                heat=round(10 * count / size) if size else 0,
            )
            for n, count in enumerate(cohort["returned"])
        ]
        rows.append(HeatRow(cohort["start"], size, cells))
    return rows
