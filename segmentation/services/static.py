"""Static segments: members added and removed by user id, or uploaded as a CSV of user ids.

Every change runs in one transaction holding the segment's membership lock
(``segmentation.membership``) and records "entered" and "exited" changes as the
refresh does.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, NamedTuple

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import User, Workspace
from accounts.services import audit_record
from accounts.sql import execute_scoped, execute_session, with_tables
from segmentation import feed
from segmentation.membership import membership_lock
from segmentation.models import Membership, MembershipChangeKind, Segment, SegmentSizeSnapshot, SegmentStatus
from tracking.models import Identity, IdentityKind

MAX_STATIC_CHANGE = 10_000
# Person.user_id's column width: a longer value cannot be anyone's user id.
MAX_USER_ID_LENGTH = 255
UNMATCHED_REPORTED = 20


@dataclass(frozen=True)
class StaticChange:
    """How many people a static change added and removed, and the user ids that named nobody."""

    added: int
    removed: int
    unknown: list[str] = field(default_factory=list)


class CsvPreview(NamedTuple):
    """What a CSV would match; unpacks as ``(matched, unmatched, total)``."""

    matched: int
    unmatched: list[str]
    total: int


# The values of the people's user ids come from the tracking app's identities table.
_STATIC_APPLY_SQL = with_tables(
    """
WITH wanted AS MATERIALIZED (
    SELECT DISTINCT i.person_id FROM {identity} i
    WHERE i.workspace_id = %(workspace_id)s AND i.kind = %(kind)s AND i.value = ANY(%(values)s)
),
came AS (
    INSERT INTO segmentation_membership (workspace_id, segment_id, person_id, entered_at)
    SELECT %(workspace_id)s, %(segment)s, person_id, %(now)s FROM wanted
    ON CONFLICT (workspace_id, segment_id, person_id) DO NOTHING
    RETURNING person_id
),
changes AS (
    INSERT INTO segmentation_membershipchange (workspace_id, segment_id, person_id, kind, at)
    SELECT %(workspace_id)s, %(segment)s, person_id, %(change)s, %(now)s FROM came
)
SELECT count(*) FROM came
""",
    identity=Identity,
)
_STATIC_REMOVE_SQL = with_tables(
    """
WITH gone AS (
    DELETE FROM segmentation_membership m
    USING {identity} i
    WHERE m.workspace_id = %(workspace_id)s AND m.segment_id = %(segment)s
      AND i.workspace_id = %(workspace_id)s AND i.kind = %(kind)s AND i.value = ANY(%(values)s)
      AND i.person_id = m.person_id
    RETURNING m.person_id
),
changes AS (
    INSERT INTO segmentation_membershipchange (workspace_id, segment_id, person_id, kind, at)
    SELECT %(workspace_id)s, %(segment)s, person_id, %(change)s, %(now)s FROM gone
)
SELECT count(*) FROM gone
""",
    identity=Identity,
)
_KEEP_SQL = with_tables(
    "INSERT INTO segment_csv_keep (person_id) SELECT DISTINCT person_id FROM {identity} "
    "WHERE workspace_id = %(workspace_id)s AND kind = %(kind)s AND value = ANY(%(values)s) ON CONFLICT DO NOTHING",
    identity=Identity,
)
_REPLACE_REMOVE_SQL = """
WITH gone AS (
    DELETE FROM segmentation_membership m
    WHERE m.workspace_id = %(workspace_id)s AND m.segment_id = %(segment)s
      AND NOT EXISTS (SELECT 1 FROM segment_csv_keep k WHERE k.person_id = m.person_id)
    RETURNING m.person_id
),
changes AS (
    INSERT INTO segmentation_membershipchange (workspace_id, segment_id, person_id, kind, at)
    SELECT %(workspace_id)s, %(segment)s, person_id, %(change)s, %(now)s FROM gone
)
SELECT count(*) FROM gone
"""


def _known_user_ids(workspace_id: int, values: list[str]) -> set[str]:
    return set(
        Identity.objects.filter(workspace_id=workspace_id, kind=IdentityKind.USER_ID, value__in=values).values_list(
            "value", flat=True
        )
    )


def _storable(value: str) -> bool:
    return 0 < len(value) <= MAX_USER_ID_LENGTH and "\x00" not in value


def _require_static(segment: Segment) -> None:
    if not segment.is_static:
        raise ValidationError(
            {"segment": ["Members of a dynamic segment follow its definition; only static segments take a list."]}
        )


@dataclass
class _Applied:
    added: int = 0
    removed: int = 0

    def merge(self, other: _Applied) -> None:
        self.added += other.added
        self.removed += other.removed


def _static_write(segment: Segment, *, add: list[str], remove: list[str], now: datetime) -> _Applied:
    """Inside a transaction holding the membership lock: apply one batch of known user ids."""
    counts = {}
    with connection.cursor() as cursor:
        for side, sql, values, change in (
            ("removed", _STATIC_REMOVE_SQL, remove, MembershipChangeKind.EXITED),
            ("added", _STATIC_APPLY_SQL, add, MembershipChangeKind.ENTERED),
        ):
            if values:
                params = {"segment": segment.pk, "kind": IdentityKind.USER_ID.value, "now": now}
                execute_scoped(
                    cursor,
                    sql,
                    {**params, "values": values, "change": change.value},
                    workspace_id=segment.workspace_id,
                )
                counts[side] = int(cursor.fetchone()[0])
    return _Applied(**counts)


def _static_finish(segment: Segment, added: int, removed: int, now: datetime) -> None:
    """Exact size, a snapshot, fresh status; still inside the locked transaction."""
    size = Membership.objects.filter(workspace_id=segment.workspace_id, segment_id=segment.pk).count()
    SegmentSizeSnapshot.objects.create(
        workspace_id=segment.workspace_id, segment_id=segment.pk, at=now, size=size, entered=added, exited=removed
    )
    Segment.objects.filter(workspace_id=segment.workspace_id, pk=segment.pk).update(
        size=size, status=SegmentStatus.FRESH, refreshed_at=now, error=""
    )


def _notify(segment: Segment) -> None:
    """Kick the change feed's drain on commit: its consumers read the changes written here (a kick
    that finds nothing costs one Redis call)."""
    workspace_id = segment.workspace_id
    transaction.on_commit(lambda: feed.feed_kick(workspace_id))


def segment_static_change(*, segment: Segment, actor: User | None, add: list[str], remove: list[str]) -> StaticChange:
    """Add and remove people of a static segment by user id (aliases count).

    A user id that names nobody in the workspace is reported in ``unknown`` and not
    created: a static list holds people the workspace knows. Adding a member or
    removing a non-member changes nothing. At most ``MAX_STATIC_CHANGE`` ids per side.
    """
    _require_static(segment)
    errors: dict[str, list[str]] = {}
    for name, values in (("add", add), ("remove", remove)):
        if len(values) > MAX_STATIC_CHANGE:
            errors[name] = [f"At most {MAX_STATIC_CHANGE} user ids per call."]
    both = sorted(set(add) & set(remove))
    if both:
        errors["remove"] = [f"Named in both add and remove: {', '.join(repr(v) for v in both[:UNMATCHED_REPORTED])}."]
    if errors:
        raise ValidationError(errors)
    asked = list(dict.fromkeys([*add, *remove]))
    known = _known_user_ids(segment.workspace_id, [v for v in asked if _storable(v)])
    unknown = [v for v in asked if v not in known]
    now = timezone.now()
    with transaction.atomic():
        membership_lock(segment.pk)
        applied = _static_write(
            segment,
            add=[v for v in add if v in known],
            remove=[v for v in remove if v in known],
            now=now,
        )
        _static_finish(segment, applied.added, applied.removed, now)
        if applied.added or applied.removed:
            audit_record(
                workspace=Workspace(pk=segment.workspace_id),
                actor=actor,
                action="segment.members_changed",
                target=segment.name,
                details={"added": applied.added, "removed": applied.removed},
            )
        _notify(segment)
    segment.refresh_from_db()
    return StaticChange(added=applied.added, removed=applied.removed, unknown=unknown)


# --- CSV of user ids -------------------------------------------------------------------------

CSV_BATCH = 5000


def _csv_user_ids(file: IO[Any]) -> Iterator[str]:
    """The user ids of a CSV, one per row: the ``user_id`` column when the header names one, else the first column.

    Decoded as UTF-8 (a byte-order mark is skipped; undecodable bytes become U+FFFD, which
    matches no id); blank values are skipped. Streams: the file is never held in memory whole.
    A file the csv module cannot read (a NUL byte, a field beyond its size limit) raises
    ``ValidationError`` on ``file``; callers inside a transaction then write nothing.
    """
    if hasattr(file, "seek"):
        file.seek(0)
    text: Iterable[str] = codecs.getreader("utf-8-sig")(file, "replace") if _is_binary(file) else file
    rows = csv.reader(text)
    try:
        first = next(rows, None)
        if first is None:
            return
        header = [cell.strip().lstrip("\ufeff").lower() for cell in first]
        column = 0
        if "user_id" in header:
            column = header.index("user_id")
        elif first and first[0].strip():
            yield first[0].strip()
        for row in rows:
            if len(row) > column and row[column].strip():
                yield row[column].strip()
    except csv.Error as error:
        raise ValidationError({"file": [f"Not a readable CSV file (line {rows.line_num}): {error}."]}) from error


def _is_binary(file: IO[Any]) -> bool:
    return isinstance(file.read(0), bytes)


def _batches(values: Iterator[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for value in values:
        batch.append(value)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def segment_static_csv_preview(*, segment: Segment, file: IO[Any]) -> CsvPreview:
    """What applying this CSV would match: people found, the first unmatched ids, rows with an id.

    Read in batches: each batch's ids are looked up in one query, so memory follows the batch, not the file.
    """
    _require_static(segment)
    matched = total = 0
    unmatched: list[str] = []
    for batch in _batches(_csv_user_ids(file), CSV_BATCH):
        total += len(batch)
        known = _known_user_ids(segment.workspace_id, [v for v in batch if _storable(v)])
        matched += sum(1 for v in batch if v in known)
        for value in batch:
            if value not in known and len(unmatched) < UNMATCHED_REPORTED:
                unmatched.append(value)
    return CsvPreview(matched=matched, unmatched=unmatched, total=total)


def segment_static_csv_apply(
    *, segment: Segment, actor: User | None, file: IO[Any], replace: bool = False
) -> StaticChange:
    """Add the CSV's people to a static segment (``replace``: and remove members it does not list).

    One transaction under the membership lock; ``unknown`` holds the first unmatched ids.
    """
    _require_static(segment)
    now = timezone.now()
    unknown: list[str] = []
    applied = _Applied()
    with transaction.atomic():
        membership_lock(segment.pk)
        if replace:
            with connection.cursor() as cursor:
                execute_session(
                    cursor, "CREATE TEMP TABLE segment_csv_keep (person_id bigint PRIMARY KEY) ON COMMIT DROP"
                )
        for batch in _batches(_csv_user_ids(file), CSV_BATCH):
            known = _known_user_ids(segment.workspace_id, [v for v in batch if _storable(v)])
            for value in batch:
                if value not in known and len(unknown) < UNMATCHED_REPORTED:
                    unknown.append(value)
            values = sorted(known)
            applied.merge(_static_write(segment, add=values, remove=[], now=now))
            if replace and values:
                with connection.cursor() as cursor:
                    execute_scoped(
                        cursor,
                        _KEEP_SQL,
                        {"kind": IdentityKind.USER_ID.value, "values": values},
                        workspace_id=segment.workspace_id,
                    )
        if replace:
            with connection.cursor() as cursor:
                execute_scoped(
                    cursor,
                    _REPLACE_REMOVE_SQL,
                    {"segment": segment.pk, "change": MembershipChangeKind.EXITED.value, "now": now},
                    workspace_id=segment.workspace_id,
                )
                applied.merge(_Applied(removed=int(cursor.fetchone()[0])))
                execute_session(cursor, "DROP TABLE segment_csv_keep")
        _static_finish(segment, applied.added, applied.removed, now)
        audit_record(
            workspace=Workspace(pk=segment.workspace_id),
            actor=actor,
            action="segment.members_uploaded",
            target=segment.name,
            details={"added": applied.added, "removed": applied.removed},
        )
        _notify(segment)
    segment.refresh_from_db()
    return StaticChange(added=applied.added, removed=applied.removed, unknown=unknown)
