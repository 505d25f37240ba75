"""``seed_demo``: a demo workspace with its owner, for the quickstart and the UI tests.

Generated shop behaviour is fed through the ingestion path once tracking
exists; until then this creates the workspace and the owner only.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from accounts import services
from accounts.models import User, Workspace

DEMO_EMAIL = "demo@cohortly.localhost"
DEMO_PASSWORD = "cohortly-demo"
DEMO_WORKSPACE = "Demo Shop"


class Command(BaseCommand):
    help = "Create the demo workspace (if missing) filled with generated shop behaviour."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--people", type=int, default=2000)
        parser.add_argument("--days", type=int, default=90)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--if-missing", action="store_true", help="do nothing when the demo workspace exists")

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(email=DEMO_EMAIL).first()
        existing = Workspace.objects.filter(name=DEMO_WORKSPACE).first()
        if existing is not None and options["if_missing"]:
            self.stdout.write(f"Demo workspace exists (id {existing.pk}).")
            return
        with transaction.atomic():
            if user is None:
                user = User.objects.create_user(email=DEMO_EMAIL, password=DEMO_PASSWORD, name="Demo Owner")
            if existing is None:
                existing = services.workspace_create(name=DEMO_WORKSPACE, owner=user)
        self.stdout.write(f"Demo workspace {existing.pk}: sign in as {DEMO_EMAIL} / {DEMO_PASSWORD}")
