"""Benchmark of ``import_events``: generate N events as NDJSON, import them, report the rate.

    DATABASE_URL=... .venv/bin/python bench/import_events.py --events 200000 [--gzip] [--chunk-size 10000]

Creates a workspace named "bench-<timestamp>" (with --cleanup, deletes it after), writes the
file under a temporary directory, and runs ``manage.py import_events`` as a child process so
that its CPU time and peak memory are its own. PostgreSQL's CPU time is not included in the
child's CPU figure; on a small machine the two share the cores.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
NAMES = ("Product Viewed", "Product Added", "Order Completed", "Login", "Email Opened")


def generate(path: Path, events: int, *, people_ratio: int, compress: bool, seed: int) -> int:
    """``events`` track/page messages over ``events / people_ratio`` people, plus one identify each."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    people = max(1, events // people_ratio)
    opener = gzip.open if compress else open
    written = 0
    with opener(path, "wb") as out:
        for person in range(people):
            anonymous_id = f"anon-{seed}-{person}"
            user_id = f"user-{seed}-{person}" if person % 3 else None
            if user_id:
                out.write(
                    orjson.dumps(
                        {
                            "type": "identify",
                            "userId": user_id,
                            "anonymousId": anonymous_id,
                            "messageId": f"b-{seed}-{person}-i",
                            "traits": {"plan": rng.choice(("Free", "Pro")), "email": f"p{person}@example.com"},
                            "timestamp": (now - timedelta(days=30)).isoformat(),
                        }
                    )
                    + b"\n"
                )
                written += 1
            for n in range(people_ratio):
                at = now - timedelta(seconds=rng.randint(60, 30 * 86400))
                message = {
                    "type": "page" if n % 4 == 0 else "track",
                    "anonymousId": anonymous_id,
                    "messageId": f"b-{seed}-{person}-{n}",
                    "timestamp": at.isoformat(),
                }
                if user_id:
                    message["userId"] = user_id
                if message["type"] == "track":
                    message["event"] = rng.choice(NAMES)
                    message["properties"] = {"price": round(rng.uniform(5, 500), 2), "category": "shoes"}
                else:
                    message["properties"] = {"path": "/", "url": "https://shop.example/?utm_source=bench"}
                out.write(orjson.dumps(message) + b"\n")
                written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--people-ratio", type=int, default=25, help="events per person")
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--cleanup", action="store_true", help="delete the bench workspace afterwards")
    args = parser.parse_args()

    python = sys.executable
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    created = subprocess.run(
        [
            python,
            "manage.py",
            "create_workspace",
            "--name",
            f"bench-{stamp}",
            "--owner-email",
            f"bench-{stamp}@example.com",
            "--json",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    workspace_id = json.loads(created.stdout)["workspace"]

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("events.ndjson.gz" if args.gzip else "events.ndjson")
        started = time.perf_counter()
        messages = generate(path, args.events, people_ratio=args.people_ratio, compress=args.gzip, seed=args.seed)
        print(
            f"generated {messages:,} messages ({path.stat().st_size / 1e6:.1f} MB) in "
            f"{time.perf_counter() - started:.1f}s"
        )

        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = subprocess.run(
            [
                python,
                "manage.py",
                "import_events",
                str(path),
                "--workspace",
                str(workspace_id),
                "--chunk-size",
                str(args.chunk_size),
                "--no-progress",
            ],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)

    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(result.stdout.strip())
    print(
        f"wall {elapsed:.2f}s | {messages / elapsed:,.0f} messages/s | import process CPU {cpu:.2f}s "
        f"({cpu / elapsed:.0%} of one core) | peak RSS {after.ru_maxrss / 1024:.0f} MB | "
        f"load average {os.getloadavg()[0]:.1f} | workspace {workspace_id}"
    )

    if args.cleanup:
        subprocess.run(
            [
                python,
                "manage.py",
                "shell",
                "-c",
                f"from accounts.models import Workspace; Workspace.objects.filter(pk={workspace_id}).delete()",
            ],
            cwd=ROOT,
            env=env,
            check=True,
        )


if __name__ == "__main__":
    main()
