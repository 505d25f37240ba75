"""Reading the requests of funnels and retention: steps, filters, windows and durations, checked by
the definition language's own parser so that they mean what they mean in a segment.

Pure Python, no Django. Every problem is collected as ``{path: [message]}`` (``steps[1].filters[0].operator``)
and raised at the end as ``InputInvalid``, which the API answers with a 400 naming those paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from segmentation.definition import (
    MAX_KEY_LENGTH,
    DefinitionInvalid,
    Duration,
    EventCount,
    Filter,
    Step,
    Window,
    parse,
    parse_duration,
)

# A breakdown key, dotted like a trait condition's, is read as a chain of this many parts at most.
MAX_KEY_PARTS = 8


class InputInvalid(ValueError):
    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{path}: {' '.join(messages)}" for path, messages in self.errors.items()))


class Errors:
    """Problems found so far, by path."""

    def __init__(self) -> None:
        self.found: dict[str, list[str]] = {}

    def add(self, path: str, message: str) -> None:
        self.found.setdefault(path, []).append(message)

    def raise_any(self) -> None:
        if self.found:
            raise InputInvalid(self.found)


def join(path: str, part: str | int) -> str:
    if isinstance(part, int):
        return f"{path}[{part}]"
    return f"{path}.{part}" if path else part


def _definition_errors(errors: Errors, error: DefinitionInvalid, prefix: str, renames: Mapping[str, str]) -> None:
    for item in error.errors:
        path = item.path
        for old, new in renames.items():
            if path == old or path.startswith(old + ".") or path.startswith(old + "["):
                path = new + path[len(old) :]
                break
        errors.add(join(prefix, path) if prefix and path else (prefix or path), item.message)


def unknown_fields(errors: Errors, document: Mapping[str, Any], allowed: set[str], path: str = "") -> None:
    for key in document:
        if key not in allowed:
            errors.add(join(path, str(key)), f"unknown field {key!r}")


def event_step(errors: Errors, raw: Any, path: str, *, now: datetime) -> Step | None:
    """``{"event", "filters"}``: an event name and property filters, as in a sequence's step."""
    if not isinstance(raw, dict):
        errors.add(path, "a step must be an object with an event")
        return None
    unknown_fields(errors, raw, {"event", "filters"}, path)
    document = {"type": "event", **{key: raw[key] for key in ("event", "filters") if key in raw}}
    try:
        node = parse(document, now=now)
    except DefinitionInvalid as error:
        _definition_errors(errors, error, path, {})
        return None
    assert isinstance(node, EventCount)
    return Step(event=node.event, filters=node.filters)


def event_filters(errors: Errors, raw: Any, path: str, *, now: datetime) -> tuple[Filter, ...]:
    """A list of property filters of events (``path`` names the list)."""
    if raw is None:
        return ()
    try:
        node = parse({"type": "event", "event": "x", "filters": raw}, now=now)
    except DefinitionInvalid as error:
        _definition_errors(errors, error, "", {"filters": path})
        return ()
    assert isinstance(node, EventCount)
    return node.filters


def duration(errors: Errors, raw: Any, path: str) -> Duration | None:
    value = parse_duration(raw)
    if value is None:
        errors.add(path, f'must be a duration such as "30m", "48h", "7d" or "4w", not {raw!r}')
    return value


def window(errors: Errors, since: Any, until: Any, *, now: datetime) -> Window | None:
    """``since`` and ``until`` as in a definition's window (a duration back from now, or an ISO-8601
    timestamp; ``None`` leaves that side open), checked by the definition parser."""
    bounds = {key: value for key, value in (("since", since), ("until", until)) if value is not None}
    try:
        node = parse({"type": "event", "event": "x", "window": bounds}, now=now)
    except DefinitionInvalid as error:
        _definition_errors(errors, error, "", {"window.since": "since", "window.until": "until", "window": "since"})
        return None
    assert isinstance(node, EventCount)
    return node.window


def event_name(errors: Errors, raw: Any, path: str) -> str | None:
    if not isinstance(raw, str) or not raw.strip():
        errors.add(path, "is required: an event name" if raw is None else "must be a non-empty string")
        return None
    if len(raw) > 200 or "\x00" in raw:
        errors.add(path, "must be an event name of at most 200 characters, without NUL")
        return None
    return raw


def trait_key(errors: Errors, raw: Any, path: str) -> str | None:
    """A trait key; dots reach into nested objects, as in a trait condition."""
    if not isinstance(raw, str) or not raw.strip():
        errors.add(path, "is required: a trait key" if raw is None else "must be a non-empty string")
        return None
    if len(raw) > MAX_KEY_LENGTH or "\x00" in raw:
        errors.add(path, f"must be a key of at most {MAX_KEY_LENGTH} characters, without NUL")
        return None
    if len(raw.split(".")) > MAX_KEY_PARTS:
        errors.add(path, f"reaches more than {MAX_KEY_PARTS} levels deep")
        return None
    return raw


def segment_ids(errors: Errors, raw: Any, path: str, *, most: int) -> list[int] | None:
    if (
        not isinstance(raw, list)
        or not 1 <= len(raw) <= most
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in raw)
    ):
        errors.add(path, f"must be a list of 1 to {most} segment ids")
        return None
    if len(set(raw)) != len(raw):
        errors.add(path, "names a segment twice")
        return None
    return list(raw)


@dataclass(frozen=True)
class TraitBreakdown:
    key: str


@dataclass(frozen=True)
class SegmentBreakdown:
    segments: tuple[int, ...]


Breakdown = TraitBreakdown | SegmentBreakdown

MAX_BREAKDOWN_SEGMENTS = 10


def breakdown(errors: Errors, raw: Any, path: str = "breakdown") -> Breakdown | None:
    """``null``, ``{"type": "trait", "key": "plan"}`` or ``{"type": "segment", "segments": [12, 14]}``."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        errors.add(path, 'must be null, {"type": "trait", "key": ...} or {"type": "segment", "segments": [...]}')
        return None
    kind = raw.get("type")
    if kind == "trait":
        unknown_fields(errors, raw, {"type", "key"}, path)
        key = trait_key(errors, raw.get("key"), join(path, "key"))
        return TraitBreakdown(key) if key is not None else None
    if kind == "segment":
        unknown_fields(errors, raw, {"type", "segments"}, path)
        ids = segment_ids(errors, raw.get("segments"), join(path, "segments"), most=MAX_BREAKDOWN_SEGMENTS)
        return SegmentBreakdown(tuple(ids)) if ids is not None else None
    errors.add(join(path, "type"), f'must be "trait" or "segment", not {kind!r}')
    return None


def as_document(breakdown: Breakdown | None) -> dict[str, Any] | None:
    if isinstance(breakdown, TraitBreakdown):
        return {"type": "trait", "key": breakdown.key}
    if isinstance(breakdown, SegmentBreakdown):
        return {"type": "segment", "segments": list(breakdown.segments)}
    return None
