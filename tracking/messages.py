"""Messages of the tracking API, parsed and checked; no Django in here.

``parse_message`` turns one raw message (a dict from the request) into a
``Message`` ready to store, or a ``Rejection`` naming what is wrong with it.
Times follow docs/tracking-api "Time": the event time is corrected for the
client's clock skew, and a timestamp that cannot be parsed, lies too far in
the future or before 2000 is replaced by the received time with a warning kept
on the event.

Nothing is changed quietly: a stored object holding the NUL character (which
PostgreSQL cannot store in jsonb, see ``tracking.ingest.json_text``) is stored
with U+FFFD in its place and the message keeps a warning; a message that
cannot be stored as sent (a number no double can hold, nesting deeper than the
encoder goes) is refused on its own with its reason.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn
from urllib.parse import parse_qs, urlsplit

import orjson

MESSAGE_TYPES = ("track", "identify", "page", "screen", "group", "alias")
# Types that store an event (and so count for "$any").
EVENT_TYPES = frozenset({"track", "page", "screen"})
PAGEVIEW = "$pageview"
SCREEN = "$screen"
PAGE_FIELDS = ("url", "path", "referrer", "title", "search")
FIRST_TOUCH_MARKER = "$initial_referrer"
FIRST_TOUCH_KEYS = (
    "$initial_referrer",
    "$initial_referring_domain",
    "$initial_utm_source",
    "$initial_utm_medium",
    "$initial_utm_campaign",
    "$initial_path",
)
DIRECT = "$direct"
# Trait keys starting so are set by Cohortly only (first-touch traits, computed traits): identify cannot.
RESERVED_TRAIT_PREFIX = "$"
MAX_FUTURE = timedelta(hours=23)
# Earlier event times are device clocks reset to an epoch or typos, not history.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
MAX_ID_LENGTH = 255
MAX_EVENT_NAME_LENGTH = 200


@dataclass(slots=True)
class Message:
    type: str
    message_id: str
    user_id: str | None
    anonymous_id: str | None
    timestamp: datetime
    received_at: datetime
    warnings: list[str] = field(default_factory=list)
    event: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    previous_id: str | None = None
    group_id: str | None = None
    session_id: str | None = None
    # The message as received (a reference, not a copy), for the quarantine: its "accepted with
    # warnings" list, and track calls the tracking plan keeps out.
    raw: Any = None


@dataclass(slots=True)
class Rejection:
    raw: Any
    reason: str
    received_at: datetime
    message_id: str | None = None


class _Invalid(ValueError):
    def __init__(self, reason: str, *, kept: Any = None) -> None:
        super().__init__(reason)
        # What the quarantine keeps instead of the message, when the message itself cannot be stored.
        self.kept = kept


# --- Reading JSON -------------------------------------------------------------------------

# A JSON-escaped NUL, not preceded by an escaped backslash ("\\u0000" is the text "\u0000").
ESCAPED_NUL = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")
_INFINITE = "number is infinity when parsed as double"
_I64_MIN, _U64_MAX = -(2**63), 2**64 - 1


class HugeNumber(str):
    """A JSON number no double can hold (``1e400``, a 400-digit integer), kept as its text.

    Only ``json_loads`` makes them; ``parse_message`` refuses a message holding one.
    """


def _float(text: str) -> float | HugeNumber:
    value = float(text)
    return HugeNumber(text) if math.isinf(value) else value


def _integer(text: str) -> int | float | HugeNumber:
    # As orjson reads integers: exact within 64 bits, a double beyond.
    if len(text) <= 20:
        value = int(text)
        if _I64_MIN <= value <= _U64_MAX:
            return value
    return _float(text)


def _constant(text: str) -> NoReturn:
    raise ValueError(f"{text} is not valid JSON")


def json_loads(data: bytes | str) -> Any:
    """orjson's ``loads``, except that a number too large for a double does not refuse the document.

    orjson refuses the whole document for such a number; a batch would lose every message
    for one bad property. The standard library then parses it again, keeping each such
    number as a ``HugeNumber`` (the rare path), so that only the message holding it is refused.
    Raises ``json.JSONDecodeError`` (orjson's is one) for anything else orjson refuses.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as error:
        if not str(error).startswith(_INFINITE):
            raise
    try:
        value = json.loads(data, parse_float=_float, parse_int=_integer, parse_constant=_constant)
        # What orjson's parser refuses and the standard library's accepts (lone surrogates) stays refused.
        orjson.dumps(value)
    except (ValueError, TypeError, RecursionError) as error:
        raise json.JSONDecodeError(str(error), "", 0) from error
    return value


class _Unstorable(TypeError):
    pass


def _refuse_huge_numbers(value: Any) -> Any:
    if isinstance(value, HugeNumber):
        raise _Unstorable(f"a number is too large for a double: {value[:40]}")
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list | tuple):
        return list(value)
    return str(value)


def _encoded(raw: dict[str, Any]) -> bytes:
    """``raw`` as JSON, as deep in a list as ingestion writes it; ``_Invalid`` if it cannot be stored."""
    try:
        return orjson.dumps([raw], option=orjson.OPT_PASSTHROUGH_SUBCLASS, default=_refuse_huge_numbers)
    except orjson.JSONEncodeError as error:
        if isinstance(error.__cause__, _Unstorable):
            raise _Invalid(str(error.__cause__)) from error
        # Nesting past orjson's limit: the quarantine keeps the message's flat fields.
        flat = {key: value for key, value in raw.items() if not isinstance(value, dict | list)}
        raise _Invalid("message is nested too deeply to be stored", kept=flat) from error


def _holds_nul(value: Any) -> bool:
    data = orjson.dumps(value)
    return b"u0000" in data and ESCAPED_NUL.search(data) is not None


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 string as an aware UTC datetime (naive means UTC), else None.

    None too for a time whose UTC form leaves the years 1-9999 ("0001-01-01T00:00:00+05:00").
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _id(raw: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    """An id field: a string, or an integer sent by SDKs that allow numbers."""
    value = raw.get(key)
    if value is None or value == "":
        if required:
            raise _Invalid(f"{key} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _Invalid(f"{key} must be a string")
    text = str(value)
    if "\x00" in text:
        raise _Invalid(f"{key} must not contain NUL characters")
    if len(text) > MAX_ID_LENGTH:
        raise _Invalid(f"{key} is longer than {MAX_ID_LENGTH} characters")
    return text


def _object(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Invalid(f"{key} must be an object")
    return value


def _text(value: Any) -> str | None:
    if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
        return str(value).replace("\x00", "")[:MAX_ID_LENGTH] or None
    return None


def event_time(raw_timestamp: Any, sent_at: Any, received_at: datetime, warnings: list[str]) -> datetime:
    """The event's time, corrected for clock skew: received - (sentAt - timestamp)."""
    if raw_timestamp is None:
        return received_at
    timestamp = parse_time(raw_timestamp)
    if timestamp is None:
        warnings.append("timestamp could not be parsed; the received time was used")
        return received_at
    if sent_at is not None:
        sent = parse_time(sent_at)
        if sent is None:
            warnings.append("sentAt could not be parsed; the timestamp was not corrected for clock skew")
        else:
            try:
                timestamp = received_at - (sent - timestamp)
            except OverflowError:
                warnings.append("timestamp could not be parsed; the received time was used")
                return received_at
    if timestamp - received_at > MAX_FUTURE:
        warnings.append("timestamp was more than 23 hours in the future; the received time was used")
        return received_at
    if timestamp < EARLIEST:
        warnings.append("timestamp was before 2000-01-01; the received time was used")
        return received_at
    return timestamp


def parse_message(raw: Any, *, kind: str | None, batch_sent_at: Any, received_at: datetime) -> Message | Rejection:
    """Check one message. ``kind`` is the endpoint's type, None inside a batch."""
    if not isinstance(raw, dict):
        return Rejection(raw=raw, reason="message must be a JSON object", received_at=received_at)
    raw_message_id = raw.get("messageId")
    message_id = raw_message_id if isinstance(raw_message_id, str) and raw_message_id else None
    try:
        encoded = _encoded(raw)
        message = _parse(raw, kind=kind, batch_sent_at=batch_sent_at, received_at=received_at)
    except _Invalid as error:
        return Rejection(
            raw=raw if error.kept is None else error.kept,
            reason=str(error),
            received_at=received_at,
            message_id=message_id[:MAX_ID_LENGTH] if message_id else None,
        )
    if b"u0000" in encoded:
        _warn_about_nul(message)
    message.raw = raw
    return message


def _warn_about_nul(message: Message) -> None:
    """A warning naming each stored object that holds a NUL (in a key or a value), if any."""
    if message.type in EVENT_TYPES:
        stored = {"properties": message.properties, "context": message.context}
    elif message.type in ("identify", "group"):
        stored = {"traits": message.traits}
    else:
        return
    holding = [name for name, value in stored.items() if _holds_nul(value)]
    if holding:
        message.warnings.append(f"NUL characters in {' and '.join(holding)} were replaced by U+FFFD")


def _parse(raw: dict[str, Any], *, kind: str | None, batch_sent_at: Any, received_at: datetime) -> Message:
    message_type = kind or raw.get("type")
    if message_type not in MESSAGE_TYPES:
        raise _Invalid(f"type must be one of {', '.join(MESSAGE_TYPES)}")
    user_id = _id(raw, "userId")
    anonymous_id = _id(raw, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise _Invalid("userId or anonymousId is required")
    message_id = _id(raw, "messageId") or str(uuid.uuid4())
    properties = _object(raw, "properties")
    traits = _object(raw, "traits")
    context = _object(raw, "context")
    warnings: list[str] = []
    sent_at = raw.get("sentAt", batch_sent_at)
    timestamp = event_time(raw.get("timestamp"), sent_at, received_at, warnings)
    message = Message(
        type=message_type,
        message_id=message_id,
        user_id=user_id,
        anonymous_id=anonymous_id,
        timestamp=timestamp,
        received_at=received_at,
        warnings=warnings,
        properties=properties,
        traits=traits,
        context=context,
    )
    if message_type == "track":
        event = raw.get("event")
        if not isinstance(event, str) or not event:
            raise _Invalid("event is required and must be a string")
        if "\x00" in event:
            raise _Invalid("event must not contain NUL characters")
        if len(event) > MAX_EVENT_NAME_LENGTH:
            raise _Invalid(f"event is longer than {MAX_EVENT_NAME_LENGTH} characters")
        message.event = event
    elif message_type in ("page", "screen"):
        name = raw.get("name")
        if name is not None and not isinstance(name, str):
            raise _Invalid("name must be a string")
        message.event = PAGEVIEW if message_type == "page" else SCREEN
        message.properties = _page_properties(name, properties, context) if message_type == "page" else properties
        if message_type == "screen" and name:
            message.properties = {"name": name, **properties}
    elif message_type == "alias":
        message.previous_id = _id(raw, "previousId", required=True)
    elif message_type == "group":
        message.group_id = _id(raw, "groupId", required=True)
    elif message_type == "identify":
        _drop_reserved_traits(message)
    if message.type in EVENT_TYPES:
        message.session_id = _session_id(message.properties, context)
    return message


def _drop_reserved_traits(message: Message) -> None:
    """Traits whose key starts with ``$`` are the product's own (first-touch, computed traits): an
    identify call cannot set them. They are left out of the write, with a warning naming them."""
    reserved = sorted(key for key in message.traits if key.startswith(RESERVED_TRAIT_PREFIX))
    if not reserved:
        return
    message.traits = {key: value for key, value in message.traits.items() if key not in reserved}
    shown = ", ".join(reserved[:5]) + (f" and {len(reserved) - 5} more" if len(reserved) > 5 else "")
    message.warnings.append(f"traits starting with $ are reserved for Cohortly and were not set: {shown}")


def _page_properties(name: str | None, properties: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """A page's properties: ``context.page`` fields, overridden by ``properties``, plus ``name``."""
    page = context.get("page")
    merged: dict[str, Any] = {}
    if isinstance(page, dict):
        merged.update({key: page[key] for key in PAGE_FIELDS if page.get(key) is not None})
    merged.update(properties)
    if name:
        merged["name"] = name
    return merged


def _session_id(properties: dict[str, Any], context: dict[str, Any]) -> str | None:
    for source, key in (
        (context, "sessionId"),
        (context, "session_id"),
        (properties, "$session_id"),
        (properties, "sessionId"),
        (properties, "session_id"),
    ):
        if (value := _text(source.get(key))) is not None:
            return value
    return None


def _host_as_written(url: str) -> str | None:
    netloc = urlsplit(url).netloc.rpartition("@")[2]
    host = netloc.partition("]")[0] + "]" if netloc.startswith("[") else netloc.partition(":")[0]
    return host or None


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""


def first_touch(properties: dict[str, Any]) -> dict[str, str]:
    """The ``$initial_*`` traits a page call with these properties gives."""
    url = _string(properties.get("url"))
    referrer = _string(properties.get("referrer"))
    traits: dict[str, str] = {}
    domain = _host_as_written(referrer) if referrer else None
    traits["$initial_referrer"] = referrer if referrer else DIRECT
    traits["$initial_referring_domain"] = domain or DIRECT
    query = parse_qs(urlsplit(url).query if url else _string(properties.get("search")).lstrip("?"))
    for key in ("utm_source", "utm_medium", "utm_campaign"):
        values = query.get(key)
        if values and values[0]:
            traits[f"$initial_{key}"] = values[0]
    path = properties.get("path")
    if not isinstance(path, str) or not path:
        path = urlsplit(url).path if url else ""
    if path:
        traits["$initial_path"] = path
    return traits
