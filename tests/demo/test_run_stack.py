"""``run_stack`` (``make run``): where it listens. Starting the stack itself: tests/core/test_embedded.py."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from demo.management.commands.run_stack import Command


def _options(*args: str) -> dict:
    return vars(Command().create_parser("manage.py", "run_stack").parse_args(list(args)))


def test_port_and_host_come_from_the_environment_as_make_run_passes_them(monkeypatch):
    monkeypatch.setenv("PORT", "9123")
    monkeypatch.setenv("HOST", "0.0.0.0")

    assert (_options()["host"], _options()["port"]) == ("0.0.0.0", "9123")
    assert _options("--port", "9200")["port"] == "9200"


def test_without_port_it_listens_on_8000(monkeypatch):
    monkeypatch.delenv("PORT", raising=False)
    monkeypatch.delenv("HOST", raising=False)

    assert (_options()["host"], _options()["port"]) == ("127.0.0.1", "8000")


@pytest.mark.parametrize("port", ["http", "0", "65536", "80.5", "²"])
def test_a_port_that_is_not_one_is_refused_before_anything_starts(monkeypatch, port):
    monkeypatch.setenv("PORT", port)

    with pytest.raises(CommandError, match=r"^PORT \(or --port\) must be a whole number from 1 to 65535, not "):
        call_command("run_stack", "--no-demo")
