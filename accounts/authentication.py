"""REST authentication by secret API key (``Authorization: Bearer cly_sk_...``).

The middleware has already resolved the key, looked up the membership of the
member who created it and opened the workspace scope; this class turns its
verdict into DRF's ``request.user`` / ``request.auth`` or a 401 that says what
was wrong. A key acts with its creator's current role (``accounts.permissions``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from accounts import selectors
from accounts.middleware import bearer_token
from accounts.models import ApiKey

ORPHAN_KEY_MESSAGE = (
    "This API key no longer works: the member who created it is no longer in this workspace. "
    "Ask an admin for a new key."
)


@dataclass(frozen=True)
class ApiKeyPrincipal:
    """Who acts when a request is authenticated by a key: the key, with its creator's role."""

    key: ApiKey
    is_authenticated: bool = True
    is_anonymous: bool = False

    def __str__(self) -> str:
        return f"API key {self.key.name}"


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ApiKeyPrincipal, ApiKey] | None:
        token = bearer_token(request._request)
        if token is None:
            return None
        key: ApiKey | None = getattr(request._request, "api_key", None)
        if key is not None:
            if getattr(request._request, "membership", None) is None:
                raise exceptions.AuthenticationFailed(ORPHAN_KEY_MESSAGE)
            return ApiKeyPrincipal(key), key
        if selectors.is_write_key(token):
            raise exceptions.AuthenticationFailed(
                "This is a public write key: it only sends events to /v1/. The REST API needs a secret API key."
            )
        raise exceptions.AuthenticationFailed("Invalid or revoked API key.")

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Documents the bearer scheme in the OpenAPI schema."""

    target_class = ApiKeyAuthentication
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "A secret API key: cly_sk_..."}
