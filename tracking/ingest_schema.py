"""The tracking API (``/v1/``) in the OpenAPI schema.

Its endpoints are plain Django views (the hot path skips DRF), so drf-spectacular
cannot see them; this fragment describes them (tracking-api.md) and a
postprocessing hook adds it to the generated schema. Nothing here runs while
ingesting.
"""

from __future__ import annotations

import copy
from typing import Any

from tracking.ingest_views import MAX_BATCH_MESSAGES, MAX_MESSAGE_BYTES, MAX_REQUEST_BYTES

KINDS = ("track", "identify", "page", "screen", "group", "alias")

_ID = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}
_TIME = {"type": "string", "description": "ISO 8601; unparsable or over 23 hours ahead: the time of receipt."}

_COMMON: dict[str, Any] = {
    "userId": {**_ID, "description": "The user id; userId or anonymousId is required."},
    "anonymousId": {**_ID, "description": "The anonymous (device) id; userId or anonymousId is required."},
    "messageId": {"type": "string", "description": "Sent again within 7 days (a retry): stored once."},
    "timestamp": _TIME,
    "sentAt": {"type": "string", "description": "The client's clock when sending; corrects timestamp for skew."},
    "context": {**_OBJECT, "description": "Segment's context (page, userAgent, ip, ...)."},
    "integrations": _OBJECT,
}
_SPECIFIC: dict[str, dict[str, Any]] = {
    "track": {"event": {"type": "string", "minLength": 1}, "properties": _OBJECT},
    "identify": {"traits": _OBJECT},
    "page": {"name": {"type": "string"}, "properties": _OBJECT},
    "screen": {"name": {"type": "string"}, "properties": _OBJECT},
    "group": {"groupId": _ID, "traits": _OBJECT},
    "alias": {"previousId": _ID},
}
_REQUIRED: dict[str, list[str]] = {"track": ["event"], "group": ["groupId"], "alias": ["previousId", "userId"]}
_DESCRIPTIONS = {
    "track": "Stores an event named event.",
    "identify": "Sets traits on the person (the last write wins) and links anonymousId to userId. Not an event.",
    "page": "Stores a $pageview event; the page's name, url, path, referrer, title and search become its properties.",
    "screen": "Stores a $screen event.",
    "group": "Records the person's group (account) and its traits.",
    "alias": "Merges the person of previousId into the person of userId.",
}
_WRITE_KEY = {
    "type": "string",
    "description": "The write key, for clients that cannot set headers (navigator.sendBeacon).",
}


def _message(kind: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "object",
        "description": _DESCRIPTIONS[kind],
        "properties": {"type": {"type": "string", "enum": [kind]}, **_COMMON, **_SPECIFIC[kind]},
    }
    if kind in _REQUIRED:
        message["required"] = _REQUIRED[kind]
    return message


def _body(message: dict[str, Any], description: str) -> dict[str, Any]:
    # A message that fails its own checks is still a valid request: it is answered 200, counted
    # in "rejected" and kept in the quarantine. Only a body that is not an object is refused.
    return {
        "required": True,
        "description": description,
        "content": {"application/json": {"schema": {"anyOf": [message, {"type": "object"}]}}},
    }


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": REF_ERROR}}}}


REF_ERROR = "#/components/schemas/IngestError"
_RESPONSES: dict[str, Any] = {
    "200": {
        "description": "Stored durably: every accepted message survives a crash from now on.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IngestResult"}}},
    },
    "400": _error("The body is not a JSON object (or not valid gzip); nothing stored."),
    "401": _error("No write key, an unknown one, or a secret API key; nothing stored."),
    "413": _error(
        f"Over a limit: {MAX_MESSAGE_BYTES // 1024} KiB per message, {MAX_REQUEST_BYTES // 1024} KiB per request "
        f"(after decompression), {MAX_BATCH_MESSAGES} messages per batch; nothing stored."
    ),
    "415": _error("A Content-Encoding other than gzip; nothing stored."),
    "429": _error("Over the write key's rate limit; nothing stored: retry later."),
    "503": _error("Storage is unavailable; nothing stored: retry later."),
}
_REQUEST_NOTES = (
    " The body may also be sent as text/plain (sendBeacon), and compressed with Content-Encoding: gzip."
    " Messages that fail their checks (no id, wrong types) are not refused: the answer is 200, counts them"
    " in rejected, and the quarantine keeps them with the reason."
)

COMPONENTS: dict[str, Any] = {
    "IngestResult": {
        "type": "object",
        "required": ["success", "accepted", "rejected", "stored", "duplicates", "suppressed"],
        "properties": {
            "success": {"type": "boolean", "enum": [True]},
            "accepted": {"type": "integer", "description": "Messages that passed their checks."},
            "rejected": {"type": "integer", "description": "Messages kept in the quarantine with their reason."},
            "stored": {"type": "integer"},
            "duplicates": {"type": "integer", "description": "Retries of messages already stored (same messageId)."},
            "suppressed": {"type": "integer", "description": "Messages for erased people, dropped."},
        },
    },
    "IngestError": {
        "type": "object",
        "required": ["detail", "code", "message"],
        "properties": {
            "detail": {"type": "string"},
            "code": {"type": "string"},
            "message": {"type": "string", "description": "The same as detail: Segment's SDKs log this field."},
            "errors": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
        },
    },
}
SECURITY_SCHEME = {
    "type": "http",
    "scheme": "basic",
    "description": (
        "The workspace's public write key as the user name, with an empty password; or writeKey in the body. "
        "A secret API key is refused here."
    ),
}


def _operation(kind: str | None) -> dict[str, Any]:
    if kind is None:
        batch = {
            "type": "object",
            "required": ["batch"],
            "properties": {
                "batch": {
                    "type": "array",
                    "maxItems": MAX_BATCH_MESSAGES,
                    "items": {"anyOf": [*(_message(k) for k in KINDS), {}]},
                    "description": "Messages of any type, each with its type field.",
                },
                # Untyped: a sentAt that is not a time is ignored, not refused.
                "sentAt": {"description": _COMMON["sentAt"]["description"]},
                "writeKey": {"description": _WRITE_KEY["description"]},
            },
        }
        request = {
            "required": True,
            "description": "Many messages in one request." + _REQUEST_NOTES,
            "content": {"application/json": {"schema": batch}},
        }
        summary = "Send a batch of messages"
    else:
        message = _message(kind)
        message["properties"]["writeKey"] = _WRITE_KEY
        request = _body(message, f"One {kind} message." + _REQUEST_NOTES)
        summary = f"Send a {kind} message"
    return {
        "operationId": f"ingest_{kind or 'batch'}",
        "summary": summary,
        "tags": ["tracking"],
        "security": [{"writeKey": []}],
        "requestBody": request,
        "responses": _RESPONSES,
    }


def add_ingest_paths(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the /v1/ endpoints, next to the REST API's."""
    result["paths"].update(
        {f"/v1/{kind or 'batch'}": {"post": copy.deepcopy(_operation(kind))} for kind in (None, *KINDS)}
    )
    components = result.setdefault("components", {})
    components.setdefault("schemas", {}).update(COMPONENTS)
    components.setdefault("securitySchemes", {})["writeKey"] = SECURITY_SCHEME
    return result
