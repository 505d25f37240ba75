"""The ASGI entry of the tracking API (``config.asgi``), for uvicorn: ``/v1/<type>``
through the same view logic as ``tracking.ingest_wsgi``, the rest to Django.

Served by uvicorn (the httptools parser, uvloop), a tracking request costs about
half the server CPU it costs under gunicorn's threads, whose HTTP parsing and
answer writing are Python (``bench/README.md``, "Figures behind the code"). The event loop
reads the body and writes the answer; a pool of threads runs the view
(``tracking.ingest_views.handle``: limits, parsing, write key), which hands the
messages to the process's group committer and waits for COMMIT, so a 2xx still
means durable.

The body is read in the loop, keeping at most ``MAX_COMPRESSED_BYTES + 1``
bytes: the view refuses anything longer with 413 whatever the rest holds, so a
client cannot make the server hold more than that per request.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse

from tracking.group_commit import GroupCommitter
from tracking.ingest_views import MAX_COMPRESSED_BYTES
from tracking.ingest_wsgi import ENDPOINTS, answer

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]

# Requests of one process waiting for their commit at once (as gunicorn's --threads 32).
THREADS = 32
KEPT_BODY_BYTES = MAX_COMPRESSED_BYTES + 1


class IngestASGI:
    def __init__(self, django_app: ASGIApp, threads: int = THREADS) -> None:
        self.django_app = django_app
        self.committer = GroupCommitter()
        self.threads = threads
        self.pool: ThreadPoolExecutor | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http" and scope["path"] in ENDPOINTS:
            await self._ingest(scope, receive, send)
        else:
            await self.django_app(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.pool is not None:
                    self.pool.shutdown(wait=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _ingest(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _body(receive)
        request = ASGIRequest(scope, io.BytesIO(body))
        if self.pool is None:
            self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="ingest")
        loop = asyncio.get_running_loop()
        response: HttpResponse = await loop.run_in_executor(
            self.pool, answer, request, scope["path"], self.committer.submit
        )
        headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.items()]
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": response.content})


async def _body(receive: Receive) -> bytes:
    """The request body, cut at ``KEPT_BODY_BYTES`` (the view refuses a body that long)."""
    pieces: list[bytes] = []
    kept = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        if kept < KEPT_BODY_BYTES:
            chunk = chunk[: KEPT_BODY_BYTES - kept]
            pieces.append(chunk)
            kept += len(chunk)
        if not message.get("more_body", False) or kept >= KEPT_BODY_BYTES:
            break
    return b"".join(pieces)
