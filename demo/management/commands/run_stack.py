"""``run_stack``: the whole product in one process group, for ``make run``.

Migrates, collects static files, creates the demo workspace when there is
none, then runs the web
server (gunicorn), a Celery worker and Celery beat. Ctrl-C stops all three;
if one of them exits, the others are stopped too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core import embedded
from core.dburl import database_url
from demo.management.commands.seed_demo import DEMO_EMAIL, DEMO_PASSWORD


def _port(value: Any) -> int:
    """The web server's port (``--port`` or ``PORT``), refused before anything starts when it is not one."""
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise CommandError(f"PORT (or --port) must be a whole number from 1 to 65535, not {value!r}.")
    return int(text)


class Command(BaseCommand):
    help = "Run web server, Celery worker and beat together (development and demos)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"), help="default: $HOST or 127.0.0.1")
        parser.add_argument("--port", default=os.environ.get("PORT", "8000"), help="default: $PORT or 8000")
        parser.add_argument("--no-demo", action="store_true", help="do not create the demo workspace")

    def handle(self, *args: Any, **options: Any) -> None:
        options["port"] = _port(options["port"])
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        if not options["no_demo"]:
            call_command("seed_demo", if_missing=True)

        env = {
            **os.environ,
            "DATABASE_URL": database_url(settings.DATABASES["default"]),
            "REDIS_URL": settings.REDIS_URL,
        }
        env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        bind = f"{options['host']}:{options['port']}"
        python = sys.executable
        commands = {
            # As in production (README): threads, so that tracking requests share commits.
            "web": [
                python,
                "-m",
                "gunicorn",
                "config.wsgi",
                "--bind",
                bind,
                "--workers",
                "2",
                "--worker-class",
                "gthread",
                "--threads",
                "32",
                "--access-logfile",
                "-",
            ],
            "worker": [python, "-m", "celery", "-A", "config", "worker", "--loglevel", "INFO", "--concurrency", "2"],
            "beat": [
                python,
                "-m",
                "celery",
                "-A",
                "config",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(embedded.data_dir() / "celerybeat-schedule"),
            ],
        }
        processes = {name: subprocess.Popen(cmd, env=env) for name, cmd in commands.items()}

        stopping = False

        def stop(*_: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)

        self.stdout.write(
            self.style.SUCCESS(f"\nCohortly is running at http://{bind}/\n")
            + f"Demo login: {DEMO_EMAIL} / {DEMO_PASSWORD}\nPress Ctrl-C to stop.\n"
        )
        exit_code = 0
        while not stopping:
            for name, process in processes.items():
                if process.poll() is not None:
                    self.stderr.write(f"{name} exited with {process.returncode}; stopping the others.")
                    exit_code = process.returncode or 1
                    stopping = True
            time.sleep(0.5)

        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        sys.exit(exit_code)
