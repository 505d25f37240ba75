"""Management commands of accounts: ``create_workspace``."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from accounts.models import Membership, User, Workspace
from tests import factories
from tests.accounts.support import api, state


def _run(*args: str) -> str:
    out = StringIO()
    call_command("create_workspace", *args, stdout=out)
    return out.getvalue()


def test_json_output_is_one_object_whose_keys_work(db):
    output = _run(
        "--name", "Acme", "--owner-email", "Boss@Example.com", "--owner-password", factories.PASSWORD, "--json"
    )

    # Exactly one JSON object, on one line
    lines = output.splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert set(result) == {"workspace", "write_key", "api_key"}

    workspace = Workspace.objects.get()
    assert result["workspace"] == workspace.pk
    assert workspace.name == "Acme"
    assert result["write_key"] == workspace.write_key
    assert result["api_key"].startswith("cly_sk_")

    # The API key authenticates the REST API for that workspace
    response = api(Client(), "GET", reverse("api-workspace"), key=result["api_key"])
    assert response.status_code == 200
    assert response.json()["id"] == workspace.pk

    # The new user owns it and can sign in with the given password
    user = User.objects.get()
    assert user.email == "boss@example.com"
    assert list(Membership.objects.unscoped().values_list("user", "workspace", "role")) == [
        (user.pk, workspace.pk, "owner")
    ]
    client = Client()
    login = client.post(reverse("login"), {"username": "boss@example.com", "password": factories.PASSWORD})
    assert login.status_code == 302


def test_existing_user_is_added_as_owner(owner, workspace):
    users_before = User.objects.count()

    result = json.loads(_run("--name", "Second", "--owner-email", owner.email.upper(), "--json"))

    assert User.objects.count() == users_before
    created = Workspace.objects.get(pk=result["workspace"])
    # Crosses workspaces on purpose: all of the user's memberships.
    assert sorted(Membership.objects.unscoped().filter(user=owner).values_list("workspace", "role")) == sorted(
        [(workspace.pk, "owner"), (created.pk, "owner")]
    )
    owner.refresh_from_db()
    assert owner.check_password(factories.PASSWORD)


def test_new_owner_without_password_cannot_sign_in(db):
    _run("--name", "Headless", "--owner-email", "robot@example.com", "--json")

    assert not User.objects.get().has_usable_password()


def test_human_output_shows_the_keys_once(db):
    output = _run("--name", "Acme", "--owner-email", "boss@example.com")

    workspace = Workspace.objects.get()
    assert f"write key: {workspace.write_key}" in output
    assert "API key:   cly_sk_" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "Acme", "--owner-email", "not-an-email"], "--owner-email: Enter a valid email address."),
        (["--name", "Acme", "--owner-email", "a" * 300 + "@example.com"], "--owner-email: at most 254 characters"),
        (["--name", "   ", "--owner-email", "boss@example.com"], "--name: A workspace needs a name."),
        (["--name", "x" * 101, "--owner-email", "boss@example.com"], "--name: At most 100 characters (this has 101)."),
    ],
)
def test_bad_arguments_raise_command_error_and_create_nothing(db, args, message):
    before = state()

    with pytest.raises(CommandError) as error:
        _run(*args, "--json")

    assert message in str(error.value)
    assert state() == before


def test_existing_user_with_a_password_is_refused_and_nothing_is_created(owner):
    before = state()

    with pytest.raises(CommandError, match="exists already"):
        _run("--name", "Other", "--owner-email", owner.email, "--owner-password", "whatever-long-1", "--json")

    assert state() == before
