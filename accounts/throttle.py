"""Login throttling: failed attempts counted in Redis per (email, address) and per address."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

# An address may fail this many times more than one (email, address) pair,
# so a shared office NAT is not locked out by one person's typos.
ADDRESS_FACTOR = 5


def _client_address(request: HttpRequest) -> str:
    return str(request.META.get("REMOTE_ADDR", ""))


def _keys(request: HttpRequest, email: str) -> tuple[str, str]:
    address = _client_address(request)
    pair = hashlib.sha256(f"{email.strip().lower()}|{address}".encode()).hexdigest()
    return f"login-fail:pair:{pair}", f"login-fail:addr:{address}"


def login_blocked(request: HttpRequest, email: str) -> bool:
    pair_key, address_key = _keys(request, email)
    limit = settings.LOGIN_FAILURE_LIMIT
    return bool(cache.get(pair_key, 0) >= limit or cache.get(address_key, 0) >= limit * ADDRESS_FACTOR)


def login_failed(request: HttpRequest, email: str) -> None:
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    for key in _keys(request, email):
        cache.add(key, 0, timeout=window)
        cache.incr(key)


def login_succeeded(request: HttpRequest, email: str) -> None:
    cache.delete(_keys(request, email)[0])
