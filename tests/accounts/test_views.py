"""HTML flows through the Django test client: sign-up, invitations, switcher, password reset, settings forms."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.forms import SignupForm
from accounts.models import ApiKey, AuditLogEntry, Invitation, Membership, Role, User, Workspace
from accounts.tenancy import workspace_scope
from tests import factories
from tests.accounts.support import body_text, logged_in_client, state

NEW_PASSWORD = "brand-new-long-pass-91"


def _memberships(user) -> list[tuple[str, str]]:
    # Crosses workspaces on purpose: everything the user belongs to.
    return sorted(Membership.objects.unscoped().filter(user=user).values_list("workspace__name", "role"))


def _token(link: str) -> str:
    return link.rstrip("/").rsplit("/", 1)[1]


# --- Sign-up -------------------------------------------------------------------------------


def _signup_link(message) -> str:
    [link] = re.findall(r"http://testserver(/signup/confirm/[^/\s]+/)", message.body)
    return link


def test_signup_creates_user_workspace_and_owner_membership_from_the_emailed_link(db, mailoutbox):
    client = Client()
    before = state()

    # Signing up answers "check your inbox" and creates nothing yet
    response = client.post(
        reverse("signup"),
        {"name": "Ada", "email": "Ada@Example.com", "password": factories.PASSWORD, "workspace_name": "Ada's Shop"},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("signup_sent")
    assert "Check your inbox" in client.get(response["Location"]).content.decode()
    assert state() == before
    assert "_auth_user_id" not in client.session

    # The link arrives by mail; following it shows what it creates, and creates it on the button
    [message] = mailoutbox
    assert message.to == ["ada@example.com"]
    link = _signup_link(message)
    page = client.get(link)
    assert page.status_code == 200
    assert "Ada&#x27;s Shop" in page.content.decode()
    assert state() == before
    response = client.post(link)

    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")
    user = User.objects.get()
    assert (user.email, user.name) == ("ada@example.com", "Ada")
    assert user.check_password(factories.PASSWORD)
    workspace = Workspace.objects.get()
    assert workspace.name == "Ada's Shop"
    assert _memberships(user) == [("Ada's Shop", "owner")]
    assert client.session["_auth_user_id"] == str(user.pk)
    assert client.session["workspace_id"] == workspace.pk
    dashboard = client.get(reverse("dashboard"))
    assert dashboard.status_code == 200
    assert dashboard.context["workspace"] == workspace
    with workspace_scope(workspace):
        assert list(workspace_audit(workspace)) == [("ada@example.com", "workspace.created", "Ada's Shop")]
    # The link is spent
    after = state()
    assert Client().get(link).status_code == 404
    assert Client().post(link).status_code == 404
    assert state() == after


def test_an_unknown_signup_link_is_a_404_and_creates_nothing(db):
    before = state()

    response = Client().post("/signup/confirm/not-a-token/")

    assert response.status_code == 404
    assert "expired or was used already" in response.content.decode()
    assert state() == before


def test_a_second_link_of_an_email_that_got_its_account_creates_nothing(db, mailoutbox):
    for workspace_name in ("First", "Second"):
        Client().post(reverse("signup"), {**SIGNUP_OK, "workspace_name": workspace_name})
    first, second = (_signup_link(message) for message in mailoutbox)
    assert Client().post(first).status_code == 302
    before = state()

    client = Client()
    response = client.post(second, follow=True)

    assert response.redirect_chain == [(reverse("login"), 302)]
    assert "An account with this email exists already" in response.content.decode()
    assert state() == before
    assert "_auth_user_id" not in client.session


def workspace_audit(workspace):
    return AuditLogEntry.objects.filter(workspace=workspace).values_list("actor_label", "action", "target")


SIGNUP_OK = {"name": "Ada", "email": "ada@example.com", "password": factories.PASSWORD, "workspace_name": "Shop"}


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"workspace_name": "x" * 101}, "workspace_name", "at most 100 characters"),
        ({"name": "x" * 101}, "name", "at most 100 characters"),
        ({"email": "a" * 288 + "@example.com"}, "email", "at most 254 characters"),
        ({"email": "not-an-email"}, "email", "valid email"),
        ({"password": "12345678"}, "password", "too common"),
        ({"password": "short"}, "password", "too short"),
        ({"workspace_name": ""}, "workspace_name", "required"),
    ],
)
def test_signup_with_bad_input_rerenders_with_the_inline_error_and_writes_nothing(db, changes, field, message):
    before = state()
    client = Client()

    response = client.post(reverse("signup"), {**SIGNUP_OK, **changes})

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert list(errors) == [field]
    assert any(message in error for error in errors[field])
    assert re.search(r'class="field-error"[^>]*>[^<]*' + re.escape(message), response.content.decode())
    assert state() == before
    assert "_auth_user_id" not in client.session


def _without_csrf_token(content: bytes) -> bytes:
    return re.sub(rb'"X-CSRFToken": "[^"]+"', b"", content)


def test_signup_with_a_taken_email_answers_as_for_a_new_one_and_tells_only_the_owner(owner, mailoutbox):
    before = state()

    taken = Client().post(reverse("signup"), {**SIGNUP_OK, "email": owner.email.upper()}, follow=True)
    new = Client().post(reverse("signup"), {**SIGNUP_OK, "email": "someone-new@example.com"}, follow=True)

    # The same answer, byte for byte but for each session's CSRF token
    assert taken.redirect_chain == new.redirect_chain == [(reverse("signup_sent"), 302)]
    assert _without_csrf_token(taken.content) == _without_csrf_token(new.content)
    assert state() == before
    # The owner is told, with ways in, and gets no link that would create anything
    notice, link = mailoutbox
    assert notice.to == [owner.email]
    assert "tried to create a Cohortly account with this email address" in notice.body
    assert "http://testserver/login/" in notice.body
    assert "http://testserver/password-reset/" in notice.body
    assert "/signup/confirm/" not in notice.body
    assert link.to == ["someone-new@example.com"]


def test_signup_is_limited_per_client_address(db, settings, mailoutbox):
    settings.SIGNUP_ADDRESS_RATE = "2/hour"
    client = Client(REMOTE_ADDR="198.51.100.9")
    for index in range(2):
        assert client.post(reverse("signup"), {**SIGNUP_OK, "email": f"a{index}@example.com"}).status_code == 302
    before = state()

    response = client.post(reverse("signup"), {**SIGNUP_OK, "email": "a2@example.com"})

    assert response.status_code == 429
    assert 3590 <= int(response["Retry-After"]) <= 3600
    assert "Too many sign-ups for this email or from your network. Wait 1 hour" in response.content.decode()
    assert state() == before
    assert [message.to for message in mailoutbox] == [["a0@example.com"], ["a1@example.com"]]
    # Another address is not held back
    other = Client(REMOTE_ADDR="198.51.100.10").post(reverse("signup"), {**SIGNUP_OK, "email": "a2@example.com"})
    assert other.status_code == 302
    assert len(mailoutbox) == 3


def test_signup_is_limited_per_target_email_whether_or_not_it_has_an_account(owner, settings, mailoutbox):
    settings.SIGNUP_EMAIL_RATE = "2/hour"
    answers = {}
    for email in (owner.email, "nobody@example.com"):
        statuses = []
        for index in range(3):
            client = Client(REMOTE_ADDR=f"198.51.100.{index}")
            statuses.append(client.post(reverse("signup"), {**SIGNUP_OK, "email": email}).status_code)
        answers[email] = statuses

    assert answers == {owner.email: [302, 302, 429], "nobody@example.com": [302, 302, 429]}
    assert [message.to for message in mailoutbox] == [[owner.email]] * 2 + [["nobody@example.com"]] * 2


# --- Invitations -----------------------------------------------------------------------------


def _invite(client: Client, email: str = "new@example.com", role: str = Role.MEMBER) -> str:
    response = client.post(reverse("settings_invitations"), {"email": email, "role": role}, follow=True)
    assert response.redirect_chain == [(reverse("settings_invitations"), 302)]
    link = response.context["created_link"]
    assert link.startswith("http://testserver/invite/")
    assert link in response.content.decode()
    return link.removeprefix("http://testserver")


def test_invitation_accepted_by_a_new_user_through_the_join_form(workspace, owner):
    link = _invite(logged_in_client(owner), role=Role.ADMIN)
    visitor = Client()

    page = visitor.get(link)
    assert page.status_code == 200
    assert "Create account and join" in page.content.decode()
    response = visitor.post(link, {"name": "Neo", "password": NEW_PASSWORD})

    assert response.status_code == 302
    user = User.objects.get(email="new@example.com")
    assert user.name == "Neo"
    assert _memberships(user) == [(workspace.name, "admin")]
    assert visitor.session["_auth_user_id"] == str(user.pk)
    assert visitor.session["workspace_id"] == workspace.pk
    with workspace_scope(workspace):
        invitation = Invitation.objects.get()
    assert invitation.accepted_by == user
    assert invitation.accepted_at is not None


def test_join_form_rejects_a_weak_password_and_writes_nothing(workspace, owner):
    link = _invite(logged_in_client(owner))
    before = state()

    response = Client().post(link, {"name": "Neo", "password": "password"})

    assert response.status_code == 200
    assert "This password is too common." in response.content.decode()
    assert state() == before


def test_invitation_accepted_by_an_existing_signed_in_user(workspace, owner):
    other_workspace = factories.WorkspaceFactory(name="Elsewhere")
    existing = factories.member(other_workspace, role=Role.OWNER, user=factories.UserFactory(email="dana@example.com"))
    link = _invite(logged_in_client(owner), email="dana@example.com", role=Role.VIEWER)
    client = logged_in_client(existing, workspace=other_workspace)

    assert f"Join as {existing.email}" in client.get(link).content.decode()
    response = client.post(link)

    assert response.status_code == 302
    assert _memberships(existing) == sorted([("Elsewhere", "owner"), (workspace.name, "viewer")])
    assert client.session["workspace_id"] == workspace.pk


def test_existing_user_signed_out_is_asked_to_sign_in_and_nothing_is_created(workspace, owner):
    factories.UserFactory(email="dana@example.com")
    link = _invite(logged_in_client(owner), email="dana@example.com")
    before = state()
    visitor = Client()

    response = visitor.post(link, {"name": "Impostor", "password": NEW_PASSWORD})

    assert response.status_code == 200
    assert "You already have an account" in response.content.decode()
    assert state() == before
    assert "_auth_user_id" not in visitor.session


def _assert_dead_link(link: str) -> None:
    for client in (Client(), logged_in_client(factories.UserFactory())):
        response = client.get(link)
        assert response.status_code == 404
        assert "This invitation link is invalid, expired, used or revoked." in response.content.decode()
        posted = client.post(link, {"name": "x", "password": NEW_PASSWORD})
        assert posted.status_code == 404


def test_invitation_used_twice_is_a_404(workspace, owner):
    link = _invite(logged_in_client(owner))
    assert Client().post(link, {"name": "First", "password": NEW_PASSWORD}).status_code == 302
    before = state()

    _assert_dead_link(link)
    after = state()
    assert (after["memberships"], after["invitations"]) == (before["memberships"], before["invitations"])


def test_revoked_invitation_is_a_404(workspace, owner):
    client = logged_in_client(owner)
    link = _invite(client)
    with workspace_scope(workspace):
        invitation = Invitation.objects.get()
    assert client.post(reverse("settings_invitation_revoke", kwargs={"pk": invitation.pk})).status_code == 302
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None
    before_memberships = state()["memberships"]

    _assert_dead_link(link)
    assert state()["memberships"] == before_memberships


def test_expired_invitation_is_a_404(workspace, owner):
    link = _invite(logged_in_client(owner))
    with workspace_scope(workspace):
        Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    before_memberships = state()["memberships"]

    _assert_dead_link(link)
    assert state()["memberships"] == before_memberships


def test_unknown_invitation_token_is_a_404(db):
    _assert_dead_link("/invite/not-a-real-token/")


def test_invitation_email_is_sent_when_email_is_configured(
    settings, smtp, workspace, owner, django_capture_on_commit_callbacks
):
    settings.EMAIL_CONFIGURED = True
    client = logged_in_client(owner)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        link = _invite(client, email="guest@example.com", role=Role.VIEWER)

    assert len(callbacks) == 1
    [message] = smtp.wait_for(1)
    assert message["To"] == "guest@example.com"
    assert message["Subject"] == f"You are invited to {workspace.name} on Cohortly"
    assert f"http://testserver{link}" in body_text(message)
    assert "as viewer" in body_text(message)


def test_no_invitation_email_without_email_configured(
    settings, smtp, workspace, owner, django_capture_on_commit_callbacks
):
    settings.EMAIL_CONFIGURED = False

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        _invite(logged_in_client(owner))

    assert callbacks == []
    assert smtp.messages == []


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"email": "a" * 288 + "@example.com", "role": "member"}, "email", "at most 254 characters"),
        ({"email": "nope", "role": "member"}, "email", "valid email"),
        ({"email": "a@example.com", "role": "superuser"}, "role", "Select a valid choice"),
        ({"email": "", "role": "member"}, "email", "required"),
    ],
)
def test_invitation_form_bad_input_rerenders_with_inline_error(workspace, owner, data, field, message):
    before = state()

    response = logged_in_client(owner).post(reverse("settings_invitations"), data)

    assert response.status_code == 200
    assert response.context["created_link"] is None
    assert any(message in error for error in response.context["form"].errors[field])
    assert 'class="field-error"' in response.content.decode()
    assert state() == before


def test_invitation_form_refuses_an_existing_member(workspace, owner):
    before = state()

    response = logged_in_client(owner).post(reverse("settings_invitations"), {"email": owner.email, "role": "member"})

    assert response.status_code == 200
    assert response.context["form"].errors["email"] == [f"{owner.email} is already a member of this workspace."]
    assert state() == before


def test_admin_invitation_form_refuses_owner_role(workspace):
    admin = factories.member(workspace, role=Role.ADMIN)
    before = state()

    response = logged_in_client(admin).post(
        reverse("settings_invitations"), {"email": "boss@example.com", "role": "owner"}
    )

    assert response.context["form"].errors["role"] == ["Only an owner can invite another owner."]
    assert state() == before


# --- Settings forms --------------------------------------------------------------------------


def test_api_key_form_creates_a_key_and_shows_the_secret_once(workspace, owner):
    client = logged_in_client(owner)

    response = client.post(reverse("settings_api_keys"), {"name": "CRM sync"}, follow=True)

    assert response.redirect_chain == [(reverse("settings_api_keys"), 302)]
    secret = response.context["created_secret"]
    assert secret.startswith("cly_sk_")
    assert secret in response.content.decode()
    with workspace_scope(workspace):
        assert list(ApiKey.objects.values_list("name", "created_by")) == [("CRM sync", owner.pk)]
    again = client.get(reverse("settings_api_keys"))
    assert secret not in again.content.decode()
    assert secret[:13] in again.content.decode()


@pytest.mark.parametrize(("name", "message"), [("x" * 101, "at most 100 characters"), ("", "required")])
def test_api_key_form_bad_input_rerenders_with_inline_error(workspace, owner, name, message):
    before = state()

    response = logged_in_client(owner).post(reverse("settings_api_keys"), {"name": name})

    assert response.status_code == 200
    assert response.context["created_secret"] is None
    assert any(message in error for error in response.context["form"].errors["name"])
    assert 'class="field-error"' in response.content.decode()
    assert state() == before


def test_api_key_revoke_from_settings(workspace, owner):
    key, secret = factories.api_key(workspace)
    client = logged_in_client(owner)

    response = client.post(reverse("settings_api_key_revoke", kwargs={"pk": key.pk}))

    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert Client().get(reverse("api-workspace"), headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_workspace_rename(workspace, owner):
    response = logged_in_client(owner).post(reverse("settings_workspace"), {"name": "Renamed"})

    assert response.status_code == 302
    workspace.refresh_from_db()
    assert workspace.name == "Renamed"


@pytest.mark.parametrize(("name", "message"), [("x" * 101, "at most 100 characters"), ("", "required")])
def test_workspace_rename_bad_input_rerenders_with_inline_error(workspace, owner, name, message):
    before = state()

    response = logged_in_client(owner).post(reverse("settings_workspace"), {"name": name})

    assert response.status_code == 200
    assert any(message in error for error in response.context["form"].errors["name"])
    assert 'class="field-error"' in response.content.decode()
    assert state() == before


def test_workspace_new_bad_input_writes_nothing(workspace, owner):
    before = state()

    response = logged_in_client(owner).post(reverse("workspace_new"), {"name": "x" * 101})

    assert response.status_code == 200
    assert response.context["form"].errors["name"] == ["Ensure this value has at most 100 characters (it has 101)."]
    assert state() == before


def test_the_key_form_refuses_an_active_keys_name_in_another_case_inline(workspace, owner):
    factories.api_key(workspace, name="CRM sync")
    before = state()

    response = logged_in_client(owner).post(reverse("settings_api_keys"), {"name": "crm  SYNC"})

    assert response.status_code == 200
    assert response.context["form"].errors["name"] == [
        "An API key named 'CRM sync' already exists in this workspace."
        " Names that differ only in case, spacing or invisible characters count as the same."
    ]
    assert "already exists in this workspace" in response.content.decode()
    assert state() == before


def test_workspace_names_from_the_settings_form_are_stored_normalised(workspace, owner):
    client = logged_in_client(owner)

    client.post(reverse("settings_workspace"), {"name": "\u202eNorthwind\u00a0 Outfitters "})
    refused = client.post(reverse("settings_workspace"), {"name": "\u200b"})

    workspace.refresh_from_db()
    assert workspace.name == "Northwind Outfitters"
    assert refused.context["form"].errors["name"] == ["A workspace needs a name."]


def test_write_key_rotation_from_settings(workspace, owner):
    old = workspace.write_key

    response = logged_in_client(owner).post(reverse("settings_write_key"))

    assert response.status_code == 302
    workspace.refresh_from_db()
    assert workspace.write_key != old


def test_sign_up_stores_the_names_in_their_normal_form():
    form = SignupForm(
        {
            "name": "\u202eAda\u00a0 Lovelace\u200b",
            "email": "ada@example.com",
            "password": "a-long-test-password-42",
            "workspace_name": " Analytical\tEngines ",
        }
    )

    assert form.is_valid(), form.errors
    assert (form.cleaned_data["name"], form.cleaned_data["workspace_name"]) == ("Ada Lovelace", "Analytical Engines")
    assert SignupForm({**form.data, "workspace_name": "\u200b\u2066"}).errors["workspace_name"] == [
        "A workspace needs a name."
    ]


def test_the_dashboard_promises_nothing_that_is_not_built(workspace, owner):
    html = logged_in_client(owner).get(reverse("dashboard")).content.decode()

    main = html[html.index('<main id="main"') : html.index("</main>")]
    assert "campaign" not in main.lower()
    assert reverse("settings_webhooks") in main


def test_write_key_and_install_pages_send_the_same_example_event(workspace, owner):
    client = logged_in_client(owner)

    pages = [
        html.unescape(client.get(reverse(name)).content.decode()) for name in ("settings_write_key", "settings_install")
    ]

    example = (
        f'curl http://testserver/v1/track -u "{workspace.write_key}:" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        """  -d '{"userId": "user_42", "event": "Order Completed", "properties": {"revenue": 49.9}}'"""
    )
    assert [page.count(example) for page in pages] == [1, 1]
    assert ['"total"' in page for page in pages] == [False, False]


def test_every_order_completed_example_carries_revenue_never_total():
    """The docs, templates and scripts show one example event: the demo's and the templates' ``revenue``."""
    root = Path(__file__).resolve().parents[2]
    files = [root / "README.md", *root.glob("docs/**/*.md"), *root.glob("templates/**/*.html")]
    files += [path for path in root.glob("static/**/*.js") if "vendor" not in path.parts]
    examples = [
        (path.relative_to(root), line.strip())
        for path in files
        for line in path.read_text().splitlines()
        if "Order Completed" in line and re.search(r"""["']?\btotal\b["']?\s*:""", line)
    ]
    assert examples == []


def test_member_role_form_with_an_invalid_role_changes_nothing(workspace, owner):
    user = factories.member(workspace, role=Role.MEMBER)
    with workspace_scope(workspace):
        target = Membership.objects.get(user=user)
    before = state()

    response = logged_in_client(owner).post(
        reverse("settings_member_role", kwargs={"pk": target.pk}), {"role": "god"}, follow=True
    )

    assert response.status_code == 200
    assert "Choose one of the listed roles." in response.content.decode()
    assert state() == before


@pytest.mark.parametrize("name", ["settings_members", "settings_audit_log"])
def test_read_only_settings_pages_refuse_post(workspace, owner, name):
    before = state()

    response = logged_in_client(owner).post(reverse(name), {"role": "owner"})

    assert response.status_code == 405
    assert state() == before


def test_audit_log_page_lists_entries(workspace, owner):
    with workspace_scope(workspace):
        services.workspace_rename(workspace=workspace, name="Renamed", actor=owner)

    response = logged_in_client(owner).get(reverse("settings_audit_log"))

    assert response.status_code == 200
    assert [entry.action for entry in response.context["page"]] == ["workspace.renamed"]


# --- Workspace switcher ----------------------------------------------------------------------


def test_switcher_moves_between_own_workspaces_only(workspace, owner):
    second = services.workspace_create(name="Second shop", owner=owner)
    foreign = factories.WorkspaceFactory(name="Not yours")
    client = logged_in_client(owner, workspace=workspace)

    switched = client.post(reverse("workspace_switch"), {"workspace": second.pk})
    assert switched.status_code == 302
    assert client.session["workspace_id"] == second.pk
    assert client.get(reverse("dashboard")).context["workspace"] == second
    assert [w.name for w in client.get(reverse("dashboard")).context["workspaces"]] == sorted(
        [workspace.name, "Second shop"]
    )

    for bad in (foreign.pk, "abc", ""):
        refused = client.post(reverse("workspace_switch"), {"workspace": bad})
        assert refused.status_code == 404
        assert client.session["workspace_id"] == second.pk


def test_removed_member_loses_the_workspace_at_once(workspace, owner):
    other = factories.WorkspaceFactory(name="Their own")
    user = factories.member(workspace, role=Role.ADMIN)
    factories.member(other, role=Role.OWNER, user=user)
    client = logged_in_client(user, workspace=workspace)
    assert client.get(reverse("settings_members")).context["workspace"] == workspace
    with workspace_scope(workspace):
        membership = Membership.objects.get(user=user)
        services.membership_remove(workspace=workspace, membership=membership, actor=owner, actor_role=Role.OWNER)

    page = client.get(reverse("settings_members"))
    answer = client.get(reverse("member-list"))

    assert page.context["workspace"] == other
    assert workspace.name not in page.content.decode()
    assert [m["email"] for m in answer.json()["results"]] == [user.email]


def test_user_without_workspace_is_sent_to_create_one(db):
    user = factories.UserFactory()
    client = logged_in_client(user)

    assert client.get(reverse("dashboard"))["Location"] == reverse("workspace_new")
    response = client.post(reverse("workspace_new"), {"name": "Fresh"})

    assert response.status_code == 302
    assert _memberships(user) == [("Fresh", "owner")]


def test_anonymous_visitor_is_sent_to_login(db):
    response = Client().get(reverse("settings_members"))

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={reverse('settings_members')}"


# --- Password reset ---------------------------------------------------------------------------


def test_password_reset_end_to_end_through_a_real_smtp_server(smtp, owner):
    client = Client()
    elsewhere = logged_in_client(owner)
    assert elsewhere.get(reverse("dashboard")).status_code == 200

    # Ask for the link
    response = client.post(reverse("password_reset"), {"email": owner.email})
    assert response.status_code == 302
    assert response["Location"] == reverse("password_reset_done")

    # It arrives by mail
    [message] = smtp.wait_for(1)
    assert message["To"] == owner.email
    links = re.findall(r"http://testserver(/password-reset/[^/\s]+/[^/\s]+/)", body_text(message))
    assert len(links) == 1

    # Follow it and choose a new password
    form_page = client.get(links[0], follow=True)
    assert form_page.status_code == 200
    assert form_page.context["validlink"] is True
    set_url = form_page.redirect_chain[-1][0]
    done = client.post(set_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert done.status_code == 302
    assert done["Location"] == reverse("password_reset_complete")

    # The new password signs in; the old one does not; the link is spent
    assert Client().post(reverse("login"), {"username": owner.email, "password": factories.PASSWORD}).status_code == 200
    fresh = Client()
    assert fresh.post(reverse("login"), {"username": owner.email, "password": NEW_PASSWORD}).status_code == 302
    assert fresh.session["_auth_user_id"] == str(owner.pk)
    reused = Client().get(links[0], follow=True)
    assert reused.context["validlink"] is False
    # Sessions opened with the old password are over
    assert elsewhere.get(reverse("dashboard"))["Location"].startswith(reverse("login"))


def test_password_reset_is_limited_per_target_email(owner, settings, mailoutbox):
    settings.PASSWORD_RESET_EMAIL_RATE = "3/hour"
    statuses = []

    # Requests for one person's address from many addresses
    for index in range(6):
        client = Client(REMOTE_ADDR=f"198.51.100.{index}")
        response = client.post(reverse("password_reset"), {"email": owner.email})
        statuses.append(response.status_code)

    assert statuses == [302, 302, 302, 429, 429, 429]
    assert 3590 <= int(response["Retry-After"]) <= 3600
    assert "Too many reset requests for this email or from your network. Wait 1 hour" in response.content.decode()
    assert [message.to for message in mailoutbox] == [[owner.email]] * 3


def test_password_reset_is_limited_per_client_address(workspace, settings, mailoutbox):
    settings.PASSWORD_RESET_ADDRESS_RATE = "2/hour"
    users = [factories.member(workspace) for _ in range(3)]
    client = Client(REMOTE_ADDR="198.51.100.9")

    statuses = [client.post(reverse("password_reset"), {"email": user.email}).status_code for user in users]

    assert statuses == [302, 302, 429]
    assert [message.to for message in mailoutbox] == [[users[0].email], [users[1].email]]
    other = Client(REMOTE_ADDR="198.51.100.10").post(reverse("password_reset"), {"email": users[2].email})
    assert other.status_code == 302
    assert mailoutbox[-1].to == [users[2].email]


def test_password_reset_for_an_unknown_email_sends_nothing(smtp, db):
    response = Client().post(reverse("password_reset"), {"email": "nobody@example.com"})

    assert response.status_code == 302
    assert smtp.messages == []


# --- Untrusted text ----------------------------------------------------------------------------


def test_names_are_escaped_in_every_settings_page(workspace, owner):
    hostile = '<img src=x onerror="alert(1)">'
    client = logged_in_client(owner)
    client.post(reverse("settings_workspace"), {"name": hostile})
    client.post(reverse("settings_api_keys"), {"name": hostile})
    owner.name = hostile
    owner.save(update_fields=["name"])

    for name in ("dashboard", "settings_workspace", "settings_members", "settings_api_keys", "settings_audit_log"):
        html = client.get(reverse(name)).content.decode()
        assert hostile not in html, name
        assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html, name


# --- Query counts ---------------------------------------------------------------------------------


def _fill(workspace, rows: int) -> None:
    for index in range(rows):
        user = factories.member(workspace, role=Role.MEMBER)
        with workspace_scope(workspace):
            services.api_key_create(workspace=workspace, name=f"key of {user.email}", actor=user)
            services.invitation_create(
                workspace=workspace, email=f"i{index}@example.com", role="member", actor=user, accept_url_base="/"
            )


# Session, user, the membership and the switcher's list, then what the page itself shows.
PAGE_QUERIES = {"settings_members": 5, "settings_api_keys": 5, "settings_invitations": 5, "settings_audit_log": 6}


@pytest.mark.parametrize("name", sorted(PAGE_QUERIES))
def test_settings_lists_pin_their_query_count(name, workspace, owner, django_assert_num_queries):
    client = logged_in_client(owner)
    _fill(workspace, 2)
    with django_assert_num_queries(PAGE_QUERIES[name]):
        assert client.get(reverse(name)).status_code == 200
    _fill(workspace, 5)
    with django_assert_num_queries(PAGE_QUERIES[name]):
        assert client.get(reverse(name)).status_code == 200
