"""Which secret API key acts in the current request, if any.

Opened at the REST entry point (``WorkspaceScopeMiddleware``) next to the
workspace scope, and always reset. Services read it rather than take it as an
argument so that the rules for keys hold whichever view calls them: a key
cannot grant the owner role, touch the member who created it, or go unnamed in
the audit log because a caller forgot to pass it along.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from accounts.models import ApiKey

_acting_api_key: ContextVar[ApiKey | None] = ContextVar("acting_api_key", default=None)


@contextmanager
def api_key_acting(key: ApiKey | None) -> Iterator[None]:
    """Run the block as ``key`` (or as no key); always resets after."""
    token = _acting_api_key.set(key)
    try:
        yield
    finally:
        _acting_api_key.reset(token)


def acting_api_key() -> ApiKey | None:
    return _acting_api_key.get()
