"""What websites load from us: the snippet file and its per-workspace configuration.

Both are public and cross-origin: any site may load them, without cookies.
The workspace comes from the write key in the query string, never from a
session, and its scope is opened here (an entry point).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from functools import cache

import rjsmin
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.utils.cache import patch_vary_headers
from django.views.decorators.csrf import csrf_exempt

from accounts import selectors as account_selectors
from accounts.tenancy import workspace_scope
from core.api import error_body
from tracking import selectors

SNIPPET_SOURCE = settings.BASE_DIR / "static" / "tracking" / "cohortly.js"
# What is served: the source minified by `manage.py build_snippet` (a test keeps the two in step).
SNIPPET_MINIFIED = settings.BASE_DIR / "static" / "tracking" / "cohortly.min.js"
# The stable URL is in every embed code ever pasted: short cache, so fixes reach sites within the hour.
STABLE_CACHE_CONTROL = "public, max-age=3600, stale-while-revalidate=86400"


def snippet_minify(source: str) -> str:
    """The file served from the snippet's source, with rjsmin (the minifier django-compressor uses):
    comments and the whitespace no token needs go, line breaks automatic semicolon insertion may
    rely on stay, literals pass untouched. Names are not shortened: gzip makes repeats cheap."""
    return str(rjsmin.jsmin(source)) + "\n"


# The versioned URL changes with the content: cache it for good.
VERSIONED_CACHE_CONTROL = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Snippet:
    body: bytes
    gzipped: bytes
    version: str

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


def _load_snippet() -> Snippet:
    body = SNIPPET_MINIFIED.read_bytes()
    return Snippet(body=body, gzipped=gzip.compress(body, 9, mtime=0), version=hashlib.sha256(body).hexdigest()[:12])


_cached_snippet = cache(_load_snippet)


def current_snippet() -> Snippet:
    """The snippet as served; read once per process (on every request while DEBUG, to see edits)."""
    return _load_snippet() if settings.DEBUG else _cached_snippet()


def _cors(response: HttpResponseBase) -> HttpResponseBase:
    response["Access-Control-Allow-Origin"] = "*"
    return response


def _not_modified(request: HttpRequest, etag: str) -> bool:
    return etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]


def _snippet_response(request: HttpRequest, cache_control: str) -> HttpResponseBase:
    snippet = current_snippet()
    if _not_modified(request, snippet.etag):
        response: HttpResponseBase = HttpResponse(status=304)
    else:
        wants_gzip = "gzip" in request.headers.get("Accept-Encoding", "")
        response = HttpResponse(
            snippet.gzipped if wants_gzip else snippet.body, content_type="application/javascript; charset=utf-8"
        )
        if wants_gzip:
            response["Content-Encoding"] = "gzip"
    response["ETag"] = snippet.etag
    response["Cache-Control"] = cache_control
    response["X-Content-Type-Options"] = "nosniff"
    patch_vary_headers(response, ["Accept-Encoding"])
    return _cors(response)


def snippet(request: HttpRequest) -> HttpResponseBase:
    """``/sdk/cohortly.js``, the URL the embed code loads."""
    if request.method not in ("GET", "HEAD"):
        return _method_not_allowed()
    return _snippet_response(request, STABLE_CACHE_CONTROL)


def snippet_versioned(request: HttpRequest, version: str) -> HttpResponseBase:
    """``/sdk/cohortly.<version>.js``: for sites that pin one version; other versions are gone."""
    if request.method not in ("GET", "HEAD"):
        return _method_not_allowed()
    if version != current_snippet().version:
        return _cors(JsonResponse(error_body("No such snippet version.", "not_found"), status=404))
    return _snippet_response(request, VERSIONED_CACHE_CONTROL)


def _method_not_allowed() -> HttpResponseBase:
    response = JsonResponse(error_body("Method not allowed.", "method_not_allowed"), status=405)
    response["Allow"] = "GET, HEAD, OPTIONS"
    return _cors(response)


@csrf_exempt
def snippet_config(request: HttpRequest) -> HttpResponseBase:
    """``GET /v1/config?writeKey=cly_wk_...``: the triggers the snippet applies.

    A simple cross-origin GET (no preflight); OPTIONS is answered anyway for
    clients that send one. Cacheable: ``Cache-Control: max-age`` and an ETag.
    """
    if request.method == "OPTIONS":
        response = HttpResponse(status=204)
        response["Access-Control-Allow-Methods"] = "GET, HEAD, OPTIONS"
        response["Access-Control-Allow-Headers"] = request.headers.get("Access-Control-Request-Headers", "")
        response["Access-Control-Max-Age"] = "86400"
        return _cors(response)
    if request.method not in ("GET", "HEAD"):
        return _method_not_allowed()
    write_key = request.GET.get("writeKey", "")
    workspace = account_selectors.workspace_by_write_key(write_key) if write_key else None
    if workspace is None:
        message = "Unknown write key." if write_key else "Missing writeKey query parameter."
        return _cors(JsonResponse(error_body(message, "invalid_write_key"), status=401))
    with workspace_scope(workspace):
        config = selectors.snippet_config(workspace)
    body = json.dumps(config, separators=(",", ":"), sort_keys=True).encode()
    etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"'
    if _not_modified(request, etag):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(body, content_type="application/json")
    response["ETag"] = etag
    response["Cache-Control"] = f"public, max-age={config['ttl']}"
    return _cors(response)
