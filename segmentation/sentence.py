"""A parsed definition read out as one English sentence, shown above the builder and on segment pages.

``sentence(tree, segment_names)`` returns parts (text and what the text is:
an event name, a key, a value) so that templates can emphasise the data while
escaping it like any other text; ``sentence_text`` joins them. The wording
follows the builder's own labels, so the sentence reads what the user picked,
in plain English: "People who performed Order Completed at least 3 times in
the last 30 days and whose plan is Enterprise or Strategic", "who did not
perform Login", "who are not in Big spenders".
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


def _group(clauses: list[Parts], joiner: str, nested: bool) -> Parts:
    """Clauses joined by ``and`` / ``or``, in parentheses when nested in another group."""
    parts: Parts = []
    after_whose = False
    for index, clause in enumerate(clauses):
        if index:
            parts.append(Part(joiner))
            # "whose plan is Pro and who performed Login": a verb after a "whose" clause needs its "who".
            if after_whose and not _is_whose(clause):
                parts.append(Part("who "))
        after_whose = after_whose or _is_whose(clause)
        parts.extend(clause)
    if nested and len(clauses) > 1:
        return [Part("("), *parts, Part(")")]
    return parts


# Counts that say no more than "none" or "at least one", whatever operator they use.
_NEVER = (Comparison("eq", 0), Comparison("lt", 1), Comparison("lte", 0), Comparison("between", (0, 0)))
_EVER = (Comparison("gte", 1), Comparison("gt", 0), Comparison("neq", 0))


def _performed(event: Parts, count: Comparison, window: Window) -> Parts:
    """``performed Login``, ``did not perform Login``, ``performed Login at least 3 times``, and the window."""
    if count in _NEVER:
        return [Part("did not perform "), *event, *_window(window)]
    if count in _EVER:
        return [Part("performed "), *event, *_window(window)]
    return [Part("performed "), *event, Part(" " + _count(count)), *_window(window)]


def _sequence(node: Sequence) -> Parts:
    """``performed A, then B within 2 days``; dropped off: ``performed A, then B but did not perform C …``."""
    steps: list[Parts] = [[*_event(step.event), *_filters(step.filters)] for step in node.steps]
    within = [Part(f" within {duration_words(node.within)}"), *_window(node.window)]
    done = node.steps if node.completed else node.steps[: node.dropped_after or 1]
    parts: Parts = [Part("performed "), *steps[0]]
    for step in steps[1 : len(done)]:
        parts.extend([Part(", then "), *step])
    if node.completed:
        return [*parts, *within]
    rest = steps[len(done) :]
    if node.dropped_after is None and len(rest) > 1:
        # Stopped at any step: did not complete the rest, whichever step it stopped at.
        parts.extend([Part(" but did not complete "), *rest[0]])
        for step in rest[1:]:
            parts.extend([Part(", then "), *step])
        return [*parts, *within]
    parts.extend([Part(", but did not perform " if len(done) > 1 else " but did not perform "), *rest[0], *within])
    if node.dropped_after is not None:
        k = node.dropped_after
        parts.extend([Part(f" (dropped off after step {k}: "), *_event(node.steps[k - 1].event), Part(")")])
    return parts


_NEGATED_FILTER_WORDS = {
    "starts_with": "does not start with",
    "ends_with": "does not end with",
    "gt": "is not greater than",
    "gte": "is not at least",
    "lt": "is not less than",
    "lte": "is not at most",
    "before": "is not before",
    "after": "is not after",
}
_NEGATED_COUNTS = {"eq": "neq", "neq": "eq", "gt": "lte", "gte": "lt", "lt": "gte", "lte": "gt"}


def _negation(node: Node, names: Mapping[int, str], nested: bool) -> Parts:
    """The clause of ``not node``, in words that say the opposite rather than "not (…)".

    Traits and counts take their opposite operator (a count is defined for
    everyone, 0 without events, so "fewer than 3 times" is the exact opposite of
    "at least 3 times"); a segment reads "are not in"; ``not`` of a group is the
    group of the opposites (De Morgan). What has no opposite of its own reads
    "are not among those who …".
    """
    if isinstance(node, Not):
        return _clause(node.condition, names, nested)
    if isinstance(node, Or | And):
        joiner = " and " if isinstance(node, Or) else " or "
        return _group(_negations(node, names), joiner, nested)
    if isinstance(node, SegmentRef):
        return _segment(node, names, "are not in ")
    if isinstance(node, Trait):
        filter_ = node.filter
        if filter_.operator in _COMPLEMENTS:
            return _clause(Trait(Filter(filter_.key, _COMPLEMENTS[filter_.operator], filter_.value)), names, nested)
        if filter_.operator == "between":
            low, high = filter_.value
            words = [
                Part("is not between "),
                Part(_value_text(low), "value"),
                Part(" and "),
                Part(_value_text(high), "value"),
            ]
        else:
            words = [Part(_NEGATED_FILTER_WORDS[filter_.operator] + " "), Part(_value_text(filter_.value), "value")]
        return [Part("whose "), Part(filter_.key, "key"), Part(" "), *words]
    if isinstance(node, EventCount):
        count = node.count
        if count.operator != "between":
            opposite = Comparison(_NEGATED_COUNTS[count.operator], count.value)
            return _clause(EventCount(node.event, node.filters, node.window, opposite), names, nested)
        low, high = count.value
        above = _clause(EventCount(node.event, node.filters, node.window, Comparison("gt", high)), names, True)
        if low == 0:
            return above
        if low == 1:  # "(did not perform Login or performed Login more than 5 times)"
            below = _clause(EventCount(node.event, node.filters, node.window, Comparison("eq", 0)), names, True)
            return _group([below, above], " or ", nested)
        return [
            Part("performed "),
            *_event(node.event),
            *_filters(node.filters),
            Part(f" fewer than {low} or more than {_plural(high, 'time')}"),
            *_window(node.window),
        ]
    if isinstance(node, Regular):
        return _regular(node, "did not perform ")
    if isinstance(node, Sequence) and node.completed:
        return [Part("did not perform "), *_sequence(node)[1:]]
    clause = _clause(node, names, nested=True)
    return [Part("are not among those " if _is_whose(clause) else "are not among those who "), *clause]


def _regular(node: Regular, verb: str) -> Parts:
    return [
        Part(verb),
        *_event(node.event),
        *_filters(node.filters),
        Part(f" in at least {node.min_periods} {_period_words(node.period, node.periods)}"),
    ]


def _segment(node: SegmentRef, names: Mapping[int, str], verb: str) -> Parts:
    name = names.get(node.segment)
    if name is None:
        return [Part(verb + "segment "), Part(f"#{node.segment}", "segment")]
    return [Part(verb), Part(name, "segment")]


def _negations(node: And | Or, names: Mapping[int, str]) -> list[Parts]:
    """The opposites of a group's conditions, for ``not`` of the group."""
    return [_negation(child, names, nested=True) for child in node.conditions]


def _clauses(node: And | Or, names: Mapping[int, str]) -> list[Parts]:
    """A group's clauses; "none of" inside "all of" (and "not all of" inside "any of") is spliced in:
    "performed A and did not perform B and are not in C", without parentheses."""
    clauses: list[Parts] = []
    for child in node.conditions:
        inner = child.condition if isinstance(child, Not) else None
        # Same joiner as this group's: the negated group's clauses join this one.
        if isinstance(inner, And | Or) and isinstance(inner, Or) == isinstance(node, And):
            clauses.extend(_negations(inner, names))
        else:
            clauses.append(_clause(child, names, nested=True))
    return clauses


def _clause(node: Node, names: Mapping[int, str], nested: bool) -> Parts:
    if isinstance(node, And | Or):
        return _group(_clauses(node, names), " and " if isinstance(node, And) else " or ", nested)
    if isinstance(node, Not):
        return _negation(node.condition, names, nested)
    if isinstance(node, Trait):
        return [Part("whose "), Part(node.filter.key, "key"), Part(" "), *_predicate(node.filter)]
    if isinstance(node, EventCount):
        return _performed([*_event(node.event), *_filters(node.filters)], node.count, node.window)
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
        return [Part(f"{node.which} performed "), *_event(node.event), *_filters(node.filters), *_window(node.window)]
    if isinstance(node, Regular):
        return _regular(node, "performed ")
    if isinstance(node, Sequence):
        return _sequence(node)
    assert isinstance(node, SegmentRef)
    return _segment(node, names, "are in ")


def sentence(tree: Node, segment_names: Mapping[int, str] | None = None) -> Parts:
    """The whole definition as parts of one sentence: "People who performed…" or "People whose plan is…"."""
    clause = _clause(tree, segment_names or {}, nested=False)
    return [Part("People " if _is_whose(clause) else "People who "), *clause]


def _is_whose(clause: Parts) -> bool:
    return bool(clause) and clause[0].text == "whose "


def sentence_text(tree: Node, segment_names: Mapping[int, str] | None = None) -> str:
    return "".join(part.text for part in sentence(tree, segment_names))
