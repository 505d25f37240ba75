"""Segment tags (service, API, the list's filter, the builder) and segments made from an overlap cell."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from accounts.tenancy import workspace_scope
from segmentation import services
from segmentation.models import MAX_TAGS, Segment, SegmentStatus
from segmentation.playbooks import PLAYBOOKS
from tests import factories
from tests.accounts.support import api, logged_in_client
from tests.segmentation.support import bought, members, reload, segment_rows, shopper

pytestmark = pytest.mark.django_db

BUYERS = {"type": "event", "event": "Order Completed", "window": {"since": "30d"}}
PRO = {"type": "trait", "key": "plan", "operator": "eq", "value": "Pro"}


def _segment(workspace, name, definition=None, *, refresh=True, **kwargs):
    with workspace_scope(workspace):
        segment = services.segment_create(
            workspace=workspace, actor=None, name=name, definition=definition or BUYERS, **kwargs
        )
        if refresh:
            services.segment_refresh(segment=segment)
        return reload(segment)


@pytest.fixture
def shoppers(workspace):
    now = timezone.now()
    ann = shopper(workspace, "ann", traits={"plan": "Pro"})
    bob = shopper(workspace, "bob", traits={"plan": "Free"})
    cy = shopper(workspace, "cy", traits={"plan": "Pro"})
    dee = shopper(workspace, "dee", traits={"plan": "Pro"})
    for who in (ann, bob):
        bought(workspace, who, now - timedelta(days=1), revenue=100)
    return {"ann": ann, "bob": bob, "cy": cy, "dee": dee}


# --- Tags: the service ---------------------------------------------------------------------------


def test_tags_are_stored_normalised_case_folded_and_once(workspace):
    segment = _segment(
        workspace, "Buyers", tags=["VIP ", "vip", "Q3  launch", "e\u0301t\u00e9", "Zero\u200bWidth"], refresh=False
    )

    assert segment.tags == ["vip", "q3 launch", "\u00e9t\u00e9", "zerowidth"]


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        (["ok", "  "], "Tag 2 is empty."),
        (["a,b"], "Tag 1 contains a comma; give each tag on its own."),
        (["x" * 51], "Tag 1 is longer than 50 characters."),
        ([f"t{n}" for n in range(MAX_TAGS + 1)], f"At most {MAX_TAGS} tags, not {MAX_TAGS + 1}."),
        (["a\ud800b"], "Tag 1: The name contains a character that is not valid text."),
    ],
)
def test_bad_tags_are_refused_and_nothing_is_written(workspace, tags, message):
    existing = _segment(workspace, "Kept", tags=["keep"], refresh=False)
    before = segment_rows(workspace)

    with workspace_scope(workspace), pytest.raises(ValidationError) as refused:
        services.segment_create(workspace=workspace, actor=None, name="New", definition=BUYERS, tags=tags)
    with workspace_scope(workspace), pytest.raises(ValidationError) as refused_update:
        services.segment_update(segment=existing, actor=None, tags=tags, description="changed")

    assert refused.value.message_dict == {"tags": [message]}
    assert refused_update.value.message_dict == {"tags": [message]}
    assert segment_rows(workspace) == before
    assert reload(existing).tags == ["keep"]


# --- Tags: the API ---------------------------------------------------------------------------------


@pytest.fixture
def key(workspace):
    return factories.api_key(workspace)[1]


def test_the_api_reads_and_writes_tags_and_filters_by_one(workspace, key):
    client = Client()
    body = {"name": "Buyers", "definition": BUYERS, "tags": ["VIP", "Email"]}
    created = api(client, "POST", "/api/v1/segments/", body, key=key)
    other = api(
        client, "POST", "/api/v1/segments/", {"name": "Pro", "definition": PRO, "description": "Paying"}, key=key
    )
    assert created.status_code == 201, created.content
    assert created.json()["tags"] == ["vip", "email"]
    assert other.json()["tags"] == []

    patched = api(client, "PATCH", f"/api/v1/segments/{other.json()['id']}/", {"tags": ["Email"]}, key=key)
    assert patched.json()["tags"] == ["email"]
    assert patched.json()["description"] == "Paying"

    def names(**params):
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return [s["name"] for s in api(client, "GET", f"/api/v1/segments/?{query}", key=key).json()["results"]]

    assert names(tag="EMAIL") == ["Buyers", "Pro"]
    assert names(tag="vip") == ["Buyers"]
    assert names(tag="nothing") == []
    assert names(search="vip") == ["Buyers"], "search finds a tag too"


def test_the_api_refuses_bad_tags_naming_the_field(workspace, key):
    client = Client()
    before = segment_rows(workspace)

    comma = api(client, "POST", "/api/v1/segments/", {"name": "B", "definition": BUYERS, "tags": ["a,b"]}, key=key)
    not_a_list = api(client, "POST", "/api/v1/segments/", {"name": "B", "definition": BUYERS, "tags": "vip"}, key=key)

    assert comma.status_code == 400
    assert comma.json()["errors"] == {"tags": ["Tag 1 contains a comma; give each tag on its own."]}
    assert not_a_list.status_code == 400
    assert "tags" in not_a_list.json()["errors"]
    assert segment_rows(workspace) == before


def test_the_schema_documents_tags(client):
    components = client.get("/api/schema/?format=json").json()["components"]["schemas"]

    assert components["Segment"]["properties"]["tags"]["type"] == "array"
    assert components["SegmentCreate"]["properties"]["tags"]["maxItems"] == MAX_TAGS
    assert components["SegmentCreate"]["properties"]["tags"]["items"]["maxLength"] == 50
    assert "tags" in components["SegmentUpdate"]["properties"]


# --- Tags: the pages ---------------------------------------------------------------------------------


def test_the_list_filters_by_tag_and_shows_each_segments_tags(workspace, owner):
    _segment(workspace, "Buyers", tags=["vip", "email"])
    _segment(workspace, "Pro", PRO, tags=["email"])
    _segment(workspace, "Untagged", PRO, refresh=False)
    client = logged_in_client(owner)

    everything = client.get(reverse("segments")).content.decode()
    email = client.get(reverse("segments"), {"tag": "EMAIL"})
    gone = client.get(reverse("segments"), {"tag": "retired"}).content.decode()

    assert '<option value="email">email (2)</option>' in everything
    assert '<option value="vip">vip (1)</option>' in everything
    assert 'href="/segments/?tag=vip"' in everything
    assert [row[0].name for row in email.context["rows"]] == ["Buyers", "Pro"]
    assert '<option value="email" selected>email (2)</option>' in email.content.decode()
    assert "No segment is tagged “retired”" in gone


def test_templates_stay_reachable_from_the_list_once_segments_exist(workspace, owner):
    _segment(workspace, "Buyers", refresh=False)
    viewer = factories.member(workspace, role=Role.VIEWER)

    html = logged_in_client(owner).get(reverse("segments")).content.decode()
    viewer_html = logged_in_client(viewer).get(reverse("segments")).content.decode()

    assert 'id="templates"' in html
    assert 'data-open-details="templates"' in html
    for playbook in PLAYBOOKS:
        assert f"?template={playbook.slug}" in html
    assert "?template=" not in viewer_html, "a viewer cannot save a segment from a template"


def test_the_builder_saves_and_edits_tags(workspace, owner):
    client = logged_in_client(owner)
    saved = client.post(
        reverse("segment_new"),
        {"name": "Buyers", "description": "", "tags": "VIP, email ,, vip", "definition": json.dumps(BUYERS)},
    )
    with workspace_scope(workspace):
        segment = Segment.objects.get(name="Buyers")

    assert saved.status_code == 302
    assert segment.tags == ["vip", "email"]
    edit = client.get(reverse("segment_edit", args=[segment.pk])).content.decode()
    assert 'value="vip, email"' in edit


def test_the_builder_refuses_a_bad_tag_inline_and_writes_nothing(workspace, owner):
    before = segment_rows(workspace)

    response = logged_in_client(owner).post(
        reverse("segment_new"), {"name": "Buyers", "tags": "x" * 60, "definition": json.dumps(BUYERS)}
    )

    assert response.status_code == 400
    assert "Tag 1 is longer than 50 characters." in response.content.decode()
    assert segment_rows(workspace) == before


# --- Overlap ------------------------------------------------------------------------------------------


def test_overlap_shows_counts_and_the_share_of_the_row(workspace, owner, shoppers):
    buyers = _segment(workspace, "Buyers")  # ann, bob
    pro = _segment(workspace, "Pro", PRO)  # ann, cy, dee
    empty = _segment(workspace, "Empty", {"type": "trait", "key": "plan", "operator": "eq", "value": "none"})

    response = logged_in_client(owner).get(reverse("segment_overlap"), {"s": [buyers.pk, pro.pk, empty.pk]})

    cells = {
        (row.name, column.name): (cell.both, cell.share)
        for row, row_cells in response.context["matrix"]
        for column, cell in row_cells
    }
    assert cells[("Buyers", "Pro")] == (1, 0.5)
    assert cells[("Pro", "Buyers")] == (1, 1 / 3)
    assert cells[("Empty", "Pro")] == (0, None)
    assert cells[("Pro", "Pro")] == (3, 1.0)
    html = response.content.decode()
    assert "50% of row" in html
    assert "33% of row" in html
    assert "Jaccard" not in html


def test_one_click_makes_a_segment_of_both_or_of_the_row_only(
    workspace, owner, shoppers, django_capture_on_commit_callbacks
):
    buyers = _segment(workspace, "Buyers")
    pro = _segment(workspace, "Pro", PRO)
    client = logged_in_client(owner)
    url = reverse("segment_overlap_create")

    with django_capture_on_commit_callbacks(execute=False):
        both = client.post(url, {"row": buyers.pk, "column": pro.pk, "kind": "both", "s": [buyers.pk, pro.pk]})
        only = client.post(url, {"row": buyers.pk, "column": pro.pk, "kind": "only"})
        again = client.post(url, {"row": buyers.pk, "column": pro.pk, "kind": "both"})

    with workspace_scope(workspace):
        made = {s.name: s for s in Segment.objects.exclude(pk__in=[buyers.pk, pro.pk])}
    assert set(made) == {"Buyers and Pro", "Buyers but not Pro", "Buyers and Pro (2)"}
    intersection, difference = made["Buyers and Pro"], made["Buyers but not Pro"]
    assert intersection.definition == {
        "type": "and",
        "conditions": [{"type": "segment", "segment": buyers.pk}, {"type": "segment", "segment": pro.pk}],
    }
    assert difference.definition == {
        "type": "and",
        "conditions": [
            {"type": "segment", "segment": buyers.pk},
            {"type": "not", "condition": {"type": "segment", "segment": pro.pk}},
        ],
    }
    assert (both.status_code, both["Location"]) == (302, reverse("segment_detail", args=[intersection.pk]))
    assert only["Location"] == reverse("segment_detail", args=[difference.pk])
    assert again["Location"] == reverse("segment_detail", args=[made["Buyers and Pro (2)"].pk])
    assert intersection.status == SegmentStatus.PENDING
    with workspace_scope(workspace):
        services.segment_refresh(segment=intersection)
        services.segment_refresh(segment=difference)
    assert members(intersection) == {"ann"}
    assert members(difference) == {"bob"}


def test_overlap_segments_refuse_foreign_or_bad_input_and_viewers(workspace, owner, shoppers):
    buyers = _segment(workspace, "Buyers")
    pro = _segment(workspace, "Pro", PRO)
    theirs = _segment(factories.WorkspaceFactory(), "Theirs", PRO, refresh=False)
    viewer = factories.member(workspace, role=Role.VIEWER)
    client = logged_in_client(owner)
    url = reverse("segment_overlap_create")
    before = segment_rows(workspace)

    foreign = client.post(url, {"row": buyers.pk, "column": theirs.pk, "kind": "both"})
    same = client.post(url, {"row": buyers.pk, "column": buyers.pk, "kind": "both", "s": [buyers.pk, pro.pk]})
    kind = client.post(url, {"row": buyers.pk, "column": pro.pk, "kind": "union"})
    by_viewer = logged_in_client(viewer).post(url, {"row": buyers.pk, "column": pro.pk, "kind": "both"})

    assert foreign.status_code == 404
    assert (same.status_code, same["Location"]) == (302, f"{reverse('segment_overlap')}?s={buyers.pk}&s={pro.pk}")
    assert kind.status_code == 302
    assert by_viewer.status_code == 403
    assert segment_rows(workspace) == before
    assert "Theirs" not in foreign.content.decode()


def test_the_overlap_page_offers_the_actions_to_writers_only(workspace, owner, shoppers):
    buyers = _segment(workspace, "Buyers")
    pro = _segment(workspace, "Pro", PRO)
    viewer = factories.member(workspace, role=Role.VIEWER)
    query = {"s": [buyers.pk, pro.pk]}

    writer_html = logged_in_client(owner).get(reverse("segment_overlap"), query).content.decode()
    viewer_html = logged_in_client(viewer).get(reverse("segment_overlap"), query).content.decode()

    assert writer_html.count('name="kind" value="both"') == 2
    assert writer_html.count('name="kind" value="only"') == 2
    assert 'name="kind"' not in viewer_html


@pytest.mark.parametrize(
    ("both", "row", "text"),
    [(0, 0, "—"), (0, 5, "0%"), (1, 326, "<1%"), (325, 326, ">99%"), (326, 326, "100%"), (1, 3, "33%")],
)
def test_the_share_of_the_row_never_reads_as_none_or_all_when_it_is_not(both, row, text):
    from segmentation.ui_selectors import OverlapCell

    assert OverlapCell(both, row).percent == text
