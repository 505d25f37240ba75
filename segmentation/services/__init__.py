"""Writes of segments, one module per concern:

- ``segments``: validating a definition, creating, changing and deleting a segment, previews;
- ``refresh``: the full refresh of a segment, claiming due refreshes fairly, queueing them;
- ``static``: static segments' members by user id and by CSV;
- ``evaluation``: the members of a definition, for apps above that compare it with their own sets.

``segmentation.membership`` holds what they share with real time (the membership lock, the
evaluation settings, applying a difference). The public names are re-exported here, where the
views, the API and the tasks call them.
"""

from segmentation.services.evaluation import definition_members
from segmentation.services.refresh import (
    CLAIM_LOCK_CLASS,
    RefreshResult,
    refresh_lease_seconds,
    segment_refresh,
    segment_refresh_enqueue,
    segment_refreshes_enqueue,
    segments_claim_due,
    segments_claims_release,
)
from segmentation.services.segments import (
    MAX_REFRESH_INTERVAL_SECONDS,
    MAX_SAMPLE_SIZE,
    MIN_REFRESH_INTERVAL_SECONDS,
    SegmentPreview,
    SegmentQueryTimeout,
    definition_validate,
    segment_create,
    segment_delete,
    segment_preview,
    segment_update,
)
from segmentation.services.static import (
    MAX_STATIC_CHANGE,
    MAX_USER_ID_LENGTH,
    CsvPreview,
    StaticChange,
    segment_static_change,
    segment_static_csv_apply,
    segment_static_csv_preview,
)

__all__ = [
    "CLAIM_LOCK_CLASS",
    "MAX_REFRESH_INTERVAL_SECONDS",
    "MAX_SAMPLE_SIZE",
    "MAX_STATIC_CHANGE",
    "MAX_USER_ID_LENGTH",
    "MIN_REFRESH_INTERVAL_SECONDS",
    "CsvPreview",
    "RefreshResult",
    "SegmentPreview",
    "SegmentQueryTimeout",
    "StaticChange",
    "definition_members",
    "definition_validate",
    "refresh_lease_seconds",
    "segment_create",
    "segment_delete",
    "segment_preview",
    "segment_refresh",
    "segment_refresh_enqueue",
    "segment_refreshes_enqueue",
    "segment_static_change",
    "segment_static_csv_apply",
    "segment_static_csv_preview",
    "segment_update",
    "segments_claim_due",
    "segments_claims_release",
]
