"""Benchmark of insights on the data of bench/segments.py, against DuckDB on the same data.

    DATABASE_URL=... .venv/bin/python bench/insights.py [--people 1000000 --events 10000000] [--reuse]

Loads (or, with ``--reuse``, finds) the shop data of ``bench/segments.py`` (1M people, 10M events over
180 days by default; a smaller ``--people``/``--events`` is a smoke check), then measures, best of
``--repeat`` runs each:

- a 4-step funnel, Product Viewed -> Product Added -> Order Completed -> $pageview within 7 days,
  runs starting in the last 30 days, as the REST API computes it (``insights.funnels``);
- a 12-week retention table, cohorts by the week of the first Product Viewed, returning with a page
  view (``insights.retention``);
- the same two in DuckDB over Parquet exports of the same events, hand-written; their answers are
  checked against ours (a mismatch is printed loudly and makes the exit status 1);
- the computed traits recompute (``insights.traits``): the first run, which writes every person, and
  a second one at the same instant, which finds nothing changed.

Targets (the issue): funnel and retention each at most 3 s and at most 5x DuckDB; the RFM recompute
at most 30 s. Figures go to bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import segments as data  # noqa: E402  (bench/segments.py: loads the data and sets Django up)
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402

from accounts.tenancy import workspace_scope  # noqa: E402
from insights import funnels, retention, traits  # noqa: E402
from segmentation import realtime  # noqa: E402

FUNNEL = {
    "steps": [
        {"event": "Product Viewed"},
        {"event": "Product Added"},
        {"event": "Order Completed"},
        {"event": "$pageview"},
    ],
    "within": "7d",
    "since": "30d",
}
RETENTION = {"start_event": "Product Viewed", "return_event": "$pageview", "period": "week", "periods": 12}
TARGET_SECONDS = 3.0
TARGET_RATIO = 5.0
RFM_TARGET_SECONDS = 30.0


def best(function: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return min(times), result


# --- DuckDB ------------------------------------------------------------------------------------

# Each step matched at the earliest instant at or after the previous one (an ASOF join per step, the
# same person), all within 7 days of step 1: the sequence node's runs for steps of distinct names.
DUCKDB_FUNNEL = """
WITH s0 AS (SELECT person_id, ts AS t0 FROM events WHERE name = 'Product Viewed'
            AND ts >= $since AND ts <= $now),
e1 AS (SELECT person_id, ts FROM events WHERE name = 'Product Added'),
e2 AS (SELECT person_id, ts FROM events WHERE name = 'Order Completed'),
e3 AS (SELECT person_id, ts FROM events WHERE name = '$pageview'),
r1 AS (SELECT s0.person_id, s0.t0, CASE WHEN e1.ts <= s0.t0 + INTERVAL 7 DAY THEN e1.ts END AS t1
       FROM s0 ASOF LEFT JOIN e1 ON s0.person_id = e1.person_id AND e1.ts >= s0.t0),
r2 AS (SELECT r1.*, CASE WHEN e2.ts <= r1.t0 + INTERVAL 7 DAY THEN e2.ts END AS t2
       FROM r1 ASOF LEFT JOIN e2 ON r1.person_id = e2.person_id AND e2.ts >= r1.t1),
r3 AS (SELECT r2.*, CASE WHEN e3.ts <= r2.t0 + INTERVAL 7 DAY THEN e3.ts END AS t3
       FROM r2 ASOF LEFT JOIN e3 ON r2.person_id = e3.person_id AND e3.ts >= r2.t2),
reached AS (SELECT person_id, max(1 + (t1 IS NOT NULL)::INT + (t2 IS NOT NULL)::INT + (t3 IS NOT NULL)::INT) AS n
            FROM r3 GROUP BY person_id)
SELECT count(*) FILTER (WHERE n >= 1), count(*) FILTER (WHERE n >= 2), count(*) FILTER (WHERE n >= 3),
       count(*) FILTER (WHERE n >= 4) FROM reached
"""

DUCKDB_RETENTION = """
WITH firsts AS (SELECT person_id, min(ts) AS first FROM events WHERE name = 'Product Viewed' GROUP BY person_id),
cohorts AS (SELECT person_id, date_trunc('week', first) AS cohort FROM firsts WHERE first >= $first AND first < $end),
returns AS (SELECT DISTINCT person_id, date_trunc('week', ts) AS period FROM events
            WHERE name = '$pageview' AND ts >= $first AND ts < $end)
SELECT c.cohort, r.period, count(*) FROM cohorts c JOIN returns r ON r.person_id = c.person_id AND r.period >= c.cohort
GROUP BY 1, 2
UNION ALL SELECT cohort, NULL, count(*) FROM cohorts GROUP BY 1
"""


def duckdb_events(workspace: Any, folder: Path) -> Any:
    """The workspace's events (person, name, UTC time) as Parquet, viewed as ``events`` in DuckDB."""
    import duckdb

    database = duckdb.connect(str(folder / "insights.duckdb"))
    database.execute("SET threads = 2")
    csv_path, parquet_path = folder / "events.csv", folder / "events.parquet"
    with connection.cursor() as cursor, csv_path.open("wb") as out:
        cursor.execute("SET TIME ZONE 'UTC'")
        query = "SELECT person_id, name, (\"timestamp\" AT TIME ZONE 'UTC') FROM tracking_event WHERE workspace_id = %s"
        with cursor.cursor.copy(f"COPY ({query}) TO STDOUT (FORMAT csv)", [workspace.pk]) as copy:
            for chunk in copy:
                out.write(chunk)
    database.execute(
        f"COPY (SELECT * FROM read_csv('{csv_path}', header = false, "
        "columns = {'person_id': 'BIGINT', 'name': 'VARCHAR', 'ts': 'TIMESTAMP'})) "
        f"TO '{parquet_path}' (FORMAT parquet)"
    )
    csv_path.unlink()
    database.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{parquet_path}')")
    return database


def naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


# --- main ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--reuse", action="store_true", help="keep the data of an earlier load of the same size")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measure; the best is reported")
    args = parser.parse_args()

    loaded = data.find_loaded(args.people, args.events) if args.reuse else None
    if loaded is None:
        started = time.monotonic()
        workspace, now = data.load(args.people, args.events)
        print(f"load took {time.monotonic() - started:.0f} s in all", flush=True)
    else:
        workspace, now = loaded
        print(f"reusing workspace {workspace.pk} ({workspace.name})", flush=True)
    print(f"now = {now.isoformat()} | load average {os.getloadavg()[0]:.1f}", flush=True)
    # Real-time notifications of the recompute go to a queue of the bench's own, emptied after.
    settings.SEGMENTS_REALTIME_QUEUE = "bench-insights"
    mismatches: list[str] = []
    lines: list[str] = []

    with workspace_scope(workspace):
        spec = funnels.funnel_parse(FUNNEL, now=now)
        funnel_seconds, funnel = best(
            lambda: funnels.funnel_compute(workspace=workspace, spec=spec, now=now), args.repeat
        )
        ours_funnel = [step.count for step in funnel.steps]
        print(f"funnel: {ours_funnel} in {funnel_seconds:.3f} s", flush=True)

        rspec = retention.retention_parse(RETENTION)
        retention_seconds, table = best(
            lambda: retention.retention_compute(workspace=workspace, spec=rspec, now=now), args.repeat
        )
        print(f"retention: {len(table.cohorts)} cohorts in {retention_seconds:.3f} s", flush=True)

        with tempfile.TemporaryDirectory(prefix="bench-insights-") as folder:
            database = duckdb_events(workspace, Path(folder))
            since, _ = spec.window.bounds(now)
            assert since is not None
            params = {"since": naive(since), "now": naive(now)}
            duck_funnel_seconds, row = best(lambda: database.execute(DUCKDB_FUNNEL, params).fetchone(), args.repeat)
            duck_funnel = [int(v) for v in row]
            starts = retention.cohort_starts(rspec, now)
            end = retention.shift(starts[-1], rspec.period, 1)
            rparams = {"first": naive(starts[0]), "end": naive(end)}
            duck_retention_seconds, rows = best(
                lambda: database.execute(DUCKDB_RETENTION, rparams).fetchall(), args.repeat
            )
            database.close()
        if duck_funnel != ours_funnel:
            mismatches.append(f"funnel: DuckDB {duck_funnel}, ours {ours_funnel}")
        index = {naive(start): k for k, start in enumerate(starts)}
        sizes = [0] * len(starts)
        returned = [[0] * (len(starts) - k) for k in range(len(starts))]
        for cohort, period, count in rows:
            k = index[cohort]
            if period is None:
                sizes[k] = int(count)
            else:
                returned[k][index[period] - k] = int(count)
        ours_table = [(c.size, c.returned) for c in table.cohorts]
        if ours_table != list(zip(sizes, returned, strict=True)):
            mismatches.append("retention: the tables differ")

        traits.settings_for(workspace)
        with connection.cursor() as cursor:  # every person starts without computed traits
            cursor.execute(
                "UPDATE tracking_person SET traits = traits - %s::text[] "
                "WHERE workspace_id = %s AND traits ?| %s::text[]",
                [list(traits.COMPUTED_KEYS), workspace.pk, list(traits.COMPUTED_KEYS)],
            )
            cursor.execute("VACUUM ANALYZE tracking_person")
        stages: list[tuple[float, str]] = []

        def stage(name: str, percent: int) -> None:
            stages.append((time.perf_counter(), name))

        rfm_first, first = best(lambda: traits.computed_traits_refresh(workspace=workspace, now=now, progress=stage), 1)
        # The stages' times summed by their names before any colon (each chunk written is a stage).
        ends = [at for at, _ in stages[1:]] + [stages[0][0] + rfm_first]
        split: dict[str, float] = {}
        for (at, name), end in zip(stages, ends, strict=True):
            split[name.split(":")[0]] = split.get(name.split(":")[0], 0.0) + end - at
        print("first run: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in split.items()), flush=True)
        rfm_again, again = best(lambda: traits.computed_traits_refresh(workspace=workspace, now=now), 1)
        realtime.workspace_forget(workspace_id=workspace.pk)
    import redis

    redis.Redis.from_url(settings.REDIS_URL).delete("bench-insights")

    def verdict(seconds: float, duck: float) -> str:
        ok = seconds <= TARGET_SECONDS and seconds <= TARGET_RATIO * duck
        return "ok" if ok else "MISSED"

    lines.append("| measure | ours s | DuckDB s | ratio | target |")
    lines.append("|---|---|---|---|---|")
    lines.append(
        f"| 4-step funnel {ours_funnel} | {funnel_seconds:.3f} | {duck_funnel_seconds:.3f} | "
        f"{funnel_seconds / duck_funnel_seconds:.1f} | {verdict(funnel_seconds, duck_funnel_seconds)} |"
    )
    lines.append(
        f"| 12-week retention ({sum(sizes):,} people in cohorts) | {retention_seconds:.3f} | "
        f"{duck_retention_seconds:.3f} | {retention_seconds / duck_retention_seconds:.1f} | "
        f"{verdict(retention_seconds, duck_retention_seconds)} |"
    )
    lines.append(
        f"| computed traits, first run ({first.people_changed:,} people written) | {rfm_first:.3f} | | | "
        f"{'ok' if rfm_first <= RFM_TARGET_SECONDS else 'MISSED'} |"
    )
    lines.append(f"| computed traits, again ({again.people_changed:,} written) | {rfm_again:.3f} | | | |")
    print()
    print("\n".join(lines))
    print(f"load average {os.getloadavg()[0]:.1f}")
    for mismatch in mismatches:
        print(f"!!! MISMATCH: {mismatch} !!!")
    return 1 if mismatches else 0


if __name__ == "__main__":
    started = datetime.now(UTC)
    status = main()
    print(f"took {(datetime.now(UTC) - started) / timedelta(seconds=1):.0f} s")
    sys.exit(status)
