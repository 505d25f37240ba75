"""Group commit: concurrent tracking requests of one server process share a transaction.

Committing is what a small request mostly costs (a WAL flush, a round trip for
BEGIN and one for COMMIT, the statements of one message). The request threads
of a process therefore hand their parsed messages to one committer thread and
wait; the committer takes everything waiting at that moment, stores it with
``tracking.ingest.submissions_ingest`` in one transaction, and wakes each
request only after COMMIT returned, with its own counts. A 2xx still means
durable. If the transaction fails, every request of the group gets the error
(the endpoint answers 503 and SDKs retry; dedupe makes the retry harmless).

There is no timer: while the committer is busy with one group, the next one
gathers. An idle server commits a lone request at once; a loaded one commits
many requests per transaction.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from dataclasses import dataclass, field

from django.db import DatabaseError, connection

from tracking.ingest import IngestResult, Submission, submissions_ingest

logger = logging.getLogger(__name__)

# At most this many messages per transaction (a group still takes at least one request).
MAX_GROUP_MESSAGES = 5000
# A request waits at most this long for its commit, then answers 503 (the SDK retries).
WAIT_SECONDS = 30.0


class CommitUnavailable(Exception):
    """The group's transaction failed or took too long: nothing is acknowledged."""


@dataclass(slots=True)
class _Waiter:
    submission: Submission
    done: threading.Event = field(default_factory=threading.Event)
    result: IngestResult | None = None
    error: BaseException | None = None


class GroupCommitter:
    """One committer thread per process, started on first use (after gunicorn forks)."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_Waiter] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pid: int | None = None

    def submit(self, submission: Submission) -> IngestResult | None:
        """Store ``submission`` durably with whatever else is waiting; None: unknown write key."""
        self._ensure_thread()
        waiter = _Waiter(submission)
        self._queue.put(waiter)
        if not waiter.done.wait(WAIT_SECONDS):
            raise CommitUnavailable(f"no commit within {WAIT_SECONDS:.0f}s")
        if isinstance(waiter.error, DatabaseError | CommitUnavailable):
            raise CommitUnavailable(str(waiter.error)) from waiter.error
        if waiter.error is not None:
            raise RuntimeError("ingest: the group commit failed") from waiter.error
        return waiter.result

    def _ensure_thread(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                threading.Thread(target=self._run, name="ingest-group-commit", daemon=True).start()
                self._pid = os.getpid()

    def _next_group(self) -> list[_Waiter]:
        group = [self._queue.get()]
        size = len(group[0].submission.messages)
        while size < MAX_GROUP_MESSAGES:
            try:
                waiter = self._queue.get_nowait()
            except queue.Empty:
                break
            group.append(waiter)
            size += len(waiter.submission.messages)
        return group

    def _run(self) -> None:
        while True:
            group = self._next_group()
            outcome: list[IngestResult | None] | BaseException = CommitUnavailable("the commit did not finish")
            try:
                outcome = submissions_ingest([waiter.submission for waiter in group])
            except DatabaseError as error:
                logger.warning("ingest: group of %s requests not stored: %s", len(group), error)
                outcome = error
                # Reconnect for the next group (no per-group health check: it would cost a round trip).
                connection.close()
            except Exception as error:
                logger.exception("ingest: group of %s requests failed", len(group))
                outcome = error
            finally:
                # Every waiter is woken, whatever happened.
                for index, waiter in enumerate(group):
                    if isinstance(outcome, BaseException):
                        waiter.error = outcome
                    else:
                        waiter.result = outcome[index]
                    waiter.done.set()
