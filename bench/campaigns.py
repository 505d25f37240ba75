"""Campaign sending benchmark: a broadcast fanned out and sent by real workers, with capping on.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<scratch db> REDIS_URL=redis://127.0.0.1:6379/<db> \\
        .venv/bin/python bench/campaigns.py [--sizes 10000,100000] [--channels email,webhook] [--workers 2]

The database is migrated and gets one "Campaigns bench" workspace per phase; use a scratch database.
Started here, on loopback, each in a process of its own: an SMTP sink (a bare asyncio server;
``--smtp-sink aiosmtpd`` for aiosmtpd, which took 0.5-0.8 ms of CPU per message on the bench machine)
and an HTTP receiver (webhooks, HTTP/1.1 keep-alive), which note each message's send id
(``Message-ID`` / ``Cohortly-Send``), and ``--workers`` Celery workers (``-P solo``) on a queue of
the run's own. This process stands in for the beat: it runs ``campaigns_tick`` every 0.2 s.

Per phase (channel x size): that many people with an email address in a static segment, a cap of
one message of the channel per day, rate limits above what the machine can do (the figure is the
engine's, not a configured limit), one broadcast launched. Printed: the fan-out's time, messages/s
from the fan-out's end to the last message's acceptance (and from launch), duplicates at the receiver (raw count
minus distinct send ids) and misses, the workers' peak RSS (VmHWM), the workers' and the receiver's
CPU per message (user + system, every thread: steadier than the rate on a shared machine). Last, the
cost of the cap check: ``campaigns.capping.caps_reserve`` timed on chunks of 200 claimed sends of
people already messaged (every one capped), per send.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- the receivers (run as ``bench/campaigns.py --serve smtp|http PORT FILE``) --------------------


def serve(kind: str, port: int, out: str) -> None:
    seen: list[str] = []

    def flush(*_: object) -> None:
        Path(out).write_text("\n".join(seen))
        os._exit(0)

    signal.signal(signal.SIGTERM, flush)
    if kind == "aiosmtpd":
        import re

        from aiosmtpd.controller import Controller

        header = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)

        class Handler:
            async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
                found = header.search(envelope.content)  # type: ignore[attr-defined]
                seen.append(found.group(1).decode() if found else "?")
                return "250 OK"

        Controller(Handler(), hostname="127.0.0.1", port=port).start()
        while True:
            time.sleep(1)
    if kind == "smtp":
        smtp_sink(port, seen)
        return
    if kind == "http":
        http_receiver(port, seen)
        return
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Receiver(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as webhook endpoints behind any web server

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.append(self.headers.get("Cohortly-Send", "?"))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Receiver).serve_forever()


def smtp_sink(port: int, seen: list[str]) -> None:
    """A bare SMTP server on asyncio (uvloop when installed): greets, says 250 to every command,
    takes DATA and notes its Message-ID. About a tenth of aiosmtpd's CPU per message (which
    checks and parses what a provider would), so that the sink is not what the bench measures."""
    import asyncio
    import re

    header = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)

    class Session(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.Transport = transport  # type: ignore[assignment]
            self.buffer = b""
            self.in_data = False
            self.transport.write(b"220 sink ESMTP\r\n")

        def data_received(self, chunk: bytes) -> None:
            self.buffer += chunk
            while True:
                if self.in_data:
                    end = self.buffer.find(b"\r\n.\r\n")
                    if end < 0:
                        return
                    found = header.search(self.buffer, 0, end)
                    seen.append(found.group(1).decode() if found else "?")
                    self.buffer = self.buffer[end + 5 :]
                    self.in_data = False
                    self.transport.write(b"250 OK\r\n")
                    continue
                end = self.buffer.find(b"\r\n")
                if end < 0:
                    return
                verb = self.buffer[:4].upper()
                self.buffer = self.buffer[end + 2 :]
                if verb == b"EHLO":
                    # As Postfix and the large providers answer: PIPELINING lets a client send
                    # MAIL, RCPT and DATA in one write (RFC 2920).
                    self.transport.write(b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                elif verb == b"DATA":
                    # The data's first line follows; the terminator's CRLF is the last line's.
                    self.buffer = b"\r\n" + self.buffer
                    self.in_data = True
                    self.transport.write(b"354 go on\r\n")
                elif verb == b"QUIT":
                    self.transport.write(b"221 bye\r\n")
                    self.transport.close()
                    return
                else:
                    self.transport.write(b"250 OK\r\n")

    loop: asyncio.AbstractEventLoop = _event_loop()  # type: ignore[assignment]
    loop.run_until_complete(loop.create_server(Session, "127.0.0.1", port, backlog=256))
    loop.run_forever()


def _event_loop() -> object:
    import asyncio

    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def http_receiver(port: int, seen: list[str]) -> None:
    """A bare HTTP/1.1 server on asyncio (uvloop when installed), keep-alive: reads each request's
    head and ``Content-Length`` bytes of body, notes its ``Cohortly-Send`` header and answers 200
    with an empty body. ``--http-receiver threading`` runs the standard library's
    ``ThreadingHTTPServer`` instead (about 4x the CPU per request on the bench machine)."""
    import asyncio
    import re

    send_header = re.compile(rb"\r\ncohortly-send:[ \t]*([^\r]*)", re.IGNORECASE)
    length_header = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

    class Connection(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.Transport = transport  # type: ignore[assignment]
            self.buffer = b""

        def data_received(self, chunk: bytes) -> None:
            self.buffer += chunk
            while True:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = self.buffer[:end]
                length = length_header.search(head)
                total = end + 4 + (int(length.group(1)) if length else 0)
                if len(self.buffer) < total:
                    return
                found = send_header.search(head)
                seen.append(found.group(1).decode() if found else "?")
                self.buffer = self.buffer[total:]
                self.transport.write(answer)

    loop: asyncio.AbstractEventLoop = _event_loop()  # type: ignore[assignment]
    loop.run_until_complete(loop.create_server(Connection, "127.0.0.1", port, backlog=256))
    loop.run_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--channels", default="email,webhook")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--smtp-sink", default="smtp", choices=["smtp", "aiosmtpd"])
    parser.add_argument("--http-receiver", default="http", choices=["http", "threading"])
    parser.add_argument("--serve", nargs=3, metavar=("KIND", "PORT", "FILE"))
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), args.serve[2])
        return

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.db.models import Max
    from django.utils import timezone

    from accounts.models import Workspace
    from accounts.tenancy import workspace_scope
    from campaigns import capping, dispatch, fanout
    from campaigns.models import (
        Campaign,
        CampaignAudience,
        CampaignSettings,
        FrequencyCap,
        Run,
        Send,
        Variant,
    )
    from campaigns.tasks import campaigns_tick, send_statistics_refresh_task
    from core.dburl import database_url
    from segmentation.models import Segment

    call_command("migrate", verbosity=0)
    queue = f"bench-campaigns-{uuid.uuid4().hex[:8]}"
    settings.CAMPAIGNS_QUEUE = queue
    folder = Path(tempfile.mkdtemp(prefix="campaigns-bench-"))

    def people(workspace: Workspace, size: int) -> Segment:
        with workspace_scope(workspace):
            segment = Segment.objects.create(workspace=workspace, name="Everyone", is_static=True)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO tracking_person (workspace_id, user_id, traits, first_seen, last_seen) "
                "SELECT %s, 'u' || n, jsonb_build_object('email', 'p' || n || '@example.com', 'first_name', 'N' || n),"
                " now(), now() FROM generate_series(1, %s) n",
                [workspace.pk, size],
            )
            cursor.execute(
                "INSERT INTO segmentation_membership (workspace_id, segment_id, person_id, entered_at) "
                "SELECT %s, %s, id, now() FROM tracking_person WHERE workspace_id = %s",
                [workspace.pk, segment.pk, workspace.pk],
            )
            cursor.execute("ANALYZE tracking_person; ANALYZE segmentation_membership")
        return segment

    def launch(workspace: Workspace, segment: Segment, channel: str, hook: str) -> tuple[Campaign, Run]:
        with workspace_scope(workspace):
            campaign = Campaign.objects.create(
                workspace=workspace, name=f"Bench {channel} {uuid.uuid4().hex[:6]}", channel=channel,
                kind="broadcast", status="sending", launched_at=timezone.now(),
            )  # fmt: skip
            content = (
                {"subject": "Hello {{ person.traits.first_name }}", "body": "<p>Hi {{ person.traits.first_name }}</p>"}
                if channel == "email"
                else {"url": hook, "body": '{"id": {{ person.id }}, "email": "{{ person.traits.email }}"}'}
            )
            Variant.objects.create(workspace=workspace, campaign=campaign, position=0, name="A", weight=1, **content)
            CampaignAudience.objects.create(workspace=workspace, campaign=campaign, segment=segment)
            run = Run.objects.create(workspace=workspace, campaign=campaign)
        return campaign, run

    def cpu_seconds(pid: int) -> float:
        """User and system CPU of a process and its threads so far."""
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(pid: int) -> float:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    for channel in args.channels.split(","):
        for size in sizes:
            port, out = free_port(), folder / f"{channel}-{size}.ids"
            receiver = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--serve",
                    args.smtp_sink if channel == "email" else args.http_receiver,
                    str(port),
                    str(out),
                ]
            )
            time.sleep(1.5)
            workspace = Workspace.objects.create(name=f"Campaigns bench {channel} {size} {uuid.uuid4().hex[:6]}")
            with workspace_scope(workspace):
                CampaignSettings.objects.create(
                    workspace=workspace, emails_per_second=1_000_000, webhooks_per_second=1_000_000
                )
                FrequencyCap.objects.create(workspace=workspace, channel=channel, max=1, per="1d", per_seconds=86_400)
            segment = people(workspace, size)
            env = {
                **os.environ,
                "DATABASE_URL": database_url(connection.settings_dict),
                "CELERY_TASK_DEFAULT_QUEUE": queue,
                "CAMPAIGNS_QUEUE": queue,
                "CAMPAIGN_DISPATCH_CHAINS": str(args.workers),
                "EMAIL_URL": f"smtp://127.0.0.1:{port}",
                "WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
                "LOG_LEVEL": "ERROR",
            }
            workers = [
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "celery",
                        "-A",
                        "config",
                        "worker",
                        "-P",
                        "solo",
                        "-Q",
                        queue,
                        "--without-gossip",
                        "--without-mingle",
                        "--without-heartbeat",
                        "-l",
                        "ERROR",
                    ],
                    cwd=ROOT,
                    env=env,
                )
                for _ in range(args.workers)
            ]
            from config.celery import app

            deadline = time.monotonic() + 120
            while len(app.control.ping(timeout=0.5)) < args.workers and time.monotonic() < deadline:
                time.sleep(0.5)
            campaign, run = launch(workspace, segment, channel, f"http://127.0.0.1:{port}/hook")
            # The fan-out in this process, timed alone; then the workers dispatch (the tick kicks them).
            started = time.monotonic()
            with workspace_scope(workspace):
                written = fanout.run_fan_out(workspace=workspace, run_id=run.pk)
            # As the fan-out task does: the send table's statistics refreshed by a worker, beside the sending.
            if written and written >= fanout.ANALYZE_AFTER:
                send_statistics_refresh_task.apply_async(queue=queue)
            fanned = time.monotonic()
            peaks = [0.0] * len(workers)
            cpu_before = sum(cpu_seconds(w.pid) for w in workers), cpu_seconds(receiver.pid)
            while True:
                campaigns_tick.apply()
                peaks = [max(p, peak_rss_mb(w.pid)) for p, w in zip(peaks, workers, strict=True)]
                state = Run.objects.unscoped().get(pk=run.pk)
                if state.finished_at:
                    break
                time.sleep(0.2)
            # The end is the last message's acceptance (its mark's ``sent_at``), not when this loop
            # saw the run finished: polling would add up to a loop's sleep and a tick to a short run.
            last = Send.objects.unscoped().filter(workspace=workspace, campaign=campaign).aggregate(Max("sent_at"))
            ended = time.monotonic() - max(0.0, (timezone.now() - last["sent_at__max"]).total_seconds())
            cpu_after = sum(cpu_seconds(w.pid) for w in workers), cpu_seconds(receiver.pid)
            for worker in workers:
                worker.terminate()
                worker.wait(60)
            receiver.terminate()
            receiver.wait(30)
            ids = [line for line in out.read_text().splitlines() if line]
            sent = Send.objects.unscoped().filter(workspace=workspace, campaign=campaign, state="sent").count()
            row = {
                "channel": channel,
                "size": size,
                "fan_out_s": round(fanned - started, 1),
                "per_s_after_fan_out": round(sent / max(ended - fanned, 1e-9)),
                "per_s_from_launch": round(sent / (ended - started)),
                "sent": sent,
                "raw": len(ids),
                "duplicates": len(ids) - len(set(ids)),
                "missed": size - len(set(ids)),
                "worker_peak_rss_mb": [round(p) for p in peaks],
                "worker_cpu_us_per_message": round((cpu_after[0] - cpu_before[0]) / max(sent, 1) * 1e6),
                "receiver_cpu_us_per_message": round((cpu_after[1] - cpu_before[1]) / max(sent, 1) * 1e6),
            }
            print(row, flush=True)
            results.append((workspace, segment, row))

    # The cap check's cost: chunks of 200 claimed sends of people already messaged (all capped).
    workspace, segment, last = results[-1]
    campaign, run = launch(workspace, segment, last["channel"], "http://127.0.0.1:9/")
    with workspace_scope(workspace):
        fanout.run_fan_out(workspace=workspace, run_id=run.pk)
        rules = list(FrequencyCap.objects.filter(workspace=workspace))
    spent, checked = 0.0, 0
    while checked < 4000:
        claimed = dispatch.sends_claim(now=timezone.now(), limit=200)
        if not claimed:
            break
        with workspace_scope(workspace):
            sends = Send.objects.filter(pk__in=[c.send_id for c in claimed]).values_list("pk", "person_id", "channel")
            candidates = [capping.Candidate(pk, person, ch) for pk, person, ch in sends]
            began = time.perf_counter()
            capping.caps_reserve(workspace_id=workspace.pk, candidates=candidates, rules=rules, now=timezone.now())
            spent += time.perf_counter() - began
        checked += len(candidates)
    Campaign.objects.unscoped().filter(pk=campaign.pk).update(status="paused")
    print({"cap_check_us_per_send": round(spent / max(checked, 1) * 1e6, 1), "sends_checked": checked}, flush=True)


if __name__ == "__main__":
    main()
