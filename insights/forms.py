"""The pages' forms: the funnel builder and the retention form, read from POST data into the REST API's
request documents (validated by the same parsers), and filled back from a stored job's request.

The funnel builder is plain HTML: adding or removing a step or a filter posts the form with an
``action`` and the server renders it again (htmx swaps it in place; without JavaScript the page
reloads). Errors come back by the path the parser names (``steps[1].filters[0].value``) and are
shown beside that control.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.http import QueryDict

from insights import funnels, retention
from segmentation.definition import LIST_OPERATORS, NUMERIC_OPERATORS, PRESENCE_OPERATORS

OPERATORS = [
    ("eq", "equals"),
    ("neq", "does not equal"),
    ("contains", "contains"),
    ("not_contains", "does not contain"),
    ("starts_with", "starts with"),
    ("ends_with", "ends with"),
    ("in", "is one of"),
    ("not_in", "is none of"),
    ("gt", "is greater than"),
    ("gte", "is at least"),
    ("lt", "is less than"),
    ("lte", "is at most"),
    ("between", "is between"),
    ("before", "is before"),
    ("after", "is after"),
    ("is_set", "is set"),
    ("is_not_set", "is not set"),
]
WINDOWS = [
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
    ("90d", "Last 90 days"),
    ("365d", "Last 12 months"),
    ("all", "All time"),
]
UNITS = [("m", "minutes"), ("h", "hours"), ("d", "days"), ("w", "weeks")]
MAX_FILTERS = 5
_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")


@dataclass
class FilterRow:
    key: str = ""
    operator: str = "eq"
    value: str = ""
    errors: list[str] = field(default_factory=list)


@dataclass
class StepRow:
    event: str = ""
    filters: list[FilterRow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _number(text: str) -> float | int | None:
    if not _NUMBER.match(text):
        return None
    value = float(text)
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


@dataclass
class FunnelForm:
    steps: list[StepRow]
    within_amount: str = "7"
    within_unit: str = "d"
    window: str = "30d"
    breakdown_kind: str = ""
    breakdown_key: str = ""
    breakdown_segments: list[str] = field(default_factory=list)
    errors: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def initial(cls) -> FunnelForm:
        return cls(steps=[StepRow(), StepRow()])

    @property
    def can_add_step(self) -> bool:
        return len(self.steps) < funnels.MAX_STEPS

    @property
    def can_remove_step(self) -> bool:
        return len(self.steps) > funnels.MIN_STEPS

    @classmethod
    def from_post(cls, data: QueryDict) -> FunnelForm:
        steps = []
        count = min(_int(data.get("steps"), 2), funnels.MAX_STEPS)
        for i in range(count):
            filters = [
                FilterRow(
                    key=data.get(f"step-{i}-filter-{j}-key", "").strip(),
                    operator=data.get(f"step-{i}-filter-{j}-operator", "eq"),
                    value=data.get(f"step-{i}-filter-{j}-value", ""),
                )
                for j in range(min(_int(data.get(f"step-{i}-filters"), 0), MAX_FILTERS))
            ]
            steps.append(StepRow(event=data.get(f"step-{i}-event", "").strip(), filters=filters))
        return cls(
            steps=steps,
            within_amount=data.get("within_amount", "7").strip(),
            within_unit=data.get("within_unit", "d"),
            window=data.get("window", "30d"),
            breakdown_kind=data.get("breakdown_kind", ""),
            breakdown_key=data.get("breakdown_key", "").strip(),
            breakdown_segments=data.getlist("breakdown_segments"),
        )

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> FunnelForm:
        steps = [
            StepRow(
                event=step["event"],
                filters=[
                    FilterRow(key=f["key"], operator=f["operator"], value=_as_text(f.get("value")))
                    for f in step.get("filters") or []
                ],
            )
            for step in document["steps"]
        ]
        within = document.get("within") or funnels.DEFAULT_WITHIN
        since = document.get("since")
        breakdown = document.get("breakdown") or {}
        return cls(
            steps=steps,
            within_amount=within[:-1],
            within_unit=within[-1],
            window=since if since in dict(WINDOWS) else "all" if since is None else "30d",
            breakdown_kind=breakdown.get("type", ""),
            breakdown_key=breakdown.get("key", ""),
            breakdown_segments=[str(pk) for pk in breakdown.get("segments", [])],
        )

    def apply(self, action: str) -> None:
        """``add_step``, ``remove_step-<i>``, ``add_filter-<i>``, ``remove_filter-<i>-<j>``; others: nothing."""
        name, _, rest = action.partition("-")
        at = [int(part) for part in rest.split("-") if part.isdigit()]
        if name == "add_step" and self.can_add_step:
            self.steps.append(StepRow())
        elif name == "remove_step" and len(at) == 1 and at[0] < len(self.steps) and self.can_remove_step:
            del self.steps[at[0]]
        elif name == "add_filter" and len(at) == 1 and at[0] < len(self.steps):
            if len(self.steps[at[0]].filters) < MAX_FILTERS:
                self.steps[at[0]].filters.append(FilterRow())
        elif name == "remove_filter" and len(at) == 2 and at[0] < len(self.steps):
            filters = self.steps[at[0]].filters
            if at[1] < len(filters):
                del filters[at[1]]

    def document(self) -> dict[str, Any] | None:
        """The REST request of the form, or None with ``errors`` set when a value cannot be read."""
        steps = []
        for i, step in enumerate(self.steps):
            filters = []
            for j, row in enumerate(step.filters):
                value, problem = _filter_value(row.operator, row.value)
                if problem:
                    self.add_error(f"steps[{i}].filters[{j}].value", problem)
                filters.append(
                    {"key": row.key, "operator": row.operator, **({} if value is None else {"value": value})}
                )
            steps.append({"event": step.event, **({"filters": filters} if filters else {})})
        document: dict[str, Any] = {
            "steps": steps,
            "within": f"{self.within_amount}{self.within_unit}",
            "since": None if self.window == "all" else self.window,
            "until": None,
            "breakdown": None,
        }
        if self.breakdown_kind == "trait":
            document["breakdown"] = {"type": "trait", "key": self.breakdown_key}
        elif self.breakdown_kind == "segment":
            ids = [int(pk) for pk in self.breakdown_segments if pk.isdigit()]
            document["breakdown"] = {"type": "segment", "segments": ids}
        return None if self.errors else document

    def add_error(self, path: str, message: str) -> None:
        """An error by the parser's path, placed beside its control."""
        self.errors.setdefault(path, []).append(message)
        match = re.match(r"^steps\[(\d+)\](?:\.filters\[(\d+)\])?", path)
        if match and int(match.group(1)) < len(self.steps):
            step = self.steps[int(match.group(1))]
            if match.group(2) is not None and int(match.group(2)) < len(step.filters):
                step.filters[int(match.group(2))].errors.append(message)
            else:
                step.errors.append(message)

    def errors_of(self, *prefixes: str) -> list[str]:
        return [
            m
            for path, messages in self.errors.items()
            if path.split(".")[0].split("[")[0] in prefixes
            for m in messages
        ]

    @property
    def general_errors(self) -> list[str]:
        """Errors about the form as a whole or the list of steps, not one control."""
        return self.errors.get("", []) + self.errors.get("steps", [])

    @property
    def within_errors(self) -> list[str]:
        return self.errors_of("within")

    @property
    def window_errors(self) -> list[str]:
        return self.errors_of("since", "until")

    @property
    def breakdown_errors(self) -> list[str]:
        return self.errors_of("breakdown")


def _filter_value(operator: str, text: str) -> tuple[Any, str | None]:
    """The filter's value from its text, by operator; (value, problem)."""
    if operator in PRESENCE_OPERATORS:
        return None, None
    if operator in LIST_OPERATORS:
        items = [item.strip() for item in text.split(",") if item.strip()]
        return (items, None) if items else (None, "Give one or more values, separated by commas.")
    if operator in NUMERIC_OPERATORS:
        number = _number(text)
        return (number, None) if number is not None else (None, "Give a number.")
    if operator == "between":
        parts = [_number(part) for part in text.split(",")]
        if len(parts) != 2 or any(part is None for part in parts):
            return None, "Give two numbers, separated by a comma: low, high."
        return parts, None
    if not text:
        return None, "Give a value."
    return text, None


def _as_text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _int(raw: Any, default: int) -> int:
    return int(raw) if isinstance(raw, str) and raw.isdigit() and len(raw) < 4 else default


@dataclass
class RetentionForm:
    start_event: str = ""
    return_event: str = ""
    period: str = "week"
    periods: str = "12"
    cohort: str = "first"
    segment: str = ""
    errors: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_post(cls, data: QueryDict) -> RetentionForm:
        return cls(
            start_event=data.get("start_event", "").strip(),
            return_event=data.get("return_event", "").strip(),
            period=data.get("period", "week"),
            periods=data.get("periods", "12").strip(),
            cohort=data.get("cohort", "first"),
            segment=data.get("segment", ""),
        )

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> RetentionForm:
        return cls(
            start_event=document["start_event"],
            return_event=document["return_event"],
            period=document["period"],
            periods=str(document["periods"]),
            cohort=document["cohort"],
            segment=str(document["segment"] or ""),
        )

    def document(self) -> dict[str, Any]:
        periods: Any = int(self.periods) if self.periods.isdigit() and len(self.periods) < 6 else self.periods
        return {
            "start_event": self.start_event or None,
            "return_event": self.return_event or None,
            "period": self.period,
            "periods": periods,
            "cohort": self.cohort,
            "segment": int(self.segment) if self.segment.isdigit() and len(self.segment) < 19 else None,
        }

    def field_errors(self, name: str) -> list[str]:
        return self.errors.get(name, [])

    @property
    def periods_choices(self) -> dict[str, int]:
        return retention.MAX_PERIODS
