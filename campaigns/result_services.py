"""Segments made from a campaign's results: the people who converted, and those who received a
message and did not.

Each is a static segment of the recipients with a user id (a static list names people by user
id, as a cluster's segment does: anonymous recipients cannot be on it), written in one
transaction: segmentation's ``segment_create(static=True)`` then ``segment_static_change`` in
batches. The name is "<campaign> — converted" (or "— did not convert"), numbered " (2)", " (3)"...
when a segment of the workspace already has it, names compared as ``core.names`` compares them.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import User, Workspace
from campaigns import result_selectors
from campaigns.models import Campaign
from core.names import name_key
from segmentation import services as segment_services
from segmentation.models import Segment

MAX_SEGMENT_NAME = 200
NAME_TRIES = 50
SUFFIX = {True: "converted", False: "did not convert"}


def _free_name(workspace: Workspace, wanted: str) -> str:
    """``wanted``, or the first free "wanted (n)", among the workspace's segment names."""
    wanted = wanted[:MAX_SEGMENT_NAME].rstrip()
    similar = Segment.objects.filter(workspace=workspace, name__istartswith=wanted[:100]).values_list("name", flat=True)
    taken = {name_key(name) for name in similar}
    candidate, number = wanted, 1
    while name_key(candidate) in taken:
        number += 1
        suffix = f" ({number})"
        candidate = wanted[: MAX_SEGMENT_NAME - len(suffix)].rstrip() + suffix
    return candidate


def campaign_segment_create(*, campaign: Campaign, actor: User | None, converted: bool) -> Segment:
    """A static segment of the campaign's recipients who converted (or did not), with a user id.

    Refused (``ValidationError`` on ``segment``, nothing written) without a goal, or when no such
    recipient has a user id.
    """
    workspace = Workspace(pk=campaign.workspace_id)
    if not campaign.goal_event:
        raise ValidationError({"segment": ["This campaign has no goal, so nobody converts: set a goal first."]})
    people = result_selectors.recipients(workspace, campaign, converted=converted)
    if not people.user_ids:
        who = "converted" if converted else "received a message without converting"
        extra = f" ({people.anonymous} anonymous)" if people.anonymous else ""
        raise ValidationError(
            {"segment": [f"Nobody with a user id {who}{extra}: a static segment lists identified people only."]}
        )
    left_out = f" {people.anonymous} anonymous recipients are left out." if people.anonymous else ""
    description = (
        f"Recipients of the campaign “{campaign.name}” who "
        + ("converted" if converted else "received a message and did not convert")
        + f" ({campaign.goal_event} within {campaign.goal_within}), as of the moment it was made.{left_out}"
    )[:2000]
    base = f"{campaign.name} — {SUFFIX[converted]}"
    for attempt in range(NAME_TRIES):
        try:
            with transaction.atomic():
                segment = segment_services.segment_create(
                    workspace=workspace,
                    actor=actor,
                    name=_free_name(workspace, base),
                    definition=None,
                    static=True,
                    description=description,
                )
                batch = segment_services.MAX_STATIC_CHANGE
                for start in range(0, len(people.user_ids), batch):
                    segment_services.segment_static_change(
                        segment=segment, actor=actor, add=people.user_ids[start : start + batch], remove=[]
                    )
        except ValidationError as error:
            # Another save took the name between the look-up and the insert: take the next one.
            if "name" in getattr(error, "message_dict", {}) and attempt < NAME_TRIES - 1:
                continue
            raise
        segment.refresh_from_db()
        return segment
    raise AssertionError("unreachable")  # pragma: no cover
