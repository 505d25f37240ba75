"""The segment definition language: JSON in, a typed immutable tree out.

Pure Python, no Django: ``parse(document, segment_exists=...)`` returns the
tree or raises ``DefinitionInvalid`` carrying every error found, each with the
path of the faulty part (``conditions[1].count.operator``) and a message.
The contract is ``segment-definition.md``; choices where it is silent are in
``docs/segments.md``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

MAX_NODES = 200
MAX_GROUP_DEPTH = 8
MAX_GROUP_CONDITIONS = 50
MAX_LIST_VALUES = 1000
MAX_KEY_LENGTH = 10_000
MAX_STRING_LENGTH = 10_000
MAX_PERIODS = 365
MIN_SEQUENCE_STEPS = 2
MAX_SEQUENCE_STEPS = 5
# A count is compared with ``count(*)`` of one person's matching events: a billion is far past any
# real person's and far within PostgreSQL's bigint.
MAX_COUNT = 1_000_000_000
# Every other number of a definition (compared with aggregates and properties, a segment id) lies
# within a 64-bit integer's range, whole or not. A definition is stored as JSONB, which writes 1e20
# back as 100000000000000000000: past 64 bits the real-time path cannot read it back, and nothing
# a segment compares with needs more.
MAX_NUMBER = 2**63 - 1
# Durations beyond a century are certainly mistakes and would overflow datetime arithmetic.
MAX_DURATION_SECONDS = 100 * 366 * 86400

# A duration's text: a positive whole number (at most ten digits) and a unit.
DURATION_PATTERN = r"^([1-9][0-9]{0,9})([mhdw])$"
_DURATION_RE = re.compile(DURATION_PATTERN)
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

EQUALITY_OPERATORS = frozenset({"eq", "neq"})
LIST_OPERATORS = frozenset({"in", "not_in"})
STRING_OPERATORS = frozenset({"contains", "not_contains", "starts_with", "ends_with"})
NUMERIC_OPERATORS = frozenset({"gt", "gte", "lt", "lte"})
TIME_OPERATORS = frozenset({"before", "after"})
PRESENCE_OPERATORS = frozenset({"is_set", "is_not_set"})
FILTER_OPERATORS = (
    EQUALITY_OPERATORS
    | LIST_OPERATORS
    | STRING_OPERATORS
    | NUMERIC_OPERATORS
    | {"between"}
    | TIME_OPERATORS
    | PRESENCE_OPERATORS
)
# Operators that hold when the property is missing or null: each negative
# operator is the exact complement of its positive twin.
NEGATIVE_OPERATORS = frozenset({"neq", "not_in", "not_contains", "is_not_set"})
COMPARISON_OPERATORS = frozenset({"eq", "neq", "gt", "gte", "lt", "lte", "between"})
AGGREGATE_FUNCTIONS = frozenset({"sum", "avg", "min", "max"})
ANY_EVENT = "$any"

Scalar = str | int | float | bool


@dataclass(frozen=True)
class Duration:
    seconds: int
    text: str

    def as_timedelta(self) -> timedelta:
        return timedelta(seconds=self.seconds)


Instant = Duration | datetime


def resolve_instant(value: Instant, now: datetime) -> datetime:
    """A duration means ``now - duration``; a timestamp means itself."""
    return now - value.as_timedelta() if isinstance(value, Duration) else value


@dataclass(frozen=True)
class Window:
    since: Instant | None = None
    until: Instant | None = None

    def bounds(self, now: datetime) -> tuple[datetime | None, datetime | None]:
        """``[start, end)``; a missing ``until`` means up to and including ``now``."""
        start = resolve_instant(self.since, now) if self.since is not None else None
        end = resolve_instant(self.until, now) if self.until is not None else None
        return start, end


@dataclass(frozen=True)
class Filter:
    key: str
    operator: str
    value: Any = None  # Scalar, tuple of Scalar, (low, high), Instant, or None

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.key.split("."))


@dataclass(frozen=True)
class Comparison:
    operator: str
    value: Any  # a number, or (low, high) for between


@dataclass(frozen=True)
class Trait:
    filter: Filter
    type: Literal["trait"] = "trait"


@dataclass(frozen=True)
class EventCount:
    event: str
    filters: tuple[Filter, ...] = ()
    window: Window = field(default_factory=Window)
    count: Comparison = field(default_factory=lambda: Comparison("gte", 1))
    type: Literal["event"] = "event"


@dataclass(frozen=True)
class Aggregate:
    event: str
    key: str
    function: str
    comparison: Comparison
    filters: tuple[Filter, ...] = ()
    window: Window = field(default_factory=Window)
    type: Literal["aggregate"] = "aggregate"


@dataclass(frozen=True)
class Performed:
    which: Literal["first", "last"]
    event: str
    filters: tuple[Filter, ...] = ()
    window: Window = field(default_factory=Window)

    @property
    def type(self) -> str:
        return f"{self.which}_performed"


@dataclass(frozen=True)
class Regular:
    event: str
    period: Duration
    periods: int
    min_periods: int
    filters: tuple[Filter, ...] = ()
    type: Literal["regular"] = "regular"


@dataclass(frozen=True)
class Step:
    event: str
    filters: tuple[Filter, ...] = ()


@dataclass(frozen=True)
class Sequence:
    steps: tuple[Step, ...]
    within: Duration
    window: Window = field(default_factory=Window)
    completed: bool = True
    # With ``completed=False``: the run reached exactly this step (1-based) and not the next one.
    # ``None``: a run that stopped at any step counts.
    dropped_after: int | None = None
    type: Literal["sequence"] = "sequence"


@dataclass(frozen=True)
class SegmentRef:
    segment: int
    type: Literal["segment"] = "segment"


@dataclass(frozen=True)
class And:
    conditions: tuple[Node, ...]
    type: Literal["and"] = "and"


@dataclass(frozen=True)
class Or:
    conditions: tuple[Node, ...]
    type: Literal["or"] = "or"


@dataclass(frozen=True)
class Not:
    condition: Node
    type: Literal["not"] = "not"


Node = Trait | EventCount | Aggregate | Performed | Regular | Sequence | SegmentRef | And | Or | Not


def walk(node: Node) -> Iterator[Node]:
    """Every node of the tree, depth first."""
    yield node
    if isinstance(node, And | Or):
        for child in node.conditions:
            yield from walk(child)
    elif isinstance(node, Not):
        yield from walk(node.condition)


def segment_reference_paths(definition: Node | Any, path: str = "") -> Iterator[tuple[str, int]]:
    """Each segment condition of a definition: the path of its ``segment`` field and the id it names.

    The one walker of references. It reads a parsed tree or the JSON document itself (as stored or
    as submitted, unvalidated: anything else than a segment condition, a group or a negation is
    passed over), so that ordering refreshes, finding a segment's referrers and checking a
    definition for cycles need no parse of every definition of the workspace.
    """
    if isinstance(definition, Mapping):
        get: Callable[[str], Any] = definition.get
    elif isinstance(definition, SegmentRef | And | Or | Not):
        node = definition
        get = lambda key: getattr(node, key, None)  # noqa: E731
    else:
        return
    segment_id = get("segment")
    if get("type") == "segment" and isinstance(segment_id, int) and not isinstance(segment_id, bool):
        yield _join(path, "segment"), segment_id
    if isinstance(conditions := get("conditions"), list | tuple):
        for index, child in enumerate(conditions):
            yield from segment_reference_paths(child, _join(_join(path, "conditions"), index))
    if (condition := get("condition")) is not None:
        yield from segment_reference_paths(condition, _join(path, "condition"))


def referenced_segments(definition: Node | Any) -> set[int]:
    """The ids of the segments a definition (tree or JSON document) refers to."""
    return {segment_id for _, segment_id in segment_reference_paths(definition)}


def referenced_first(references: Mapping[int, Collection[int]]) -> list[int]:
    """The segment ids of ``references`` (id -> ids its definition refers to), each placed after the
    ones it refers to among them; otherwise in the mapping's order. References outside the mapping
    are ignored; definitions cannot be saved with a cycle, and if one were stored its members would
    be placed once each, in no particular order among themselves."""
    ordered: list[int] = []
    placed: set[int] = set()
    visiting: set[int] = set()

    def place(pk: int) -> None:
        if pk in placed or pk in visiting:
            return
        visiting.add(pk)
        for ref in sorted(references[pk]):
            if ref in references:
                place(ref)
        visiting.discard(pk)
        placed.add(pk)
        ordered.append(pk)

    for pk in references:
        place(pk)
    return ordered


def event_names(node: Node) -> set[str]:
    """Event names whose arrival can change this definition's members (``$any``: all)."""
    names: set[str] = set()
    for n in walk(node):
        if isinstance(n, EventCount | Aggregate | Performed | Regular):
            names.add(n.event)
        elif isinstance(n, Sequence):
            names.update(step.event for step in n.steps)
    return names


# --- errors ---------------------------------------------------------------


@dataclass(frozen=True)
class DefinitionError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '(document)'}: {self.message}"


class DefinitionInvalid(ValueError):
    def __init__(self, errors: list[DefinitionError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


def _join(path: str, part: str | int) -> str:
    if isinstance(part, int):
        return f"{path}[{part}]"
    return f"{path}.{part}" if path else part


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _text_problem(value: str) -> str | None:
    """Why a string cannot be stored or compared by the database at all, if it cannot."""
    if "\x00" in value:
        return "must not contain the NUL character (\\u0000)"
    if any("\ud800" <= ch <= "\udfff" for ch in value):
        return "is not valid Unicode text (it holds a lone surrogate)"
    return None


def _is_number(value: Any) -> bool:
    """A JSON number: an integer of any size, or a finite float (``math.isfinite`` of a huge int overflows)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | bool) or _is_number(value)


def parse_duration(text: Any) -> Duration | None:
    if not isinstance(text, str):
        return None
    match = _DURATION_RE.match(text)
    if match is None:
        return None
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > MAX_DURATION_SECONDS:
        return None
    return Duration(seconds=seconds, text=text)


def _too_long(text: Any) -> bool:
    """A duration in form whose length is past ``MAX_DURATION_SECONDS``."""
    return isinstance(text, str) and _DURATION_RE.match(text) is not None and parse_duration(text) is None


_TOO_LONG = f"is longer than a century ({MAX_DURATION_SECONDS // 86400} days), the longest duration"


def parse_timestamp(text: Any) -> datetime | None:
    """An ISO-8601 timestamp; without an offset it is taken as UTC."""
    if not isinstance(text, str) or not 10 <= len(text) <= 40 or not text[:4].isdigit():
        return None
    try:
        value = datetime.fromisoformat(text)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: its UTC time leaves the years 1-9999
        return None


SegmentExists = Callable[[int], bool]
SegmentReferences = Callable[[int], set[int]]


class _Parser:
    def __init__(self) -> None:
        self.errors: list[DefinitionError] = []
        self.node_count = 0

    def error(self, path: str, message: str) -> None:
        self.errors.append(DefinitionError(path, message))

    # -- shared pieces --

    def object(self, value: Any, path: str, allowed: set[str], what: str) -> Mapping[str, Any] | None:
        if not isinstance(value, dict):
            self.error(path, f"{what} must be an object, not {_describe(value)}")
            return None
        for key in value:
            if key not in allowed:
                self.error(_join(path, key), f"unknown field {key!r} in {what}")
        return value

    def string(self, obj: Mapping[str, Any], name: str, path: str, *, required: bool = True) -> str | None:
        where = _join(path, name)
        if name not in obj:
            if required:
                self.error(where, "is required")
            return None
        value = obj[name]
        if not isinstance(value, str):
            self.error(where, f"must be a string, not {_describe(value)}")
            return None
        if not value.strip():
            self.error(where, "must not be empty")
            return None
        if len(value) > MAX_KEY_LENGTH:
            self.error(where, f"is longer than {MAX_KEY_LENGTH} characters")
            return None
        if (problem := _text_problem(value)) is not None:
            self.error(where, problem)
            return None
        return value

    def in_range(self, value: Any, where: str) -> bool:
        """False, with the error, for a number outside ``MAX_NUMBER``; True for anything else."""
        if _is_number(value) and not -MAX_NUMBER <= value <= MAX_NUMBER:
            self.error(where, f"must lie between -{MAX_NUMBER} and {MAX_NUMBER} (a 64-bit integer's range)")
            return False
        return True

    def integer(self, obj: Mapping[str, Any], name: str, path: str, low: int, high: int) -> int | None:
        where = _join(path, name)
        if name not in obj:
            self.error(where, "is required")
            return None
        value = obj[name]
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(where, f"must be a whole number, not {_describe(value)}")
            return None
        if not low <= value <= high:
            self.error(where, f"must be between {low} and {high}")
            return None
        return value

    def duration(self, obj: Mapping[str, Any], name: str, path: str) -> Duration | None:
        where = _join(path, name)
        if name not in obj:
            self.error(where, "is required")
            return None
        value = parse_duration(obj[name])
        if value is None and _too_long(obj[name]):
            self.error(where, _TOO_LONG)
        elif value is None:
            self.error(where, f'must be a duration such as "30m", "48h", "7d" or "4w", not {obj[name]!r}')
        return value

    def instant(self, value: Any, path: str) -> Instant | None:
        parsed: Instant | None = parse_duration(value) or parse_timestamp(value)
        if parsed is None and _too_long(value):
            self.error(path, _TOO_LONG)
        elif parsed is None:
            self.error(path, f'must be a duration ("7d") or an ISO-8601 timestamp, not {value!r}')
        return parsed

    def window(self, obj: Mapping[str, Any], path: str, now: datetime) -> Window:
        if "window" not in obj or obj["window"] is None:
            return Window()
        where = _join(path, "window")
        raw = self.object(obj["window"], where, {"since", "until"}, "window")
        if raw is None:
            return Window()
        since = self.instant(raw["since"], _join(where, "since")) if raw.get("since") is not None else None
        until = self.instant(raw["until"], _join(where, "until")) if raw.get("until") is not None else None
        window = Window(since=since, until=until)
        start, end = window.bounds(now)
        if start is not None and end is not None and start >= end:
            self.error(where, 'starts at or after its end: "since" must lie before "until"')
        return window

    def filters(self, obj: Mapping[str, Any], path: str) -> tuple[Filter, ...]:
        if "filters" not in obj or obj["filters"] is None:
            return ()
        where = _join(path, "filters")
        raw = obj["filters"]
        if not isinstance(raw, list):
            self.error(where, f"must be a list of filters, not {_describe(raw)}")
            return ()
        if len(raw) > MAX_GROUP_CONDITIONS:
            self.error(where, f"holds more than {MAX_GROUP_CONDITIONS} filters")
            return ()
        parsed = []
        for index, item in enumerate(raw):
            item_path = _join(where, index)
            spec = self.object(item, item_path, {"key", "operator", "value"}, "a filter")
            if spec is not None and (value := self.filter(spec, item_path)) is not None:
                parsed.append(value)
        return tuple(parsed)

    def filter(self, spec: Mapping[str, Any], path: str) -> Filter | None:
        key = self.string(spec, "key", path)
        operator = spec.get("operator")
        op_path = _join(path, "operator")
        if "operator" not in spec:
            self.error(op_path, "is required")
            return None
        if not isinstance(operator, str) or operator not in FILTER_OPERATORS:
            self.error(op_path, f"unknown operator {operator!r}; one of {', '.join(sorted(FILTER_OPERATORS))}")
            return None
        value = self.operand(operator, spec, path)
        if key is None or value is _INVALID:
            return None
        return Filter(key=key, operator=operator, value=value)

    def operand(self, operator: str, spec: Mapping[str, Any], path: str) -> Any:
        where = _join(path, "value")
        value = spec.get("value")
        if operator in PRESENCE_OPERATORS:
            if value is not None:
                self.error(where, f"{operator} takes no value")
                return _INVALID
            return None
        if "value" not in spec or value is None:
            self.error(where, f"is required for {operator}")
            return _INVALID
        if operator in EQUALITY_OPERATORS:
            if not _is_scalar(value):
                self.error(where, f"{operator} compares with a string, number or boolean, not {_describe(value)}")
                return _INVALID
            if not self.in_range(value, where):
                return _INVALID
            return self.bounded_string(value, where)
        if operator in LIST_OPERATORS:
            if not isinstance(value, list) or not 1 <= len(value) <= MAX_LIST_VALUES:
                self.error(where, f"{operator} needs a list of 1 to {MAX_LIST_VALUES} values")
                return _INVALID
            for index, item in enumerate(value):
                if not _is_scalar(item):
                    self.error(_join(where, index), f"must be a string, number or boolean, not {_describe(item)}")
                    return _INVALID
                if not self.in_range(item, _join(where, index)):
                    return _INVALID
                if self.bounded_string(item, _join(where, index)) is _INVALID:
                    return _INVALID
            return tuple(value)
        if operator in STRING_OPERATORS:
            if not isinstance(value, str):
                self.error(where, f"{operator} needs a string, not {_describe(value)}")
                return _INVALID
            return self.bounded_string(value, where)
        if operator in NUMERIC_OPERATORS:
            if not _is_number(value):
                self.error(where, f"{operator} needs a number, not {_describe(value)}")
                return _INVALID
            if not self.in_range(value, where):
                return _INVALID
            return value
        if operator == "between":
            return self.between(value, where)
        # before / after
        instant = self.instant(value, where)
        return _INVALID if instant is None else instant

    def bounded_string(self, value: Any, where: str) -> Any:
        if isinstance(value, str) and len(value) > MAX_STRING_LENGTH:
            self.error(where, f"is longer than {MAX_STRING_LENGTH} characters")
            return _INVALID
        if isinstance(value, str) and (problem := _text_problem(value)) is not None:
            self.error(where, problem)
            return _INVALID
        return value

    def between(self, value: Any, where: str) -> Any:
        if not isinstance(value, list) or len(value) != 2 or not all(_is_number(v) for v in value):
            self.error(where, "between needs [low, high], two numbers")
            return _INVALID
        if not all(self.in_range(v, _join(where, index)) for index, v in enumerate(value)):
            return _INVALID
        if value[0] > value[1]:
            self.error(where, "between needs low <= high")
            return _INVALID
        return (value[0], value[1])

    def comparison(self, spec: Mapping[str, Any], path: str, *, integral: bool) -> Comparison | None:
        """``{"operator", "value"}`` of a count or an aggregate."""
        op_path = _join(path, "operator")
        operator = spec.get("operator")
        if "operator" not in spec:
            self.error(op_path, "is required")
            return None
        if not isinstance(operator, str) or operator not in COMPARISON_OPERATORS:
            self.error(op_path, f"unknown operator {operator!r}; one of {', '.join(sorted(COMPARISON_OPERATORS))}")
            return None
        where = _join(path, "value")
        if "value" not in spec:
            self.error(where, "is required")
            return None
        value = spec["value"]
        if operator == "between":
            if integral and isinstance(value, list) and not all(_is_count(v) for v in value):
                self.error(where, f"a count is compared with whole numbers from 0 to {MAX_COUNT}")
                return None
            pair = self.between(value, where)
            if pair is _INVALID:
                return None
            return Comparison(operator, pair)
        if integral and not _is_count(value):
            self.error(where, f"a count is compared with a whole number from 0 to {MAX_COUNT}, not {value!r}")
            return None
        if not _is_number(value):
            self.error(where, f"must be a number, not {_describe(value)}")
            return None
        if not self.in_range(value, where):
            return None
        return Comparison(operator, value)

    # -- nodes --

    def node(self, value: Any, path: str, depth: int, now: datetime) -> Node | None:
        self.node_count += 1
        if self.node_count > MAX_NODES:
            return None  # reported once by parse(); no point reading further
        if not isinstance(value, dict):
            self.error(path, f"a condition must be an object, not {_describe(value)}")
            return None
        kind = value.get("type")
        parser = _NODE_PARSERS.get(kind) if isinstance(kind, str) else None
        if parser is None:
            where = _join(path, "type")
            if "type" not in value:
                self.error(where, "is required")
            else:
                self.error(where, f"unknown node type {kind!r}; one of {', '.join(sorted(_NODE_PARSERS))}")
            return None
        return parser(self, value, path, depth, now)

    def group(self, value: Mapping[str, Any], path: str, depth: int, now: datetime) -> Node | None:
        kind = value["type"]
        if depth > MAX_GROUP_DEPTH:
            self.error(path, f"groups nest deeper than {MAX_GROUP_DEPTH} levels")
            return None
        if kind == "not":
            if self.object(value, path, {"type", "condition"}, "a not group") is None:
                return None
            if "condition" not in value:
                self.error(_join(path, "condition"), "is required")
                return None
            child = self.node(value["condition"], _join(path, "condition"), depth + 1, now)
            return Not(child) if child is not None else None
        if self.object(value, path, {"type", "conditions"}, f"an {kind} group") is None:
            return None
        where = _join(path, "conditions")
        conditions = value.get("conditions")
        if not isinstance(conditions, list):
            self.error(
                where,
                "is required: a list of 1 to 50 conditions"
                if conditions is None
                else f"must be a list of conditions, not {_describe(conditions)}",
            )
            return None
        if not 1 <= len(conditions) <= MAX_GROUP_CONDITIONS:
            self.error(where, f"must hold 1 to {MAX_GROUP_CONDITIONS} conditions, not {len(conditions)}")
            return None
        children = [self.node(child, _join(where, i), depth + 1, now) for i, child in enumerate(conditions)]
        if any(child is None for child in children):
            return None
        kept = tuple(c for c in children if c is not None)
        return And(kept) if kind == "and" else Or(kept)

    def trait(self, value: Mapping[str, Any], path: str, depth: int, now: datetime) -> Node | None:
        if self.object(value, path, {"type", "key", "operator", "value"}, "a trait condition") is None:
            return None
        parsed = self.filter(value, path)
        return Trait(parsed) if parsed is not None else None

    def event_name(self, value: Mapping[str, Any], path: str) -> str | None:
        return self.string(value, "event", path)

    def event(self, value: Mapping[str, Any], path: str, depth: int, now: datetime) -> Node | None:
        allowed = {"type", "event", "filters", "window", "count"}
        if self.object(value, path, allowed, "an event condition") is None:
            return None
        name = self.event_name(value, path)
        filters = self.filters(value, path)
        window = self.window(value, path, now)
        count = Comparison("gte", 1)
        if value.get("count") is not None:
            where = _join(path, "count")
            spec = self.object(value["count"], where, {"operator", "value"}, "count")
            parsed = self.comparison(spec, where, integral=True) if spec is not None else None
            if parsed is None:
                return None
            count = parsed
        if name is None:
            return None
        return EventCount(event=name, filters=filters, window=window, count=count)

    def aggregate(self, value: Mapping[str, Any], path: str, depth: int, now: datetime) -> Node | None:
        allowed = {"type", "event", "key", "function", "filters", "window", "operator", "value"}
        if self.object(value, path, allowed, "an aggregate condition") is None:
            return None
        name = self.event_name(value, path)
        key = self.string(value, "key", path)
        function = value.get("function")
        if not isinstance(function, str) or function not in AGGREGATE_FUNCTIONS:
            where = _join(path, "function")
            self.error(
                where,
                "is required"
                if "function" not in value
                else f"unknown function {function!r}; one of avg, max, min, sum",
            )
            function = None
        filters = self.filters(value, path)
        window = self.window(value, path, now)
        comparison = self.comparison(value, path, integral=False)
        if name is None or key is None or function is None or comparison is None:
            return None
        return Aggregate(event=name, key=key, function=function, comparison=comparison, filters=filters, window=window)

    def performed(self, value: Mapping[str, Any], path: str, depth: int, now: datetime) -> Node | None:
        which: Literal["first", "last"] = "first" if value["type"] == "first_performed" else "last"
        allowed = {"type", "event", "filters", "window"}
        if self.object(value, path, allowed, f"a {value['type']} condition") is None:
            return None
        name = self.event_name(value, path)
        filters = self.filters(value, path)
        window = self.window(value, path, now)
        return Performed(which=which, event=name, filters=filters, window=window) if name is not None else None

    def regular(self, value: Mapping[str, Any], path: str, depth: int, now: datetime) -> Node | None:
        allowed = {"type", "event", "filters", "period", "periods", "min_periods"}
        if self.object(value, path, allowed, "a regular condition") is None:
            return None
        name = self.event_name(value, path)
        filters = self.filters(value, path)
        period = self.duration(value, "period", path)
        periods = self.integer(value, "periods", path, 1, MAX_PERIODS)
        min_periods = self.integer(value, "min_periods", path, 1, MAX_PERIODS)
        if periods is not None and min_periods is not None and min_periods > periods:
            self.error(_join(path, "min_periods"), f"cannot exceed periods ({periods})")
            return None
        if periods is not None and period is not None and periods * period.seconds > MAX_DURATION_SECONDS:
            self.error(_join(path, "periods"), "periods times period reaches back more than a century")
            return None
        if name is None or period is None or periods is None or min_periods is None:
            return None
        return Regular(event=name, period=period, periods=periods, min_periods=min_periods, filters=filters)

    def sequence(self, value: Mapping[str, Any], path: str, depth: int, now: datetime) -> Node | None:
        allowed = {"type", "steps", "within", "window", "completed", "dropped_after"}
        if self.object(value, path, allowed, "a sequence condition") is None:
            return None
        where = _join(path, "steps")
        raw_steps = value.get("steps")
        steps: list[Step] = []
        if not isinstance(raw_steps, list) or not MIN_SEQUENCE_STEPS <= len(raw_steps) <= MAX_SEQUENCE_STEPS:
            self.error(where, f"must be a list of {MIN_SEQUENCE_STEPS} to {MAX_SEQUENCE_STEPS} steps")
        else:
            for index, raw in enumerate(raw_steps):
                step_path = _join(where, index)
                spec = self.object(raw, step_path, {"event", "filters"}, "a step")
                if spec is None:
                    continue
                name = self.event_name(spec, step_path)
                filters = self.filters(spec, step_path)
                if name is not None:
                    steps.append(Step(event=name, filters=filters))
        within = self.duration(value, "within", path)
        window = self.window(value, path, now)
        completed = value.get("completed", True)
        if not isinstance(completed, bool):
            self.error(_join(path, "completed"), f"must be true or false, not {_describe(completed)}")
            return None
        dropped_after = self.dropped_after(value, path, completed, raw_steps)
        if (
            within is None
            or dropped_after is _INVALID
            or not isinstance(raw_steps, list)
            or len(steps) != len(raw_steps)
            or len(steps) < MIN_SEQUENCE_STEPS
        ):
            return None
        assert dropped_after is None or isinstance(dropped_after, int)
        return Sequence(
            steps=tuple(steps), within=within, window=window, completed=completed, dropped_after=dropped_after
        )

    def dropped_after(self, value: Mapping[str, Any], path: str, completed: bool, raw_steps: Any) -> Any:
        """``dropped_after``: absent (or null) is ``None``; else a step before the last of a dropped-off run."""
        raw = value.get("dropped_after")
        if raw is None:
            return None
        where = _join(path, "dropped_after")
        if isinstance(raw, bool) or not isinstance(raw, int):
            self.error(where, f"must be a step number (a whole number), not {_describe(raw)}")
            return _INVALID
        if completed:
            self.error(where, 'applies only to a run that dropped off: set "completed" to false')
            return _INVALID
        if isinstance(raw_steps, list) and MIN_SEQUENCE_STEPS <= len(raw_steps) <= MAX_SEQUENCE_STEPS:
            last = len(raw_steps) - 1
            if not 1 <= raw <= last:
                self.error(
                    where,
                    f"must be a step before the last: 1 to {last} for {len(raw_steps)} steps, not {raw}"
                    if last > 1
                    else f"must be 1 (the step before the last) for 2 steps, not {raw}",
                )
                return _INVALID
        return raw

    def segment(self, value: Mapping[str, Any], path: str, depth: int, now: datetime) -> Node | None:
        if self.object(value, path, {"type", "segment"}, "a segment condition") is None:
            return None
        where = _join(path, "segment")
        segment_id = value.get("segment")
        if isinstance(segment_id, bool) or not isinstance(segment_id, int) or not 0 < segment_id <= MAX_NUMBER:
            self.error(
                where,
                "is required: a segment id"
                if "segment" not in value
                else f"must be a segment id (a positive whole number), not {segment_id!r}",
            )
            return None
        return SegmentRef(segment=segment_id)


_INVALID = object()

_NODE_PARSERS: dict[str, Callable[[_Parser, Mapping[str, Any], str, int, datetime], Node | None]] = {
    "and": _Parser.group,
    "or": _Parser.group,
    "not": _Parser.group,
    "trait": _Parser.trait,
    "event": _Parser.event,
    "aggregate": _Parser.aggregate,
    "first_performed": _Parser.performed,
    "last_performed": _Parser.performed,
    "regular": _Parser.regular,
    "sequence": _Parser.sequence,
    "segment": _Parser.segment,
}


def parse(
    document: Any,
    *,
    now: datetime | None = None,
    segment_exists: SegmentExists | None = None,
    segment_references: SegmentReferences | None = None,
    self_id: int | None = None,
) -> Node:
    """Parse and validate a definition; raise ``DefinitionInvalid`` with every error found.

    ``segment_exists(id)`` says whether a segment of the same workspace exists;
    ``segment_references(id)`` gives the ids that segment's definition refers to
    (for cycle detection); ``self_id`` is the id of the segment being saved.
    """
    now = now or datetime.now(UTC)
    parser = _Parser()
    tree = parser.node(document, "", 1, now)
    if parser.node_count > MAX_NODES:
        parser.error("", f"holds {parser.node_count} nodes; the limit is {MAX_NODES}")
    if tree is not None and not parser.errors:
        for path, segment_id in segment_reference_paths(document):
            if segment_id == self_id:
                parser.error(path, "a segment cannot refer to itself")
            elif segment_exists is not None and not segment_exists(segment_id):
                parser.error(path, f"segment {segment_id} does not exist in this workspace")
            elif (
                segment_references is not None
                and self_id is not None
                and _reaches(segment_id, self_id, segment_references)
            ):
                parser.error(path, f"segment {segment_id} refers back to this segment: a cycle")
    if parser.errors or tree is None:
        raise DefinitionInvalid(parser.errors or [DefinitionError("", "invalid definition")])
    return tree


def _reaches(start: int, target: int, references: SegmentReferences) -> bool:
    seen: set[int] = set()
    stack = [start]
    while stack:
        current = stack.pop()
        if current == target:
            return True
        if current in seen:
            continue
        seen.add(current)
        stack.extend(references(current))
    return False
