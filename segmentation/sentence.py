"""A parsed definition read out as one English sentence, shown above the builder and on segment pages.

``sentence(tree, segment_names)`` returns parts (text and what the text is:
an event name, a key, a value) so that templates can emphasise the data while
escaping it like any other text; ``sentence_text`` joins them. The wording
follows the builder's own labels, so the sentence reads what the user picked:
"People who did Order Completed at least 3 times in the last 30 days and
whose plan is Enterprise or Strategic".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from segmentation.definition import (
    ANY_EVENT,
    Aggregate,
    And,
    Comparison,
    Duration,
    EventCount,
    Filter,
    Instant,
    Node,
    Not,
    Or,
    Performed,
    Regular,
    SegmentRef,
    Sequence,
    Trait,
    Window,
)

_UNITS = {"m": "minute", "h": "hour", "d": "day", "w": "week"}
_FILTER_WORDS = {
    "eq": "is",
    "neq": "is not",
    "contains": "contains",
    "not_contains": "does not contain",
    "starts_with": "starts with",
    "ends_with": "ends with",
    "gt": "is greater than",
    "gte": "is at least",
    "lt": "is less than",
    "lte": "is at most",
    "before": "is before",
    "after": "is after",
}
_COUNT_WORDS = {
    "gte": "at least",
    "lte": "at most",
    "eq": "exactly",
    "neq": "not exactly",
    "gt": "more than",
    "lt": "fewer than",
}
_FUNCTIONS = {"sum": "total", "avg": "average", "min": "lowest", "max": "highest"}
_COMPLEMENTS = {
    "eq": "neq",
    "neq": "eq",
    "in": "not_in",
    "not_in": "in",
    "contains": "not_contains",
    "not_contains": "contains",
    "is_set": "is_not_set",
    "is_not_set": "is_set",
}


@dataclass(frozen=True)
class Part:
    text: str
    kind: str = ""  # "", "event", "key", "value", "segment"


Parts = list[Part]


def _plural(number: int, word: str) -> str:
    return f"{number} {word}" if number == 1 else f"{number} {word}s"


def duration_words(duration: Duration) -> str:
    number, unit = int(duration.text[:-1]), duration.text[-1]
    return _plural(number, _UNITS[unit])


def _instant_words(value: Instant) -> str:
    if isinstance(value, Duration):
        return duration_words(value)
    return _timestamp_words(value)


def _timestamp_words(value: datetime) -> str:
    if (value.hour, value.minute, value.second) == (0, 0, 0):
        return f"{value.day} {value:%b %Y}"
    return f"{value.day} {value:%b %Y, %H:%M} UTC"


def window_words(window: Window) -> str:
    """``in the last 7 days``, ``between 60 and 30 days ago``, ``more than 90 days ago``; "" for all time."""
    since, until = window.since, window.until
    if since is None and until is None:
        return ""
    if until is None:
        assert since is not None
        return (
            f"in the last {duration_words(since)}" if isinstance(since, Duration) else f"since {_instant_words(since)}"
        )
    if since is None:
        return (
            f"more than {duration_words(until)} ago"
            if isinstance(until, Duration)
            else f"before {_instant_words(until)}"
        )
    if isinstance(since, Duration) and isinstance(until, Duration):
        if since.text[-1] == until.text[-1]:
            return f"between {since.text[:-1]} and {duration_words(until)} ago"
        return f"between {duration_words(since)} and {duration_words(until)} ago"
    start = f"{duration_words(since)} ago" if isinstance(since, Duration) else _instant_words(since)
    end = f"{duration_words(until)} ago" if isinstance(until, Duration) else _instant_words(until)
    return f"between {start} and {end}"


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Duration):
        return f"{duration_words(value)} ago"
    if isinstance(value, datetime):
        return _timestamp_words(value)
    return str(value)


def _choices(values: tuple[Any, ...], last: str) -> Parts:
    parts: Parts = []
    for index, value in enumerate(values):
        if index:
            parts.append(Part(f" {last} " if index == len(values) - 1 else ", "))
        parts.append(Part(_value_text(value), "value"))
    return parts


def _predicate(filter_: Filter) -> Parts:
    """What follows the key: ``is Enterprise or Strategic``."""
    op, value = filter_.operator, filter_.value
    if op == "is_set":
        return [Part("is set")]
    if op == "is_not_set":
        return [Part("is not set")]
    if op == "in":
        return [Part("is "), *_choices(value, "or")]
    if op == "not_in":
        if len(value) == 1:
            return [Part("is not "), Part(_value_text(value[0]), "value")]
        return [Part("is none of "), *_choices(value, "and")]
    if op == "between":
        return [
            Part("is between "),
            Part(_value_text(value[0]), "value"),
            Part(" and "),
            Part(_value_text(value[1]), "value"),
        ]
    return [Part(_FILTER_WORDS[op] + " "), Part(_value_text(value), "value")]


def _filters(filters: tuple[Filter, ...]) -> Parts:
    parts: Parts = []
    for index, filter_ in enumerate(filters):
        parts.append(Part(" where " if index == 0 else " and "))
        parts.extend([Part(filter_.key, "key"), Part(" "), *_predicate(filter_)])
    return parts


def _event(name: str) -> Parts:
    return [Part("any event")] if name == ANY_EVENT else [Part(name, "event")]


def _window(window: Window) -> Parts:
    words = window_words(window)
    return [Part(" " + words)] if words else []


def _count(comparison: Comparison) -> str:
    if comparison.operator == "between":
        low, high = comparison.value
        return f"between {low} and {high} times"
    number = comparison.value
    return f"{_COUNT_WORDS[comparison.operator]} {_plural(number, 'time')}"


def _comparison_words(comparison: Comparison) -> Parts:
    if comparison.operator == "between":
        low, high = comparison.value
        return [Part("between "), Part(_value_text(low), "value"), Part(" and "), Part(_value_text(high), "value")]
    words = {"eq": "exactly", "neq": "not", "gt": "above", "gte": "at least", "lt": "below", "lte": "at most"}
    return [Part(words[comparison.operator] + " "), Part(_value_text(comparison.value), "value")]


def _period_words(period: Duration, periods: int) -> str:
    unit = {"1d": "day", "7d": "week", "1w": "week", "24h": "day", "1h": "hour"}.get(period.text)
    if unit:
        return f"of the last {_plural(periods, unit)}"
    return f"of the last {periods} periods of {duration_words(period)}"


def _clause(node: Node, names: Mapping[int, str], nested: bool) -> Parts:
    if isinstance(node, And | Or):
        joiner = " and " if isinstance(node, And) else " or "
        parts: Parts = []
        after_whose = False
        for index, child in enumerate(node.conditions):
            clause = _clause(child, names, nested=True)
            if index:
                parts.append(Part(joiner))
                # "whose plan is Pro and who did Login": a verb after a "whose" clause needs its "who".
                if after_whose and not _is_whose(clause):
                    parts.append(Part("who "))
            after_whose = after_whose or _is_whose(clause)
            parts.extend(clause)
        if nested and len(node.conditions) > 1:
            return [Part("("), *parts, Part(")")]
        return parts
    if isinstance(node, Not):
        child = node.condition
        if isinstance(child, Or) and len(child.conditions) == 1:
            child = child.conditions[0]  # "none of" one condition is that condition's opposite
        if isinstance(child, Or) and len(child.conditions) > 1:
            inner: Parts = []
            for index, grandchild in enumerate(child.conditions):
                if index:
                    inner.append(Part(", nor " if index > 1 else " nor "))
                inner.extend(_clause(grandchild, names, nested=True))
            return [Part("neither "), *inner] if len(child.conditions) == 2 else [Part("none of: "), *inner]
        if isinstance(child, Trait) and child.filter.operator in _COMPLEMENTS:
            twin = Filter(child.filter.key, _COMPLEMENTS[child.filter.operator], child.filter.value)
            return _clause(Trait(twin), names, nested=True)
        if isinstance(child, EventCount) and child.count == Comparison("gte", 1):
            return _clause(
                EventCount(child.event, child.filters, child.window, Comparison("eq", 0)), names, nested=True
            )
        inner = _clause(child, names, nested=True)
        return [
            Part("do not match "),
            *([] if inner[0].text == "(" else [Part("(")]),
            *inner,
            *([] if inner[0].text == "(" else [Part(")")]),
        ]
    if isinstance(node, Trait):
        return [Part("whose "), Part(node.filter.key, "key"), Part(" "), *_predicate(node.filter)]
    if isinstance(node, EventCount):
        if node.count == Comparison("gte", 1):
            return [Part("did "), *_event(node.event), *_filters(node.filters), *_window(node.window)]
        if node.count == Comparison("eq", 0):
            return [Part("did not do "), *_event(node.event), *_filters(node.filters), *_window(node.window)]
        return [
            Part("did "),
            *_event(node.event),
            *_filters(node.filters),
            Part(" " + _count(node.count)),
            *_window(node.window),
        ]
    if isinstance(node, Aggregate):
        return [
            Part("whose "),
            Part(f"{_FUNCTIONS[node.function]} "),
            Part(node.key, "key"),
            Part(" on "),
            *_event(node.event),
            *_filters(node.filters),
            *_window(node.window),
            Part(" is "),
            *_comparison_words(node.comparison),
        ]
    if isinstance(node, Performed):
        return [Part(f"{node.which} did "), *_event(node.event), *_filters(node.filters), *_window(node.window)]
    if isinstance(node, Regular):
        return [
            Part("did "),
            *_event(node.event),
            *_filters(node.filters),
            Part(f" in at least {node.min_periods} {_period_words(node.period, node.periods)}"),
        ]
    if isinstance(node, Sequence):
        steps: list[Parts] = [[*_event(step.event), *_filters(step.filters)] for step in node.steps]
        parts = [Part("did "), *steps[0]]
        if node.completed:
            for step in steps[1:]:
                parts.extend([Part(", then "), *step])
        else:
            parts.append(Part(" but not then "))
            for index, step in enumerate(steps[1:]):
                if index:
                    parts.append(Part(", then "))
                parts.extend(step)
        parts.append(Part(f" within {duration_words(node.within)}"))
        parts.extend(_window(node.window))
        return parts
    assert isinstance(node, SegmentRef)
    name = names.get(node.segment)
    if name is None:
        return [Part("are in segment "), Part(f"#{node.segment}", "segment")]
    return [Part("are in "), Part(name, "segment")]


def sentence(tree: Node, segment_names: Mapping[int, str] | None = None) -> Parts:
    """The whole definition as parts of one sentence: "People who did…" or "People whose plan is…"."""
    clause = _clause(tree, segment_names or {}, nested=False)
    return [Part("People " if _is_whose(clause) else "People who "), *clause]


def _is_whose(clause: Parts) -> bool:
    return bool(clause) and clause[0].text == "whose "


def sentence_text(tree: Node, segment_names: Mapping[int, str] | None = None) -> str:
    return "".join(part.text for part in sentence(tree, segment_names))
