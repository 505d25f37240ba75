"""Reads of webhook subscriptions and their delivery log."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.db.models import QuerySet
from django.db.models.functions import Lower

from accounts.models import WRITER_ROLES, Membership, Workspace
from segmentation.models import Segment, WebhookDelivery, WebhookSegment, WebhookSubscription


def subscriptions_list(workspace: Workspace) -> QuerySet[WebhookSubscription]:
    return WebhookSubscription.objects.filter(workspace=workspace).order_by("-created_at", "-id")


def subscription_segments(workspace: Workspace, subscription_ids: list[int]) -> dict[int, list[Segment]]:
    """The chosen segments of each subscription (those listening to all have none here)."""
    chosen: dict[int, list[Segment]] = {pk: [] for pk in subscription_ids}
    rows = (
        WebhookSegment.objects.filter(workspace=workspace, subscription_id__in=subscription_ids)
        .select_related("segment")
        .order_by(Lower("segment__name"), "segment__name", "segment_id")
    )
    for row in rows:
        chosen[row.subscription_id].append(row.segment)
    return chosen


def segments_for_choice(workspace: Workspace) -> QuerySet[Segment]:
    return Segment.objects.filter(workspace=workspace).order_by(Lower("name"), "name", "id")


def deliveries_log(workspace: Workspace, subscription: WebhookSubscription) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(workspace=workspace, subscription=subscription).order_by("-created_at", "-id")


def segment_names(workspace: Workspace, segment_ids: set[int]) -> dict[int, str]:
    return dict(Segment.objects.filter(workspace=workspace, pk__in=segment_ids).values_list("pk", "name"))


def url_readable_in_full(membership: Membership | None) -> bool:
    """Whether this reader sees webhook URLs whole: those who may change things do, viewers do not.

    ``None`` is an API key acting without a membership, which has every right in its workspace.
    """
    return membership is None or membership.role in WRITER_ROLES


def url_shown(url: str, *, full: bool) -> str:
    """``url`` whole, or only its scheme and host (with the port) then ``/…``.

    A webhook URL often is its own credential (a Slack incoming webhook's path is
    the token that lets anyone post to the channel), so readers who only read see
    where deliveries go, not how to send there themselves.
    """
    if full:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return "…"
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}/…" if parts.scheme and host else "…"
