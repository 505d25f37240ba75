"""Refusals that hold for every page and endpoint, before any view runs."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from core.errors import answer

NUL = "\x00"


class RefuseNulInQueryMiddleware:
    """A query string holding a NUL character (``%00``) gets a 400 naming it.

    PostgreSQL refuses NUL in text parameters, and query parameters reach
    queries by many roads (searches, filters, cursors); refusing them here
    spares each view its own check. Bodies go through forms and serializers,
    whose text fields already refuse NUL.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        for key, values in request.GET.lists():
            if NUL in key or any(NUL in value for value in values):
                name = key.replace(NUL, "\\0")
                return answer(request, 400, f"Query parameter {name!r} must not contain the NUL character.", "invalid")
        return self.get_response(request)
