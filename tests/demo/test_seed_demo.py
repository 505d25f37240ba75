from __future__ import annotations

import io
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from accounts.models import Membership, User, Workspace
from accounts.tenancy import workspace_scope
from demo.demo_shop import DemoShop
from demo.management.commands.seed_demo import DEMO_EMAIL, DEMO_PASSWORD, DEMO_WORKSPACE
from segmentation.compiler import compile_count
from segmentation.definition import parse
from segmentation.playbooks import PLAYBOOKS
from tracking.models import Event, Person

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _seed(**options):
    out = io.StringIO()
    call_command("seed_demo", no_progress=True, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def _snapshot(workspace):
    with workspace_scope(workspace):
        people = Person.objects.filter(workspace=workspace)
        return {
            "people": people.count(),
            "identified": people.exclude(user_id=None).count(),
            "events": Counter(Event.objects.values_list("name", flat=True)),
            "traits": sorted((p.user_id or "", sorted(p.traits.items())) for p in people),
            "first_seen": sorted(p.first_seen for p in people),
        }


def test_generator_is_deterministic_for_a_seed():
    def generate(seed):
        return list(DemoShop(people=30, days=30, seed=seed, now=NOW).messages())

    assert generate(5) == generate(5)
    assert generate(5) != generate(6)


def test_generator_covers_the_archetypes_and_shop_events():
    shop = DemoShop(people=300, days=60, seed=1, now=NOW)
    archetypes = Counter()
    events = Counter()
    latest = datetime.min.replace(tzinfo=UTC)
    for person, messages in shop.people_iter():
        archetypes[person.archetype] += 1
        for message in messages:
            events[message.get("event") or message["type"]] += 1
            latest = max(latest, datetime.fromisoformat(message["timestamp"]))
    assert set(archetypes) == {
        "loyal_buyer",
        "browser",
        "cart_abandoner",
        "lapsed_customer",
        "new_signup",
        "email_engager",
    }
    assert set(events) == {
        "page",
        "identify",
        "Product Viewed",
        "Product Added",
        "Order Completed",
        "Email Opened",
        "Email Clicked",
        "Signed Up",
        "Login",
    }
    assert latest < NOW


def test_seed_demo_is_deterministic_through_ingestion(db):
    # Given the demo seeded once
    _seed(people=40, days=30, seed=7, now=NOW.isoformat())
    first = Workspace.objects.get(name=DEMO_WORKSPACE)
    first.name = "Earlier demo"
    first.save(update_fields=["name"])

    # When it is seeded again into a fresh workspace with the same arguments
    _seed(people=40, days=30, seed=7, now=NOW.isoformat())
    second = Workspace.objects.get(name=DEMO_WORKSPACE)

    # Then the same people, traits and events were stored
    assert second.pk != first.pk
    before, after = _snapshot(first), _snapshot(second)
    assert before == after
    assert before["people"] == 40
    assert before["events"]["Order Completed"] > 0
    assert before["events"]["$pageview"] > 0
    plans = {dict(traits).get("plan") for _, traits in before["traits"]} - {None}
    assert plans <= {"Free", "Pro", "Enterprise", "Strategic"}
    assert any(key == "$initial_referring_domain" for _, traits in before["traits"] for key, _ in traits)
    assert all(dict(traits).get("email", "@").count("@") == 1 for _, traits in before["traits"])


def test_seed_demo_keeps_the_demo_login_and_is_idempotent(db):
    output = _seed(people=15, days=14, seed=3, now=NOW.isoformat())
    workspace = Workspace.objects.get(name=DEMO_WORKSPACE)
    stored = _snapshot(workspace)

    again = _seed(people=15, days=14, seed=3, now=NOW.isoformat())
    skipped = _seed(if_missing=True)

    user = User.objects.get(email=DEMO_EMAIL)
    assert user.check_password(DEMO_PASSWORD)
    with workspace_scope(workspace):
        assert Membership.objects.get(user=user).role == "owner"
    assert DEMO_EMAIL in output
    assert "0 messages stored" in again
    assert skipped == f"Demo workspace exists (id {workspace.pk}).\n"
    assert Workspace.objects.filter(name=DEMO_WORKSPACE).count() == 1
    assert _snapshot(workspace) == stored


def test_seed_demo_if_missing_creates_and_fills_when_absent(db):
    _seed(if_missing=True, people=5, days=7)
    workspace = Workspace.objects.get(name=DEMO_WORKSPACE)
    assert _snapshot(workspace)["people"] == 5


@pytest.mark.parametrize(
    ("options", "message"),
    [({"now": "tomorrow"}, "--now"), ({"now": "2999-01-01T00:00:00Z"}, "future"), ({"days": 0}, "--days")],
)
def test_seed_demo_bad_arguments(db, options, message):
    with pytest.raises(CommandError, match=message):
        _seed(**options)
    assert not Workspace.objects.filter(name=DEMO_WORKSPACE).exists()


def test_every_template_finds_people_in_the_default_demo(db):
    # Given the demo seeded with its default history (a small crowd, to stay quick)
    _seed(people=120, now=NOW.isoformat())
    workspace = Workspace.objects.get(name=DEMO_WORKSPACE)

    # When each builder template is counted by the segment engine at the end of that history
    counts = {}
    with workspace_scope(workspace), connection.cursor() as cursor:
        for playbook in PLAYBOOKS:
            query = compile_count(parse(playbook.definition), workspace_id=workspace.pk, now=NOW)
            query.execute(cursor)
            counts[playbook.name] = cursor.fetchone()[0]

    # Then none is empty: "Lapsed customers" (no order in 90 days) needs history older than 90 days
    with workspace_scope(workspace):
        oldest = Event.objects.filter(workspace=workspace).order_by("timestamp").values_list("timestamp", flat=True)[0]
    assert timedelta(days=150) < NOW - oldest <= timedelta(days=180)
    assert {name: count for name, count in counts.items() if count == 0} == {}
    assert all(0 < count < 120 for count in counts.values()), counts
