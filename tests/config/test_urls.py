"""The API's own documentation: /api/schema/ and /api/docs/."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import yaml
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from tests import factories
from tracking import ingest_urls


def _api_v1_paths() -> set[str]:
    """Every path under /api/v1/ in OpenAPI spelling (drf-spectacular names a pk "id"), from the URL resolver."""
    found: set[str] = set()

    def walk(resolver: URLResolver, prefix: str) -> None:
        for entry in resolver.url_patterns:
            if isinstance(entry, URLResolver):
                walk(entry, prefix + str(entry.pattern))
            elif isinstance(entry, URLPattern):
                route = prefix + str(entry.pattern)
                if route.startswith("api/v1/"):
                    found.add("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route).replace("{pk}", "{id}"))

    walk(get_resolver(), "")
    return found


def test_schema_is_openapi_3_with_the_bearer_scheme_and_every_endpoint(db):
    response = Client().get("/api/schema/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "Cohortly API"
    schemes = schema["components"]["securitySchemes"]
    assert schemes["apiKey"]["type"] == "http"
    assert schemes["apiKey"]["scheme"] == "bearer"
    routes = _api_v1_paths() | {f"/v1/{entry.pattern}" for entry in ingest_urls.urlpatterns}
    # A router's ".json" twins of its paths still answer, but are not documented twice.
    expected = {route for route in routes if not route.endswith("{format}")}
    assert {"/api/v1/api-keys/{id}/", "/v1/batch", "/v1/track", "/v1/alias"} <= expected
    assert set(schema["paths"]) == expected
    create_key = schema["paths"]["/api/v1/api-keys/"]["post"]
    assert {"apiKey": []} in create_key["security"]


def test_schema_json_is_served_too(db):
    response = Client().get("/api/schema/?format=json")

    assert response.status_code == 200
    assert response.json()["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)


def test_docs_page_uses_only_local_static_assets(workspace):
    client = Client()
    _, secret = factories.api_key(workspace)

    for headers in ({}, {"Authorization": f"Bearer {secret}"}):
        response = client.get("/api/docs/", headers=headers)
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/html")
        html = response.content.decode()
        parser = _Assets()
        parser.feed(html)

        assert parser.urls, "the docs page loads its scripts and styles"
        # Swagger UI's start-up script comes from the page's own URL (no inline script).
        assert parser.urls[-1] == "/api/docs/?script="
        for url in parser.urls[:-1]:
            assert url.startswith("/static/"), url
            assert client.get(url).status_code == 200, url
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
        script = client.get(parser.urls[-1], headers=headers)
        assert script.status_code == 200
        assert script["Content-Type"].startswith("application/javascript")
        assert 'url: "/api/schema/"' in script.content.decode()
