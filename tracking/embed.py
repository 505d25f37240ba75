"""The embed code a site pastes into its pages (like analytics.js's snippet).

It defines ``window.cohortly`` as a stub that queues calls, then loads
``/sdk/cohortly.js`` asynchronously; the library replays the queue in order.
"""

from __future__ import annotations

import json
from typing import Any

STUB_METHODS = ("identify", "track", "page", "alias", "group", "reset", "ready", "optOut", "optIn", "flush")


def _js(value: Any) -> str:
    """A JSON literal that is safe inside an HTML <script> element."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def embed_code(*, write_key: str, host: str, options: dict[str, Any] | None = None) -> str:
    """The ``<script>`` element for ``write_key``, loading the snippet from ``host`` (no trailing slash)."""
    methods = " ".join(STUB_METHODS)
    return (
        "<script>\n"
        "!function(w,d){var c=w.cohortly=w.cohortly||[];if(c.invoked)return;c.invoked=1;\n"
        f'"{methods}".split(" ").forEach(function(m){{c[m]=function(){{'
        "c.push([m].concat([].slice.call(arguments)));return c}});\n"
        f"c.writeKey={_js(write_key)};c.host={_js(host)};c.options={_js(options or {})};\n"
        'var s=d.createElement("script");s.async=1;s.src=c.host+"/sdk/cohortly.js";d.head.appendChild(s)'
        "}(window,document);\n"
        "</script>"
    )
