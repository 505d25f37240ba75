"""Pieces of the segment engine for readers above segmentation, so that they count exactly as segments do.

The compiler stays segmentation's own; what others may reuse of it is named here:

- ``sequence_furthest_runs``: each person's furthest run of a ``sequence`` condition, step by step
  (insights' funnels count how far people got, so that a funnel's last step equals the completed
  sequence's members);
- ``NUMERIC_RE`` and ``NUMERIC_MAX_LENGTH``: what a numeric string is, where a property is read as a
  number (a numeric string counts as the number it spells).
"""

from __future__ import annotations

from datetime import datetime

from segmentation.compiler import NUMERIC_MAX_LENGTH, NUMERIC_RE, CompiledQuery, compile_sequence_furthest
from segmentation.definition import Sequence

__all__ = ["NUMERIC_MAX_LENGTH", "NUMERIC_RE", "CompiledQuery", "sequence_furthest_runs"]


def sequence_furthest_runs(node: Sequence, *, workspace_id: int, now: datetime) -> CompiledQuery:
    """``SELECT person_id, t0, t1, ...``: each person's furthest run of ``node`` in the workspace at
    ``now`` (the run that reached the most steps, the earliest of those on a tie), one row per
    person of the workspace with a step-1 occurrence in the window.

    ``t<k>`` is the instant step *k+1* was matched, NULL from the first step the run did not
    reach. The node may hold more steps than a stored definition allows (funnels go to 8).
    Run it with ``CompiledQuery.execute`` (it carries its own workspace guards), placed in fixed
    text (``wrap``).
    """
    return compile_sequence_furthest(node, workspace_id=workspace_id, now=now)
