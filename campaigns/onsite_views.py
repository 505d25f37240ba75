"""The snippet's on-site message endpoints, public and cross-origin like the tracking API:

- ``POST /v1/messages`` ``{"writeKey", "anonymousId", "userId"?}``: ``{"messages": [...]}``, the
  visitor's displayable messages (``campaigns.onsite``);
- ``POST /v1/messages/<send id>/<viewed|clicked|dismissed>`` (same body): ``{"recorded": bool}``.

The write key names the workspace (HTTP Basic user name, or ``writeKey`` in the body, as on
``/v1/batch``); the snippet posts ``text/plain`` so that browsers send no preflight (``OPTIONS``
is answered anyway). Requests count against the write key's rate
(``INGEST_RATE_PER_WRITE_KEY`` per second, one per request); over it, 429 with ``Retry-After``.
An unknown or secret key answers 401, a bad body 400 naming the field, all as JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from accounts import selectors as account_selectors
from accounts.keys import SECRET_KEY_PREFIX
from accounts.models import Workspace
from accounts.tenancy import workspace_scope
from campaigns import onsite
from core import ratelimit
from core.api import error_body

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 8 * 1024
MAX_ID_LENGTH = 255
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Max-Age": "86400",
    "Cache-Control": "no-store",
}


class _Refused(Exception):
    def __init__(self, status: int, detail: str, code: str, field: str | None = None, retry_after: int = 0) -> None:
        super().__init__(detail)
        self.status = status
        self.retry_after = retry_after
        self.body = error_body(detail, code, {field: [detail]} if field else None)


def _answer(body: dict[str, Any], status: int = 200) -> HttpResponse:
    response = JsonResponse(body, status=status)
    for header, value in CORS_HEADERS.items():
        response[header] = value
    return response


def _preflight(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(status=204)
    for header, value in CORS_HEADERS.items():
        response[header] = value
    response["Access-Control-Allow-Headers"] = request.headers.get(
        "Access-Control-Request-Headers", "Authorization, Content-Type"
    )
    return response


def _body(request: HttpRequest) -> dict[str, Any]:
    data = request.read(MAX_BODY_BYTES + 1)
    if len(data) > MAX_BODY_BYTES:
        raise _Refused(413, f"The body is over the limit of {MAX_BODY_BYTES // 1024} KiB.", "too_large")
    try:
        body = json.loads(data or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise _Refused(400, f"The body is not valid JSON: {error}.", "invalid_json") from error
    if not isinstance(body, dict):
        raise _Refused(400, "The body must be a JSON object.", "invalid_body")
    return body


def _write_key(request: HttpRequest, body: dict[str, Any]) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    key: Any = None
    if scheme.lower() == "basic" and credentials.strip():
        try:
            key = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            key = None
    else:
        key = body.get("writeKey")
    if not isinstance(key, str) or not key:
        raise _Refused(401, "A write key is required: HTTP Basic user name, or writeKey in the body.", "no_write_key")
    if key.startswith(SECRET_KEY_PREFIX):
        raise _Refused(401, "A secret API key is not accepted here; use the workspace's write key.", "secret_key")
    return key


def _id(body: dict[str, Any], field: str, *, required: bool) -> str | None:
    value = body.get(field)
    if value is None and not required:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise _Refused(400, f"{field} must be a non-empty string.", "invalid", field)
    if len(value) > MAX_ID_LENGTH or "\x00" in value:
        raise _Refused(400, f"{field} must be at most {MAX_ID_LENGTH} characters, without NUL.", "invalid", field)
    return value


def _throttle(write_key: str) -> None:
    limit = ratelimit.Limit(ratelimit.key("onsite", write_key), ratelimit.Rate(settings.INGEST_RATE_PER_WRITE_KEY, 1))
    try:
        wait = ratelimit.take([limit], timeout=0.25)
    except redis.RedisError:
        # As ingestion: the limit guards capacity; with Redis down the request is admitted.
        logger.warning("on-site messages: rate limit unavailable; admitted")
        return
    if wait:
        raise _Refused(
            429,
            f"Over the limit of {settings.INGEST_RATE_PER_WRITE_KEY} requests per second for this write key. "
            f"Retry after {wait} s.",
            "throttled",
            retry_after=wait,
        )


def _visitor(request: HttpRequest) -> tuple[Workspace, dict[str, Any]]:
    body = _body(request)
    write_key = _write_key(request, body)
    _throttle(write_key)
    anonymous_id = _id(body, "anonymousId", required=True)
    _id(body, "userId", required=False)
    assert anonymous_id is not None
    workspace = account_selectors.workspace_by_write_key(write_key) if "\x00" not in write_key else None
    if workspace is None:
        raise _Refused(401, "Unknown write key.", "invalid_write_key")
    return workspace, body


def _handled(request: HttpRequest, action: Callable[[Workspace, int | None], HttpResponse]) -> HttpResponse:
    if request.method == "OPTIONS":
        return _preflight(request)
    if request.method != "POST":
        response = _answer(error_body("Use POST.", "method_not_allowed"), status=405)
        response["Allow"] = "POST, OPTIONS"
        return response
    try:
        workspace, body = _visitor(request)
        # Entry point: the write key names the workspace.
        with workspace_scope(workspace):
            person_id = onsite.visitor_person(
                workspace, anonymous_id=str(body["anonymousId"]), user_id=_id(body, "userId", required=False)
            )
            return action(workspace, person_id)
    except _Refused as refused:
        response = _answer(refused.body, status=refused.status)
        if refused.retry_after:
            response["Retry-After"] = str(refused.retry_after)
        return response


@csrf_exempt
def messages(request: HttpRequest) -> HttpResponse:
    """``POST /v1/messages``: the visitor's on-site messages to show."""

    def listed(workspace: Workspace, person_id: int | None) -> HttpResponse:
        found = [] if person_id is None else onsite.onsite_messages(workspace, person_id=person_id)
        return _answer({"messages": [message.as_dict() for message in found]})

    return _handled(request, listed)


@csrf_exempt
def message_event(request: HttpRequest, send_id: int, action: str) -> HttpResponse:
    """``POST /v1/messages/<send id>/<viewed|clicked|dismissed>``: what the visitor did with a message."""
    if action not in onsite.ACTIONS and request.method != "OPTIONS":
        return _answer(error_body(f"Unknown action {action!r}: viewed, clicked or dismissed.", "not_found"), 404)

    def recorded(workspace: Workspace, person_id: int | None) -> HttpResponse:
        send = None if person_id is None else onsite.visitor_send(workspace, person_id=person_id, send_id=send_id)
        if send is None:
            return _answer(error_body("No such message for this visitor.", "not_found"), status=404)
        return _answer({"recorded": onsite.send_displayed(workspace=workspace, send=send, action=action)})

    return _handled(request, recorded)
