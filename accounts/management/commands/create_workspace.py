"""``create_workspace``: bootstrap a workspace, its owner and keys without the UI."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_email
from django.db import transaction

from accounts import services
from accounts.models import User
from accounts.tenancy import workspace_scope


class Command(BaseCommand):
    help = "Create a workspace with an owner, a write key and a secret API key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="workspace name")
        parser.add_argument("--owner-email", required=True, help="owner's email; an existing user becomes owner")
        parser.add_argument("--owner-password", default=None, help="password for a new owner (none: cannot log in)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        email = options["owner_email"].strip().lower()
        try:
            name = services.workspace_name_clean(options["name"])
        except ValidationError as error:
            raise CommandError(f"--name: {error.message_dict['name'][0]}") from error
        if len(email) > 254:  # User.email's max_length; validate_email does not check it
            raise CommandError("--owner-email: at most 254 characters")
        try:
            validate_email(email)
        except ValidationError as error:
            raise CommandError(f"--owner-email: {error.messages[0]}") from error

        with transaction.atomic():
            user = User.objects.filter(email__iexact=email).first()
            if user is None:
                user = User.objects.create_user(email=email, password=options["owner_password"])
            elif options["owner_password"]:
                raise CommandError(f"{email} exists already; leave out --owner-password to add them as owner")
            workspace = services.workspace_create(name=name, owner=user)
            with workspace_scope(workspace):
                _, secret = services.api_key_create(workspace=workspace, name="create_workspace", actor=user)

        result = {"workspace": workspace.pk, "write_key": workspace.write_key, "api_key": secret}
        if options["json"]:
            self.stdout.write(json.dumps(result))
        else:
            self.stdout.write(
                f"Workspace {workspace.pk} ({workspace.name}) owned by {email}\n"
                f"write key: {workspace.write_key}\nAPI key:   {secret}  (shown once)"
            )
