from __future__ import annotations

import base64
import gzip as gzip_module

import orjson
import pytest

from tracking.models import (
    Event,
    Group,
    Identity,
    Person,
    PersonGroup,
    ProcessedMessage,
    QuarantinedMessage,
    SuppressedId,
)

TABLES = (Person, Identity, Event, Group, PersonGroup, ProcessedMessage, QuarantinedMessage, SuppressedId)


def basic_auth(write_key: str) -> str:
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


def stored_rows() -> dict[str, int]:
    """Row counts of every tracking table, all workspaces (tests look across them on purpose)."""
    return {model.__name__: model.objects.unscoped().count() for model in TABLES}


NOTHING_STORED = {model.__name__: 0 for model in TABLES}


@pytest.fixture
def send(client):
    """POST a body to /v1/<path> the way SDKs do; returns the response."""

    def _send(path, body, *, write_key=None, gzip=False, content_type="application/json", raw=None, headers=None):
        data = raw if raw is not None else orjson.dumps(body)
        extra = dict(headers or {})
        if write_key is not None:
            extra["HTTP_AUTHORIZATION"] = basic_auth(write_key)
        if gzip:
            data = gzip_module.compress(data)
            extra["HTTP_CONTENT_ENCODING"] = "gzip"
        return client.generic("POST", f"/v1/{path}", data, content_type=content_type, **extra)

    return _send
