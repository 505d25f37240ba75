"""The guard of every workspace page, for the HTML views of every app."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBase
from django.shortcuts import redirect

from accounts.models import Membership

View = Callable[..., HttpResponseBase]


def workspace_required(*, write: str | None = None) -> Callable[[View], View]:
    """Signed in, in a workspace; ``write="member"|"admin"`` guards POSTs by role.

    The guard is enforced here, not only by hiding buttons: a viewer's POST is a 403.
    """

    def decorator(view: View) -> View:
        @login_required
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            membership: Membership | None = request.membership  # type: ignore[attr-defined]
            if membership is None:
                return redirect("workspace_new")
            if request.method == "POST" and write is not None:
                allowed = membership.can_admin if write == "admin" else membership.can_write
                if not allowed:
                    raise PermissionDenied("Your role in this workspace does not allow this change.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
