"""The silhouette chart of a clustering run: one bar per k tried, the chosen k marked.

Plain geometry for a server-rendered SVG, as ``segmentation.charts`` draws segment sizes: the
template draws the shapes computed here, so the chart renders with JavaScript off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    center: float
    k: int
    score: float
    chosen: bool
    value_y: float


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class SilhouetteChart:
    width: int
    height: int
    left: int
    baseline: float
    label_y: float
    bars: list[Bar]
    ticks: list[Tick]


def silhouette_chart(
    scores: list[dict[str, Any]], chosen: int | None, *, width: int = 440, height: int = 200
) -> SilhouetteChart | None:
    """Bars from 0 to each score (downwards for a negative one), the axis up to 0.25, 0.5 or 1."""
    if not scores:
        return None
    values = [float(item["score"]) for item in scores]
    highest = max([*values, 0.0])
    top = next((bound for bound in (0.25, 0.5, 1.0) if highest <= bound), 1.0)
    low = -math.ceil(-min([*values, 0.0]) / 0.25) * 0.25
    left, upper, lower = 40, 18, height - 28
    span = top - low

    def y(value: float) -> float:
        return lower - (value - low) / span * (lower - upper)

    step = (width - left - 8) / len(scores)
    bar_width = max(6.0, step * 0.56)
    baseline = y(0.0)
    bars = []
    for index, item in enumerate(scores):
        score = float(item["score"])
        x = left + index * step + (step - bar_width) / 2
        top_y, bottom_y = sorted((y(score), baseline))
        bars.append(
            Bar(
                x=round(x, 1),
                y=round(top_y, 1),
                width=round(bar_width, 1),
                height=round(bottom_y - top_y, 1),
                center=round(x + bar_width / 2, 1),
                k=int(item["k"]),
                score=score,
                chosen=int(item["k"]) == chosen,
                value_y=round((top_y - 5) if score >= 0 else (bottom_y + 12), 1),
            )
        )
    levels = sorted({low, 0.0, top / 2, top})
    ticks = [Tick(round(y(level), 1), f"{level:g}") for level in levels]
    return SilhouetteChart(width, height, left, round(baseline, 1), float(height - 8), bars, ticks)
