"""Insights' subscriber to tracking's port (``tracking.events``; listed in ``TRACKING_SUBSCRIBERS``).

- ``person_erased``: stored results broken down by a trait name its values (a breakdown by ``email``
  lists addresses); they are computations the pages keep for a while, so those of the workspace go,
  whoever's values they hold. Counts alone name no one and stay.
"""

from __future__ import annotations

from insights.models import InsightJob
from tracking.events import ErasedPerson


def person_erased(erased: ErasedPerson) -> dict[str, int]:
    deleted, _ = InsightJob.objects.filter(workspace=erased.workspace, params__breakdown__type="trait").delete()
    return {"insight_results": deleted}
