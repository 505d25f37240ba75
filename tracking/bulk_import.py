"""Bulk import of exported messages through the ingestion path, in chunks.

Each chunk of messages is checked by ``tracking.messages.parse_message`` and
stored by ``tracking.ingest.submissions_ingest``, exactly as a request to
``/v1/batch`` would be: the same identity rules, dedupe by ``messageId``,
suppressed ids, quarantine for invalid messages, and events written with COPY.
One chunk is one transaction.

Segments: an import does not notify real-time membership person by person
(tens of thousands of people per chunk would flood the drain with work a full
refresh does better). Once it ends, finished or not, the workspace's dynamic
segments are marked due for their periodic full refresh
(``segmentation.realtime.segments_mark_due``).

Time: an exported message keeps its own time. Clock-skew correction
(``receivedAt - (sentAt - timestamp)``) uses the message's own ``receivedAt``
when the export carries one, and is skipped when it does not, so that an
import never moves old events to the moment of the import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from django.utils import timezone

from accounts.models import Workspace
from segmentation.realtime import segments_mark_due
from tracking.import_files import Rejected
from tracking.ingest import Submission, submissions_ingest
from tracking.messages import Message, Rejection, parse_message, parse_time

DEFAULT_CHUNK_SIZE = 10_000
SAMPLE_REJECTIONS = 10


@dataclass
class ImportTotals:
    read: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    suppressed: int = 0
    samples: list[str] = field(default_factory=list)


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def events_import(
    *,
    workspace: Workspace,
    items: Iterable[dict[str, Any] | Rejected],
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    on_chunk: Callable[[ImportTotals], None] | None = None,
) -> ImportTotals:
    """Import ``items`` (messages, or lines already refused by the reader) into ``workspace``.

    The caller opens the workspace scope. ``on_chunk`` is called after each stored chunk.
    """
    totals = ImportTotals()
    try:
        _import(workspace, items, chunk_size, on_chunk, totals)
    finally:
        if totals.accepted:
            segments_mark_due(workspace=workspace)
    return totals


def _import(
    workspace: Workspace,
    items: Iterable[dict[str, Any] | Rejected],
    chunk_size: int,
    on_chunk: Callable[[ImportTotals], None] | None,
    totals: ImportTotals,
) -> None:
    for chunk in _chunks(items, chunk_size):
        received_at = timezone.now()
        messages: list[Message] = []
        rejections: list[Rejection] = []
        for item in chunk:
            if isinstance(item, Rejected):
                rejections.append(Rejection(raw=item.raw, reason=item.reason, received_at=received_at))
                if len(totals.samples) < SAMPLE_REJECTIONS:
                    totals.samples.append(f"line {item.line}: {item.reason} ({item.detail})")
                continue
            parsed = _parse(item, received_at)
            if isinstance(parsed, Rejection):
                rejections.append(parsed)
                if len(totals.samples) < SAMPLE_REJECTIONS:
                    totals.samples.append(f"message {parsed.message_id or '(no messageId)'}: {parsed.reason}")
            else:
                messages.append(parsed)
        submission = Submission(workspace.write_key, messages, rejections, received_at)
        [result] = submissions_ingest([submission], notify=False)
        if result is None:
            raise RuntimeError("the workspace's write key changed during the import")
        totals.read += len(chunk)
        totals.accepted += result.stored
        totals.duplicates += result.duplicates
        totals.rejected += result.rejected
        totals.suppressed += result.suppressed
        if on_chunk is not None:
            on_chunk(totals)


def _parse(raw: dict[str, Any], now: Any) -> Message | Rejection:
    original = parse_time(raw.get("receivedAt"))
    received_at = min(original, now) if original is not None else now
    if original is None and "sentAt" in raw:
        raw = {key: value for key, value in raw.items() if key != "sentAt"}
    return parse_message(raw, kind=None, batch_sent_at=None, received_at=received_at)
