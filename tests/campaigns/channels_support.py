"""Rows and sinks for the tests of channels and engagement: a campaign, its variant, sends,
an SMTP sink that can refuse recipients and count its sessions, an HTTP receiver."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from django.utils import timezone

from accounts.models import Workspace
from accounts.tenancy import workspace_scope
from campaigns.models import Campaign, CampaignSettings, Send, SendState, Variant
from tracking.models import Person

_names = itertools.count(1)


def campaign_with_variant(
    workspace: Workspace, *, channel: str = "email", subject: str = "", body: str = "", text: str = "", url: str = ""
) -> tuple[Campaign, Variant]:
    with workspace_scope(workspace):
        campaign = Campaign.objects.create(
            workspace=workspace, name=f"Campaign {next(_names)}", channel=channel, kind="broadcast", status="sending"
        )
        variant = Variant.objects.create(
            workspace=workspace,
            campaign=campaign,
            position=0,
            name="A",
            weight=1,
            subject=subject,
            body=body,
            text=text,
            url=url,
        )
    return campaign, variant


def send_for(
    workspace: Workspace,
    campaign: Campaign,
    variant: Variant,
    person: Person,
    *,
    recipient: str = "",
    state: str = SendState.SENT,
    occurrence: str = "run:1",
    context: dict[str, Any] | None = None,
) -> Send:
    now = timezone.now()
    with workspace_scope(workspace):
        return Send.objects.create(
            workspace=workspace,
            campaign=campaign,
            variant=variant,
            person=person,
            occurrence=occurrence,
            channel=campaign.channel,
            state=state,
            due_at=now,
            sent_at=now if state == SendState.SENT else None,
            recipient=recipient,
            context=context,
        )


def settings_row(workspace: Workspace, **values: Any) -> CampaignSettings:
    with workspace_scope(workspace):
        row, _ = CampaignSettings.objects.update_or_create(workspace=workspace, defaults=values)
        return row


# -- an SMTP sink --------------------------------------------------------------------------


@dataclass
class Sink:
    """A real SMTP server on 127.0.0.1: keeps messages, counts sessions, refuses chosen recipients."""

    host: str = "127.0.0.1"
    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)
    sessions: int = 0
    # address -> SMTP reply to RCPT TO (e.g. "550 5.1.1 no such user")
    refuse: dict[str, str] = field(default_factory=dict)
    # Offer PIPELINING (RFC 2920), as Postfix and the large providers do
    pipelining: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]) -> Any:
        with self.lock:
            self.sessions += 1
        session.host_name = hostname
        if self.pipelining:
            responses = [*responses[:-1], "250-PIPELINING", responses[-1]]
        return responses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 OK"

    def email_settings(self) -> dict[str, Any]:
        return {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": self.host,
            "EMAIL_PORT": self.port,
            "EMAIL_USE_TLS": False,
            "EMAIL_USE_SSL": False,
            "EMAIL_HOST_USER": "",
            "EMAIL_HOST_PASSWORD": "",
            "EMAIL_TIMEOUT": 10,
        }

    def wait_for(self, count: int, timeout: float = 10) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.messages) >= count, f"expected {count} messages, got {len(self.messages)}"
        return self.messages[:count]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def smtp_sink(*, pipelining: bool = False) -> Iterator[Sink]:
    sink = Sink(port=free_port(), pipelining=pipelining)
    controller = Controller(sink, hostname=sink.host, port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


# -- an HTTP receiver ----------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    server: ThreadingHTTPServer
    requests: list[Received] = field(default_factory=list)
    status: int = 200

    def url(self, path: str = "/hooks/campaign") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"


@contextmanager
def http_receiver() -> Iterator[Receiver]:
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            me = holder["r"]
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            me.requests.append(Received(self.path, dict(self.headers.items()), body))
            self.send_response(me.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["r"] = Receiver(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder["r"]
    finally:
        server.shutdown()
        server.server_close()
