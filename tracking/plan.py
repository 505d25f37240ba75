"""The tracking plan: its JSON document, its edits, and the check of one track call against it.

Pure rules, no Django (the services store the plan, ingestion runs the check).
docs/tracking-plan.md describes the document:

    {"block_unplanned_events": false,
     "events": {"Order Completed": {"description": "...", "quarantine_violations": true,
                                    "properties": {"total": {"type": "number", "required": true}}}}}

``parse`` checks a document strictly and names the path of each problem
(``events["Order Completed"].properties["total"].type``); ``Checker`` is a
parsed plan compiled for ingestion: one dictionary lookup for the event, one per
property, then the required ones, so a check costs O(properties).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

PROPERTY_TYPES = ("string", "number", "boolean", "object", "list")
MAX_EVENTS = 500
MAX_PROPERTIES = 100
MAX_NAME_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 1000
# Page and screen calls are stored under these names and are not checked against the plan.
UNCHECKED_EVENTS = ("$pageview", "$screen")
# At most this many problems are reported for one document.
MAX_ERRORS = 50

UNKNOWN_EVENT = "unknown_event"
UNKNOWN_PROPERTY = "unknown_property"
WRONG_TYPE = "wrong_type"
MISSING_PROPERTY = "missing_property"
VIOLATION_KINDS = {
    UNKNOWN_EVENT: "Unknown event",
    UNKNOWN_PROPERTY: "Unknown property",
    WRONG_TYPE: "Wrong type",
    MISSING_PROPERTY: "Missing required property",
}

_SURROGATE = re.compile("[\ud800-\udfff]")
_DOCUMENT_FIELDS = ("block_unplanned_events", "events")
_EVENT_FIELDS = ("description", "quarantine_violations", "properties")
_PROPERTY_FIELDS = ("type", "required", "description")


class PlanInvalid(ValueError):
    """A document or an edit the plan cannot take: messages by path (or form field)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(
            "; ".join(
                f"{path}: {' '.join(messages)}" if path else " ".join(messages) for path, messages in errors.items()
            )
        )
        self.errors = errors


@dataclass(frozen=True)
class PlannedProperty:
    name: str
    type: str
    required: bool = False
    description: str = ""


@dataclass(frozen=True)
class PlannedEvent:
    name: str
    description: str = ""
    quarantine_violations: bool = False
    properties: tuple[PlannedProperty, ...] = ()

    def property(self, name: str) -> PlannedProperty | None:
        return next((p for p in self.properties if p.name == name), None)


@dataclass(frozen=True)
class PlanDocument:
    """A plan, events and properties in name order. Empty (no events): nothing is checked."""

    events: tuple[PlannedEvent, ...] = ()
    block_unplanned_events: bool = False

    def event(self, name: str) -> PlannedEvent | None:
        return next((e for e in self.events if e.name == name), None)

    def as_json(self) -> dict[str, Any]:
        """The document in its one written form (stored, exported, answered by the API)."""
        return {
            "block_unplanned_events": self.block_unplanned_events,
            "events": {
                event.name: {
                    "description": event.description,
                    "quarantine_violations": event.quarantine_violations,
                    "properties": {
                        p.name: {"type": p.type, "required": p.required, "description": p.description}
                        for p in event.properties
                    },
                }
                for event in self.events
            },
        }


def _sorted_events(events: Iterable[PlannedEvent]) -> tuple[PlannedEvent, ...]:
    return tuple(sorted(events, key=lambda e: (e.name.casefold(), e.name)))


def _sorted_properties(properties: Iterable[PlannedProperty]) -> tuple[PlannedProperty, ...]:
    return tuple(sorted(properties, key=lambda p: (p.name.casefold(), p.name)))


# --- Parsing a document ------------------------------------------------------------------


def key_path(parent: str, key: str) -> str:
    """``parent["key"]``: a name as JSON text, so that dots, quotes and brackets in it stay readable."""
    return f"{parent}[{json.dumps(key, ensure_ascii=False)}]"


def _field_path(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


class _Errors:
    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def add(self, path: str, message: str) -> None:
        if path in self.errors or len(self.errors) < MAX_ERRORS:
            self.errors.setdefault(path, []).append(message)

    def full(self) -> bool:
        return len(self.errors) >= MAX_ERRORS


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "cannot contain the NUL character"
    if _SURROGATE.search(text):
        return "contains a character that is not valid text (a lone surrogate)"
    return None


def name_problem(name: str, *, what: str) -> str | None:
    """Why ``name`` cannot be an event or property name of the plan, or None.

    Any other text is taken as sent (names are matched exactly). No length limit here: the REST
    API's schema cannot state one for object keys; an event name longer than track calls may carry
    (``MAX_NAME_LENGTH``) is never matched, and the settings page refuses it.
    """
    article = "An" if what == "event" else "A"
    if not name:
        return f"{article} {what} name cannot be empty."
    if (problem := _text_problem(name)) is not None:
        return f"{article} {what} name {problem}."
    if what == "event" and name in UNCHECKED_EVENTS:
        return f"{name} is where page and screen calls are stored; the plan checks track calls only."
    return None


def _object(value: Any, path: str, errors: _Errors) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        errors.add(path, f"Must be an object, not {_type_name(value)}.")
        return None
    return value


def _unknown_fields(data: Mapping[str, Any], allowed: tuple[str, ...], path: str, errors: _Errors) -> None:
    for name in data:
        if name not in allowed:
            errors.add(_field_path(path, name), f"Unknown field; one of {', '.join(allowed)} is expected.")


def _boolean(data: Mapping[str, Any], name: str, path: str, errors: _Errors) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        errors.add(_field_path(path, name), f"Must be true or false, not {_type_name(value)}.")
        return False
    return value


def _description(data: Mapping[str, Any], path: str, errors: _Errors) -> str:
    value = data.get("description", "")
    if not isinstance(value, str):
        errors.add(_field_path(path, "description"), f"Must be a string, not {_type_name(value)}.")
        return ""
    if len(value) > MAX_DESCRIPTION_LENGTH:
        errors.add(
            _field_path(path, "description"), f"At most {MAX_DESCRIPTION_LENGTH} characters; this one has {len(value)}."
        )
    if (problem := _text_problem(value)) is not None:
        errors.add(_field_path(path, "description"), f"The description {problem}.")
    return value


def _property(name: str, value: Any, path: str, errors: _Errors) -> PlannedProperty | None:
    spec = _object(value, path, errors)
    if spec is None:
        return None
    _unknown_fields(spec, _PROPERTY_FIELDS, path, errors)
    kind = spec.get("type")
    if "type" not in spec:
        errors.add(_field_path(path, "type"), f"Required: one of {', '.join(PROPERTY_TYPES)}.")
    elif kind not in PROPERTY_TYPES:
        shown = json.dumps(kind, ensure_ascii=False)[:60]
        errors.add(_field_path(path, "type"), f"One of {', '.join(PROPERTY_TYPES)}, not {shown}.")
    required = _boolean(spec, "required", path, errors)
    description = _description(spec, path, errors)
    return PlannedProperty(name, kind if kind in PROPERTY_TYPES else "string", required, description)


def _event(name: str, value: Any, path: str, errors: _Errors) -> PlannedEvent | None:
    spec = _object(value, path, errors)
    if spec is None:
        return None
    _unknown_fields(spec, _EVENT_FIELDS, path, errors)
    description = _description(spec, path, errors)
    quarantine = _boolean(spec, "quarantine_violations", path, errors)
    properties: list[PlannedProperty] = []
    raw = spec.get("properties", {})
    listed = _object(raw, _field_path(path, "properties"), errors)
    if listed is not None:
        if len(listed) > MAX_PROPERTIES:
            errors.add(
                _field_path(path, "properties"),
                f"At most {MAX_PROPERTIES} properties per event; this one has {len(listed)}.",
            )
        for property_name, property_spec in listed.items():
            property_path = key_path(_field_path(path, "properties"), property_name)
            if (problem := name_problem(property_name, what="property")) is not None:
                errors.add(property_path, problem)
                continue
            planned = _property(property_name, property_spec, property_path, errors)
            if planned is not None:
                properties.append(planned)
            if errors.full():
                break
    return PlannedEvent(name, description, quarantine, _sorted_properties(properties))


def parse(data: Any) -> PlanDocument:
    """The plan ``data`` (parsed JSON) describes; ``PlanInvalid`` naming the path of every problem
    (the first ``MAX_ERRORS``) when it is not exactly a plan document."""
    errors = _Errors()
    document = _object(data, "", errors)
    if document is None:
        raise PlanInvalid(errors.errors)
    _unknown_fields(document, _DOCUMENT_FIELDS, "", errors)
    block = _boolean(document, "block_unplanned_events", "", errors)
    events: list[PlannedEvent] = []
    if "events" not in document:
        errors.add("events", "Required: an object of events by name ({} for an empty plan).")
    else:
        listed = _object(document["events"], "events", errors)
        if listed is not None:
            if len(listed) > MAX_EVENTS:
                errors.add("events", f"At most {MAX_EVENTS} events; this plan has {len(listed)}.")
            for name, spec in listed.items():
                path = key_path("events", name)
                if (problem := name_problem(name, what="event")) is not None:
                    errors.add(path, problem)
                    continue
                planned = _event(name, spec, path, errors)
                if planned is not None:
                    events.append(planned)
                if errors.full():
                    break
    if errors.errors:
        raise PlanInvalid(errors.errors)
    return PlanDocument(_sorted_events(events), block)


def parse_json_text(text: str | bytes) -> PlanDocument:
    """``parse`` of a JSON text (an upload or a paste); invalid JSON is a ``PlanInvalid`` too."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise PlanInvalid({"": [f"Not valid JSON: {error}."]}) from error
    return parse(data)


# --- Edits (the settings page) -----------------------------------------------------------


def _edit_problem(field_name: str, message: str) -> PlanInvalid:
    return PlanInvalid({field_name: [message]})


def _checked_name(name: str, *, what: str, field_name: str) -> str:
    if (problem := name_problem(name, what=what)) is not None:
        raise _edit_problem(field_name, problem)
    return name


def _checked_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise _edit_problem("description", f"At most {MAX_DESCRIPTION_LENGTH} characters.")
    if (problem := _text_problem(description)) is not None:
        raise _edit_problem("description", f"The description {problem}.")
    return description


def _planned(document: PlanDocument, name: str) -> PlannedEvent:
    event = document.event(name)
    if event is None:
        raise _edit_problem("event", f"“{name}” is not in the plan (any more): reload the page.")
    return event


def _with_event(document: PlanDocument, event: PlannedEvent) -> PlanDocument:
    others = [e for e in document.events if e.name != event.name]
    return replace(document, events=_sorted_events([*others, event]))


def event_add(
    document: PlanDocument, *, name: str, description: str = "", quarantine_violations: bool = False
) -> PlanDocument:
    _checked_name(name, what="event", field_name="name")
    if len(name) > MAX_NAME_LENGTH:
        raise _edit_problem("name", f"Track calls carry event names of at most {MAX_NAME_LENGTH} characters.")
    if document.event(name) is not None:
        raise _edit_problem("name", f"“{name}” is already in the plan.")
    if len(document.events) >= MAX_EVENTS:
        raise _edit_problem("name", f"A plan holds at most {MAX_EVENTS} events.")
    event = PlannedEvent(name, _checked_description(description), quarantine_violations)
    return _with_event(document, event)


def event_update(document: PlanDocument, *, name: str, description: str, quarantine_violations: bool) -> PlanDocument:
    event = _planned(document, name)
    return _with_event(
        document,
        replace(event, description=_checked_description(description), quarantine_violations=quarantine_violations),
    )


def event_remove(document: PlanDocument, *, name: str) -> PlanDocument:
    _planned(document, name)
    return replace(document, events=tuple(e for e in document.events if e.name != name))


def property_set(
    document: PlanDocument, *, event: str, name: str, type: str, required: bool, description: str | None = None
) -> PlanDocument:
    """Add the property to the event, or change its type, required flag (and description, if given)."""
    planned = _planned(document, event)
    _checked_name(name, what="property", field_name="name")
    if len(name) > MAX_NAME_LENGTH and planned.property(name) is None:
        raise _edit_problem("name", f"At most {MAX_NAME_LENGTH} characters.")
    if type not in PROPERTY_TYPES:
        raise _edit_problem("type", f"One of {', '.join(PROPERTY_TYPES)}.")
    existing = planned.property(name)
    if existing is None and len(planned.properties) >= MAX_PROPERTIES:
        raise _edit_problem("name", f"An event holds at most {MAX_PROPERTIES} properties.")
    if description is None:
        description = existing.description if existing is not None else ""
    prop = PlannedProperty(name, type, required, _checked_description(description))
    others = [p for p in planned.properties if p.name != name]
    return _with_event(document, replace(planned, properties=_sorted_properties([*others, prop])))


def property_remove(document: PlanDocument, *, event: str, name: str) -> PlanDocument:
    planned = _planned(document, event)
    if planned.property(name) is None:
        raise _edit_problem("name", f"“{name}” is not a property of “{event}” (any more): reload the page.")
    return _with_event(document, replace(planned, properties=tuple(p for p in planned.properties if p.name != name)))


def changed_events(before: PlanDocument, after: PlanDocument) -> set[str]:
    """Names of the events added, removed or changed in any way between two plans."""
    old = {e.name: e for e in before.events}
    new = {e.name: e for e in after.events}
    return {name for name in old.keys() | new.keys() if old.get(name) != new.get(name)}


# --- The check -----------------------------------------------------------------------------

# Python types of parsed JSON values, by plan type (exact types: True is not a number).
_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "list": (list,),
}


@dataclass(frozen=True, slots=True)
class Violation:
    kind: str
    property: str = ""
    # For a wrong type: the type the message had.
    got: str = ""
    expected: str = ""

    def text(self, event: str) -> str:
        if self.kind == UNKNOWN_EVENT:
            return f"event “{event}” is not in the tracking plan"
        if self.kind == UNKNOWN_PROPERTY:
            return f"property “{self.property}” is not in the plan"
        if self.kind == WRONG_TYPE:
            return f"property “{self.property}” should be {_article(self.expected)}, not {_article(self.got)}"
        return f"required property “{self.property}” is missing"


def _article(type_name: str) -> str:
    return f"an {type_name}" if type_name[:1] in "aeiou" else f"a {type_name}"


@dataclass(frozen=True, slots=True)
class _CompiledEvent:
    types: dict[str, tuple[tuple[type, ...], str]]
    required: tuple[str, ...]
    quarantine: bool


class Checker:
    """A plan with events, compiled for ingestion. A plan without events compiles to None (``compile_plan``)."""

    __slots__ = ("block_unplanned", "events")

    def __init__(self, document: PlanDocument) -> None:
        self.block_unplanned = document.block_unplanned_events
        self.events = {
            event.name: _CompiledEvent(
                types={p.name: (_PYTHON_TYPES[p.type], p.type) for p in event.properties},
                required=tuple(p.name for p in event.properties if p.required),
                quarantine=event.quarantine_violations,
            )
            for event in document.events
        }

    def check(self, event: str, properties: Mapping[str, Any]) -> tuple[list[Violation], bool]:
        """The violations of a track call of ``event`` with ``properties``, and whether it goes to the
        quarantine instead of being stored. A null value counts as absent: allowed for an optional
        property, missing for a required one."""
        spec = self.events.get(event)
        if spec is None:
            return [Violation(UNKNOWN_EVENT)], self.block_unplanned
        found: list[Violation] = []
        types = spec.types
        for key, value in properties.items():
            expected = types.get(key)
            if expected is None:
                found.append(Violation(UNKNOWN_PROPERTY, key))
            elif value is not None and type(value) not in expected[0]:
                found.append(Violation(WRONG_TYPE, key, _type_name(value), expected[1]))
        for key in spec.required:
            if properties.get(key) is None:
                found.append(Violation(MISSING_PROPERTY, key))
        return found, bool(found) and spec.quarantine


def compile_plan(document: PlanDocument) -> Checker | None:
    """The checker of a plan; None for a plan without events (then nothing is checked)."""
    return Checker(document) if document.events else None


# --- Counting violations of a batch ------------------------------------------------------

EXAMPLES_KEPT = 3
EXAMPLE_KEYS = 20
EXAMPLE_TEXT = 200


def _clean(text: str) -> str:
    return text.replace("\x00", "\ufffd")


def _cut(text: str) -> str:
    text = _clean(text)
    return text if len(text) <= EXAMPLE_TEXT else text[: EXAMPLE_TEXT - 1] + "…"


def _capped_value(value: Any) -> Any:
    if isinstance(value, str):
        return _cut(value)
    if isinstance(value, dict | list):
        text = orjson.dumps(value).decode()
        if len(text) <= EXAMPLE_TEXT and "\\u0000" not in text:
            return value
        return _cut(text)
    return value


def capped_properties(properties: Mapping[str, Any]) -> dict[str, Any]:
    """An example's copy of a message's properties: at most ``EXAMPLE_KEYS`` keys, each value at most
    ``EXAMPLE_TEXT`` characters (a longer object or list becomes its JSON text, cut)."""
    capped: dict[str, Any] = {}
    for index, (key, value) in enumerate(properties.items()):
        if index == EXAMPLE_KEYS:
            capped["…"] = f"{len(properties) - EXAMPLE_KEYS} more properties"
            break
        capped[_cut(str(key))[:100]] = _capped_value(value)
    return capped


@dataclass(slots=True)
class _Count:
    count: int = 0
    quarantined: int = 0
    first: Any = None
    last: Any = None
    # (message fields, violations, quarantined) of the latest messages, oldest first.
    latest: list[tuple[dict[str, Any], list[Violation], bool]] = field(default_factory=list)


@dataclass
class Tally:
    """The violations of one transaction's messages of one workspace, summed per (event, kind, property)
    so that they are written by one statement, with a few latest examples each."""

    counts: dict[tuple[str, str, str], _Count] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.counts)

    def add(
        self,
        event: str,
        violations: list[Violation],
        *,
        quarantined: bool,
        received_at: Any,
        message: dict[str, Any],
    ) -> None:
        """``message``: what an example shows of it (ids, time, properties), kept by reference until ``rows``."""
        for violation in violations:
            # A property key from the wild, as the counts' column can hold it (two keys that differ
            # only past that length share a row).
            key = (event, violation.kind, _clean(violation.property)[:MAX_NAME_LENGTH])
            count = self.counts.get(key)
            if count is None:
                count = self.counts[key] = _Count(first=received_at)
            count.count += 1
            count.quarantined += quarantined
            count.last = received_at
            count.latest.append((message, violations, quarantined))
            if len(count.latest) > EXAMPLES_KEPT:
                del count.latest[0]

    def rows(self) -> list[dict[str, Any]]:
        """One row per (event, kind, property): counts, first and last time, examples newest first."""
        rows = []
        for (event, kind, prop), count in self.counts.items():
            examples = [
                {
                    **{key: value for key, value in message.items() if key != "properties"},
                    "properties": capped_properties(message.get("properties") or {}),
                    "problems": [_cut(v.text(event)) for v in violations],
                    "quarantined": quarantined,
                }
                for message, violations, quarantined in reversed(count.latest)
            ]
            rows.append(
                {
                    "e": event,
                    "k": kind,
                    "p": prop,
                    "n": count.count,
                    "q": count.quarantined,
                    "f": count.first,
                    "l": count.last,
                    "x": examples,
                }
            )
        return rows


def violations_reason(event: str, violations: list[Violation]) -> str:
    """The quarantine's reason for a message the plan kept out."""
    return "Tracking plan: " + "; ".join(v.text(event) for v in violations)
