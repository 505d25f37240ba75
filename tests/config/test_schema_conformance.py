"""The API against its own OpenAPI schema, operation by operation (schemathesis).

Schemathesis reads the live schema (/api/schema/), so an endpoint added later is
covered without touching this file. For every operation it sends the schema's
examples, boundary values (the coverage phase) and generated requests, valid and
invalid, and runs every check: no 5xx, every status, content type, header and
body as documented, invalid input refused with a 4xx, valid input not refused
with a 400, undocumented methods answered 405, auth not ignored.

Requests go in-process to Django's WSGI handler, on the test's connection, inside
a savepoint that is rolled back after each one: every request sees the same seeded
workspace (a DELETE of a seeded object does not take it away from the next
request, and is still exercised on a real object). The /v1/ endpoints are served
by Django's own routes here (the same ``handle`` as the production dispatcher,
without its group commit, which commits on another connection).
"""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from django.test import Client
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from accounts.tenancy import workspace_scope
from config.wsgi import django_application
from tests import factories

pytestmark = pytest.mark.slow

# Per operation, for the generated (fuzzing) phase; examples and boundary values come on top.
MAX_EXAMPLES = 5

# Ids of seeded objects by the path segment that names their collection ("segments": [3, 4]).
SEEDED: dict[str, list[int]] = {}
CREDENTIALS: dict[str, str] = {}
CASES: list[tuple[str, float]] = []


def _seed(workspace: Any) -> None:
    """A workspace with one of everything, made through the API itself."""
    factories.member(workspace, role="owner")
    member = factories.member(workspace, role="member")
    spare_key, _ = factories.api_key(workspace, name="spare")
    _, secret = factories.api_key(workspace, name="schemathesis")
    client = Client(headers={"Authorization": f"Bearer {secret}"})

    def post(path: str, body: dict[str, Any], auth: str | None = None) -> dict[str, Any]:
        headers = {"Authorization": auth} if auth else {}
        response = client.post(path, body, content_type="application/json", headers=headers)
        assert response.status_code in (200, 201), (path, response.content)
        return response.json()

    write_key = workspace.write_key
    basic = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    sent = post(
        "/v1/batch",
        {
            "batch": [
                {"type": "identify", "userId": "ada", "anonymousId": "a-1", "traits": {"email": "ada@example.com"}},
                {"type": "track", "userId": "ada", "event": "Signed Up", "properties": {"plan": "pro"}},
                {"type": "page", "userId": "ada", "name": "Home", "properties": {"path": "/"}},
                {"type": "track", "anonymousId": "a-2", "event": "Viewed"},
            ]
        },
        auth=basic,
    )
    assert sent["stored"] == 4, sent
    people = client.get("/api/v1/people/").json()["results"]
    dynamic = post("/api/v1/segments/", {"name": "Signed up", "definition": {"type": "event", "event": "Signed Up"}})
    static = post("/api/v1/segments/", {"name": "VIP", "static": True})
    post(f"/api/v1/segments/{static['id']}/members/", {"add": ["ada"]})
    webhook = post("/api/v1/webhooks/", {"url": "http://127.0.0.1:9/cohortly"})
    invitation = post("/api/v1/invitations/", {"email": "invitee@example.com"})
    with workspace_scope(workspace):
        membership = member.memberships.get(workspace=workspace)  # type: ignore[attr-defined]
    SEEDED.update(
        {
            "people": [person["id"] for person in people],
            "segments": [dynamic["id"], static["id"]],
            "webhooks": [webhook["id"]],
            "invitations": [invitation["id"]],
            "members": [membership.pk],
            "api-keys": [spare_key.pk],
        }
    )
    CREDENTIALS.update({"bearer": f"Bearer {secret}", "basic": basic})


@pytest.fixture
def seeded(workspace, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True  # the seeded webhook's target is this machine
    _seed(workspace)
    # Django's test client does the same: the test's connection must outlive each request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)
    SEEDED.clear()


# Read when the tests are collected: the schema needs no database.
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", django_application)
# A NUL character is refused in every query parameter and text field (README, "The REST API"); the schema
# does not repeat that on each string.
schema.config.generation.update(allow_x00=False)
# Over a documented limit (a batch of 2,501 messages) is refused with 413 Content Too Large.
schema.config.checks.negative_data_rejection.expected_statuses = [
    *schema.config.checks.negative_data_rejection.expected_statuses,
    "413",
]


@schema.hook
def flatmap_path_parameters(context: schemathesis.HookContext, path_parameters: dict[str, Any]) -> Any:
    """Seeded ids as well as generated ones: the objects exist, so their 2xx answers are checked too."""
    if context.operation is None or not isinstance((path_parameters or {}).get("id"), int):
        return st.just(path_parameters)
    parts = context.operation.path.split("/")
    collection = parts[parts.index("{id}") - 1] if "{id}" in parts else ""
    ids = SEEDED.get(collection, [])
    return st.sampled_from([*ids, path_parameters["id"]]).map(lambda pk: {**path_parameters, "id": pk})


# Rules a JSON schema cannot state (between fields, about other objects, about an object's state): the
# schema says them in words, and a request that breaks one is a 400 naming the field. A schema-valid
# request refused for one of these (and only these) fields is no mismatch.
RULES_IN_WORDS: dict[str, set[str]] = {
    "*": {"cursor"},  # a position handed out in a next or previous link, opaque
    "GET /api/v1/events/": {"person", "until"},  # an existing person; until after since
    "GET /api/v1/people/": {"segment"},  # an existing segment
    # The definition's own rules; no interval for a static segment; names unique in the workspace;
    # tags that stay within their length once normalised, without commas.
    "POST /api/v1/segments/": {"definition", "refresh_interval_seconds", "name", "tags"},
    "PATCH /api/v1/segments/{id}/": {"definition", "name", "tags"},
    "POST /api/v1/segments/preview/": {"definition"},
    "POST /api/v1/segments/{id}/members/": {"segment"},  # static segments only
    "POST /api/v1/webhooks/": {"url", "segments"},  # a public http(s) host; existing segments
    "POST /api/v1/invitations/": {"email", "role"},  # not yet a member; only an owner invites an owner
    "PATCH /api/v1/members/{id}/": {"role"},  # the last owner stays
    # A step's filters follow the definition's rules; windows start before they end; existing segments;
    # dropped_after before the funnel's last step; as many periods as the period allows (52 weeks...).
    "POST /api/v1/insights/funnel/": {"steps", "since", "until", "breakdown", "within"},
    "POST /api/v1/insights/funnel/segment/": {
        "steps",
        "since",
        "until",
        "breakdown",
        "within",
        "dropped_after",
        "name",
    },
    "POST /api/v1/insights/retention/": {"segment", "periods", "start_event", "return_event"},
    "POST /api/v1/insights/retention/segment/": {"segment", "periods", "cohort_start", "offset", "name"},
    "PATCH /api/v1/insights/computed-traits/": {"engagement_weights"},  # at most 200 named events
    "POST /api/v1/campaigns/estimate/": {"audience"},  # existing segments, none both included and excluded
}


def _breaks_only_rules_in_words(operation: str, response: Any) -> bool:
    if response.status_code != 400:
        return False
    rules = RULES_IN_WORDS["*"] | RULES_IN_WORDS.get(operation, set())
    errors = response.json().get("errors", {})
    return bool(errors) and all(path.split(".")[0].split("[")[0] in rules for path in errors)


@schema.hook
def filter_failure(context: schemathesis.HookContext, failure: Any, case: Any, response: Any) -> bool:
    """Keep every failure but a schema-valid request refused for a rule stated in words only, and
    invalid credentials refused with a 429 (failed authentications are throttled: still a refusal)."""
    kind = type(failure).__name__
    if kind == "IgnoredAuth":
        return "got `429 " not in failure.message
    if kind != "RejectedPositiveData":
        return True
    return not _breaks_only_rules_in_words(f"{case.method.upper()} {case.operation.path}", response)


@pytest.fixture(scope="module", autouse=True)
def _summary():
    """How many requests were sent, and how long they took (shown with -s)."""
    started = time.monotonic()
    yield
    per_operation: dict[str, list[float]] = {}
    for operation, seconds in CASES:
        per_operation.setdefault(operation, []).append(seconds)
    print(f"\nschemathesis: {len(CASES)} cases, {len(per_operation)} operations, {time.monotonic() - started:.0f}s")
    for operation, times in sorted(per_operation.items(), key=lambda item: -sum(item[1]))[:8]:
        print(f"  {operation}: {len(times)} cases, {sum(times):.1f}s")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case, seeded):
    auth = CREDENTIALS["basic"] if case.path.startswith("/v1/") else CREDENTIALS["bearer"]
    started = time.monotonic()
    try:
        with transaction.atomic():
            case.call_and_validate(headers={"Authorization": auth})
            transaction.set_rollback(True)
    finally:
        CASES.append((f"{case.operation.method.upper()} {case.operation.path}", time.monotonic() - started))
