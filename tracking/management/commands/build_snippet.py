"""Rebuild static/tracking/cohortly.min.js (the file served as /sdk/cohortly.js) from its source."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from tracking.snippet import SNIPPET_MINIFIED, SNIPPET_SOURCE, snippet_minify


class Command(BaseCommand):
    help = "Minify static/tracking/cohortly.js into cohortly.min.js (commit both)."

    def handle(self, *args: Any, **options: Any) -> None:
        minified = snippet_minify(SNIPPET_SOURCE.read_text())
        SNIPPET_MINIFIED.write_text(minified)
        self.stdout.write(f"{SNIPPET_MINIFIED.name}: {len(minified.encode())} bytes")
