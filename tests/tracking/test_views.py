"""Settings pages: Install and Triggers."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import AuditLogEntry
from accounts.tenancy import workspace_scope
from tests import factories
from tracking import services
from tracking.models import TrackingTrigger


def _triggers(workspace):
    with workspace_scope(workspace):
        return list(
            TrackingTrigger.objects.order_by("pk").values_list(
                "kind", "selector", "event_name", "thresholds", "enabled"
            )
        )


@pytest.fixture
def signed_in(client, owner):
    client.force_login(owner)
    return client


def test_install_page_shows_embed_code_with_write_key_and_host(signed_in, workspace):
    response = signed_in.get(reverse("settings_install"))

    assert response.status_code == 200
    page = response.content.decode()
    assert f"c.writeKey=&quot;{workspace.write_key}&quot;;c.host=&quot;http://testserver&quot;" in page
    assert 'data-copy="#embed-code"' in page
    assert f'analytics.write_key = "{workspace.write_key}"' in page
    assert 'analytics.host = "http://testserver"' in page
    assert "/sdk/cohortly." in page
    assert 'aria-current="page">Install</a>' in page


def test_viewer_reads_triggers_but_cannot_change_them(client, workspace):
    with workspace_scope(workspace):
        trigger = services.trigger_create(workspace=workspace, actor=None, kind="click", selector="#buy")
    client.force_login(factories.member(workspace, role="viewer"))

    page = client.get(reverse("settings_triggers"))
    assert page.status_code == 200
    assert "Buy Clicked" in page.content.decode()
    assert "Add a trigger" not in page.content.decode()
    assert reverse("settings_trigger_delete", args=[trigger.pk]) not in page.content.decode()

    edit_page = client.get(reverse("settings_trigger_edit", args=[trigger.pk])).content.decode()
    assert '<fieldset class="plain" disabled>' in edit_page
    assert "Save trigger" not in edit_page

    before = _triggers(workspace)
    create = client.post(reverse("settings_triggers"), {"kind": "click", "selector": "#x", "enabled": "on"})
    edit = client.post(reverse("settings_trigger_edit", args=[trigger.pk]), {"kind": "click", "selector": "#y"})
    delete = client.post(reverse("settings_trigger_delete", args=[trigger.pk]))
    assert (create.status_code, edit.status_code, delete.status_code) == (403, 403, 403)
    assert _triggers(workspace) == before


def test_member_creates_a_click_trigger_named_from_its_selector(client, workspace):
    user = factories.member(workspace, role="member")
    client.force_login(user)

    response = client.post(
        reverse("settings_triggers"),
        {"kind": "click", "selector": " #product-image ", "event_name": "", "enabled": "on"},
    )

    assert response.status_code == 302
    assert _triggers(workspace) == [("click", "#product-image", "Product Image Clicked", [], True)]
    with workspace_scope(workspace):
        entry = AuditLogEntry.objects.get(action="trigger.created")
    assert (entry.actor, entry.target) == (user, "Product Image Clicked")


def test_scroll_trigger_gets_default_thresholds_and_name(signed_in, workspace):
    signed_in.post(reverse("settings_triggers"), {"kind": "scroll", "selector": "", "thresholds": "", "enabled": "on"})
    signed_in.post(
        reverse("settings_triggers"), {"kind": "engaged_time", "thresholds": "180, 30", "event_name": "Read"}
    )
    assert _triggers(workspace) == [
        ("scroll", "", "Page Scrolled", [25, 50, 75, 100], True),
        ("engaged_time", "", "Read", [30, 180], False),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "click", "selector": ""}, "Enter the CSS selector of the elements to track, e.g. #product-image."),
        ({"kind": "click", "selector": "a" * 301}, "Ensure this value has at most 300 characters (it has 301)."),
        ({"kind": "click", "selector": "a{}"}, "A selector cannot contain braces, semicolons, “&lt;” or line breaks."),
        ({"kind": "click", "selector": "#a", "event_name": "$pageview"}, "Names starting with $ are reserved"),
        ({"kind": "click", "selector": "#a", "event_name": "e" * 201}, "at most 200 characters (it has 201)."),
        ({"kind": "scroll", "thresholds": "10, 150"}, "Thresholds are percentages from 1 to 100."),
        ({"kind": "scroll", "thresholds": "ten"}, "“ten” is not a whole number."),
        ({"kind": "hover", "selector": "#a"}, "Select a valid choice. hover is not one of the available choices."),
    ],
)
def test_invalid_trigger_is_refused_with_the_fields_message_and_nothing_stored(signed_in, workspace, data, message):
    response = signed_in.post(reverse("settings_triggers"), data)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert _triggers(workspace) == []


def test_duplicate_event_name_is_refused_on_its_field(signed_in, workspace):
    signed_in.post(reverse("settings_triggers"), {"kind": "click", "selector": "#buy"})
    response = signed_in.post(
        reverse("settings_triggers"), {"kind": "click", "selector": ".buy", "event_name": "Buy Clicked"}
    )

    assert response.status_code == 200
    assert "Another trigger already sends “Buy Clicked”. Choose another name." in response.content.decode()
    assert _triggers(workspace) == [("click", "#buy", "Buy Clicked", [], False)]


def test_edit_then_delete_a_trigger(signed_in, workspace):
    with workspace_scope(workspace):
        trigger = services.trigger_create(workspace=workspace, actor=None, kind="scroll")
    url = reverse("settings_trigger_edit", args=[trigger.pk])
    assert 'value="25, 50, 75, 100"' in signed_in.get(url).content.decode()

    response = signed_in.post(url, {"kind": "scroll", "thresholds": "90", "event_name": "Read To End"})
    assert response.status_code == 302
    assert _triggers(workspace) == [("scroll", "", "Read To End", [90], False)]

    refused = signed_in.post(url, {"kind": "scroll", "thresholds": "", "event_name": "Read To End", "enabled": "on"})
    assert "Enter at least one threshold." in refused.content.decode()
    assert _triggers(workspace) == [("scroll", "", "Read To End", [90], False)]

    page = signed_in.get(reverse("settings_triggers")).content.decode()
    assert 'data-confirm="Delete the trigger “Read To End”?' in page
    response = signed_in.post(reverse("settings_trigger_delete", args=[trigger.pk]))
    assert response.status_code == 302
    assert _triggers(workspace) == []


def test_another_workspaces_trigger_answers_404_and_is_untouched(signed_in, workspace):
    other = factories.WorkspaceFactory()
    with workspace_scope(other):
        theirs = services.trigger_create(workspace=other, actor=None, kind="click", selector="#theirs")
    before = _triggers(other)

    edit_get = signed_in.get(reverse("settings_trigger_edit", args=[theirs.pk]))
    edit_post = signed_in.post(reverse("settings_trigger_edit", args=[theirs.pk]), {"kind": "click", "selector": "#x"})
    delete = signed_in.post(reverse("settings_trigger_delete", args=[theirs.pk]))

    assert (edit_get.status_code, edit_post.status_code, delete.status_code) == (404, 404, 404)
    assert _triggers(other) == before
    assert "Theirs Clicked" not in signed_in.get(reverse("settings_triggers")).content.decode()


def test_trigger_list_query_count_does_not_grow_with_triggers(signed_in, workspace, django_assert_num_queries):
    with workspace_scope(workspace):
        for n in range(5):
            services.trigger_create(workspace=workspace, actor=None, kind="click", selector=f"#b{n}")
    with django_assert_num_queries(5):
        response = signed_in.get(reverse("settings_triggers"))
    assert response.content.decode().count("/delete/") == 5
