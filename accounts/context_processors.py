from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from accounts import selectors
from accounts.models import User


def workspace(request: HttpRequest) -> dict[str, Any]:
    """The current workspace, membership and the switcher's list for every template."""
    current = getattr(request, "workspace", None)
    user = getattr(request, "user", None)
    # A page rendered for an API key (DRF's renderers set request.user to the key's principal) has no switcher.
    if current is None or not isinstance(user, User) or not user.is_authenticated:
        return {"workspace": None, "membership": None, "workspaces": []}
    return {
        "workspace": current,
        "membership": getattr(request, "membership", None),
        "workspaces": [m.workspace for m in selectors.memberships_for_user(user)],
    }
