"""Merges and erasures seen from segmentation: memberships move or go, sizes stay exact, exits are recorded.

Each test compares the stored sizes with a full re-evaluation: the refresh that follows must find
nothing to change (no entry, no exit) and the same size.
"""

from __future__ import annotations

import uuid

import orjson
import pytest
import redis
from django.conf import settings

from accounts.tenancy import workspace_scope
from segmentation import realtime, services
from segmentation.models import Membership, MembershipChange, MembershipChangeKind, Segment
from tests.tracking.conftest import basic_auth
from tracking import services as tracking_services
from tracking.models import Identity, IdentityKind, Person
from tracking.people_services import person_erase

DID_A = {"type": "event", "event": "A"}
DID_B = {"type": "event", "event": "B"}
PRO = {"type": "trait", "key": "plan", "operator": "eq", "value": "pro"}
NOT_B = {"type": "not", "condition": DID_B}
A_TWICE = {"type": "event", "event": "A", "count": {"operator": "gte", "value": 2}}


@pytest.fixture(autouse=True)
def _realtime(settings, workspace):
    """A fresh notifier and a drain queue of the test's own; both, and the workspace's pending work, emptied after."""
    realtime.notifier.reset()
    name, url = f"test-person-data-{uuid.uuid4().hex}", settings.REDIS_URL
    settings.SEGMENTS_REALTIME_QUEUE = name
    yield
    keys = realtime.keys(workspace.pk)
    redis.Redis.from_url(url).delete(name, keys.pending, keys.kick, keys.overflow)
    redis.Redis.from_url(url).srem(keys.dirty, workspace.pk)
    realtime.notifier.reset()


def _batch(client, workspace, messages, capture) -> None:
    with capture(execute=True):
        response = client.post(
            "/v1/batch",
            orjson.dumps({"batch": messages}),
            content_type="application/json",
            HTTP_AUTHORIZATION=basic_auth(workspace.write_key),
        )
    assert response.status_code == 200, response.content


def _person_id(workspace, kind, value) -> int:
    with workspace_scope(workspace):
        return Identity.objects.get(kind=kind, value=value).person_id


def _segments(workspace) -> dict[str, Segment]:
    """Segments refreshed once, so that they hold their members as of now."""
    definitions = {"did A": DID_A, "did B": DID_B, "pro": PRO, "not B": NOT_B, "A twice": A_TWICE}
    found = {}
    with workspace_scope(workspace):
        for name, definition in definitions.items():
            segment = Segment.objects.create(workspace=workspace, name=name, definition=definition)
            services.segment_refresh(segment=segment)
            found[name] = segment
    return found


def _members(workspace, segment) -> dict[int, object]:
    with workspace_scope(workspace):
        return dict(Membership.objects.filter(segment=segment).values_list("person_id", "entered_at"))


def _sizes(workspace) -> dict[str, int]:
    with workspace_scope(workspace):
        return dict(Segment.objects.values_list("name", "size"))


def _assert_sizes_are_a_full_reevaluation(workspace) -> None:
    """Every size counts its rows, and a full refresh now finds nothing to change."""
    with workspace_scope(workspace):
        for segment in Segment.objects.order_by("name"):
            stored = segment.size
            assert stored == Membership.objects.filter(segment=segment).count(), segment.name
            result = services.segment_refresh(segment=segment)
            assert (segment.name, result.size, result.entered, result.exited) == (segment.name, stored, 0, 0)


def _changes(workspace, segment, since_id) -> list[tuple[int | None, str]]:
    with workspace_scope(workspace):
        rows = MembershipChange.objects.filter(segment=segment, pk__gt=since_id).order_by("pk")
        return list(rows.values_list("person_id", "kind"))


def _last_change_id(workspace) -> int:
    with workspace_scope(workspace):
        return MembershipChange.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def test_a_merge_moves_memberships_keeps_sizes_exact_and_records_the_exits(
    client, workspace, django_capture_on_commit_callbacks
):
    # Given an identified pro who did A, an anonymous visitor who did A then B, and someone else who did B
    capture = django_capture_on_commit_callbacks
    _batch(
        client,
        workspace,
        [
            {"type": "identify", "userId": "u-s", "traits": {"plan": "pro"}},
            {"type": "track", "userId": "u-s", "event": "A"},
            {"type": "track", "anonymousId": "anon-l", "event": "A"},
            {"type": "track", "anonymousId": "anon-l", "event": "B"},
            {"type": "track", "userId": "u-o", "event": "B"},
        ],
        capture,
    )
    survivor = _person_id(workspace, IdentityKind.USER_ID, "u-s")
    loser = _person_id(workspace, IdentityKind.ANONYMOUS_ID, "anon-l")
    other = _person_id(workspace, IdentityKind.USER_ID, "u-o")
    segments = _segments(workspace)
    assert _sizes(workspace) == {"did A": 2, "did B": 2, "pro": 1, "not B": 1, "A twice": 0}
    entered = {name: _members(workspace, segment) for name, segment in segments.items()}
    assert set(entered["did A"]) == {survivor, loser}
    assert set(entered["did B"]) == {loser, other}
    before = _last_change_id(workspace)

    # When the visitor signs in as the pro: the anonymous person merges into the identified one
    _batch(client, workspace, [{"type": "identify", "userId": "u-s", "anonymousId": "anon-l"}], capture)

    # Then at once: no row is keyed by the loser, and each size counts its rows
    assert _person_id(workspace, IdentityKind.ANONYMOUS_ID, "anon-l") == survivor
    with workspace_scope(workspace):
        assert not Membership.objects.filter(person_id=loser).exists()
        assert not MembershipChange.objects.filter(person_id=loser).exists()
    # both were in "did A": one member left, with the earlier entry, and an exit without a person
    assert _members(workspace, segments["did A"]) == {
        survivor: min(entered["did A"][survivor], entered["did A"][loser])
    }
    assert _changes(workspace, segments["did A"], before) == [(None, MembershipChangeKind.EXITED)]
    # only the loser was in "did B": the survivor took its row, nobody entered or left
    assert _members(workspace, segments["did B"]) == {survivor: entered["did B"][loser], other: entered["did B"][other]}
    assert _changes(workspace, segments["did B"], before) == []
    # the loser's history is the survivor's now
    with workspace_scope(workspace):
        assert MembershipChange.objects.filter(
            segment=segments["did B"], person_id=survivor, kind=MembershipChangeKind.ENTERED
        ).exists()
    assert _sizes(workspace) == {"did A": 1, "did B": 2, "pro": 1, "not B": 1, "A twice": 0}

    # When real time re-evaluates the survivor, whose history grew by the loser's (seconds later in production)
    with workspace_scope(workspace):
        realtime.workspace_drain(workspace=workspace)

    # Then the combined history decides: the survivor did B (leaves "not B") and did A twice (enters "A twice")
    assert _changes(workspace, segments["not B"], before) == [(survivor, MembershipChangeKind.EXITED)]
    assert _changes(workspace, segments["A twice"], before) == [(survivor, MembershipChangeKind.ENTERED)]
    assert _sizes(workspace) == {"did A": 1, "did B": 2, "pro": 1, "not B": 0, "A twice": 1}
    # and every size is what a full re-evaluation finds
    _assert_sizes_are_a_full_reevaluation(workspace)


def test_an_erasure_records_the_exits_without_the_person_and_keeps_sizes_exact(
    client, workspace, owner, django_capture_on_commit_callbacks
):
    # Given two pros who did A, one of whom also did B
    _batch(
        client,
        workspace,
        [
            {"type": "identify", "userId": "ada", "traits": {"plan": "pro"}},
            {"type": "track", "userId": "ada", "event": "A"},
            {"type": "track", "userId": "ada", "event": "B"},
            {"type": "identify", "userId": "bob", "traits": {"plan": "pro"}},
            {"type": "track", "userId": "bob", "event": "A"},
        ],
        django_capture_on_commit_callbacks,
    )
    ada = _person_id(workspace, IdentityKind.USER_ID, "ada")
    bob = _person_id(workspace, IdentityKind.USER_ID, "bob")
    segments = _segments(workspace)
    assert _sizes(workspace) == {"did A": 2, "did B": 1, "pro": 2, "not B": 1, "A twice": 0}
    with workspace_scope(workspace):
        history = MembershipChange.objects.filter(person_id=ada).count()
    assert history == 3
    before = _last_change_id(workspace)

    # When Ada is erased
    with workspace_scope(workspace):
        erasure = person_erase(workspace=workspace, person=Identity.objects.get(value="ada").person, actor=owner)
    assert erasure is not None

    # Then she left each of her segments: an exit each, about nobody, and the sizes count one less
    for name in ("did A", "did B", "pro"):
        assert _changes(workspace, segments[name], before) == [(None, MembershipChangeKind.EXITED)], name
    assert _changes(workspace, segments["not B"], before) == []
    assert _sizes(workspace) == {"did A": 1, "did B": 0, "pro": 1, "not B": 1, "A twice": 0}
    # her history still counts in the segments' history, without her id
    with workspace_scope(workspace):
        assert not MembershipChange.objects.filter(person_id=ada).exists()
        assert MembershipChange.objects.filter(person_id=None, pk__lte=before).count() == history
        assert set(Membership.objects.values_list("person_id", flat=True)) == {bob}
    _assert_sizes_are_a_full_reevaluation(workspace)


def test_a_merge_outside_ingestion_moves_memberships_and_queues_the_survivor(
    client, workspace, django_capture_on_commit_callbacks
):
    # Given two identified people in a segment
    _batch(
        client,
        workspace,
        [{"type": "track", "userId": "old", "event": "A"}, {"type": "track", "userId": "new", "event": "B"}],
        django_capture_on_commit_callbacks,
    )
    old = _person_id(workspace, IdentityKind.USER_ID, "old")
    new = _person_id(workspace, IdentityKind.USER_ID, "new")
    segments = _segments(workspace)
    keys = realtime.keys(workspace.pk)
    redis.Redis.from_url(settings.REDIS_URL).delete(keys.pending)

    # When one is merged into the other by the service
    with django_capture_on_commit_callbacks(execute=True), workspace_scope(workspace):
        tracking_services.person_merge(
            workspace=workspace, loser=Person.objects.get(pk=old), survivor=Person.objects.get(pk=new)
        )

    # Then the survivor holds the loser's membership, and real time re-evaluates them
    assert set(_members(workspace, segments["did A"])) == {new}
    assert realtime.facts_pending(workspace.pk) == {f"{new}|*"}
    with workspace_scope(workspace):
        realtime.workspace_drain(workspace=workspace)
    _assert_sizes_are_a_full_reevaluation(workspace)
