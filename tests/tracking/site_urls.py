"""URLs of the browser tests: the app, plus a customer's site embedding the snippet.

``/_site/<page>?key=...&host=...&options=...`` answers an HTML page with the
real embed code (``tracking.embed.embed_code``); ``preload=1`` adds calls made
before the library loads. ``/_site/away`` is a page without the snippet;
``/_site/spa/<page>`` a single-page app whose router sets each page's title
after changing the URL.
"""

from __future__ import annotations

import json

from csp.decorators import csp_exempt
from django.http import HttpRequest, HttpResponse
from django.urls import path

from config.urls import handler400, handler403, handler404, handler500
from config.urls import urlpatterns as app_urlpatterns
from tracking.embed import embed_code

PRELOAD = """<script>
cohortly.identify("user-7", {plan: "pro"});
cohortly.track("Stub Queued", {n: 1});
cohortly.ready(function () { window.readyCalls = (window.readyCalls || 0) + 1; });
</script>"""

# A single-page app's router, as frameworks do it: the URL changes first, the new page renders and
# sets its title a little later (here 30 ms, a frame or two), on Back too; a page's code tracks on
# mount. The cart link sets its title before changing the URL, as some routers do.
SPA_ROUTER = """<script>
function render() {
  var page = location.pathname.split("/").pop();
  setTimeout(function () {
    document.title = "Test shop · " + page;
    if (page === "checkout") cohortly.track("Checkout Started");
  }, 30);
}
function go(path) { history.pushState({}, "", path); render(); }
addEventListener("popstate", render);
addEventListener("DOMContentLoaded", function () {
  document.getElementById("to-checkout").onclick = function () { go("/_site/spa/checkout" + location.search); };
  document.getElementById("to-cart").onclick = function () {
    document.title = "Test shop · cart";
    history.pushState({}, "", "/_site/spa/cart" + location.search);
  };
});
</script>"""


# A customer's page, with inline scripts and styles: not under the app's own Content-Security-Policy.
@csp_exempt()
def site_page(request: HttpRequest, page: str) -> HttpResponse:
    if page == "away":
        return HttpResponse("<!doctype html><title>Away</title><p>No snippet here.</p>")
    snippet = embed_code(
        write_key=request.GET["key"], host=request.GET["host"], options=json.loads(request.GET.get("options", "{}"))
    )
    preload = PRELOAD if request.GET.get("preload") else ""
    if page.startswith("spa/"):
        return HttpResponse(
            f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Test shop · {page.rsplit("/", 1)[1]}</title>
{snippet}
{SPA_ROUTER}
</head>
<body><button id="to-checkout">Checkout</button><button id="to-cart">Cart</button></body></html>"""
        )
    return HttpResponse(
        f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Shop {page}</title>
{snippet}
{preload}
</head>
<body style="margin:0">
<button id="buy" onclick="cohortly.track('Buy Clicked', {{sku: 'A1'}})">Buy</button>
<div id="product-image" style="width:200px;height:80px;background:#ccc"><span id="inner">Product</span></div>
<button id="spa" onclick="history.pushState({{}}, '', '/_site/shop/next')">Next</button>
<button id="same" onclick="history.replaceState({{step: 2}}, '', location.href)">Same URL</button>
<div style="height:6000px"></div>
</body></html>"""
    )


urlpatterns = [*app_urlpatterns, path("_site/<path:page>", site_page)]

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]
