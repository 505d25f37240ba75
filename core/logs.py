"""Logging of routine background work: what runs every few seconds must not bury what matters.

Celery logs three INFO lines for each run of a task: beat's "Sending due task",
the worker's "received" and "succeeded in ...: <result>". For a sweep that beat
runs every 2 seconds and that finds nothing to do nearly every time, that is
most of the log. :class:`RoutineTasks` moves these lines to DEBUG for the tasks
it is given: the "sent" and "received" lines always, the "succeeded" line when
the run did nothing (its result is 0, None or empty). A run that did something
stays at INFO, and failures keep their own level (WARNING, ERROR), each logged
once where it happens, naming the workspace and the segment.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

# Celery's own loggers of those lines (celery.beat, celery.worker.strategy, celery.app.trace).
CELERY_LOGGERS = ("celery.beat", "celery.worker.strategy", "celery.app.trace")
_NOTHING_DONE = frozenset({"0", "None", "False", "[]", "{}", "()", "''"})
_SENT = "Scheduler: Sending due task"
_RECEIVED = "Task %(name)s[%(id)s] received"
_SUCCEEDED = "Task %(name)s[%(id)s] succeeded in "


class RoutineTasks(logging.Filter):
    """Logs the routine lines of ``tasks`` (Celery task names) at DEBUG; attach it to ``CELERY_LOGGERS``."""

    def __init__(self, tasks: Iterable[str] = ()) -> None:
        super().__init__()
        self.tasks = frozenset(tasks)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._routine(record):
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        # The logger let the record through at INFO; at DEBUG it goes on only where DEBUG is on.
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)

    def _routine(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not isinstance(record.msg, str):
            return False
        if record.msg.startswith(_SENT):
            args: Any = record.args
            return isinstance(args, tuple) and len(args) == 2 and args[1] in self.tasks
        context = record.args if isinstance(record.args, dict) else None
        if context is None or context.get("name") not in self.tasks:
            return False
        if record.msg == _RECEIVED:
            return True
        return record.msg.startswith(_SUCCEEDED) and str(context.get("return_value")) in _NOTHING_DONE
