"""Cost of the tracking API's rate check per request (``tracking.ingest_rate.write_key_wait``).

    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/ratelimit.py [--calls 20000]

Calls the check ``--calls`` times from one thread against the Redis of ``REDIS_URL``
(a limit high enough never to refuse), and for comparison a bare ``PING`` on a
client of the same timeouts: wall and CPU microseconds per call. The CPU is what
a server process spends per request on the check; the wall time is what a
request waits for it (one loopback round trip).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django


def _measure(label: str, call: object, calls: int) -> None:
    assert callable(call)
    for _ in range(200):  # warm-up: connection, script load
        call()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        call()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{label:<44} {1e6 * wall / calls:8.1f} us wall {1e6 * cpu / calls:8.1f} us CPU per call")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20_000)
    options = parser.parse_args()
    django.setup()
    from django.conf import settings

    from core import ratelimit
    from tracking import ingest_rate

    settings.INGEST_RATE_PER_WRITE_KEY = 10**12
    write_key = f"cly_wk_bench{uuid.uuid4().hex}"
    client = ratelimit._script("take", ratelimit._TAKE, ingest_rate.TIMEOUT_SECONDS).registered_client
    print(f"Redis {client.info()['redis_version']} at {settings.REDIS_URL}, {options.calls} calls each")
    _measure("PING (one round trip, for comparison)", client.ping, options.calls)
    _measure("write_key_wait, /v1/track (1 message)", lambda: ingest_rate.write_key_wait(write_key, 1), options.calls)
    _measure(
        "write_key_wait, /v1/batch (100 messages)", lambda: ingest_rate.write_key_wait(write_key, 100), options.calls
    )
    settings.INGEST_RATE_PER_WRITE_KEY = 0
    _measure("write_key_wait, limit off (0)", lambda: ingest_rate.write_key_wait(write_key, 1), options.calls)


if __name__ == "__main__":
    main()
