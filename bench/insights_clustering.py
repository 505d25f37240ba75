"""Benchmark of suggested segments: clustering a 100,000-person sample of the shop data of bench/segments.py.

    DATABASE_URL=... .venv/bin/python bench/insights_clustering.py [--people 1000000 --events 10000000]
        [--sample 100000] [--reuse]

The data is bench/segments.py's (its ``load``, or with ``--reuse`` an earlier load of the same size
in this database): 1M people and 10M events by default, of which ``--sample`` people are clustered.
Printed, each step timed once (the machine is shared: one run, its load average beside it):

- sample: the people with events, and the sample drawn from them;
- features: one pass over the sample's events (``insights.clustering_features``);
- clustering: standardising, K-means for k = 2..8 with the silhouette of each, the stability run;
- rules: per cluster, the decision tree and the rule's evaluation by the segment engine over the sample;
- the whole run as the Celery task does it (``clustering_run_execute``: all of the above and the
  results stored), which is the figure the issue's target (30 s) is about.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import segments as shop_data  # noqa: E402  (bench/segments.py: django.setup() and the loader)

from accounts.tenancy import workspace_scope  # noqa: E402
from insights import clustering_services  # noqa: E402
from insights.clustering import SILHOUETTE_SAMPLE, cluster, precision_recall, rule_definition  # noqa: E402
from insights.clustering_features import people_features, people_sample  # noqa: E402
from segmentation import services as segment_services  # noqa: E402

TARGET_SECONDS = 30.0


def _load_average() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--sample", type=int, default=100_000)
    parser.add_argument("--reuse", action="store_true", help="keep the data of an earlier load of the same size")
    args = parser.parse_args()

    loaded = shop_data.find_loaded(args.people, args.events) if args.reuse else None
    if loaded is None:
        workspace, now = shop_data.load(args.people, args.events)
    else:
        workspace, now = loaded
        print(f"reusing {workspace.name}", flush=True)

    with workspace_scope(workspace):
        print(f"load average before: {_load_average()}", flush=True)
        started = time.monotonic()
        sample = people_sample(workspace=workspace, now=now, seed=0, max_sample=args.sample)
        sampled = time.monotonic()
        people = people_features(workspace=workspace, sample=sample, now=now)
        featured = time.monotonic()
        found = cluster(people, seed=0)
        clustered = time.monotonic()
        print(
            f"sample: {len(sample.people):,} of {sample.population:,} people with events in {sampled - started:.2f} s",
            flush=True,
        )
        print(f"features of {len(people):,} people in {featured - sampled:.2f} s", flush=True)
        print(
            f"clustering (k = 2..8, silhouette on {min(len(people), SILHOUETTE_SAMPLE):,}, stability) "
            f"in {clustered - featured:.2f} s:"
            f" k = {found.k}, stability ARI {found.stability_ari:.3f}",
            flush=True,
        )
        print("  silhouette: " + ", ".join(f"k={k} {score:.3f}" for k, score in found.silhouette), flush=True)
        ids = people.person_ids.tolist()
        rules_started = time.monotonic()
        for summary in found.clusters:
            members = found.labels == summary.index
            tree_started = time.monotonic()
            definition = rule_definition(people, members, seed=0)
            evaluated = time.monotonic()
            if definition is None:
                print(f"  cluster {summary.index + 1} ({summary.size:,}): no rule; {summary.description}", flush=True)
                continue
            held = segment_services.definition_members(workspace=workspace, definition=definition, now=now, people=ids)
            precision, recall = precision_recall(held, set(people.person_ids[members].tolist()))
            print(
                f"  cluster {summary.index + 1} ({summary.size:,}): {summary.description}; rule precision "
                f"{precision:.2f} recall {recall:.2f}; tree {evaluated - tree_started:.2f} s, "
                f"engine {time.monotonic() - evaluated:.2f} s",
                flush=True,
            )
        rules_done = time.monotonic()
        print(f"rules of {found.k} clusters in {rules_done - rules_started:.2f} s", flush=True)
        print(
            f"sample + features + clustering: {clustered - started:.2f} s (target {TARGET_SECONDS:g} s); "
            f"with the rules: {rules_done - started:.2f} s; load average {_load_average()}",
            flush=True,
        )

        run, _ = clustering_services.clustering_run_request(workspace=workspace, actor=None)
        whole_started = time.monotonic()
        run = clustering_services.clustering_run_execute(run=run, max_sample=args.sample)
        whole = time.monotonic() - whole_started
        print(
            f"the whole run as the task does it (results stored): {whole:.2f} s, status {run.status}"
            f"{' ' + run.error if run.error else ''}; load average {_load_average()}",
            flush=True,
        )
    return 0 if run.status == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
