"""Request types that say what the tenancy middleware attached."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpRequest

if TYPE_CHECKING:
    from accounts.models import ApiKey, Membership, User, Workspace


class WorkspaceRequest(HttpRequest):
    """Any request after ``WorkspaceScopeMiddleware``: the scope it opened, if any.

    ``membership`` is the one whose role the request acts with: the signed-in
    user's, or, for a secret key, its creator's.
    """

    workspace: Workspace | None
    membership: Membership | None
    api_key: ApiKey | None


class AuthenticatedRequest(HttpRequest):
    """A request to a ``login_required`` view."""

    user: User


class MemberRequest(AuthenticatedRequest):
    """A request to a ``workspace_required`` view: a signed-in member of a workspace."""

    workspace: Workspace
    membership: Membership
