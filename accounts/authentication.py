"""REST authentication by secret API key (``Authorization: Bearer cly_sk_...``).

The middleware has already resolved the key, looked up the membership of the
member who created it and opened the workspace scope; this class turns its
verdict into DRF's ``request.user`` / ``request.auth`` or a 401 that says what
was wrong. A key acts with its creator's current role (``accounts.permissions``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from accounts import selectors
from accounts.middleware import bearer_token
from accounts.models import ApiKey
from core import ratelimit
from core.client_address import client_address, throttle_subject

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
        _count_failure(request)
        if selectors.is_write_key(token):
            raise exceptions.AuthenticationFailed(
                "This is a public write key: it only sends events to /v1/. The REST API needs a secret API key."
            )
        raise exceptions.AuthenticationFailed("Invalid or revoked API key.")

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


def _count_failure(request: Request) -> None:
    """A failed bearer authentication from this address; over ``API_AUTH_FAILURE_RATE``: 429."""
    address = throttle_subject(client_address(request._request))
    limit = ratelimit.Limit(
        ratelimit.key("api", "auth-failure", address), ratelimit.rate(settings.API_AUTH_FAILURE_RATE)
    )
    wait = ratelimit.take([limit])
    if wait:
        raise exceptions.Throttled(wait, "Too many failed API key authentications from this address.")


class ApiKeyRateThrottle(BaseThrottle):
    """Requests per secret API key (``API_KEY_RATE``), counted in one Redis round trip.

    DRF's ``SimpleRateThrottle`` keeps a list of timestamps that each request reads
    and writes back, which loses counts under concurrency; this fixed window is
    one atomic script. Requests of a signed-in session are not limited here.
    """

    def __init__(self) -> None:
        self._wait = 0

    def allow_request(self, request: Request, view: Any) -> bool:
        if not isinstance(request.auth, ApiKey):
            return True
        limit = ratelimit.Limit(
            ratelimit.key("api", "key", str(request.auth.pk)), ratelimit.rate(settings.API_KEY_RATE)
        )
        self._wait = ratelimit.take([limit])
        return self._wait == 0

    def wait(self) -> float | None:
        return self._wait or None


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Documents the bearer scheme in the OpenAPI schema."""

    target_class = ApiKeyAuthentication
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "A secret API key: cly_sk_..."}
