"""A ``DATABASE_URL`` for child processes (workers, servers) from Django's settings."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote


def database_url(db: dict[str, Any]) -> str:
    """The URL django-environ reads back to the same settings, unix sockets included."""
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = db.get("HOST") or ""
    name = quote(db["NAME"], safe="")
    if host.startswith("/"):
        return f"postgres://{auth}/{name}?host={quote(host, safe='/')}"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{name}"
