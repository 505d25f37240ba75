"""Bulk import of exported messages through the ingestion path, in chunks.

Each chunk of messages is checked by ``tracking.messages.parse_message`` and
stored by ``tracking.ingest.submissions_ingest``, exactly as a request to
``/v1/batch`` would be: the same identity rules, dedupe by ``messageId``,
suppressed ids, quarantine for invalid messages, and events written with COPY.
One chunk is one transaction.

Subscribers (``tracking.events``) are not told person by person (tens of
thousands of people per chunk would flood real-time segments with work a full
refresh does better). Once the import ends, finished or not, they are told
once that many people changed (``people_imported``): segments are then due for
their full refresh, and the builder's catalogue catches up.

Time: an exported message keeps its own time. Clock-skew correction
(``receivedAt - (sentAt - timestamp)``) uses the message's own ``receivedAt``
when the export carries one, and is skipped when it does not, so that an
import never moves old events to the moment of the import. A ``receivedAt``
before 2000 is not trusted: the import's time is used, with a warning.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, TypeVar

from django.utils import timezone

from accounts.models import Workspace
from tracking import events
from tracking.import_files import Rejected
from tracking.ingest import Submission, submissions_ingest
from tracking.messages import EARLIEST, Message, Rejection, parse_message, parse_time

_T = TypeVar("_T")

DEFAULT_CHUNK_SIZE = 10_000
SAMPLE_REJECTIONS = 10


@dataclass
class ImportTotals:
    read: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    suppressed: int = 0
    # Messages read with warnings (a time replaced, NUL characters replaced); listed in the
    # quarantine as "accepted with warnings" once stored.
    warned: int = 0
    samples: list[str] = field(default_factory=list)
    warning_samples: list[str] = field(default_factory=list)


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
            events.people_imported(workspace)
    return totals


def _import(
    workspace: Workspace,
    items: Iterable[dict[str, Any] | Rejected],
    chunk_size: int,
    on_chunk: Callable[[ImportTotals], None] | None,
    totals: ImportTotals,
) -> None:
    # Reading and checking the next chunks (Python) overlaps with PostgreSQL storing this one.
    for read, submission in _read_ahead(_submissions(workspace, items, chunk_size, totals), depth=2):
        [result] = submissions_ingest([submission], notify=False)
        if result is None:
            raise RuntimeError("the workspace's write key changed during the import")
        totals.read += read
        totals.accepted += result.stored
        totals.duplicates += result.duplicates
        totals.rejected += result.rejected
        totals.suppressed += result.suppressed
        if on_chunk is not None:
            on_chunk(totals)


def _submissions(
    workspace: Workspace, items: Iterable[dict[str, Any] | Rejected], chunk_size: int, totals: ImportTotals
) -> Iterator[tuple[int, Submission]]:
    """Each chunk of ``items`` checked, as the submission that stores it, with its number of lines."""
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
                if parsed.warnings:
                    totals.warned += 1
                    if len(totals.warning_samples) < SAMPLE_REJECTIONS:
                        totals.warning_samples.append(f"message {parsed.message_id}: {'; '.join(parsed.warnings)}")
        yield len(chunk), Submission(workspace.write_key, messages, rejections, received_at)


def _read_ahead(items: Iterable[_T], *, depth: int) -> Iterator[_T]:
    """``items`` in order, produced by a thread of their own at most ``depth`` ahead of the consumer.

    The producer touches no database. Whatever it raises is raised here, in order;
    when the consumer stops early (an error while storing), the producer stops too.
    """
    slots: queue.Queue[tuple[BaseException | None, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(entry: tuple[BaseException | None, Any]) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((None, item)):
                    return
            put((None, end))
        except BaseException as error:  # handed to the consumer, which raises it
            put((error, None))

    producer = threading.Thread(target=produce, name="import-read-ahead", daemon=True)
    producer.start()
    try:
        while True:
            error, item = slots.get()
            if error is not None:
                raise error
            if item is end:
                return
            yield item
    finally:
        stop.set()
        producer.join()


def _parse(raw: dict[str, Any], now: Any) -> Message | Rejection:
    original = parse_time(raw.get("receivedAt"))
    too_early = original is not None and original < EARLIEST
    if too_early:
        original = None
    received_at = min(original, now) if original is not None else now
    message = raw
    if original is None and "sentAt" in raw:
        message = {key: value for key, value in raw.items() if key != "sentAt"}
    parsed = parse_message(message, kind=None, batch_sent_at=None, received_at=received_at)
    if isinstance(parsed, Message):
        if too_early:
            parsed.warnings.insert(0, "receivedAt was before 2000-01-01; the time of the import was used")
        parsed.raw = raw  # as exported, sentAt included
    return parsed
