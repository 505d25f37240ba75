"""Request types that say what the tenancy middleware attached, and the REST views' readers of it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpRequest
from rest_framework.exceptions import ParseError

from accounts.models import User

if TYPE_CHECKING:
    from rest_framework.request import Request

    from accounts.models import ApiKey, Membership, Workspace


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


def request_workspace(request: Request) -> Workspace:
    """The workspace a REST request acts in (the authentication opened its scope)."""
    return request._request.workspace  # type: ignore[attr-defined]


def request_actor(request: Request) -> User | None:
    """The signed-in user, or None when a key acts (the audit log then names the key)."""
    return request.user if isinstance(request.user, User) else None


def request_body_required(request: Request) -> None:
    """Refuse (400) a request that carries no body where the endpoint changes what it is sent: a
    PATCH with nothing in it is a client's mistake, not a change of nothing (``{}`` still is one)."""
    if request.stream is None:  # DRF's reading of no Content-Length, or 0
        raise ParseError("This request needs a JSON object body: the fields to change.")
