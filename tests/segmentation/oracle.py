"""A plain-Python reference evaluator of segment definitions, for testing the compiler.

Written straight from ``segment-definition.md`` and ``docs/segments.md``; it
shares nothing with ``segmentation.compiler`` or ``segmentation.definition``:
it reads the raw JSON document (assumed valid) and evaluates it with simple
loops over plain data. Slow on purpose, obvious on purpose.

Input:
- ``people``: {person_id: traits} (traits: the person's JSON object)
- ``events``: [OEvent(person_id, name, timestamp, properties)]
- ``memberships``: {segment_id: {person_id, ...}} (stored memberships)
- ``now``: an aware datetime
Output: the set of member person ids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

MISSING = object()

_DURATION = re.compile(r"([1-9][0-9]*)([mhdw])")
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
# docs/segments.md: a numeric string. ASCII whitespace only, at most 1000
# characters, an exponent of at most three digits.
_NUMERIC = re.compile(r"[ \t\n\r\f\v]*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]{1,3})?[ \t\n\r\f\v]*")
# docs/segments.md: property timestamps in the ISO-8601 shapes of definitions.
# Fields must be in range (datetime() checks them), at most microseconds, and
# offsets within +-15:59.
_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,6}))?)?)?"
    r"(Z|[+-][0-9]{2}(?::?[0-9]{2})?)?"
)


@dataclass
class OEvent:
    person_id: int
    name: str
    timestamp: datetime
    properties: Any = field(default_factory=dict)
    id: int = 0  # only to tell two events apart


# --- values ---------------------------------------------------------------


def duration(text: str) -> timedelta:
    match = _DURATION.fullmatch(text)
    assert match, text
    return int(match.group(1)) * _UNITS[match.group(2)]


def instant(text: str, now: datetime) -> datetime:
    """A duration means ``now - duration``; otherwise an ISO-8601 timestamp (UTC without an offset)."""
    if _DURATION.fullmatch(text):
        return now - duration(text)
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def lookup(obj: Any, key: str) -> Any:
    """A dotted key reaches into nested objects only; MISSING for absent or null."""
    current = obj
    for part in key.split("."):
        if not isinstance(current, dict) or part not in current:
            return MISSING
        current = current[part]
    return MISSING if current is None else current


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def to_decimal(value: int | float) -> Decimal:
    return Decimal(value) if isinstance(value, int) else Decimal(repr(value))


def number(value: Any, *, strings: bool = True) -> Decimal | None:
    if is_number(value):
        return to_decimal(value)
    if strings and isinstance(value, str) and len(value) <= 1000 and _NUMERIC.fullmatch(value):
        return Decimal(value.strip(" \t\n\r\f\v"))
    return None


def _number_text(value: int | float) -> str:
    """A JSON number as PostgreSQL's jsonb prints it (plain notation, no negative zero)."""
    if isinstance(value, int):
        return str(value)
    decimal = Decimal(repr(value))
    if decimal == 0:
        decimal = abs(decimal)
    return format(decimal, "f")


def _json_text(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if is_number(value):
        return _number_text(value)
    if isinstance(value, str):
        out = ['"']
        for ch in value:
            escapes = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
            if ch in escapes:
                out.append(escapes[ch])
            elif ord(ch) < 0x20:
                out.append(f"\\u{ord(ch):04x}")
            else:
                out.append(ch)
        out.append('"')
        return "".join(out)
    if isinstance(value, list):
        return "[" + ", ".join(_json_text(item) for item in value) + "]"
    # jsonb keeps object keys shortest first, then bytewise
    keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
    return "{" + ", ".join(f"{_json_text(k)}: {_json_text(value[k])}" for k in keys) + "}"


def string_form(value: Any) -> str:
    return value if isinstance(value, str) else _json_text(value)


def lower(text: str) -> str:
    """Lower-case each character on its own (no context rules such as a final sigma)."""
    return "".join(ch.lower() for ch in text)


def timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    match = _TIMESTAMP.fullmatch(value)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")),
            tzinfo=UTC,
        )
    except ValueError:
        return None
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:] or 0)
        if hours > 15 or minutes > 59:
            return None
        offset = timedelta(hours=hours, minutes=minutes)
        moment -= sign * offset
    return moment


# --- filters --------------------------------------------------------------


def equals(value: Any, operand: Any) -> bool:
    if isinstance(operand, bool):
        return isinstance(value, bool) and value == operand
    if is_number(operand):
        numeric = number(value)
        return numeric is not None and numeric == to_decimal(operand)
    return string_form(value) == operand


def positive(value: Any, operator: str, operand: Any, now: datetime) -> bool:
    if value is MISSING:
        return False
    if operator == "is_set":
        return True
    if operator == "eq":
        return equals(value, operand)
    if operator == "in":
        return any(equals(value, item) for item in operand)
    if operator == "contains":
        return lower(operand) in lower(string_form(value))
    if operator == "starts_with":
        return lower(string_form(value)).startswith(lower(operand))
    if operator == "ends_with":
        return lower(string_form(value)).endswith(lower(operand))
    if operator in ("gt", "gte", "lt", "lte", "between"):
        numeric = number(value)
        if numeric is None:
            return False
        return compare(numeric, operator, operand)
    if operator in ("before", "after"):
        moment = timestamp(value)
        if moment is None:
            return False
        target = instant(operand, now)
        return moment < target if operator == "before" else moment > target
    raise AssertionError(operator)


NEGATIVE = {"neq": "eq", "not_in": "in", "not_contains": "contains", "is_not_set": "is_set"}


def filter_holds(obj: Any, spec: dict, now: datetime) -> bool:
    value = lookup(obj, spec["key"])
    operator = spec["operator"]
    if operator in NEGATIVE:
        return not positive(value, NEGATIVE[operator], spec.get("value"), now)
    return positive(value, operator, spec.get("value"), now)


def compare(value: Decimal | int, operator: str, operand: Any) -> bool:
    if operator == "between":
        low, high = operand
        return to_decimal(low) <= value <= to_decimal(high)
    target = to_decimal(operand)
    if operator == "eq":
        return value == target
    if operator == "neq":
        return value != target
    if operator == "gt":
        return value > target
    if operator == "gte":
        return value >= target
    if operator == "lt":
        return value < target
    if operator == "lte":
        return value <= target
    raise AssertionError(operator)


# --- events ---------------------------------------------------------------


def in_window(moment: datetime, window: dict | None, now: datetime) -> bool:
    window = window or {}
    if window.get("since") is not None and moment < instant(window["since"], now):
        return False
    if window.get("until") is not None:
        return moment < instant(window["until"], now)
    return moment <= now


def matches(event: OEvent, name: str, filters: list | None, now: datetime) -> bool:
    if name != "$any" and event.name != name:
        return False
    return all(filter_holds(event.properties, spec, now) for spec in filters or [])


class Oracle:
    def __init__(self, people: dict, events: list, memberships: dict, now: datetime) -> None:
        self.people = people
        self.events = events
        self.memberships = memberships
        self.now = now

    def members(self, node: dict) -> set[int]:
        return {person for person in self.people if self.holds(node, person)}

    def events_of(self, person: int) -> list[OEvent]:
        return [e for e in self.events if e.person_id == person]

    def holds(self, node: dict, person: int) -> bool:
        kind = node["type"]
        now = self.now
        if kind == "and":
            return all(self.holds(child, person) for child in node["conditions"])
        if kind == "or":
            return any(self.holds(child, person) for child in node["conditions"])
        if kind == "not":
            return not self.holds(node["condition"], person)
        if kind == "trait":
            return filter_holds(self.people[person], node, now)
        if kind == "segment":
            return person in self.memberships.get(node["segment"], set())
        mine = self.events_of(person)
        if kind == "event":
            count = 0
            for e in mine:
                if matches(e, node["event"], node.get("filters"), now) and in_window(
                    e.timestamp, node.get("window"), now
                ):
                    count += 1
            spec = node.get("count") or {"operator": "gte", "value": 1}
            return compare(count, spec["operator"], spec["value"])
        if kind == "aggregate":
            values = []
            for e in mine:
                if matches(e, node["event"], node.get("filters"), now) and in_window(
                    e.timestamp, node.get("window"), now
                ):
                    # A number, or a numeric string as the number it spells; anything else is skipped.
                    value = number(lookup(e.properties, node["key"]))
                    if value is not None:
                        values.append(value)
            function = node["function"]
            if function == "sum":
                result = sum(values, Decimal(0))
            elif not values:
                return False
            elif function == "avg":
                result = sum(values, Decimal(0)) / len(values)
            elif function == "min":
                result = min(values)
            else:
                result = max(values)
            return compare(result, node["operator"], node["value"])
        if kind in ("first_performed", "last_performed"):
            times = [e.timestamp for e in mine if matches(e, node["event"], node.get("filters"), now)]
            if not times:
                return False
            moment = min(times) if kind == "first_performed" else max(times)
            return in_window(moment, node.get("window"), now)
        if kind == "regular":
            period = duration(node["period"])
            hit = set()
            for e in mine:
                if not matches(e, node["event"], node.get("filters"), now):
                    continue
                for k in range(node["periods"]):
                    if now - (k + 1) * period <= e.timestamp < now - k * period:
                        hit.add(k)
            return len(hit) >= node["min_periods"]
        if kind == "sequence":
            return self.sequence(node, mine)
        raise AssertionError(kind)

    def sequence(self, node: dict, mine: list[OEvent]) -> bool:
        steps = node["steps"]
        within = duration(node["within"])
        now = self.now

        def completes(step: int, used: list[OEvent], previous: datetime, deadline: datetime, last: int) -> bool:
            """Some choice of distinct events matches steps[step:last] in time order."""
            if step == last:
                return True
            for e in mine:
                if any(e is u for u in used) or not previous <= e.timestamp <= deadline:
                    continue
                if matches(e, steps[step]["event"], steps[step].get("filters"), now) and completes(
                    step + 1, [*used, e], e.timestamp, deadline, last
                ):
                    return True
            return False

        def reaches(first: OEvent, count: int) -> bool:
            """A run from ``first`` matches the first ``count`` steps within ``within`` of it."""
            return completes(1, [first], first.timestamp, first.timestamp + within, count)

        dropped_after = node.get("dropped_after")
        for first in mine:
            if not matches(first, steps[0]["event"], steps[0].get("filters"), now):
                continue
            if not in_window(first.timestamp, node.get("window"), now):
                continue
            if node.get("completed", True):
                if reaches(first, len(steps)):
                    return True
            elif first.timestamp <= now - within:
                if dropped_after is None:
                    if not reaches(first, len(steps)):
                        return True
                # Reached step k exactly: steps 1..k matched, step k+1 not.
                elif reaches(first, dropped_after) and not reaches(first, dropped_after + 1):
                    return True
        return False


def members(document: dict, *, people: dict, events: list, memberships: dict, now: datetime) -> set[int]:
    return Oracle(people, events, memberships, now).members(document)
