"""Error pages: JSON under /api/ and /v1/, HTML elsewhere. Never a stack trace."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string

from core.api import error_body

_MACHINE_PREFIXES = ("/api/", "/v1/")


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith(_MACHINE_PREFIXES)


def answer(request: HttpRequest, status: int, message: str, code: str) -> HttpResponse:
    """An error answer: JSON for machines (/api/, /v1/), the error page for people."""
    if _wants_json(request):
        return JsonResponse(error_body(message, code), status=status)
    return render(request, "error.html", {"status": status, "message": message}, status=status)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return answer(request, 400, "Bad request.", "bad_request")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    message = str(exception) if exception and str(exception) else "You do not have permission to do this."
    return answer(request, 403, message, "permission_denied")


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return answer(request, 404, "Not found.", "not_found")


def server_error(request: HttpRequest) -> HttpResponse:
    message = "Something went wrong on our side. It has been logged."
    if _wants_json(request):
        return JsonResponse(error_body(message, "server_error"), status=500)
    # No request context: the failure may be the database the context processors need.
    return HttpResponse(render_to_string("error.html", {"status": 500, "message": message}), status=500)


def csrf_failure(request: HttpRequest, reason: str = "", **kwargs: Any) -> HttpResponse:
    return answer(request, 403, "CSRF check failed: reload the page and try again.", "csrf_failed")
