"""Show a just-created secret once, on the page the form redirects to.

Post/redirect/get keeps a reload from creating a second key or invitation.
The secret rides to the next page in a short-lived signed cookie scoped to
that page's path, never in the session table, and is deleted as it is shown.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse

COOKIE = "cly_reveal"
MAX_AGE_SECONDS = 120


def reveal_on_next_page(response: HttpResponse, *, path: str, secret: str) -> HttpResponse:
    response.set_signed_cookie(
        COOKIE,
        secret,
        salt=path,
        max_age=MAX_AGE_SECONDS,
        path=path,
        httponly=True,
        samesite="Strict",
        secure=settings.SESSION_COOKIE_SECURE,
    )
    return response


def take_revealed(request: HttpRequest, *, path: str) -> str | None:
    value = request.get_signed_cookie(COOKIE, default=None, salt=path, max_age=MAX_AGE_SECONDS)
    return str(value) if value else None


def forget_revealed(response: HttpResponse, *, path: str) -> HttpResponse:
    response.delete_cookie(COOKIE, path=path, samesite="Strict")
    return response
