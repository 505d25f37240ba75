"""The REST base: one JSON error shape, pagination, strict serializers.

Every error answer is ``{"detail": <human message>, "code": <machine code>}``,
plus ``"errors": {<field or definition path>: [<message>, ...]}`` when input
was invalid. 404, 405 and 500 from outside DRF use the same shape
(``core.errors``).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


def error_body(detail: str, code: str, errors: dict[str, list[str]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"detail": detail, "code": code}
    if errors:
        body["errors"] = errors
    return body


def _flatten(data: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error dict as ``{"a.b[2].c": [messages]}``."""
    flat: dict[str, list[str]] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(key, int):  # DRF reports list items' errors as {index: errors}
                flat.update(_flatten(value, f"{prefix}[{key}]"))
                continue
            name = "" if key in ("non_field_errors", "__all__") else str(key)
            path = f"{prefix}.{name}" if prefix and name else (prefix or name)
            flat.update(_flatten(value, path))
    elif isinstance(data, list) and data and all(isinstance(item, str) for item in data):
        flat.setdefault(prefix, []).extend(str(item) for item in data)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            if value:
                flat.update(_flatten(value, f"{prefix}[{index}]"))
    else:
        flat.setdefault(prefix, []).append(str(data))
    return flat


def _summary(errors: dict[str, list[str]]) -> str:
    return "; ".join(f"{path}: {' '.join(msgs)}" if path else " ".join(msgs) for path, msgs in errors.items())


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DjangoValidationError):
        exc = serializers.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a real 500: core.errors.server_error answers it in JSON
    if isinstance(exc, serializers.ValidationError):
        errors = _flatten(exc.detail)
        response.data = error_body(f"Invalid input. {_summary(errors)}", "invalid", errors)
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail
        message = str(detail) if not isinstance(detail, (list, dict)) else _summary(_flatten(detail))
        codes = exc.get_codes()
        response.data = error_body(message, codes if isinstance(codes, str) else exc.default_code)
    return response


class StrictSerializer(serializers.Serializer[Any]):
    """Input that means what it says: unknown fields and numbers-for-strings are refused,
    not silently dropped or coerced."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            errors: dict[str, list[str]] = {name: ["Unknown field."] for name in sorted(set(data) - set(self.fields))}
            for name, field in self.fields.items():
                if isinstance(field, serializers.CharField | serializers.ChoiceField) and name in data:
                    value = data[name]
                    if value is not None and not isinstance(value, str):
                        errors[name] = [f"Expected a string, got {type(value).__name__}."]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


def not_found_response() -> Response:
    return Response(error_body("Not found.", "not_found"), status=status.HTTP_404_NOT_FOUND)
