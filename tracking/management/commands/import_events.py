"""``import_events FILE``: bulk-load exported messages or a CSV of people.

NDJSON of Segment messages (one per line) or a CSV of people (a ``user_id``
column, other columns become traits), either plain or gzip-compressed. Every
message goes through the ingestion path (``tracking.bulk_import``), in
chunks, with a progress bar; the summary gives accepted, duplicate, rejected
and suppressed counts.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from accounts.models import Workspace
from accounts.tenancy import workspace_scope
from tracking.bulk_import import DEFAULT_CHUNK_SIZE, ImportTotals, events_import
from tracking.import_files import ImportFile, ImportFileError


class Command(BaseCommand):
    help = "Import NDJSON of Segment messages, or a CSV of people (user_id + traits); gzip is fine."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="path to .ndjson/.jsonl/.csv, optionally .gz")
        parser.add_argument("--workspace", type=int, help="workspace id (needed when there is more than one)")
        parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, help="messages per transaction")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def _workspace(self, workspace_id: int | None) -> Workspace:
        if workspace_id is not None:
            workspace = Workspace.objects.filter(pk=workspace_id).first()
            if workspace is None:
                raise CommandError(f"--workspace {workspace_id}: no such workspace")
            return workspace
        workspaces = list(Workspace.objects.order_by("pk")[:2])
        if len(workspaces) != 1:
            raise CommandError("give --workspace ID" if workspaces else "there is no workspace yet")
        return workspaces[0]

    def handle(self, *args: Any, **options: Any) -> None:
        if options["chunk_size"] < 1:
            raise CommandError("--chunk-size must be at least 1")
        workspace = self._workspace(options["workspace"])
        try:
            source = ImportFile(options["file"])
        except ImportFileError as error:
            raise CommandError(str(error)) from error

        started = time.perf_counter()
        with source, workspace_scope(workspace):
            bar = tqdm(
                total=source.size,
                unit="B",
                unit_scale=True,
                desc=f"{source.path.name} ({source.kind}{', gzip' if source.compressed else ''})",
                disable=options["no_progress"],
                file=getattr(self.stderr, "_out", sys.stderr),
            )

            def progress(totals: ImportTotals) -> None:
                bar.update(source.position - bar.n)
                bar.set_postfix(accepted=totals.accepted, duplicate=totals.duplicates, rejected=totals.rejected)

            try:
                totals = events_import(
                    workspace=workspace,
                    items=source.messages(),
                    chunk_size=options["chunk_size"],
                    on_chunk=progress,
                )
            except ImportFileError as error:
                raise CommandError(str(error)) from error
            finally:
                bar.close()
        elapsed = time.perf_counter() - started
        for sample in totals.samples:
            self.stderr.write(f"rejected {sample}")
        for sample in totals.warning_samples:
            self.stderr.write(f"accepted with warnings {sample}")
        rate = totals.read / elapsed if elapsed else 0.0
        warned = f", {totals.warned} with warnings" if totals.warned else ""
        self.stdout.write(
            f"Imported {source.path.name} into workspace {workspace.pk}: {totals.read} read, "
            f"{totals.accepted} accepted, {totals.duplicates} duplicate, {totals.rejected} rejected, "
            f"{totals.suppressed} suppressed{warned} in {elapsed:.1f}s ({rate:,.0f} messages/s)"
        )
