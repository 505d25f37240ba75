"""Segment services: saving (validation, names, references), preview, refresh by difference,
failures and backoff, static segments and CSV lists. Real PostgreSQL throughout."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta

import orjson
import pytest
import redis
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from accounts.models import AuditLogEntry
from accounts.tenancy import workspace_scope
from segmentation import services
from segmentation.definition import DefinitionInvalid
from segmentation.models import Membership, MembershipChange, Segment, SegmentStatus
from segmentation.services import refresh
from tests import factories
from tests.segmentation.support import bought, changes, crowd, members, reload, segment_rows, shopper, snapshots

BUYERS = {"type": "event", "event": "Order Completed", "window": {"since": "30d"}}
VIP = {"type": "trait", "key": "plan", "operator": "eq", "value": "vip"}


@pytest.fixture
def scoped(workspace):
    with workspace_scope(workspace):
        yield workspace


def _create(workspace, name="Buyers", definition=None, **kwargs):
    return services.segment_create(
        workspace=workspace, actor=None, name=name, definition=definition or BUYERS, **kwargs
    )


# --- saving ----------------------------------------------------------------------------------


def test_create_stores_the_definition_pending_and_queues_a_refresh(scoped, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        segment = _create(scoped, description="Bought in the last month")

    assert (segment.name, segment.definition, segment.is_static, segment.status) == (
        "Buyers",
        BUYERS,
        False,
        SegmentStatus.PENDING,
    )
    assert len(callbacks) == 1
    assert list(AuditLogEntry.objects.values_list("action", "target")) == [("segment.created", "Buyers")]


def test_an_invalid_definition_is_refused_with_its_path_and_nothing_is_written(scoped):
    before = segment_rows(scoped)
    bad = {"type": "and", "conditions": [VIP, {"type": "event", "event": "X", "count": {"operator": "most"}}]}

    with pytest.raises(DefinitionInvalid) as caught:
        _create(scoped, definition=bad)

    assert [(e.path, e.message) for e in caught.value.errors] == [
        (
            "conditions[1].count.operator",
            "unknown operator 'most'; one of between, eq, gt, gte, lt, lte, neq",
        )
    ]
    assert segment_rows(scoped) == before
    assert not AuditLogEntry.objects.exists()


def test_names_are_unique_per_workspace_only(scoped):
    _create(scoped)
    other = factories.WorkspaceFactory()

    with pytest.raises(ValidationError) as caught:
        _create(scoped, name="  Buyers ")
    with workspace_scope(other):
        elsewhere = _create(other)

    assert caught.value.message_dict == {"name": ["A segment named 'Buyers' already exists in this workspace."]}
    assert elsewhere.name == "Buyers"


def test_a_reference_to_another_workspaces_segment_is_refused(scoped):
    other = factories.WorkspaceFactory()
    with workspace_scope(other):
        foreign = _create(other, name="Theirs")

    with pytest.raises(DefinitionInvalid) as caught:
        _create(scoped, definition={"type": "segment", "segment": foreign.pk})

    assert [(e.path, e.message) for e in caught.value.errors] == [
        ("segment", f"segment {foreign.pk} does not exist in this workspace")
    ]


def test_a_cycle_through_references_is_refused_at_update(scoped):
    a = _create(scoped, name="A")
    b = _create(scoped, name="B", definition={"type": "segment", "segment": a.pk})
    c = _create(scoped, name="C", definition={"type": "not", "condition": {"type": "segment", "segment": b.pk}})
    before = segment_rows(scoped)

    with pytest.raises(DefinitionInvalid) as caught:
        services.segment_update(
            segment=a, actor=None, definition={"type": "or", "conditions": [VIP, {"type": "segment", "segment": c.pk}]}
        )

    assert [(e.path, e.message) for e in caught.value.errors] == [
        ("conditions[1].segment", f"segment {c.pk} refers back to this segment: a cycle")
    ]
    assert segment_rows(scoped) == before


def test_update_changes_only_what_is_given_and_requeues_on_a_new_definition(scoped, django_capture_on_commit_callbacks):
    segment = _create(scoped)

    with django_capture_on_commit_callbacks() as renamed:
        services.segment_update(segment=segment, actor=None, name="Recent buyers", refresh_interval_seconds=600)
    with django_capture_on_commit_callbacks() as redefined:
        services.segment_update(segment=segment, actor=None, definition=VIP)

    stored = reload(segment)
    assert (stored.name, stored.definition, stored.refresh_interval_seconds) == ("Recent buyers", VIP, 600)
    assert (len(renamed), len(redefined)) == (0, 1)


def test_interval_bounds(scoped):
    segment = _create(scoped)
    with pytest.raises(ValidationError) as caught:
        services.segment_update(segment=segment, actor=None, refresh_interval_seconds=5)
    assert caught.value.message_dict == {"refresh_interval_seconds": ["Must be between 60 and 604800 seconds."]}
    assert reload(segment).refresh_interval_seconds == 300


def test_delete_is_refused_while_referenced(scoped):
    a = _create(scoped, name="A")
    _create(scoped, name="B", definition={"type": "segment", "segment": a.pk})
    b_id = Segment.objects.get(name="B").pk

    with pytest.raises(ValidationError) as caught:
        services.segment_delete(segment=a, actor=None)

    assert caught.value.message_dict == {"segment": [f"Segment 'A' is used by the definition of 'B' (id {b_id})."]}
    assert Segment.objects.filter(pk=a.pk).exists()
    services.segment_delete(segment=Segment.objects.get(name="B"), actor=None)
    services.segment_delete(segment=a, actor=None)
    assert not Segment.objects.exists()


# --- preview ----------------------------------------------------------------------------------


def test_preview_counts_and_samples_without_saving(scoped):
    now = timezone.now()
    ann, bob, _cy = shopper(scoped, "ann"), shopper(scoped, "bob"), shopper(scoped, "cy")
    bought(scoped, ann, now - timedelta(days=2))
    bought(scoped, bob, now - timedelta(days=40))
    before = segment_rows(scoped)

    preview = services.segment_preview(workspace=scoped, definition=BUYERS)
    everyone = services.segment_preview(workspace=scoped, definition={"type": "not", "condition": BUYERS})

    assert (preview.count, [p.user_id for p in preview.sample]) == (1, ["ann"])
    assert everyone.count == 2
    assert {p.user_id for p in everyone.sample} == {"bob", "cy"}
    assert segment_rows(scoped) == before


def test_preview_stops_at_its_timeout(scoped, settings):
    settings.SEGMENT_PREVIEW_TIMEOUT_SECONDS = 0.001
    crowd(scoped)
    heavy = {
        "type": "or",
        "conditions": [{"type": "trait", "key": f"k{i}", "operator": "contains", "value": "x"} for i in range(50)],
    }

    with pytest.raises(services.SegmentQueryTimeout) as caught:
        services.segment_preview(workspace=scoped, definition={"type": "not", "condition": heavy})

    assert str(caught.value) == "Counting this segment took longer than 0.001 s."


# --- refresh ----------------------------------------------------------------------------------


def test_refresh_applies_the_difference_and_records_it(scoped):
    now = timezone.now()
    ann, bob, cy = shopper(scoped, "ann"), shopper(scoped, "bob"), shopper(scoped, "cy")
    bought(scoped, ann, now - timedelta(days=1))
    bought(scoped, bob, now - timedelta(days=1))
    segment = _create(scoped)

    first = services.segment_refresh(segment=segment, now=now)
    entered_at = dict(Membership.objects.filter(segment=segment).values_list("person__user_id", "entered_at"))
    bought(scoped, cy, now + timedelta(minutes=1))
    later = now + timedelta(days=28)  # ann's and bob's purchases (a day before now) still inside 30 days
    second = services.segment_refresh(segment=segment, now=later)

    assert (first.size, first.entered, first.exited, first.skipped) == (2, 2, 0, False)
    assert (second.size, second.entered, second.exited) == (3, 1, 0)
    assert members(segment) == {"ann", "bob", "cy"}
    # People who stayed keep their entry time: nothing was truncated and refilled.
    after = dict(Membership.objects.filter(segment=segment).values_list("person__user_id", "entered_at"))
    assert (after["ann"], after["bob"]) == (entered_at["ann"], entered_at["bob"])
    assert after["cy"] == later
    assert changes(segment) == [("ann", "entered"), ("bob", "entered"), ("cy", "entered")]
    assert snapshots(segment) == [(2, 2, 0), (3, 1, 0)]
    stored = reload(segment)
    assert (stored.status, stored.size, stored.refreshed_at, stored.error, stored.consecutive_failures) == (
        SegmentStatus.FRESH,
        3,
        later,
        "",
        0,
    )
    assert stored.next_refresh_at == later + timedelta(seconds=300)


def test_a_refresh_never_stores_ids_that_are_not_people_of_the_workspace(scoped):
    """Events of this workspace pointing at another workspace's person, or at nobody (rows no
    ingestion writes), make no member: the refresh checks its newcomers against the people."""
    now = timezone.now()
    ann = shopper(scoped, "ann")
    bought(scoped, ann, now - timedelta(days=1))
    other = factories.WorkspaceFactory()
    stranger = shopper(other, "stranger")
    with connection.cursor() as cursor:
        cursor.execute(
            'INSERT INTO tracking_event (workspace_id, person_id, name, "timestamp", received_at, message_id) '
            "VALUES (%s, %s, 'Order Completed', %s, %s, 'x'), (%s, %s, 'Order Completed', %s, %s, 'y')",
            [scoped.pk, stranger.pk, now, now, scoped.pk, 10**12, now, now],
        )
    segment = _create(scoped)

    first = services.segment_refresh(segment=segment, now=now)
    again = services.segment_refresh(segment=segment, now=now + timedelta(minutes=5))

    assert (first.size, first.entered, first.exited) == (1, 1, 0)
    assert (again.size, again.entered, again.exited) == (1, 0, 0)
    assert members(segment) == {"ann"}
    assert changes(segment) == [("ann", "entered")]
    assert snapshots(segment) == [(1, 1, 0), (1, 0, 0)]
    assert reload(segment).size == 1


def test_time_based_exit_flips_at_a_later_refresh(scoped):
    """ "No purchase in 90 days": nobody buys anything, time alone moves people in and out."""
    now = timezone.now()
    ann, bob = shopper(scoped, "ann"), shopper(scoped, "bob")
    bought(scoped, ann, now - timedelta(days=80))
    bought(scoped, bob, now - timedelta(days=5))
    lapsed = _create(
        scoped,
        name="Lapsed",
        definition={"type": "last_performed", "event": "Order Completed", "window": {"until": "90d"}},
    )
    recent = _create(
        scoped, name="Recent", definition={"type": "event", "event": "Order Completed", "window": {"since": "90d"}}
    )

    services.segment_refresh(segment=lapsed, now=now)
    services.segment_refresh(segment=recent, now=now)
    assert (members(lapsed), members(recent)) == (set(), {"ann", "bob"})

    later = now + timedelta(days=11)
    services.segment_refresh(segment=lapsed, now=later)
    services.segment_refresh(segment=recent, now=later)

    assert (members(lapsed), members(recent)) == ({"ann"}, {"bob"})
    assert changes(recent) == [("ann", "entered"), ("bob", "entered"), ("ann", "exited")]
    assert snapshots(recent) == [(2, 2, 0), (1, 0, 1)]


def test_a_referencing_segment_reads_the_stored_membership(scoped):
    now = timezone.now()
    ann, _bob = shopper(scoped, "ann", traits={"plan": "vip"}), shopper(scoped, "bob", traits={"plan": "vip"})
    bought(scoped, ann, now - timedelta(days=1))
    buyers = _create(scoped)
    vip_buyers = _create(
        scoped,
        name="VIP buyers",
        definition={"type": "and", "conditions": [VIP, {"type": "segment", "segment": buyers.pk}]},
    )

    services.segment_refresh(segment=vip_buyers, now=now)
    assert members(vip_buyers) == set()  # buyers was never refreshed: its stored membership is empty
    services.segment_refresh(segment=buyers, now=now)
    services.segment_refresh(segment=vip_buyers, now=now)

    assert members(vip_buyers) == {"ann"}


@pytest.fixture
def feed_queue(settings):
    """The change feed's drains go to a queue of the test's own, emptied after."""
    name = f"test-feed-{uuid.uuid4().hex}"
    settings.SEGMENT_FEED_QUEUE = name
    yield name
    redis.Redis.from_url(settings.REDIS_URL).delete(name)


def _drains_queued(queue: str) -> list[str]:
    messages = redis.Redis.from_url(settings.REDIS_URL).lrange(queue, 0, -1)
    return [orjson.loads(m)["headers"]["argsrepr"] for m in messages]


def test_a_refresh_that_changes_members_kicks_the_feed_once_committed(
    scoped, feed_queue, django_capture_on_commit_callbacks
):
    # Given a buyer
    now = timezone.now()
    ann = shopper(scoped, "ann")
    bought(scoped, ann, now - timedelta(days=1))
    segment = _create(scoped)

    # When a refresh records her entry and commits: one drain of the workspace is queued
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.segment_refresh(segment=segment, now=now)
    assert len(callbacks) == 1
    assert _drains_queued(feed_queue) == [f"({scoped.pk},)"]

    # And a refresh that changes nothing kicks nothing
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.segment_refresh(segment=segment, now=now)
    assert callbacks == []


def test_a_failed_refresh_keeps_the_membership_and_backs_off(scoped, monkeypatch):
    now = timezone.now()
    ann = shopper(scoped, "ann")
    bought(scoped, ann, now - timedelta(days=1))
    segment = _create(scoped)
    services.segment_refresh(segment=segment, now=now)
    shopper_bob = shopper(scoped, "bob")
    bought(scoped, shopper_bob, now)

    def timeout(*args, **kwargs):
        from segmentation.compiler import CompiledQuery

        return CompiledQuery(sql="SELECT person_id FROM (SELECT pg_sleep(1), 1::bigint AS person_id) s", params=[])

    monkeypatch.setattr(refresh, "compile_members", timeout)
    monkeypatch.setattr(refresh.settings, "SEGMENT_REFRESH_TIMEOUT_SECONDS", 0.05)
    results = [services.segment_refresh(segment=segment, now=now + timedelta(minutes=m)) for m in (1, 2)]

    stored = reload(segment)
    assert [r.error for r in results] == ["The refresh took longer than 0.05 s and was stopped."] * 2
    assert (stored.status, stored.error, stored.consecutive_failures) == (
        SegmentStatus.FAILED,
        "The refresh took longer than 0.05 s and was stopped.",
        2,
    )
    # 300 s * 2^2 after the second failure
    assert stored.next_refresh_at == now + timedelta(minutes=2) + timedelta(seconds=1200)
    assert members(segment) == {"ann"}
    assert snapshots(segment) == [(1, 1, 0)]

    monkeypatch.undo()
    recovered = services.segment_refresh(segment=segment, now=now + timedelta(minutes=3))
    stored = reload(segment)
    assert (recovered.size, stored.status, stored.consecutive_failures, stored.error) == (2, "fresh", 0, "")


def test_backoff_is_capped(scoped, settings, monkeypatch):
    settings.SEGMENT_REFRESH_MAX_BACKOFF_SECONDS = 3600
    segment = _create(scoped)
    Segment.objects.filter(pk=segment.pk).update(consecutive_failures=10)
    monkeypatch.setattr(refresh, "_apply", lambda *a: (_ for _ in ()).throw(RuntimeError("disk full")))
    now = timezone.now()

    result = services.segment_refresh(segment=segment, now=now)

    stored = reload(segment)
    assert result.error == stored.error == "The refresh failed: disk full"
    assert (stored.consecutive_failures, stored.next_refresh_at) == (11, now + timedelta(hours=1))


def test_fan_out_claims_due_segments_of_every_workspace_referenced_first(scoped):
    now = timezone.now()
    other = factories.WorkspaceFactory()
    base = _create(scoped, name="Base")
    derived = _create(scoped, name="Derived", definition={"type": "segment", "segment": base.pk})
    Segment.objects.filter(pk=derived.pk).update(next_refresh_at=now - timedelta(minutes=5))
    Segment.objects.filter(pk=base.pk).update(next_refresh_at=now - timedelta(minutes=1))
    later = _create(scoped, name="Later")
    Segment.objects.filter(pk=later.pk).update(next_refresh_at=now + timedelta(minutes=1))
    with workspace_scope(other):
        theirs = _create(other, name="Theirs")
        static = services.segment_create(workspace=other, actor=None, name="List", definition=None, static=True)

    due = services.segments_claim_due(now=now)
    again = services.segments_claim_due(now=now)

    assert due == [(other.pk, theirs.pk), (scoped.pk, base.pk), (scoped.pk, derived.pk)]
    assert again == []
    assert static.pk not in {pk for _, pk in due}


# --- static segments ---------------------------------------------------------------------------


def test_static_segments_change_only_when_told(scoped):
    shopper(scoped, "ann"), shopper(scoped, "bob"), shopper(scoped, "cy")
    segment = services.segment_create(workspace=scoped, actor=None, name="Beta", definition=None, static=True)
    assert (segment.status, segment.size, members(segment)) == (SegmentStatus.FRESH, 0, set())

    first = services.segment_static_change(segment=segment, actor=None, add=["ann", "bob", "ghost", "ann"], remove=[])
    second = services.segment_static_change(segment=segment, actor=None, add=["cy", "bob"], remove=["ann", "nobody"])
    refreshed = services.segment_refresh(segment=segment)

    assert (first.added, first.removed, first.unknown) == (2, 0, ["ghost"])
    assert (second.added, second.removed, second.unknown) == (1, 1, ["nobody"])
    assert (refreshed.size, refreshed.entered, refreshed.exited) == (2, 0, 0)
    assert members(segment) == {"bob", "cy"}
    assert reload(segment).size == 2
    assert changes(segment) == [("ann", "entered"), ("bob", "entered"), ("cy", "entered"), ("ann", "exited")]
    assert snapshots(segment)[:2] == [(2, 2, 0), (2, 1, 1)]


def test_a_dynamic_segment_refuses_a_member_list(scoped):
    shopper(scoped, "ann")
    segment = _create(scoped)
    with pytest.raises(ValidationError) as caught:
        services.segment_static_change(segment=segment, actor=None, add=["ann"], remove=[])
    assert caught.value.message_dict == {
        "segment": ["Members of a dynamic segment follow its definition; only static segments take a list."]
    }
    assert members(segment) == set()


def test_ids_in_both_lists_are_refused(scoped):
    segment = services.segment_create(workspace=scoped, actor=None, name="Beta", definition=None, static=True)
    with pytest.raises(ValidationError) as caught:
        services.segment_static_change(segment=segment, actor=None, add=["ann"], remove=["ann"])
    assert caught.value.message_dict == {"remove": ["Named in both add and remove: 'ann'."]}


def test_csv_preview_and_apply(scoped):
    for name in ("ann", "bob", "cy"):
        shopper(scoped, name)
    other = factories.WorkspaceFactory()
    shopper(other, "dee")
    segment = services.segment_create(workspace=scoped, actor=None, name="Upload", definition=None, static=True)
    services.segment_static_change(segment=segment, actor=None, add=["cy"], remove=[])
    upload = b'email,user_id\nann@x,ann\nb@x,bob\n,\nd@x,dee\ne@x,"\'; drop table x; --"\n'

    preview = services.segment_static_csv_preview(segment=segment, file=io.BytesIO(b"\xef\xbb\xbf" + upload))
    applied = services.segment_static_csv_apply(segment=segment, actor=None, file=io.BytesIO(upload), replace=True)

    matched, unmatched, total = preview
    assert (matched, unmatched, total) == (2, ["dee", "'; drop table x; --"], 4)
    assert (preview.matched, preview.total) == (2, 4)
    assert (applied.added, applied.removed, applied.unknown) == (2, 1, ["dee", "'; drop table x; --"])
    assert members(segment) == {"ann", "bob"}


def test_csv_without_a_user_id_header_uses_the_first_column(scoped):
    shopper(scoped, "ann")
    segment = services.segment_create(workspace=scoped, actor=None, name="Upload", definition=None, static=True)

    applied = services.segment_static_csv_apply(
        segment=segment, actor=None, file=io.StringIO("ann,x\nzed,y\nnul\x00id,z\n")
    )

    assert (applied.added, applied.removed, applied.unknown) == (1, 0, ["zed", "nul\x00id"])
    assert members(segment) == {"ann"}


def test_refreshing_a_segment_deleted_meanwhile_does_nothing(scoped):
    segment = _create(scoped)
    Segment.objects.filter(pk=segment.pk).delete()

    result = services.segment_refresh(segment=segment)

    assert (result.skipped, result.size, result.entered, result.exited) == (True, 0, 0, 0)
    assert not Segment.objects.exists()


def test_an_unreadable_csv_is_refused_and_nothing_is_written(scoped):
    shopper(scoped, "ann")
    segment = services.segment_create(workspace=scoped, actor=None, name="Upload", definition=None, static=True)
    before = segment_rows(scoped)

    upload = b"user_id\nann\n" + b"x" * 200_000 + b"\n"
    with pytest.raises(ValidationError) as caught:
        services.segment_static_csv_apply(segment=segment, actor=None, file=io.BytesIO(upload))

    assert caught.value.message_dict == {
        "file": ["Not a readable CSV file (line 3): field larger than field limit (131072)."]
    }
    assert segment_rows(scoped) == before


def test_static_changes_kick_the_feed_once_committed(scoped, feed_queue, django_capture_on_commit_callbacks):
    # Given a static segment with a member, and another person
    ann, bob = shopper(scoped, "ann"), shopper(scoped, "bob")
    segment = services.segment_create(workspace=scoped, actor=None, name="Beta", definition=None, static=True)
    services.segment_static_change(segment=segment, actor=None, add=["ann"], remove=[])

    # When one joins and the other leaves, and the change commits
    with django_capture_on_commit_callbacks(execute=True):
        services.segment_static_change(segment=segment, actor=None, add=["bob"], remove=["ann"])

    # Then both are in the feed, and one drain of the workspace is queued
    kinds = sorted(MembershipChange.objects.filter(segment=segment).order_by("id").values_list("person_id", "kind"))
    assert kinds == sorted([(ann.pk, "entered"), (bob.pk, "entered"), (ann.pk, "exited")])
    assert _drains_queued(feed_queue) == [f"({scoped.pk},)"]


def test_a_window_that_empties_after_saving_matches_nobody_instead_of_failing(scoped):
    now = timezone.now()
    ann = shopper(scoped, "ann")
    bought(scoped, ann, now - timedelta(days=1))
    closes = (now + timedelta(days=2)).isoformat()
    segment = _create(
        scoped, definition={"type": "event", "event": "Order Completed", "window": {"since": "7d", "until": closes}}
    )
    services.segment_refresh(segment=segment, now=now)
    assert members(segment) == {"ann"}

    result = services.segment_refresh(segment=segment, now=now + timedelta(days=10))

    assert (result.error, result.size, reload(segment).status) == ("", 0, SegmentStatus.FRESH)
    assert members(segment) == set()
