"""The tracking plan's check of a track call, in one process and without a database.

    .venv/bin/python bench/plan_check.py

Times ``Checker.check`` alone, then with ``Tally.add`` and ``Tally.rows`` as ingestion runs them
for a transaction of ``--batch`` calls, over calls that follow the plan and calls that break it
(a property of the wrong type and an unknown one), with ``--properties`` properties per call.
Prints CPU microseconds per call (``time.process_time``: less sensitive to a loaded machine than
wall time).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tracking import plan


def _document(properties: int) -> plan.PlanDocument:
    names = {
        f"prop_{i}": {"type": ("string", "number", "boolean")[i % 3], "required": i < 3} for i in range(properties)
    }
    events = {f"Event {i}": {"properties": names} for i in range(50)}
    return plan.parse({"events": events})


def _call(properties: int, *, broken: bool) -> dict:
    values = {f"prop_{i}": ("text", 12.5, True)[i % 3] for i in range(properties)}
    if broken:
        values["prop_1"] = "12.5"
        values["colour"] = "red"
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--properties", type=int, default=8)
    options = parser.parse_args()
    checker = plan.compile_plan(_document(options.properties))
    assert checker is not None
    now = datetime.now(UTC)
    for broken in (False, True):
        properties = _call(options.properties, broken=broken)
        started = time.process_time()
        for _ in range(options.calls):
            checker.check("Event 7", properties)
        check_only = (time.process_time() - started) / options.calls * 1e6
        started = time.process_time()
        for start in range(0, options.calls, options.batch):
            tally = plan.Tally()
            for index in range(start, min(start + options.batch, options.calls)):
                violations, quarantined = checker.check("Event 7", properties)
                if violations:
                    message = {"at": now, "message_id": f"m{index}", "user_id": "u", "anonymous_id": None}
                    tally.add(
                        "Event 7",
                        violations,
                        quarantined=quarantined,
                        received_at=now,
                        message={**message, "properties": properties},
                    )
            tally.rows()
        with_tally = (time.process_time() - started) / options.calls * 1e6
        kind = "breaking the plan" if broken else "following the plan"
        print(
            f"{kind}: check {check_only:.2f} us/call; check, tally and rows of {options.batch}-call "
            f"transactions {with_tally:.2f} us/call ({options.properties} properties)"
        )


if __name__ == "__main__":
    main()
