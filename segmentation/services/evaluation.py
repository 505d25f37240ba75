"""Evaluating a definition for a caller that wants the members themselves, without saving a segment.

For apps above segmentation that compare a definition with a set of their own (insights checks
a suggested segment's rule against its cluster): the compiler stays segmentation's, and the
answer is exactly what a refresh at ``now`` would store, restricted to ``people`` when given.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from accounts.models import Workspace
from segmentation.compiler import compile_members
from segmentation.membership import evaluation_settings, is_timeout, plan_settings
from segmentation.services.segments import SegmentQueryTimeout, definition_validate


def definition_members(
    *,
    workspace: Workspace,
    definition: dict[str, Any],
    now: datetime,
    people: Collection[int] | None = None,
    timeout_seconds: float | None = None,
) -> set[int]:
    """The person ids the definition holds for at ``now`` (among ``people`` when given).

    Raises ``DefinitionInvalid`` for a bad definition, ``SegmentQueryTimeout`` past
    ``timeout_seconds`` (default: a refresh's, ``SEGMENT_REFRESH_TIMEOUT_SECONDS``).
    """
    tree = definition_validate(workspace=workspace, definition=definition)
    query = compile_members(tree, workspace_id=workspace.pk, now=now, people=people)
    timeout = settings.SEGMENT_REFRESH_TIMEOUT_SECONDS if timeout_seconds is None else timeout_seconds
    try:
        with transaction.atomic():
            evaluation_settings(timeout)
            plan_settings(query)
            with connection.cursor() as cursor:
                query.execute(cursor)
                return {int(row[0]) for row in cursor.fetchall()}
    except Exception as error:
        if is_timeout(error):
            raise SegmentQueryTimeout(f"Evaluating the definition took longer than {timeout:g} s.") from error
        raise
