"""Routine background work logs at DEBUG; work done and failures stand out (core/logs.py).

Real tasks run through Celery's tracer (eagerly, in the test) and beat's scheduler, with the
project's LOGGING; the last test runs a real worker and beat and reads what they print.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
from celery import beat
from django.conf import settings
from django.db import connection
from django.db.models import Q

from accounts.tenancy import workspace_scope
from config.celery import app as celery_app
from core.dburl import database_url
from core.logs import RoutineTasks
from segmentation import services
from segmentation.models import Segment
from segmentation.tasks import segment_realtime_sweep, segment_refresh_task, segments_refresh_due

ROOT = Path(__file__).resolve().parents[2]
BUYERS = {"type": "event", "event": "Order Completed", "window": {"since": "30d"}}


@pytest.fixture
def eager():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def _lines(caplog, text: str) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if text in r.getMessage()]


def test_the_project_logging_puts_the_filter_on_celerys_loggers():
    for name in ("celery.beat", "celery.worker.strategy", "celery.app.trace"):
        # Present (logging configured again in the process adds it again: a second one is a no-op).
        assert "RoutineTasks" in {type(f).__name__ for f in logging.getLogger(name).filters}, name


def test_every_routine_task_is_a_task_and_every_frequent_beat_entry_is_routine():
    celery_app.loader.import_default_modules()
    assert set(settings.ROUTINE_TASKS) <= set(celery_app.tasks)
    frequent = {e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values() if float(e["schedule"]) < 3600}
    assert frequent <= set(settings.ROUTINE_TASKS)
    assert "tracking.tasks.tracking_maintenance" not in settings.ROUTINE_TASKS


def test_a_sweep_that_finds_nothing_logs_nothing_at_info_and_a_debug_line(db, caplog):
    caplog.set_level(logging.INFO)
    assert segment_realtime_sweep.apply().get() == 0
    assert _lines(caplog, "segment_realtime_sweep") == []

    caplog.set_level(logging.DEBUG)
    segment_realtime_sweep.apply()
    [(level, message)] = _lines(caplog, "segment_realtime_sweep")
    assert level == "DEBUG"
    assert re.fullmatch(r"Task segmentation\.tasks\.segment_realtime_sweep\[[-\w]+\] succeeded in \S+s: 0", message)


def test_beat_sending_a_routine_task_is_debug_and_other_tasks_stay_info(db, caplog, eager):
    caplog.set_level(logging.INFO)
    scheduler = beat.Scheduler(celery_app, lazy=True)
    sweep = beat.ScheduleEntry(
        name="segments-realtime-sweep", task="segmentation.tasks.segment_realtime_sweep", schedule=2.0, app=celery_app
    )
    refresh = beat.ScheduleEntry(
        name="a-refresh", task="segmentation.tasks.segment_refresh_task", args=(0, 0), schedule=60.0, app=celery_app
    )

    scheduler.apply_entry(sweep, producer=None)
    scheduler.apply_entry(refresh, producer=None)

    assert _lines(caplog, "segment_realtime_sweep") == []
    assert [level for level, _ in _lines(caplog, "segment_refresh_task")] == ["INFO", "INFO"]  # sent, succeeded


def test_a_routine_run_that_did_something_stays_at_info(workspace, caplog, eager):
    with workspace_scope(workspace):
        services.segment_create(workspace=workspace, actor=None, name="Buyers", definition=BUYERS)
        Segment.objects.filter(Q(workspace=workspace)).update(next_refresh_at=None)  # due
    caplog.set_level(logging.INFO)

    segments_refresh_due.apply()

    [(level, message)] = _lines(caplog, "segments_refresh_due")
    assert level == "INFO"
    assert message.endswith(": 1")


def test_a_failing_refresh_is_logged_once_with_segment_and_workspace(workspace, caplog):
    with workspace_scope(workspace):
        segment = services.segment_create(workspace=workspace, actor=None, name="Buyers", definition=BUYERS)
        # Saved under rules that no longer hold: the refresh cannot parse it.
        Segment.objects.filter(pk=segment.pk).update(definition={"type": "no-such-condition"})
    caplog.set_level(logging.DEBUG, logger="segmentation")

    for _ in range(3):
        segment_refresh_task.apply(args=(workspace.pk, segment.pk))

    failures = [(r.levelname, r.getMessage()) for r in caplog.records if r.name.startswith("segmentation")]
    assert [level for level, _ in failures] == ["WARNING", "DEBUG", "DEBUG"]
    assert failures[0][1].startswith(f"Refresh of segment {segment.pk} of workspace {workspace.pk} failed: ")
    assert [r.exc_info is not None for r in caplog.records if r.name.startswith("segmentation")] == [
        True,
        False,
        False,
    ]


@pytest.mark.slow
def test_a_real_worker_and_beat_log_their_sweeps_at_debug_only(transactional_db, tmp_path):
    queue = f"test-logs-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "SEGMENTS_REALTIME_QUEUE": queue,
        "SEGMENT_FEED_QUEUE": queue,
        "DATABASE_URL": database_url(connection.settings_dict),  # the test database
        "REDIS_URL": settings.REDIS_URL,
        "PYTHONUNBUFFERED": "1",
    }
    celery = [sys.executable, "-m", "celery", "-A", "config"]
    logs = {name: tmp_path / f"{name}.log" for name in ("worker", "beat")}
    commands = {
        "worker": [*celery, "worker", "-Q", queue, "--concurrency", "1", "--loglevel", "DEBUG", "--without-mingle"],
        "beat": [*celery, "beat", "--loglevel", "DEBUG", "--schedule", str(tmp_path / "schedule")],
    }
    processes = {}
    try:
        for name, command in commands.items():
            with logs[name].open("wb") as out:
                processes[name] = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while len(re.findall(r"segment_realtime_sweep\[[-\w]+\] succeeded", logs["worker"].read_text())) < 2:
            assert time.monotonic() < deadline, logs["worker"].read_text()[-3000:]
            assert all(p.poll() is None for p in processes.values()), logs["beat"].read_text()[-3000:]
            time.sleep(0.5)
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(timeout=30)
        redis.Redis.from_url(settings.REDIS_URL).delete(queue)

    lines = [
        line
        for name in ("worker", "beat")
        for line in logs[name].read_text().splitlines()
        if "segment_realtime_sweep" in line and line.startswith("[")
    ]
    sent = [line for line in lines if "Sending due task segments-realtime-sweep" in line]
    handled = [line for line in lines if re.search(r"segment_realtime_sweep\[[-\w]+\] (received|succeeded)", line)]
    assert sent
    assert len(handled) >= 4  # received and succeeded, twice
    assert [line for line in sent + handled if ": DEBUG/" not in line] == []


def test_the_filter_twice_on_a_logger_moves_a_line_once_and_passes_the_rest(caplog):
    logger = logging.getLogger("celery.app.trace")
    extra = RoutineTasks(settings.ROUTINE_TASKS)
    logger.addFilter(extra)
    try:
        caplog.set_level(logging.DEBUG)
        context = {"id": "x", "name": "segmentation.feed_sweep", "return_value": "0", "runtime": 0.01}
        succeeded = "Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s"
        logger.info(succeeded, context)
        logger.info(succeeded, {**context, "return_value": "2"})
    finally:
        logger.removeFilter(extra)

    assert [(r.levelname, r.getMessage()[-1]) for r in caplog.records] == [("DEBUG", "0"), ("INFO", "2")]
