"""Memory of propensity's scoring of everyone as of now: in batches against one read.

    DATABASE_URL=postgres://.../scratch_db .venv/bin/python bench/insights_propensity_memory.py [--people 20000]
        [--batch 2000]

Writes ``--people`` people with tests/insights/propensity_data.py's planted purchase signal in a new
workspace of that (scratch) database, then runs the scoring loop of ``propensity_services`` (the
batches' bounds, everyone's event mix, each batch's features and scores) twice: in batches of
``--batch`` and in one batch. Printed for each: the peak of Python's allocations (``tracemalloc``)
and the seconds. The peak of the batched loop follows the batch size, the other the workspace.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.utils import timezone  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402

from accounts.models import Workspace  # noqa: E402
from accounts.tenancy import workspace_scope  # noqa: E402
from insights import propensity  # noqa: E402
from insights.clustering_features import mix_prior, people_batches, people_features  # noqa: E402
from tests.insights.propensity_data import propensity_people  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=2_000)
    args = parser.parse_args()
    workspace = Workspace.objects.create(name=f"Propensity memory bench {time.time():.0f}")
    started = time.monotonic()
    propensity_people(workspace, people=args.people)
    print(f"data: {args.people:,} people written in {time.monotonic() - started:.1f} s")
    now = timezone.now()
    with workspace_scope(workspace):
        everyone = people_features(workspace=workspace, sample=None, now=now)
        names = everyone.mix_names
        rows = min(len(everyone), 500)  # a model only for predict's cost: its scores do not matter here
        model = HistGradientBoostingClassifier(max_iter=20).fit(propensity.matrix(everyone)[:rows], np.arange(rows) % 2)
        del everyone
        for size in (args.batch, sys.maxsize):
            tracemalloc.start()
            started = time.monotonic()
            batches = people_batches(workspace=workspace, now=now, size=size)
            prior = mix_prior(workspace=workspace, now=now, names=names)
            scored = 0
            for id_range in batches.ranges:
                people = people_features(
                    workspace=workspace, sample=None, now=now, names=names, id_range=id_range, mix_prior=prior
                )
                scored += len([propensity.as_trait(value) for value in propensity.predict(model, people)])
                del people
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            label = "one batch" if size == sys.maxsize else f"batches of {size:,}"
            print(
                f"{label}: {len(batches.ranges)} batches, {scored:,} scored, peak {peak / 1e6:.1f} MB, "
                f"{time.monotonic() - started:.1f} s"
            )
    print(f"workspace {workspace.pk} left in the database")


if __name__ == "__main__":
    main()
