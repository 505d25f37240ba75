"""The production WSGI entry: ``/v1/<type>`` straight to the ingest endpoint, the rest to Django.

The tracking endpoints need none of the site's middleware (sessions, CSRF,
auth, messages, the workspace-scope middleware: the write key names the
workspace, and ``tracking.ingest`` opens its scope) nor URL resolution. This
dispatcher gives the seven endpoint paths the same view logic
(``tracking.ingest_views.handle``) with a group-committing store
(``tracking.group_commit``), and hands every other path, ``/v1/config``
included, to Django's own handler. ``tracking.ingest_asgi`` does the same
under an ASGI server.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from django.core.handlers.wsgi import WSGIRequest
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse

from core.api import error_body
from tracking.group_commit import GroupCommitter
from tracking.ingest_views import Store, handle

logger = logging.getLogger("django.request")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

ENDPOINTS: dict[str, str | None] = {
    "/v1/batch": None,
    "/v1/track": "track",
    "/v1/identify": "identify",
    "/v1/page": "page",
    "/v1/screen": "screen",
    "/v1/group": "group",
    "/v1/alias": "alias",
}


def answer(request: HttpRequest, path: str, store: Store) -> HttpResponse:
    """The endpoint of ``path`` (one of ``ENDPOINTS``); an unexpected error is a logged JSON 500."""
    try:
        return handle(request, ENDPOINTS[path], store)
    except Exception:
        # Same wording as Django's handler, so that logs and alerts treat it alike.
        logger.exception("Internal Server Error: %s", path)
        return HttpResponse(
            orjson.dumps(error_body("Something went wrong on our side.", "server_error")),
            status=500,
            content_type="application/json",
        )
    finally:
        # The request threads touch no database connection; this is only the usual hygiene.
        close_old_connections()


class IngestDispatcher:
    def __init__(self, django_app: WSGIApp) -> None:
        self.django_app = django_app
        self.committer = GroupCommitter()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path not in ENDPOINTS:
            return self.django_app(environ, start_response)
        response = answer(WSGIRequest(environ), path, self.committer.submit)
        start_response(f"{response.status_code} {response.reason_phrase}", list(response.items()))
        return [response.content]
