"""Computed traits on small fixed datasets, scored by hand; segments over them record entries and exits."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import redis
from django.urls import reverse
from django.utils import timezone

from accounts.tenancy import workspace_scope
from insights import tasks, traits
from insights.models import ComputedTraitSettings, RunStatus
from segmentation import realtime, services
from segmentation.catalogue.models import CatalogueProperty, PropertySource
from segmentation.models import MembershipChange, Segment
from tests import factories
from tests.accounts.support import logged_in_client
from tests.insights.support import DAY, NOW, load
from tests.tracking import builders
from tracking.models import Person

ORDER = "Order Completed"
# RFM: recency ranks i d h c e b a, frequency b h i | c e | a d, revenue i h e d c a b (see docs/insights.md).
RFM_PEOPLE = {name: {"name": name.upper()} for name in "abcdehifg"}
RFM_EVENTS = [
    ("a", ORDER, NOW - 1 * DAY, {"revenue": 100}),
    ("a", ORDER, NOW - 10 * DAY, {"revenue": 50}),
    ("a", ORDER, NOW - 20 * DAY, {"revenue": "25.5"}),  # a numeric string counts
    ("b", ORDER, NOW - 2 * DAY, {"revenue": 500}),
    ("c", ORDER, NOW - 30 * DAY, {"revenue": 40}),
    ("c", ORDER, NOW - 40 * DAY, {"revenue": 40}),
    ("d", ORDER, NOW - 100 * DAY, {"revenue": "abc"}),  # not a number: skipped
    ("d", ORDER, NOW - 200 * DAY, {}),
    ("d", ORDER, NOW - 300 * DAY, {"revenue": 30}),
    ("e", ORDER, NOW - 5 * DAY, {"revenue": 20}),
    ("e", ORDER, NOW - 6 * DAY, {"revenue": "0"}),
    ("h", ORDER, NOW - 60 * DAY, {"revenue": 5}),
    ("i", ORDER, NOW - 400 * DAY, {"revenue": 1}),
    ("f", "$pageview", NOW - 1 * DAY, {}),  # no purchase: no RFM traits
    ("a", "Order Placed", NOW - 1 * DAY, {"revenue": 9999}),  # another event: not a purchase
]
RFM_EXPECTED = {
    # name: (recency, frequency, monetary, group)
    "a": (5, 5, 5, "Champions"),
    "b": (5, 1, 5, "New"),
    "c": (3, 3, 4, "Loyal"),
    "d": (1, 5, 3, "At risk"),
    "e": (4, 3, 2, "Potential"),
    "h": (2, 1, 1, "Hibernating"),
    "i": (1, 1, 1, "Lost"),
}


@pytest.fixture(autouse=True)
def _realtime(settings):
    """A drain queue of the test's own, and a fresh notifier."""
    realtime.notifier.reset()
    name = f"test-insights-{uuid.uuid4().hex}"
    settings.SEGMENTS_REALTIME_QUEUE = name
    yield
    redis.Redis.from_url(settings.REDIS_URL).delete(name)
    realtime.notifier.reset()


def refresh(workspace, now=NOW):
    with workspace_scope(workspace):
        return traits.computed_traits_refresh(workspace=workspace, now=now)


def traits_of(workspace) -> dict[str, dict]:
    with workspace_scope(workspace):
        return {p.user_id: p.traits for p in Person.objects.all()}


def rfm(values: dict) -> tuple | None:
    if traits.RECENCY not in values:
        return None
    return tuple(values[key] for key in (traits.RECENCY, traits.FREQUENCY, traits.MONETARY, traits.GROUP))


def test_rfm_scores_and_groups_by_hand(db):
    workspace, other = factories.WorkspaceFactory(), factories.WorkspaceFactory()
    load(workspace, RFM_PEOPLE, RFM_EVENTS)
    load(other, RFM_PEOPLE, [*RFM_EVENTS, ("g", ORDER, NOW, {"revenue": 10**6})])

    outcome = refresh(workspace)

    found = traits_of(workspace)
    assert {name: rfm(values) for name, values in found.items()} == {**RFM_EXPECTED, "f": None, "g": None}
    assert found["a"]["name"] == "A"  # other traits stay
    assert outcome.ran
    assert outcome.people_changed == 9
    assert {name: values[traits.ENGAGEMENT] for name, values in found.items()}["g"] == 0
    assert all(rfm(values) is None for values in traits_of(other).values())  # the other workspace untouched
    with workspace_scope(workspace):
        state = ComputedTraitSettings.objects.get(workspace=workspace)
    assert (state.status, state.progress, state.computed_at, state.people_changed) == (RunStatus.DONE, 100, NOW, 9)

    # Run again: nothing changed, nothing written.
    assert refresh(workspace).people_changed == 0


def test_the_purchase_event_and_revenue_property_are_the_workspace_s(db):
    workspace = factories.WorkspaceFactory()
    load(
        workspace,
        {"x": {}, "y": {}},
        [
            ("x", "Checkout", NOW - DAY, {"amount": 5}),
            ("y", "Checkout", NOW - 2 * DAY, {"amount": "7"}),
            ("x", ORDER, NOW, {}),
        ],
    )
    refresh(workspace)
    assert rfm(traits_of(workspace)["y"]) is None
    assert rfm(traits_of(workspace)["x"]) == (1, 1, 1, "Lost")
    with workspace_scope(workspace):
        ComputedTraitSettings.objects.filter(workspace=workspace).update(
            rfm_event="Checkout", rfm_revenue_property="amount"
        )
    refresh(workspace)
    found = traits_of(workspace)
    # x: more recent (R 5), cheaper (M 1), one purchase: New; y: R 1, M 5: spent more, long ago: At risk.
    assert (rfm(found["x"]), rfm(found["y"])) == ((5, 1, 1, "New"), (1, 1, 5, "At risk"))


def test_engagement_scores_by_hand(db):
    workspace = factories.WorkspaceFactory()
    load(
        workspace,
        {name: {} for name in "pqrstuv"},
        [
            ("p", "Login", NOW, {}),  # 1
            ("p", ORDER, NOW - 7 * DAY, {}),  # 5 x 0.5
            ("q", "Login", NOW - 14 * DAY, {}),  # 0.25
            ("q", "Login", NOW - 7 * DAY, {}),  # 0.5
            ("r", "$pageview", NOW, {}),  # weight 0
            ("s", "Login", NOW, {}),
            ("s", "Login", NOW, {}),
            ("s", "Login", NOW - 7 * DAY, {}),
            ("s", "Login", NOW - 14 * DAY, {}),  # 2.75
            ("t", ORDER, NOW - 70 * DAY, {}),  # past 8 half-lives
            ("u", "Login", NOW, {}),  # 1
        ],
    )
    with workspace_scope(workspace):
        traits.settings_for(workspace)
        ComputedTraitSettings.objects.filter(workspace=workspace).update(
            engagement_weights={ORDER: 5, "$pageview": 0}, engagement_default_weight=1, engagement_half_life_days=7
        )
    refresh(workspace)
    scores = {name: values[traits.ENGAGEMENT] for name, values in traits_of(workspace).items()}
    # Engaged people ranked q 0.75 < u 1 < s 2.75 < p 3.5: 25, 50, 75, 100 (cumulative shares).
    assert scores == {"p": 100, "q": 25, "r": 0, "s": 75, "t": 0, "u": 50, "v": 0}


def test_keys_go_when_a_person_no_longer_qualifies(db):
    workspace = factories.WorkspaceFactory()
    load(workspace, {"a": {"plan": "Pro"}}, [("a", ORDER, NOW - DAY, {"revenue": 3})])
    refresh(workspace)
    # The only purchaser: every rank is the first, every score 1 (docs/insights.md).
    assert rfm(traits_of(workspace)["a"]) == (1, 1, 1, "Lost")
    with workspace_scope(workspace):
        ComputedTraitSettings.objects.filter(workspace=workspace).update(rfm_event="Something Else")
    refresh(workspace)
    assert traits_of(workspace)["a"] == {"plan": "Pro", traits.ENGAGEMENT: 100}


def test_a_run_is_skipped_while_another_holds_the_workspace(db):
    workspace = factories.WorkspaceFactory()
    load(workspace, {"a": {}}, [("a", ORDER, NOW, {})])
    assert traits._try_lock(workspace)
    try:
        # The lock is the session's: a second connection is what another worker would be.
        from django.db import connections

        other = connections.create_connection("default")
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [traits.LOCK_CLASS, workspace.pk])
            assert cursor.fetchone()[0] is False
        other.close()
    finally:
        traits._unlock(workspace)


def test_segments_over_computed_traits_record_entries_and_exits(db, django_capture_on_commit_callbacks):
    workspace = factories.WorkspaceFactory()
    people = load(
        workspace,
        {"a": {}, "b": {}},
        [("a", ORDER, NOW - 10 * DAY, {"revenue": 10}), ("b", ORDER, NOW - 20 * DAY, {"revenue": 5})],
    )
    with django_capture_on_commit_callbacks(execute=True):
        refresh(workspace)
    with workspace_scope(workspace):
        champions = Segment.objects.create(
            workspace=workspace,
            name="Champions",
            definition={"type": "trait", "key": "$rfm_group", "operator": "eq", "value": "Champions"},
        )
        services.segment_refresh(segment=champions)
        assert champions.size == 0  # a: R 5 F 1 M 5, one purchase: New; b: Lost
    # b buys twice more, recently and a lot: b becomes the Champion.
    builders.event(workspace, people["b"], ORDER, at=NOW - DAY, properties={"revenue": 100})
    builders.event(workspace, people["b"], ORDER, at=NOW - 2 * DAY, properties={"revenue": 100})
    with django_capture_on_commit_callbacks(execute=True):
        refresh(workspace)
    assert rfm(traits_of(workspace)["b"]) == (5, 5, 5, "Champions")
    with workspace_scope(workspace):
        realtime.workspace_drain(workspace=workspace)
        changes = list(MembershipChange.objects.filter(segment=champions).values_list("person_id", "kind"))
        assert changes == [(people["b"].pk, "entered")]
        assert Segment.objects.get(pk=champions.pk).size == 1
    # Then the purchase event changes: nobody has RFM traits any more, b leaves.
    with workspace_scope(workspace):
        ComputedTraitSettings.objects.filter(workspace=workspace).update(rfm_event="Nothing")
    with django_capture_on_commit_callbacks(execute=True):
        refresh(workspace)
    with workspace_scope(workspace):
        realtime.workspace_drain(workspace=workspace)
        kinds = list(MembershipChange.objects.filter(segment=champions).order_by("id").values_list("person_id", "kind"))
    assert kinds == [(people["b"].pk, "entered"), (people["b"].pk, "exited")]


def test_a_run_over_more_people_than_real_time_keeps_makes_the_segments_due_instead(
    db, monkeypatch, django_capture_on_commit_callbacks
):
    """Past ``ONE_BY_ONE_MAX`` people, nobody is told one by one (real time would drop the rest):
    the segments are made due for a full refresh, which records the entries."""
    monkeypatch.setattr(traits, "ONE_BY_ONE_MAX", 1)
    workspace = factories.WorkspaceFactory()
    people = load(
        workspace,
        {"a": {}, "b": {}},
        [("a", ORDER, NOW - 10 * DAY, {"revenue": 10}), ("b", ORDER, NOW - 20 * DAY, {"revenue": 5})],
    )
    later = timezone.now() + timedelta(days=1)
    with workspace_scope(workspace):
        engaged = Segment.objects.create(
            workspace=workspace,
            name="Engaged",
            definition={"type": "trait", "key": "$engagement_score", "operator": "gte", "value": 1},
        )
        services.segment_refresh(segment=engaged)
        assert engaged.size == 0
        Segment.objects.filter(pk=engaged.pk).update(next_refresh_at=later)

    with django_capture_on_commit_callbacks(execute=True):
        outcome = refresh(workspace)

    assert outcome.people_changed == 2
    with workspace_scope(workspace):
        assert realtime.workspace_drain(workspace=workspace).people == 0  # nobody was queued one by one
        engaged.refresh_from_db()
        assert engaged.next_refresh_at < later
        services.segment_refresh(segment=engaged)
        entered = set(
            MembershipChange.objects.filter(segment=engaged, kind="entered").values_list("person_id", flat=True)
        )
    assert entered == {people["a"].pk, people["b"].pk}


def test_computed_traits_reach_the_builders_pickers_and_the_person_page(db, django_capture_on_commit_callbacks):
    workspace = factories.WorkspaceFactory()
    owner = factories.member(workspace, role="owner")
    people = load(workspace, {"a": {}}, [("a", ORDER, NOW - DAY, {"revenue": 3})])
    # The first run queues a recount of the catalogue's traits (the task, run here); later runs do not.
    with django_capture_on_commit_callbacks() as queued:
        refresh(workspace)
    assert [getattr(callback, "func", None) for callback in queued][-1] is traits._enqueue_recount
    tasks.catalogue_recount_task(workspace.pk)
    with django_capture_on_commit_callbacks() as queued:
        refresh(workspace, now=NOW + DAY)
    assert traits._enqueue_recount not in [getattr(callback, "func", None) for callback in queued]
    with workspace_scope(workspace):
        keys = set(CatalogueProperty.objects.filter(source=PropertySource.TRAIT).values_list("key", flat=True))
    assert set(traits.COMPUTED_KEYS) <= keys
    client = logged_in_client(owner)
    answer = client.get(reverse("segment_catalogue"), {"kind": "keys", "source": "trait", "q": "$rfm"})
    assert answer.status_code == 200
    assert {traits.RECENCY, traits.FREQUENCY, traits.MONETARY, traits.GROUP} <= {
        item["value"] for item in answer.json()["results"]
    }
    page = client.get(reverse("person_detail", args=[people["a"].pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "$rfm_group" in html, html[html.find("Traits") :][:600]
    assert "Lost" in html


def test_workspaces_due(db):
    workspace = factories.WorkspaceFactory()
    empty = factories.WorkspaceFactory()
    person = builders.person(workspace, user_id="a")
    now = timezone.now()
    assert workspace.pk in traits.workspaces_due(now=now)
    assert empty.pk not in traits.workspaces_due(now=now)
    builders.event(workspace, person, ORDER, at=now - timedelta(minutes=1))
    refresh(workspace, now=now)
    assert workspace.pk not in traits.workspaces_due(now=now)
    # New events make it due once the minimum interval has passed, not before.
    builders.event(workspace, person, "Login", at=now)
    assert workspace.pk not in traits.workspaces_due(now=now + timedelta(minutes=1))
    assert workspace.pk in traits.workspaces_due(now=now + timedelta(minutes=5))
    refresh(workspace, now=now + timedelta(minutes=5))
    assert workspace.pk not in traits.workspaces_due(now=now + timedelta(minutes=10))
    # A day later, due without events (recency ages); settings changed, due at once.
    assert workspace.pk in traits.workspaces_due(now=now + timedelta(days=1, minutes=6))
    refresh(workspace, now=timezone.now())
    assert workspace.pk not in traits.workspaces_due(now=timezone.now())
    with workspace_scope(workspace):
        traits.settings_update(workspace=workspace, actor=None, engagement_half_life_days=30)
    assert workspace.pk in traits.workspaces_due(now=timezone.now())
    # Queued: not due again, unless it has been queued too long.
    traits.mark_queued(workspace_ids=[workspace.pk])
    assert workspace.pk not in traits.workspaces_due(now=timezone.now())
    assert workspace.pk in traits.workspaces_due(now=timezone.now() + timedelta(hours=2))


@pytest.mark.django_db(transaction=True)
def test_a_large_workspace_scores_and_writes_on_several_connections_with_the_same_traits(monkeypatch):
    """Over ``PARALLEL_AFTER`` people, the two scorings run at once and the writes go through two
    connections (each reading the run's committed tables); the traits are those of one connection."""
    workspace = factories.WorkspaceFactory()
    names = [f"p{k}" for k in range(9)]
    load(
        workspace,
        {name: {} for name in names},
        [(name, ORDER, NOW - (k + 1) * DAY, {"revenue": 10 * (k % 4)}) for k, name in enumerate(names[:6])]
        + [(name, "Page Viewed", NOW - k * DAY, {}) for k, name in enumerate(names[2:])],
    )
    monkeypatch.setattr(traits, "PARALLEL_AFTER", 10**9)
    serial = refresh(workspace)
    expected = traits_of(workspace)
    with workspace_scope(workspace):
        for person in Person.objects.all():
            person.traits = {}
            person.save(update_fields=["traits"])

    monkeypatch.setattr(traits, "PARALLEL_AFTER", 0)
    parallel = refresh(workspace)

    assert serial.people_changed == parallel.people_changed == len(names)
    assert traits_of(workspace) == expected
    assert {key for values in expected.values() for key in values} == set(traits.COMPUTED_KEYS)
