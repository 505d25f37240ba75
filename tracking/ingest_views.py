"""The tracking API endpoints (``/v1/batch``, ``/v1/track``, ...), per docs
tracking-api.md.

A plain Django view, not DRF: this is the hottest path. It reads the body under
the size limits (inflating gzip incrementally so that a bomb is cut off at the
limit), parses it with orjson, finds the workspace from the write key only, and
stores the messages inside that workspace's scope in one committed transaction
before answering. Before storing, one Redis round trip counts the messages
against the write key's rate (``tracking.ingest_rate``); nothing else on this
path touches Redis or Celery.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from accounts.keys import SECRET_KEY_PREFIX
from core.api import error_body
from tracking.group_commit import CommitUnavailable
from tracking.ingest import IngestResult, Submission, submissions_ingest
from tracking.ingest_rate import write_key_wait
from tracking.messages import Message, Rejection, json_loads, parse_message

logger = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 500 * 1024
MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_MESSAGES = 2500
READ_CHUNK = 64 * 1024
# A gzip stream is never much bigger than what it inflates to.
MAX_COMPRESSED_BYTES = MAX_REQUEST_BYTES + 64 * 1024

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Max-Age": "86400",
}
ALLOWED_REQUEST_HEADERS = "Authorization, Content-Type, Content-Encoding"


class _Refused(Exception):
    def __init__(self, status: int, detail: str, code: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        # "message" too: Segment's SDKs log that field of an error answer.
        self.body = {**error_body(detail, code, errors), "message": detail}


def _json_response(body: dict[str, Any], status: int = 200) -> HttpResponse:
    response = HttpResponse(orjson.dumps(body), status=status, content_type="application/json")
    for header, value in CORS_HEADERS.items():
        response[header] = value
    return response


def _too_large(detail: str, errors: dict[str, list[str]] | None = None) -> _Refused:
    return _Refused(413, detail, "too_large", errors)


def read_body(request: HttpRequest) -> bytes:
    """The request body, inflated if gzip, refusing anything over the limit while reading."""
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    limit_message = f"The body is over the limit of {MAX_REQUEST_BYTES // 1024} KiB."
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if encoding in ("", "identity"):
        if declared > MAX_REQUEST_BYTES:
            raise _too_large(limit_message)
        data = request.read(MAX_REQUEST_BYTES + 1)
        if len(data) > MAX_REQUEST_BYTES:
            raise _too_large(limit_message)
        return data
    if encoding not in ("gzip", "x-gzip"):
        raise _Refused(415, f"Content-Encoding {encoding!r} is not supported; use gzip.", "unsupported_encoding")
    if declared > MAX_COMPRESSED_BYTES:
        raise _too_large(limit_message)
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    pieces: list[bytes] = []
    total = 0
    read = 0
    try:
        while not inflater.eof:
            chunk = request.read(READ_CHUNK)
            if not chunk:
                break
            read += len(chunk)
            if read > MAX_COMPRESSED_BYTES:
                raise _too_large(limit_message)
            while chunk and not inflater.eof:
                # max_length caps what one call may produce: memory stays at the limit.
                piece = inflater.decompress(chunk, MAX_REQUEST_BYTES + 1 - total)
                total += len(piece)
                if total > MAX_REQUEST_BYTES:
                    raise _too_large(limit_message)
                pieces.append(piece)
                chunk = inflater.unconsumed_tail
    except zlib.error as error:
        raise _Refused(400, "The body is not valid gzip.", "invalid_gzip") from error
    if not inflater.eof:
        raise _Refused(400, "The gzip body is truncated.", "invalid_gzip")
    return b"".join(pieces)


def _write_key(request: HttpRequest, body: dict[str, Any]) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "basic" and credentials.strip():
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[0] or None
    value = body.get("writeKey")
    return value if isinstance(value, str) and value else None


def _checked_write_key(request: HttpRequest, body: dict[str, Any]) -> str:
    """The write key the request carries; looked up with the messages, in the same transaction."""
    key = _write_key(request, body)
    if key is None:
        raise _Refused(401, "A write key is required: HTTP Basic user name, or writeKey in the body.", "no_write_key")
    if key.startswith(SECRET_KEY_PREFIX):
        raise _Refused(401, "A secret API key is not accepted here; use the workspace's write key.", "secret_key")
    if "\x00" in key:  # no write key holds one, and PostgreSQL refuses it in a parameter
        raise _Refused(401, "Unknown write key.", "invalid_write_key")
    return key


def store_now(submission: Submission) -> IngestResult | None:
    """Store one request in its own transaction (the Django-routed endpoints, tests)."""
    return submissions_ingest([submission])[0]


def _parse_body(data: bytes) -> dict[str, Any]:
    try:
        body = json_loads(data)
    except json.JSONDecodeError as error:
        raise _Refused(400, f"The body is not valid JSON: {error}.", "invalid_json") from error
    if not isinstance(body, dict):
        raise _Refused(400, "The body must be a JSON object.", "invalid_body")
    return body


def _batch_messages(body: dict[str, Any], kind: str | None, size: int) -> list[Any]:
    if kind is not None:
        if size > MAX_MESSAGE_BYTES:
            raise _too_large(f"The message is over the limit of {MAX_MESSAGE_BYTES // 1024} KiB.")
        # The key authenticated the request; it is not part of the message (nor of a quarantined copy).
        return [{key: value for key, value in body.items() if key != "writeKey"}]
    batch = body.get("batch")
    if not isinstance(batch, list):
        raise _Refused(400, "batch must be a list of messages.", "invalid_batch", {"batch": ["Must be a list."]})
    if len(batch) > MAX_BATCH_MESSAGES:
        raise _too_large(
            f"A batch holds at most {MAX_BATCH_MESSAGES} messages.",
            {"batch": [f"{len(batch)} messages; at most {MAX_BATCH_MESSAGES}."]},
        )
    if size <= MAX_MESSAGE_BYTES:
        return batch  # no message can be bigger than the whole body
    for index, message in enumerate(batch):
        try:
            encoded = orjson.dumps(message)
        except orjson.JSONEncodeError:
            continue  # nested past what can be stored: refused on its own by parse_message
        if len(encoded) > MAX_MESSAGE_BYTES:
            raise _too_large(
                f"Message batch[{index}] is over the limit of {MAX_MESSAGE_BYTES // 1024} KiB.",
                {f"batch[{index}]": [f"Over {MAX_MESSAGE_BYTES // 1024} KiB."]},
            )
    return batch


Store = Callable[[Submission], IngestResult | None]


def handle(request: HttpRequest, kind: str | None, store: Store) -> HttpResponse:
    """The endpoint of ``kind`` (None: ``/v1/batch``); ``store`` commits the messages."""
    try:
        return _answer(request, kind, store)
    except (DatabaseError, CommitUnavailable):
        # Connection lost, PostgreSQL restarting...: nothing was committed, so the SDK may retry.
        logger.exception("ingest: storage failed; nothing was acknowledged")
        return _json_response(
            {
                **error_body("Storage is unavailable; nothing was stored. Retry later.", "unavailable"),
                "message": "Storage is unavailable.",
            },
            status=503,
        )


def _answer(request: HttpRequest, kind: str | None, store: Store) -> HttpResponse:
    if request.method == "OPTIONS":
        response = HttpResponse(status=204)
        for header, value in CORS_HEADERS.items():
            response[header] = value
        response["Access-Control-Allow-Headers"] = request.headers.get(
            "Access-Control-Request-Headers", ALLOWED_REQUEST_HEADERS
        )
        return response
    if request.method != "POST":
        response = _json_response(error_body("Use POST.", "method_not_allowed"), status=405)
        response["Allow"] = "POST, OPTIONS"
        return response
    received_at = datetime.now(UTC)
    try:
        data = read_body(request)
        body = _parse_body(data)
        write_key = _checked_write_key(request, body)
        raw_messages = _batch_messages(body, kind, len(data))
    except _Refused as refused:
        return _json_response(refused.body, status=refused.status)
    wait = write_key_wait(write_key, len(raw_messages))
    if wait:
        throttled = _Refused(
            429,
            f"Over the limit of {settings.INGEST_RATE_PER_WRITE_KEY} messages per second for this write key; "
            f"nothing was stored. Retry after {wait} s.",
            "throttled",
        )
        response = _json_response(throttled.body, status=throttled.status)
        response["Retry-After"] = str(wait)
        return response
    batch_sent_at = body.get("sentAt") if kind is None else None
    messages: list[Message] = []
    rejections: list[Rejection] = []
    warnings: list[dict[str, Any]] = []
    for index, raw in enumerate(raw_messages):
        parsed = parse_message(raw, kind=kind, batch_sent_at=batch_sent_at, received_at=received_at)
        if isinstance(parsed, Message):
            messages.append(parsed)
            if parsed.warnings:
                warnings.append({"index": index, "messageId": parsed.message_id, "warnings": parsed.warnings})
        else:
            rejections.append(parsed)
    result = store(Submission(write_key, messages, rejections, received_at))
    if result is None:
        unknown = _Refused(401, "Unknown write key.", "invalid_write_key")
        return _json_response(unknown.body, status=unknown.status)
    answer = result.as_dict(accepted=len(messages))
    if warnings:
        answer["warnings"] = warnings
    return _json_response(answer)


def _endpoint(kind: str | None) -> Callable[[HttpRequest], HttpResponse]:
    @csrf_exempt
    def view(request: HttpRequest) -> HttpResponse:
        return handle(request, kind, store_now)

    view.__name__ = f"ingest_{kind or 'batch'}"
    return view


batch = _endpoint(None)
track = _endpoint("track")
identify = _endpoint("identify")
page = _endpoint("page")
screen = _endpoint("screen")
group = _endpoint("group")
alias = _endpoint("alias")
