"""Settings → Campaigns: frequency caps added and deleted, sending settings saved; refusals beside
their field with nothing written; admins change, members and viewers read; other workspaces' caps
404. The development outbox: this workspace's messages only, HTML in a sandboxed frame, open
pixels left out; 404 when mail is really sent."""

from __future__ import annotations

import html
import re
from datetime import time

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives, get_connection
from django.urls import reverse

from accounts.tenancy import workspace_scope
from campaigns import outbox
from campaigns.models import Campaign, CampaignSettings, FrequencyCap
from tests import factories
from tests.accounts.support import logged_in_client, state

pytestmark = pytest.mark.django_db

PAGE = "settings_campaigns"
SETTINGS = {
    "from_email": "news@shop.example",
    "from_name": "Shop News",
    "reply_to": "",
    "timezone": "Europe/Paris",
    "quiet_start": "21:00",
    "quiet_end": "08:00",
    "emails_per_second": "50",
    "webhooks_per_second": "100",
}


def _caps(workspace):
    with workspace_scope(workspace):
        return list(
            FrequencyCap.objects.filter(workspace=workspace).values_list("channel", "max", "per", "per_seconds")
        )


def _field_errors(page: str) -> list[str]:
    return [html.unescape(e) for e in re.findall(r'<p class="field-error"[^>]*>(.*?)</p>', page)]


def test_an_admin_adds_a_cap_and_sees_it_listed(workspace):
    admin = factories.member(workspace, role="admin")
    client = logged_in_client(admin)

    response = client.post(reverse("settings_campaign_cap_add"), {"channel": "email", "max": "2", "per": "1d"})

    assert response.status_code == 302
    assert response["Location"] == reverse(PAGE)
    assert _caps(workspace) == [("email", 2, "1d", 86400)]
    page = client.get(reverse(PAGE)).content.decode()
    assert "At most 2 per 1d" in page
    assert "Frequency cap added: at most 2 email per 1d." in html.unescape(page)


def test_a_refused_cap_shows_its_errors_beside_the_fields_and_writes_nothing(workspace, owner):
    client = logged_in_client(owner)
    before = state()

    response = client.post(reverse("settings_campaign_cap_add"), {"channel": "email", "max": "0", "per": "soon"})

    assert response.status_code == 400
    assert state() == before
    assert _field_errors(response.content.decode()) == [
        "A whole number from 1 to 1000000, not 0.",
        'Expected a duration such as "30m", "48h", "1d" or "4w", not \'soon\'.',
    ]
    # The form keeps what was typed
    assert 'value="soon"' in response.content.decode()


def test_an_unknown_channel_is_refused_by_the_form(workspace, owner):
    before = state()
    response = logged_in_client(owner).post(
        reverse("settings_campaign_cap_add"), {"channel": "pigeon", "max": "1", "per": "1d"}
    )
    assert response.status_code == 400
    assert state() == before
    assert _field_errors(response.content.decode()) == [
        "Select a valid choice. pigeon is not one of the available choices."
    ]


def test_deleting_a_cap_asks_first_and_removes_it(workspace, owner):
    with workspace_scope(workspace):
        cap = FrequencyCap.objects.create(workspace=workspace, channel="email", max=3, per="1w", per_seconds=604800)
    client = logged_in_client(owner)
    page = client.get(reverse(PAGE)).content.decode()
    assert 'data-confirm="Delete the cap “at most 3 email per 1w”?' in page

    response = client.post(reverse("settings_campaign_cap_delete", args=[cap.pk]))

    assert response.status_code == 302
    assert _caps(workspace) == []


def test_another_workspaces_cap_is_404(workspace, owner):
    other = factories.WorkspaceFactory()
    with workspace_scope(other):
        cap = FrequencyCap.objects.create(workspace=other, channel="email", max=3, per="1w", per_seconds=604800)
    before = state()

    response = logged_in_client(owner).post(reverse("settings_campaign_cap_delete", args=[cap.pk]))

    assert response.status_code == 404
    assert state() == before


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_members_and_viewers_read_but_cannot_change(workspace, role):
    with workspace_scope(workspace):
        cap = FrequencyCap.objects.create(workspace=workspace, channel="email", max=3, per="1w", per_seconds=604800)
    client = logged_in_client(factories.member(workspace, role=role))

    page = client.get(reverse(PAGE))
    assert page.status_code == 200
    body = page.content.decode()
    assert "At most 3 per 1w" in body
    assert "Add cap" not in body
    assert "Save settings" not in body
    assert '<fieldset class="plain" disabled>' in body

    before = state()
    assert (
        client.post(reverse("settings_campaign_cap_add"), {"channel": "email", "max": "2", "per": "1d"}).status_code
        == 403
    )
    assert client.post(reverse("settings_campaign_cap_delete", args=[cap.pk])).status_code == 403
    assert client.post(reverse(PAGE), SETTINGS).status_code == 403
    assert state() == before


def test_an_admin_saves_sender_quiet_hours_timezone_and_rates(workspace, owner):
    client = logged_in_client(owner)

    response = client.post(reverse(PAGE), SETTINGS)

    assert response.status_code == 302
    with workspace_scope(workspace):
        row = CampaignSettings.objects.get(workspace=workspace)
    assert (row.from_email, row.from_name, row.timezone) == ("news@shop.example", "Shop News", "Europe/Paris")
    assert (row.quiet_start, row.quiet_end) == (time(21, 0), time(8, 0))
    assert (row.emails_per_second, row.webhooks_per_second) == (50, 100)
    page = client.get(reverse(PAGE)).content.decode()
    assert 'value="21:00"' in page
    assert 'value="Europe/Paris"' in page

    # Quiet hours emptied: none
    client.post(reverse(PAGE), {**SETTINGS, "quiet_start": "", "quiet_end": ""})
    with workspace_scope(workspace):
        row.refresh_from_db()
    assert (row.quiet_start, row.quiet_end) == (None, None)


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"timezone": "Mars/Olympus"}, ["Expected an IANA timezone such as \"Europe/Paris\", not 'Mars/Olympus'."]),
        ({"from_email": "not-an-address"}, ["Not an email address: 'not-an-address'."]),
        ({"quiet_start": "25:00"}, ["Expected a time of day such as \"21:00\", or null, not '25:00'."]),
        ({"quiet_end": ""}, ["Quiet hours need both a start and an end (or neither)."]),
        (
            {"emails_per_second": "0", "webhooks_per_second": "lots"},
            [
                "A whole number from 1 to 100000, not 0.",
                "A whole number from 1 to 100000, not 'lots'.",
            ],
        ),
    ],
)
def test_refused_settings_show_the_error_beside_the_field_and_write_nothing(workspace, owner, changes, errors):
    client = logged_in_client(owner)
    before = state()

    response = client.post(reverse(PAGE), {**SETTINGS, **changes})

    assert response.status_code == 400
    assert state() == before
    assert _field_errors(response.content.decode()) == errors


# --- the outbox ------------------------------------------------------------------------------------


def _message(subject, *, workspace_id=None, test_campaign=None, to="ann@example.com"):
    headers = {}
    if workspace_id is not None:
        headers["Message-ID"] = f"<send-77.{workspace_id}@cohortly.localhost>"
    if test_campaign is not None:
        headers["X-Cohortly-Test"] = f"campaign {test_campaign}"
    message = EmailMultiAlternatives(subject, "Plain words", "shop@example.com", [to], headers=headers)
    message.attach_alternative(
        '<p style="color:#c00">Hello &amp; "welcome"</p>'
        '<img src="http://localhost:8000/e/o/abc/" width="1" height="1">',
        "text/html",
    )
    return message


def test_the_outbox_shows_this_workspaces_messages_in_a_sandboxed_frame(workspace, owner, settings):
    assert settings.EMAIL_BACKEND == outbox.LOCMEM_BACKEND
    other = factories.WorkspaceFactory()
    with workspace_scope(workspace):
        ours = Campaign.objects.create(workspace=workspace, name="Ours", channel="email", kind="broadcast")
    with workspace_scope(other):
        theirs = Campaign.objects.create(workspace=other, name="Theirs", channel="email", kind="broadcast")
    mail.outbox = []
    _message("Spring sale", workspace_id=workspace.pk).send()
    _message("[Test] Spring sale", test_campaign=ours.pk).send()
    _message("Their sale", workspace_id=other.pk).send()
    _message("[Test] Their sale", test_campaign=theirs.pk).send()
    _message("Reset your password").send()

    response = logged_in_client(owner).get(reverse("settings_campaign_outbox"))

    assert response.status_code == 200
    page = response.content.decode()
    subjects = [html.unescape(s) for s in re.findall(r"<h2 data-subject>(.*?)</h2>", page)]
    assert subjects == ["[Test] Spring sale", "Spring sale"]
    assert page.count('<iframe class="outbox-frame"') == 2
    assert 'sandbox=""' in page
    # The HTML travels escaped inside srcdoc, without the open pixel
    assert 'srcdoc="&lt;p style=&quot;color:#c00&quot;&gt;Hello &amp;amp; &quot;welcome&quot;&lt;/p&gt;"' in page
    assert "/e/o/" not in page
    # Its inline styles may apply inside the frame; scripts still may not run anywhere
    policy = response["Content-Security-Policy"]
    assert "style-src 'self' 'unsafe-inline'" in policy
    assert "script-src 'self'" in policy


def test_the_console_backend_records_in_redis_for_the_page(workspace, owner, settings, capsys):
    settings.EMAIL_BACKEND = "campaigns.outbox.ConsoleOutboxBackend"
    with get_connection() as connection:
        connection.send_messages([_message(f"Message {n}", workspace_id=workspace.pk) for n in range(3)])
    assert "Subject: Message 0" in capsys.readouterr().out  # still printed, as the console backend does

    page = logged_in_client(owner).get(reverse("settings_campaign_outbox")).content.decode()

    assert [html.unescape(s) for s in re.findall(r"<h2 data-subject>(.*?)</h2>", page)] == [
        "Message 2",
        "Message 1",
        "Message 0",
    ]
    assert "To <strong data-to>ann@example.com</strong>" in page


def test_the_console_outbox_keeps_the_last_200(settings):
    settings.EMAIL_BACKEND = "campaigns.outbox.ConsoleOutboxBackend"
    outbox.record([_message(f"M{n}") for n in range(205)])
    kept = outbox.recent()
    assert len(kept) == outbox.OUTBOX_SIZE
    assert kept[0]["subject"] == "M204"
    assert kept[-1]["subject"] == "M5"


def test_the_outbox_is_404_when_mail_is_really_sent(workspace, owner, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    client = logged_in_client(owner)
    assert client.get(reverse("settings_campaign_outbox")).status_code == 404
    assert "Open the outbox" not in client.get(reverse(PAGE)).content.decode()
