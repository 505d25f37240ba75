"""The holdout chart of a propensity run: for each tenth of the people by score, highest first, the
share who actually did it (a bar) and the mean predicted probability (a dot).

Plain geometry for a server-rendered SVG, as ``insights.clustering_charts`` draws the silhouette:
the template draws the shapes computed here, so the chart renders with JavaScript off. Bars falling
from left to right show lift; dots on the bars' tops show calibration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GroupBar:
    x: float
    y: float
    width: float
    height: float
    center: float
    dot_y: float
    group: int
    people: int
    actual: float
    predicted: float


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class GroupsChart:
    width: int
    height: int
    left: int
    baseline: float
    base_y: float | None  # the holdout's base rate, as a line
    label_y: float
    bars: list[GroupBar]
    ticks: list[Tick]


def groups_chart(
    groups: list[dict[str, Any]], base_rate: float | None, *, width: int = 640, height: int = 220
) -> GroupsChart | None:
    """Rates from 0 up to the next of 25%, 50% or 100% above the highest actual or predicted one."""
    if not groups:
        return None
    highest = max(max(float(g["actual"]), float(g["predicted"])) for g in groups)
    top = next(bound for bound in (0.25, 0.5, 1.0) if highest <= bound)
    left, upper, lower = 40, 12, height - 24

    def y(value: float) -> float:
        return round(lower - value / top * (lower - upper), 1)

    step = (width - left - 8) / len(groups)
    bar_width = max(6.0, step * 0.6)
    bars = []
    for index, item in enumerate(groups):
        actual = float(item["actual"])
        x = left + index * step + (step - bar_width) / 2
        bars.append(
            GroupBar(
                x=round(x, 1),
                y=y(actual),
                width=round(bar_width, 1),
                height=round(lower - y(actual), 1),
                center=round(x + bar_width / 2, 1),
                dot_y=y(float(item["predicted"])),
                group=int(item["group"]),
                people=int(item["people"]),
                actual=actual,
                predicted=float(item["predicted"]),
            )
        )
    ticks = [Tick(y(level), f"{level:.0%}") for level in (0.0, top / 2, top)]
    base_y = None if base_rate is None else y(float(base_rate))
    return GroupsChart(width, height, left, float(lower), base_y, float(height - 6), bars, ticks)
