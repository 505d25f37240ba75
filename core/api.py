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
from rest_framework import exceptions, pagination, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

MAX_PAGE_SIZE = 500


def _whole_number_param(request: Request, name: str, *, maximum: int | None = None) -> int | None:
    """A query parameter that must be a whole number from 1 (to ``maximum``), or absent.

    DRF's paginators fall back to the default on ``page_size=0`` or ``page_size=abc`` and cut
    ``page_size=10000`` down silently; a script then reads a page it did not ask for.
    """
    raw = request.query_params.get(name)
    if raw is None:
        return None
    upper = f" to {maximum}" if maximum is not None else ""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18 or int(raw) < 1:
        raise serializers.ValidationError({name: [f"A whole number from 1{upper}, not {raw!r}."]})
    value = int(raw)
    if maximum is not None and value > maximum:
        raise serializers.ValidationError({name: [f"At most {maximum}, not {value}."]})
    return value


def _page_size_parameter(default: int) -> dict[str, Any]:
    return {
        "name": "page_size",
        "required": False,
        "in": "query",
        "description": f"Results per page, 1 to {MAX_PAGE_SIZE} (default {default}).",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
    }


class Pagination(pagination.PageNumberPagination):
    """Page numbers from 1; ``page`` and ``page_size`` out of range are a 400 naming them.

    A page past the last one is a 404, as in DRF.
    """

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def get_page_size(self, request: Request) -> int:
        return _whole_number_param(request, "page_size", maximum=self.max_page_size) or self.page_size

    def get_page_number(self, request: Request, paginator: Any) -> int | str:
        number = _whole_number_param(request, self.page_query_param)
        return number if number is not None else 1

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": self.page_query_param,
                "required": False,
                "in": "query",
                "description": "A page number from 1; a page past the last one answers 404.",
                "schema": {"type": "integer", "minimum": 1},
            },
            _page_size_parameter(self.page_size),
        ]


class CursorPagination(pagination.CursorPagination):
    """Cursor pages; a ``cursor`` that was not handed out, or a ``page_size`` out of range, is a 400 naming it."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def get_page_size(self, request: Request) -> int:
        return _whole_number_param(request, "page_size", maximum=self.max_page_size) or self.page_size

    def decode_cursor(self, request: Request) -> Any:
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound:
            raise serializers.ValidationError(
                {self.cursor_query_param: ["Not a cursor of this list: use the next or previous link."]}
            ) from None

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "The position: take it from a page's next or previous link.",
                "schema": {"type": "string"},
            },
            _page_size_parameter(self.page_size),
        ]


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
    """Input that means what it says: unknown fields, numbers-for-strings and booleans-for-numbers
    are refused, not silently dropped or coerced (DRF reads ``false`` as 0)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            errors: dict[str, list[str]] = {name: ["Unknown field."] for name in sorted(set(data) - set(self.fields))}
            for name, field in self.fields.items():
                if isinstance(field, serializers.CharField | serializers.ChoiceField) and name in data:
                    value = data[name]
                    if value is not None and not isinstance(value, str):
                        errors[name] = [f"Expected a string, got {type(value).__name__}."]
                numeric = serializers.IntegerField | serializers.FloatField | serializers.DecimalField
                if isinstance(field, numeric) and isinstance(data.get(name), bool):
                    errors[name] = ["Expected a number, got a boolean."]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class ErrorSerializer(serializers.Serializer[Any]):
    """Every error answer of the API (documented once, in the schema)."""

    detail = serializers.CharField(help_text="A human-readable message.")
    code = serializers.CharField(help_text="A machine-readable code: invalid, not_found, throttled, ...")
    # Named like Serializer.errors, harmlessly: DRF's metaclass moves declared fields out of the class.
    errors = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Only for invalid input: messages by field or definition path (definition.conditions[1].key).",
    )


def not_found_response() -> Response:
    return Response(error_body("Not found.", "not_found"), status=status.HTTP_404_NOT_FOUND)
