"""The web and REST entry point of tenancy: find the workspace, open its scope.

A request carrying ``Authorization: Bearer`` on ``/api/`` is scoped to the
key's workspace and acts with the role its creator holds there now (a key
whose creator is no longer a member opens no scope, and the API refuses it); a
signed-in session to the workspace chosen in the switcher (or the user's
first). Everything downstream runs inside ``workspace_scope`` (and, for a key,
``api_key_acting``), which are reset when the response is built.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from accounts import selectors, services
from accounts.principal import api_key_acting
from accounts.requests import WorkspaceRequest
from accounts.tenancy import workspace_scope

SESSION_WORKSPACE_KEY = "workspace_id"
# Endpoints authenticated by the public write key (tracking, snippet, its config).
PUBLIC_PREFIXES = ("/v1/", "/sdk/")


def bearer_token(request: HttpRequest) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class WorkspaceScopeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: WorkspaceRequest) -> HttpResponse:
        request.workspace = None
        request.membership = None
        request.api_key = None

        if request.path.startswith(PUBLIC_PREFIXES):
            # Write-key endpoints open their own scope; reading the session here
            # would only add "Vary: Cookie" to answers that shared caches should keep.
            return self.get_response(request)

        token = bearer_token(request) if request.path.startswith("/api/") else None
        if token is not None:
            key = selectors.api_key_by_secret(token)
            if key is not None:
                request.api_key = key
                creator = selectors.api_key_creator_membership(key)
                if creator is not None:
                    services.api_key_touch(key=key)
                    request.membership = creator
                    request.workspace = key.workspace
        elif request.user.is_authenticated:
            membership = selectors.membership_for(request.user, request.session.get(SESSION_WORKSPACE_KEY))
            if membership is not None:
                request.membership = membership
                request.workspace = membership.workspace

        if request.workspace is None:
            return self.get_response(request)
        with workspace_scope(request.workspace), api_key_acting(request.api_key):
            return self.get_response(request)
