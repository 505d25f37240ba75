"""Who may do what in the REST API.

A session acts with its membership's role; a secret key with the role its
creator holds in the key's workspace at the time of the request (the
middleware looks it up each time), never more. Viewers only read; views that
set ``admin_only`` need an owner or admin to change anything. What no key may
do whatever its creator's role (touch the owner role, or its own creator) is
enforced in ``accounts.services``.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request


class WorkspaceRole(BasePermission):
    message = "Your role in this workspace does not allow this change."

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.user is None or not request.user.is_authenticated:
            return False
        if getattr(request._request, "workspace", None) is None:
            self.message = "You are not a member of any workspace."
            return False
        if request.method in SAFE_METHODS:
            return True
        membership = request._request.membership  # type: ignore[attr-defined]
        if membership is None:
            return False
        if getattr(view, "admin_only", False):
            return bool(membership.can_admin)
        return bool(membership.can_write)
