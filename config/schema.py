"""The OpenAPI schema: every operation documents its error answers, once, here.

drf-spectacular documents what a view returns when all goes well. The error
answers come from the REST base (``core.api``) and are the same everywhere,
so they are added to every operation by rule rather than by decorating views:

- 400 when the operation reads a body or query parameters, 415 when it reads a body;
- 401 and 403 when it needs credentials (every operation of /api/v1/);
- 404 when its path names an object, or it pages by number (a page past the last);
- 429 everywhere: requests may be throttled.

Request bodies also say what DRF refuses: a ``StrictSerializer`` takes no
unknown field, and a text field that may not be blank needs a character that
is not white space (DRF trims it first).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular import openapi
from drf_spectacular.plumbing import ComponentRegistry
from rest_framework import serializers

from core.api import ErrorSerializer, Pagination, StrictSerializer

ERROR_DESCRIPTIONS = {
    "400": "Invalid input: a field of the body or a query parameter; errors names each one.",
    "401": "No credentials, or a key that is unknown, revoked, or a write key.",
    "403": "The role of the signed-in member does not allow this, or the CSRF check of a session failed.",
    "404": "No such object in this workspace (another workspace's objects answer the same).",
    "415": "A body that is not application/json.",
    "429": "Too many requests: wait and retry.",
}


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema with the error answers of ``core.api`` on every operation."""

    def get_operation(
        self, path: str, path_regex: str, path_prefix: str, method: str, registry: ComponentRegistry
    ) -> dict[str, Any] | None:
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        locations = {parameter["in"] for parameter in operation.get("parameters", [])}
        codes = {"429"}
        if "requestBody" in operation:
            codes.update(("400", "415"))
        if "query" in locations:
            codes.add("400")
        security = operation.get("security", [])
        if security and {} not in security:
            codes.update(("401", "403"))
        if "path" in locations or self._pages_by_number():
            codes.add("404")
        responses = operation["responses"]
        for code in sorted(codes):
            if code not in responses:
                responses[code] = {"description": ERROR_DESCRIPTIONS[code]}
        for code, response in responses.items():
            if code.startswith(("4", "5")) and not response.get("content"):
                # An error answer always has the one error body, whatever the view declared.
                body = self._get_response_for_code(ErrorSerializer, code, media_types=["application/json"])
                response["content"] = body["content"]
        return operation

    def _map_basic_serializer(self, serializer: Any, direction: str) -> dict[str, Any]:
        schema: dict[str, Any] = super()._map_basic_serializer(serializer, direction)
        if isinstance(serializer, StrictSerializer):
            schema["additionalProperties"] = False
        return schema

    def _map_serializer_field(self, field: Any, direction: str, bypass_extensions: bool = False) -> dict[str, Any]:
        schema: dict[str, Any] = super()._map_serializer_field(field, direction, bypass_extensions)
        if (
            direction == "request"
            and isinstance(field, serializers.CharField)
            and not field.allow_blank
            and schema.get("type") == "string"
        ):
            schema.setdefault("minLength", 1)
            if field.trim_whitespace:
                schema.setdefault("pattern", r"\S")
        return schema

    def _pages_by_number(self) -> bool:
        return self._is_list_view() and isinstance(self._get_paginator(), Pagination)


def exclude_format_suffixes(endpoints: list[tuple[str, str, str, Any]]) -> list[tuple[str, str, str, Any]]:
    """Leave out a router's ``.json``-style twins of its paths: JSON is the only format."""
    return [endpoint for endpoint in endpoints if not endpoint[0].endswith("{format}")]
