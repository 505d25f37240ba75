"""The JS snippet: the file and configuration the server serves, and what it does in a real browser.

The browser tests load a customer's page (``tests/tracking/site_urls.py``,
served from ``127.0.0.1``) that embeds the snippet from the app at
``localhost``: a cross-origin setup like a real site. Events go through the
real ``POST /v1/batch`` and are counted in the real events table.
"""

from __future__ import annotations

import gzip
import json
import time
from collections import Counter
from urllib.parse import urlencode

import pytest

from accounts.tenancy import workspace_scope
from tests import factories
from tracking import services
from tracking.embed import embed_code
from tracking.models import Event, Identity, Person, PersonGroup
from tracking.snippet import SNIPPET_MINIFIED

SNIPPET_GZIP_BUDGET = 6 * 1024


def test_served_snippet_is_at_most_6_kb_gzipped(client):
    response = client.get("/sdk/cohortly.js")

    assert response.status_code == 200
    served = response.content
    assert served == SNIPPET_MINIFIED.read_bytes()
    size = len(gzip.compress(served, compresslevel=9))
    assert size <= SNIPPET_GZIP_BUDGET, f"cohortly.js is {size} bytes gzipped, over the {SNIPPET_GZIP_BUDGET} budget"


def test_snippet_is_served_gzipped_cached_and_cross_origin(client):
    plain = client.get("/sdk/cohortly.js")
    zipped = client.get("/sdk/cohortly.js", HTTP_ACCEPT_ENCODING="gzip, deflate, br")

    assert plain["Content-Type"] == "application/javascript; charset=utf-8"
    assert plain["Cache-Control"] == "public, max-age=3600, stale-while-revalidate=86400"
    assert plain["Access-Control-Allow-Origin"] == "*"
    assert "Accept-Encoding" in plain["Vary"]
    assert "Content-Encoding" not in plain
    assert zipped["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.content) == plain.content
    assert len(zipped.content) <= SNIPPET_GZIP_BUDGET

    revalidated = client.get("/sdk/cohortly.js", HTTP_IF_NONE_MATCH=plain["ETag"])
    assert revalidated.status_code == 304
    assert revalidated.content == b""


def test_versioned_snippet_is_immutable_and_only_the_current_version_exists(client):
    etag = client.get("/sdk/cohortly.js")["ETag"].strip('"')

    pinned = client.get(f"/sdk/cohortly.{etag}.js")
    assert pinned.status_code == 200
    assert pinned["Cache-Control"] == "public, max-age=31536000, immutable"
    assert pinned.content == SNIPPET_MINIFIED.read_bytes()

    gone = client.get("/sdk/cohortly.0123456789ab.js")
    assert gone.status_code == 404
    assert json.loads(gone.content) == {"detail": "No such snippet version.", "code": "not_found"}


def test_embed_code_is_a_stub_that_queues_calls_and_loads_the_snippet():
    code = embed_code(write_key="cly_wk_abc", host="https://cohortly.example", options={"honorDNT": True})
    assert code.startswith("<script>\n")
    assert code.endswith("\n</script>")
    assert '"identify track page alias group reset ready optOut optIn flush".split(" ")' in code
    assert 'c.writeKey="cly_wk_abc";c.host="https://cohortly.example";c.options={"honorDNT":true};' in code
    assert 's.src=c.host+"/sdk/cohortly.js"' in code


def test_embed_code_cannot_break_out_of_its_script_element():
    code = embed_code(write_key="</script><script>alert(1)</script>", host="https://x.example")
    assert code.count("</script>") == 1
    assert 'c.writeKey="\\u003c/script\\u003e\\u003cscript\\u003ealert(1)\\u003c/script\\u003e"' in code


# --- GET /v1/config ---------------------------------------------------------


@pytest.fixture
def triggers(workspace):
    with workspace_scope(workspace):
        services.trigger_create(workspace=workspace, actor=None, kind="click", selector="#product-image")
        services.trigger_create(workspace=workspace, actor=None, kind="scroll")
        services.trigger_create(workspace=workspace, actor=None, kind="engaged_time", thresholds=[30, 180])
        services.trigger_create(
            workspace=workspace, actor=None, kind="click", selector=".paused", event_name="Paused", enabled=False
        )


def test_config_lists_the_enabled_triggers_of_the_write_keys_workspace(client, workspace, triggers):
    other = factories.WorkspaceFactory()
    with workspace_scope(other):
        services.trigger_create(workspace=other, actor=None, kind="click", selector="#theirs")

    response = client.get("/v1/config", {"writeKey": workspace.write_key}, HTTP_ORIGIN="https://shop.example")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Access-Control-Allow-Origin"] == "*"
    assert response["Cache-Control"] == "public, max-age=300"
    assert json.loads(response.content) == {
        "triggers": [
            {"kind": "click", "event": "Product Image Clicked", "selector": "#product-image"},
            {"kind": "engaged_time", "event": "Page Engaged", "thresholds": [30, 180]},
            {"kind": "scroll", "event": "Page Scrolled", "thresholds": [25, 50, 75, 100]},
        ],
        "ttl": 300,
    }


def test_config_answers_304_to_its_etag_and_changes_etag_with_the_triggers(client, workspace, triggers):
    first = client.get("/v1/config", {"writeKey": workspace.write_key})
    again = client.get("/v1/config", {"writeKey": workspace.write_key}, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == first["ETag"]

    with workspace_scope(workspace):
        services.trigger_create(workspace=workspace, actor=None, kind="click", selector="#new")
    changed = client.get("/v1/config", {"writeKey": workspace.write_key}, HTTP_IF_NONE_MATCH=first["ETag"])
    assert changed.status_code == 200
    assert changed["ETag"] != first["ETag"]


def test_config_of_a_workspace_without_triggers_is_empty(client, workspace):
    response = client.get("/v1/config", {"writeKey": workspace.write_key})
    assert json.loads(response.content) == {"triggers": [], "ttl": 300}


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"writeKey": "cly_wk_nope"}, "Unknown write key."),
        ({"writeKey": "cly_sk_secret"}, "Unknown write key."),
        ({}, "Missing writeKey query parameter."),
    ],
)
def test_config_refuses_unknown_or_missing_write_keys_with_401_json(client, workspace, params, detail):
    response = client.get("/v1/config", params)
    assert response.status_code == 401
    assert response["Access-Control-Allow-Origin"] == "*"
    assert json.loads(response.content) == {"detail": detail, "code": "invalid_write_key"}


def test_config_refuses_a_secret_api_key(client, workspace):
    _, secret = factories.api_key(workspace)
    response = client.get("/v1/config", {"writeKey": secret})
    assert response.status_code == 401


def test_config_answers_a_cors_preflight_and_refuses_writes(client, workspace):
    preflight = client.options(
        "/v1/config",
        HTTP_ORIGIN="https://shop.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type",
    )
    assert preflight.status_code == 204
    assert preflight["Access-Control-Allow-Origin"] == "*"
    assert preflight["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS"
    assert preflight["Access-Control-Allow-Headers"] == "content-type"

    post = client.post("/v1/config", {"writeKey": workspace.write_key})
    assert post.status_code == 405
    assert json.loads(post.content) == {"detail": "Method not allowed.", "code": "method_not_allowed"}


def test_signed_in_session_does_not_choose_the_config_workspace(client, workspace, owner, triggers):
    """The write key decides, even for a visitor signed in to another workspace."""
    other = factories.WorkspaceFactory()
    client.force_login(factories.member(other, role="owner"))

    theirs = client.get("/v1/config", {"writeKey": other.write_key})
    mine = client.get("/v1/config", {"writeKey": workspace.write_key})

    assert json.loads(theirs.content)["triggers"] == []
    assert [t["event"] for t in json.loads(mine.content)["triggers"]] == [
        "Product Image Clicked",
        "Page Engaged",
        "Page Scrolled",
    ]


# --- In the browser -----------------------------------------------------------


class Site:
    """A browser context on the customer's site, recording what the snippet sends."""

    def __init__(self, browser, live_server, workspace):
        self.workspace = workspace
        self.host = live_server.url
        self.origin = self.host.replace("localhost", "127.0.0.1")
        assert self.origin != self.host, "the site must be another origin than the app"
        self.context = browser.new_context()
        self.fetched: list[str] = []  # messageIds of events sent by fetch, retries included
        # sendBeacon outlives the page, out of Playwright's sight: the site's storage keeps a copy.
        self.context.add_init_script(
            "(() => { const send = navigator.sendBeacon.bind(navigator);"
            " navigator.sendBeacon = (url, data) => {"
            " const seen = JSON.parse(localStorage.getItem('test_beacons') || '[]');"
            " localStorage.setItem('test_beacons', JSON.stringify(seen.concat([String(data)])));"
            " return send(url, data); }; })()"
        )
        self.context.on("request", self._record_request)
        self.page = self.context.new_page()

    def beaconed(self) -> list[str]:
        """messageIds handed to sendBeacon by pages of the site."""
        bodies = self.page.evaluate("() => JSON.parse(localStorage.getItem('test_beacons') || '[]')")
        return [m["messageId"] for body in bodies for m in json.loads(body)["batch"] if m["type"] in ("track", "page")]

    def _record_request(self, request) -> None:
        if request.url == f"{self.host}/v1/batch" and request.resource_type == "fetch":
            batch = json.loads(request.post_data)["batch"]
            self.fetched.extend(m["messageId"] for m in batch if m["type"] in ("track", "page"))

    def open(self, page: str = "shop", *, options: dict | None = None, preload: bool = False) -> None:
        params = {"key": self.workspace.write_key, "host": self.host, "options": json.dumps(options or {})}
        if preload:
            params["preload"] = "1"
        self.page.goto(f"{self.origin}/_site/{page}?{urlencode(params)}")
        self.page.wait_for_function("() => window.cohortly && window.cohortly.loaded === 1")

    def queued(self) -> list[dict]:
        return self.page.evaluate(
            "k => JSON.parse(localStorage.getItem('cly_q:' + k) || '[]')", self.workspace.write_key
        )

    def events(self) -> list[dict]:
        with workspace_scope(self.workspace):
            return list(
                Event.objects.order_by("timestamp", "id").values(
                    "message_id", "name", "properties", "context", "user_id", "anonymous_id", "session_id"
                )
            )

    def names(self) -> Counter:
        return Counter(e["name"] for e in self.events())

    def wait_for_events(self, count: int, timeout: float = 20) -> list[dict]:
        """The events once ``count`` have arrived (pumping the browser's events meanwhile)."""
        deadline = time.monotonic() + timeout
        while len(events := self.events()) < count:
            assert time.monotonic() < deadline, f"{len(events)} of {count} events arrived: {self.names()}"
            self.page.wait_for_timeout(100)
        return events


@pytest.fixture
def site(browser, live_server, transactional_db, settings):
    settings.ROOT_URLCONF = "tests.tracking.site_urls"
    site = Site(browser, live_server, factories.WorkspaceFactory())
    yield site
    site.context.close()


def assert_each_once(events: list[dict]) -> None:
    duplicated = [mid for mid, n in Counter(e["message_id"] for e in events).items() if n > 1]
    assert duplicated == []


@pytest.mark.browser
def test_spa_page_views_carry_the_new_pages_title_forward_and_back(site):
    # Given a single-page app whose router sets the title a moment after changing the URL
    site.open("spa/product")
    # (Its page view arrives first: events sent in two batches a few milliseconds apart could
    # otherwise swap places, each batch's times being corrected by its own clock skew.)
    site.wait_for_events(1)

    # When the visitor goes to checkout (which tracks on mount), back, then to the cart
    site.page.click("#to-checkout")
    site.wait_for_events(3)
    site.page.go_back()
    site.wait_for_events(4)
    site.page.click("#to-cart")  # this router sets the title before the URL

    # Then each page view has its own page's title, the URL and time of its route change
    events = site.wait_for_events(5)
    views = [e for e in events if e["name"] == "$pageview"]
    assert [(e["properties"]["path"], e["properties"]["title"]) for e in views] == [
        ("/_site/spa/product", "Test shop · product"),
        ("/_site/spa/checkout", "Test shop · checkout"),
        ("/_site/spa/product", "Test shop · product"),
        ("/_site/spa/cart", "Test shop · cart"),
    ]
    assert [e["context"]["page"]["title"] for e in views] == [e["properties"]["title"] for e in views]
    assert [e["properties"]["referrer"] for e in views[1:]] == [e["properties"]["url"] for e in views[:-1]]
    # The checkout's own event comes after its page view, as it happened
    assert [e["name"] for e in events] == ["$pageview", "$pageview", "Checkout Started", "$pageview", "$pageview"]
    assert_each_once(events)


@pytest.mark.browser
def test_snippet_sends_page_views_calls_triggers_offline_and_on_pagehide_each_once(site):
    workspace = site.workspace
    with workspace_scope(workspace):
        services.trigger_create(workspace=workspace, actor=None, kind="click", selector="#product-image")
        services.trigger_create(workspace=workspace, actor=None, kind="scroll")

    # Given a page with the embed code, and calls made before the library loaded
    site.open(preload=True)
    site.page.wait_for_function("k => localStorage.getItem('cly_cfg:' + k)", arg=workspace.write_key)
    assert site.page.evaluate("() => window.readyCalls") == 1

    # When the visitor clicks, navigates within the app and scrolls
    site.page.click("#buy")
    site.page.click("#inner")  # inside #product-image: the trigger matches ancestors
    site.page.click("#same")  # replaceState to the same URL: not a new page
    site.page.click("#spa")
    site.page.evaluate("() => window.scrollTo(0, document.documentElement.scrollHeight * 0.76 - innerHeight)")

    # Then each arrives once, with the ids the stub's identify set
    events = site.wait_for_events(8)
    assert site.names() == Counter(
        {"$pageview": 2, "Stub Queued": 1, "Buy Clicked": 1, "Product Image Clicked": 1, "Page Scrolled": 3}
    )
    pageviews = [e for e in events if e["name"] == "$pageview"]
    assert [e["properties"]["path"] for e in pageviews] == ["/_site/shop", "/_site/shop/next"]
    assert pageviews[1]["properties"]["referrer"] == pageviews[0]["properties"]["url"]
    click = next(e for e in events if e["name"] == "Product Image Clicked")
    assert (click["properties"]["selector"], click["properties"]["text"]) == ("#product-image", "Product")
    assert sorted(e["properties"]["depth"] for e in events if e["name"] == "Page Scrolled") == [25, 50, 75]
    assert {e["user_id"] for e in events} == {"user-7"}
    assert len({e["anonymous_id"] for e in events}) == 1
    sessions = {e["properties"]["$session_id"] for e in events}
    assert len(sessions) == 1
    assert {e["context"]["sessionId"] for e in events} == sessions
    assert {e["session_id"] for e in events} == sessions
    assert {e["context"]["library"]["name"] for e in events} == {"cohortly.js"}

    # When the network drops, events wait in the queue; when it is back, they are sent
    site.context.set_offline(True)
    site.page.click("#buy")
    site.page.click("#buy")
    site.page.wait_for_function(
        "k => JSON.parse(localStorage.getItem('cly_q:' + k) || '[]').length === 2", arg=workspace.write_key
    )
    site.page.wait_for_timeout(1500)  # past the flush interval: the sends fail offline
    assert len(site.events()) == 8
    assert [m["event"] for m in site.queued()] == ["Buy Clicked", "Buy Clicked"]
    site.context.set_offline(False)
    site.wait_for_events(10)
    site.page.wait_for_function("k => !localStorage.getItem('cly_q:' + k)", arg=workspace.write_key)

    # When the visitor leaves right after an event, sendBeacon delivers it
    site.page.evaluate("() => cohortly.track('Leaving', {to: 'away'})")
    leaving_id = site.queued()[0]["messageId"]
    site.page.goto(f"{site.origin}/_site/away")
    events = site.wait_for_events(11)
    assert leaving_id in site.beaconed()
    assert leaving_id not in site.fetched

    # Then every event is in the table exactly once
    assert_each_once(events)
    assert site.names() == Counter(
        {
            "$pageview": 2,
            "Stub Queued": 1,
            "Buy Clicked": 3,
            "Product Image Clicked": 1,
            "Page Scrolled": 3,
            "Leaving": 1,
        }
    )
    assert {e["message_id"] for e in events} == set(site.fetched) | set(site.beaconed())


@pytest.mark.browser
def test_offline_queue_keeps_the_newest_messages_up_to_its_bound(site):
    site.open(options={"queueSize": 100})
    site.wait_for_events(1)  # the page view

    site.context.set_offline(True)
    site.page.evaluate("() => { for (let i = 0; i < 150; i++) cohortly.track('e' + i); }")
    queued = site.queued()
    assert len(queued) == 100
    assert (queued[0]["event"], queued[-1]["event"]) == ("e50", "e149")
    assert len(site.events()) == 1

    site.context.set_offline(False)
    events = site.wait_for_events(101)
    site.page.wait_for_timeout(500)
    assert_each_once(site.events())
    assert sorted(e["name"] for e in events if e["name"] != "$pageview") == sorted(f"e{i}" for i in range(50, 150))


@pytest.mark.browser
def test_opted_out_visitor_sends_nothing_until_opting_in(site):
    # Given a visitor who opts out (remembered across page loads)
    site.open()
    site.wait_for_events(1)
    site.page.evaluate("() => { cohortly.optOut(); cohortly.track('Hidden'); cohortly.page('Hidden Page'); }")
    site.open()  # a new page load: no automatic page view either
    site.page.evaluate("() => cohortly.track('Still Hidden')")
    assert site.queued() == []

    # When they opt in again, what follows is sent, and only that
    site.page.evaluate("() => { cohortly.optIn(); cohortly.track('Visible'); }")
    site.wait_for_events(2)
    site.page.wait_for_timeout(500)
    assert site.names() == Counter({"$pageview": 1, "Visible": 1})


@pytest.mark.browser
def test_do_not_track_is_honoured_when_asked(site):
    site.context.add_init_script("Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1'})")

    site.open(options={"honorDNT": True})
    site.page.evaluate("() => cohortly.track('Tracked Despite DNT')")
    assert site.queued() == []
    assert site.page.evaluate("() => document.cookie") == ""

    site.page.evaluate("() => { cohortly.optIn(); cohortly.track('Consented'); }")
    site.wait_for_events(1)
    site.page.wait_for_timeout(500)
    assert site.names() == Counter({"Consented": 1})


@pytest.mark.browser
def test_send_whose_answer_is_lost_is_retried_and_stored_once(site):
    """The server stores a batch but the answer never reaches the browser: the retry is deduplicated."""
    answers = []

    def lose_first_answer(route):
        if not answers:
            answers.append(route.fetch().status)
            route.fulfill(status=503, headers={"Access-Control-Allow-Origin": "*"}, body="{}")
        else:
            answers.append(0)
            route.continue_()

    site.context.route(f"{site.host}/v1/batch", lose_first_answer)
    site.open(options={"flushInterval": 200})
    site.page.evaluate("() => cohortly.track('Once')")
    site.page.wait_for_function("k => !localStorage.getItem('cly_q:' + k)", arg=site.workspace.write_key, timeout=20000)

    assert answers[0] == 200
    assert len(answers) >= 2
    events = site.wait_for_events(2)
    assert_each_once(events)
    assert site.names() == Counter({"$pageview": 1, "Once": 1})
    # The lost batch's messages were sent twice (which ones depends on when the page view flushed).
    sends = Counter(site.fetched)
    assert sorted({sends[e["message_id"]] for e in events}) in ([2], [1, 2])


@pytest.mark.browser
def test_engaged_time_counts_only_visible_focused_seconds(site):
    workspace = site.workspace
    with workspace_scope(workspace):
        services.trigger_create(workspace=workspace, actor=None, kind="engaged_time", thresholds=[1, 2])
    site.context.add_init_script("document.hasFocus = () => window.focusedForTest !== false")

    # Given a page whose window does not have the focus
    site.open(options={"flushInterval": 100})
    site.page.evaluate("() => { window.focusedForTest = false; }")
    site.page.wait_for_function("k => localStorage.getItem('cly_cfg:' + k)", arg=workspace.write_key)
    site.wait_for_events(1)
    site.page.wait_for_timeout(2500)  # past both thresholds: unfocused seconds do not count
    assert site.names() == Counter({"$pageview": 1})

    # When it gets the focus, engaged seconds count up to each threshold once
    site.page.evaluate("() => { window.focusedForTest = true; }")
    events = site.wait_for_events(3)
    site.page.wait_for_timeout(1500)
    assert site.names() == Counter({"$pageview": 1, "Page Engaged": 2})
    assert sorted(e["properties"]["seconds"] for e in events if e["name"] == "Page Engaged") == [1, 2]


@pytest.mark.browser
def test_session_renews_after_30_minutes_without_events_and_reset_forgets_the_visitor(site):
    site.open(options={"flushInterval": 100})
    site.page.evaluate("() => cohortly.identify('user-9', {plan: 'pro'}).group('acme', {name: 'Acme'})")
    site.page.evaluate("() => cohortly.alias('user-9-new')")
    site.page.evaluate("() => cohortly.track('Soon After')")
    # Given the last event 31 minutes ago
    site.page.evaluate(
        "() => { const [id] = localStorage.getItem('cly_ses').split('|');"
        " localStorage.setItem('cly_ses', id + '|' + (Date.now() - 31 * 60 * 1000)); }"
    )
    site.page.evaluate("() => cohortly.track('After A Break')")
    site.page.evaluate("() => { cohortly.reset(); cohortly.track('After Reset'); }")

    events = {e["name"]: e for e in site.wait_for_events(4)}
    assert events["Soon After"]["session_id"] == events["$pageview"]["session_id"]
    assert events["After A Break"]["session_id"] != events["Soon After"]["session_id"]
    assert events["Soon After"]["user_id"] == "user-9"
    assert events["After Reset"]["user_id"] is None
    assert events["After Reset"]["anonymous_id"] != events["Soon After"]["anonymous_id"]
    assert events["After Reset"]["session_id"] not in {e["session_id"] for n, e in events.items() if n != "After Reset"}
    with workspace_scope(site.workspace):
        person = Person.objects.get(user_id="user-9")
        assert person.traits == {
            "plan": "pro",
            "$initial_path": "/_site/shop",  # first touch, from the automatic page view
            "$initial_referrer": "$direct",
            "$initial_referring_domain": "$direct",
        }
        assert Identity.objects.get(kind="user_id", value="user-9-new").person_id == person.pk
        assert list(PersonGroup.objects.filter(person=person).values_list("group__group_id", "group__traits")) == [
            ("acme", {"name": "Acme"})
        ]
    cookie = next(c for c in site.context.cookies() if c["name"] == "cly_aid")
    assert cookie["value"] == events["After Reset"]["anonymous_id"]
    assert cookie["domain"] == "127.0.0.1"


@pytest.mark.browser
def test_snippet_works_where_local_storage_is_refused(site):
    site.context.add_init_script(
        "Object.defineProperty(window, 'localStorage', {get() { throw new DOMException('denied', 'SecurityError'); }})"
    )
    site.page.goto(
        f"{site.origin}/_site/shop?"
        + urlencode({"key": site.workspace.write_key, "host": site.host, "options": '{"flushInterval": 100}'})
    )
    site.page.wait_for_function("() => window.cohortly && window.cohortly.loaded === 1")
    site.page.evaluate("() => cohortly.track('Without Storage')")

    events = site.wait_for_events(2)
    assert sorted(e["name"] for e in events) == ["$pageview", "Without Storage"]
    assert len({e["anonymous_id"] for e in events}) == 1
    assert len({e["session_id"] for e in events}) == 1
