from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from accounts import selectors


def workspace(request: HttpRequest) -> dict[str, Any]:
    """The current workspace, membership and the switcher's list for every template."""
    current = getattr(request, "workspace", None)
    user = getattr(request, "user", None)
    if current is None or user is None or not user.is_authenticated:
        return {"workspace": None, "membership": None, "workspaces": []}
    return {
        "workspace": current,
        "membership": getattr(request, "membership", None),
        "workspaces": [m.workspace for m in selectors.memberships_for_user(user)],
    }
