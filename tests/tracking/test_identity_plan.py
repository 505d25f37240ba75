"""The identity plan on its own (tracking.identity): who each message belongs to, with no database.

No test here asks for the database (pytest-django refuses any query): the plan is
fed the people ingestion's lookup would have found, as ``PlannedPerson`` values.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

from tracking.identity import ANONYMOUS, USER, Plan, PlannedPerson, keys_of, message_keys
from tracking.messages import Message
from tracking.models import IdentityKind

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
_ids = count(1)


def _message(type: str, *, user_id: str | None = None, anonymous_id: str | None = None, **fields) -> Message:
    n = next(_ids)
    return Message(
        type=type,
        message_id=f"m{n}",
        user_id=user_id,
        anonymous_id=anonymous_id,
        timestamp=fields.pop("timestamp", T0 + timedelta(seconds=n)),
        received_at=T0,
        **fields,
    )


def _plan(*people: tuple[int, str | None, list[tuple[str, str]]], first_touch: set[int] = frozenset()) -> Plan:
    """A plan over known people given as (row id, user id, their ids)."""
    known = {}
    for ref, user_id, keys in people:
        person = PlannedPerson(ref, user_id, has_first_touch=ref in first_touch)
        for key in keys:
            known[key] = person
    return Plan(known)


def _row_ids(plan: Plan, created: dict[int, int]):
    """What ingestion answers after writing: each ref's row id, through its survivor."""
    return lambda ref: created.get(plan.final(ref), plan.final(ref))


def test_the_kinds_are_the_identity_kinds_stored():
    assert (IdentityKind.USER_ID.value, IdentityKind.ANONYMOUS_ID.value) == (USER, ANONYMOUS)


def test_a_new_visitor_then_their_identify_in_one_request_is_one_new_person():
    plan = _plan()
    plan.add(_message("page", anonymous_id="a1", properties={"url": "https://x.test/"}))
    plan.add(_message("identify", user_id="ada", anonymous_id="a1", traits={"plan": "pro"}))

    assert plan.new_people == [-1]
    assert plan.new_identities == [(ANONYMOUS, "a1", -1), (USER, "ada", -1)]
    assert plan.merges == []
    person = plan.people[-1]
    assert (person.user_id, person.user_id_set) == ("ada", True)
    assert [ref for ref, _ in plan.seen] == [-1, -1]
    assert plan.trait_writes == [(-1, {"plan": "pro"})]
    changes = plan.touched(_row_ids(plan, {-1: 100}))
    assert list(changes) == [100]
    assert (changes[100].everything, changes[100].traits, changes[100].events) == (True, True, {""})


def test_a_known_visitor_logging_in_as_a_known_user_merges_into_the_user():
    plan = _plan((3, "ada", [(USER, "ada")]), (7, None, [(ANONYMOUS, "a7")]))
    plan.add(_message("track", anonymous_id="a7", event="Viewed"))
    plan.add(_message("identify", user_id="ada", anonymous_id="a7"))
    plan.add(_message("track", anonymous_id="a7", event="Bought"))

    assert plan.merges == [(7, 3)]
    assert plan.new_people == []
    assert plan.new_identities == []
    assert plan.final(7) == 3
    # Events keep the ref they were planned with; the writer resolves it to the survivor.
    assert [(ref, m.event) for ref, m in plan.events] == [(7, "Viewed"), (3, "Bought")]
    changes = plan.touched(_row_ids(plan, {}))
    assert list(changes) == [3]
    assert changes[3].everything
    assert changes[3].events == {"Viewed", "Bought"}


def test_an_anonymous_id_of_another_identified_person_is_a_shared_device_not_a_merge():
    plan = _plan((3, "ada", [(USER, "ada"), (ANONYMOUS, "a1")]))
    plan.add(_message("identify", user_id="bob", anonymous_id="a1"))

    assert plan.merges == []
    assert plan.new_people == [-1]
    # Only bob's user id is linked: the anonymous id stays with ada.
    assert plan.new_identities == [(USER, "bob", -1)]
    assert plan.people[-1].user_id == "bob"
    assert plan.find((ANONYMOUS, "a1")) is plan.people[3]


def test_two_identified_people_are_never_merged_by_identify():
    plan = _plan((3, "ada", [(USER, "ada")]), (5, "bob", [(USER, "bob"), (ANONYMOUS, "b1")]))
    person = plan.resolve("ada", "b1")

    assert person.ref == 3
    assert plan.merges == []
    assert plan.new_identities == []


def test_alias_merges_the_previous_id_s_person_into_the_new_id_s():
    plan = _plan((3, "ada", [(USER, "ada")]), (5, "old-ada", [(USER, "old-ada")]), first_touch={5})
    plan.add(_message("alias", user_id="ada", previous_id="old-ada"))

    assert plan.merges == [(5, 3)]
    survivor = plan.people[3]
    # The survivor's user id stays; the loser's first-touch traits travel with its history.
    assert (survivor.user_id, survivor.user_id_set, survivor.has_first_touch) == ("ada", False, True)
    assert plan.find((USER, "old-ada")) is survivor


def test_alias_of_an_unknown_previous_id_links_it_to_the_person():
    plan = _plan((3, "ada", [(USER, "ada")]))
    plan.add(_message("alias", user_id="ada", previous_id="legacy-42"))

    assert plan.merges == []
    assert plan.new_people == []
    assert plan.new_identities == [(ANONYMOUS, "legacy-42", 3)]


def test_alias_to_a_new_user_id_renames_the_anonymous_person():
    plan = _plan((7, None, [(ANONYMOUS, "a7")]))
    plan.add(_message("alias", user_id="ada", previous_id="a7"))

    assert plan.merges == []
    assert plan.new_people == []
    assert plan.new_identities == [(USER, "ada", 7)]
    assert (plan.people[7].user_id, plan.people[7].user_id_set) == ("ada", True)


def test_a_merge_gives_the_survivor_the_loser_s_user_id_when_it_has_none():
    plan = _plan((4, None, [(ANONYMOUS, "a4")]), (7, "ada", [(ANONYMOUS, "a7")]))
    plan.add(_message("alias", anonymous_id="a4", previous_id="a7"))

    assert plan.merges == [(7, 4)]
    assert (plan.people[4].user_id, plan.people[4].user_id_set) == ("ada", True)


def test_merges_chain_to_the_last_survivor():
    plan = _plan((1, None, [(ANONYMOUS, "a1")]), (2, None, [(ANONYMOUS, "a2")]), (3, "ada", [(USER, "ada")]))
    plan.add(_message("alias", anonymous_id="a2", previous_id="a1"))
    plan.add(_message("identify", user_id="ada", anonymous_id="a2"))

    assert plan.merges == [(1, 2), (2, 3)]
    assert plan.final(1) == plan.final(2) == 3
    assert plan.find((ANONYMOUS, "a1")) is plan.people[3]


def test_the_ids_to_check_against_suppression_cover_every_id_a_message_names():
    alias = _message("alias", user_id="ada", anonymous_id="a1", previous_id="old")

    assert message_keys(alias) == [(USER, "ada"), (ANONYMOUS, "a1"), (USER, "old"), (ANONYMOUS, "old")]
    # A suppressed id: the caller finds it among the message's ids and never adds the message.
    suppressed = {(ANONYMOUS, "a1")}
    assert [key for key in message_keys(alias) if key in suppressed] == [(ANONYMOUS, "a1")]
    page = _message("page", anonymous_id="a1")
    assert keys_of([page, alias, page]) == [(ANONYMOUS, "a1"), (ANONYMOUS, "old"), (USER, "ada"), (USER, "old")]


def test_pages_are_first_touch_candidates_only_for_people_without_first_touch_traits():
    plan = _plan((3, "ada", [(USER, "ada")]), (5, "bob", [(USER, "bob")]), first_touch={5})
    plan.add(_message("page", user_id="ada", properties={"referrer": "https://a.test/"}))
    plan.add(_message("page", user_id="bob", properties={"referrer": "https://b.test/"}))

    assert [(ref, props["referrer"]) for ref, _, props in plan.first_touches] == [
        (3, "https://a.test/"),
        (5, "https://b.test/"),
    ]
    changes = plan.touched(_row_ids(plan, {}))
    # bob keeps his first-touch traits: nothing changes about his traits.
    assert (changes[3].traits, changes[5].traits) == (True, False)
    assert changes[5].events == {""}


def test_identify_traits_and_group_calls_are_planned_for_the_person():
    plan = _plan((3, "ada", [(USER, "ada")]))
    plan.add(_message("identify", user_id="ada"))  # no traits: nothing to write
    plan.add(_message("identify", user_id="ada", traits={"plan": "pro"}))
    plan.add(_message("group", user_id="ada", group_id="acme", traits={"size": 10}))

    assert plan.trait_writes == [(3, {"plan": "pro"})]
    assert plan.group_links == [(3, "acme", {"size": 10})]
    assert plan.events == []
    assert len(plan.seen) == 3
