"""Writes of webhooks: subscriptions, recording deliveries, sending one attempt.

Sending is at-least-once: a delivery is claimed by a conditional UPDATE before
it is sent, so two tasks never send it at the same time, but a worker that dies
mid-send leaves it to be sent again. Receivers deduplicate on ``Cohortly-Delivery``.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from rfc3986_validator import validate_rfc3986

from accounts.models import User, Workspace
from accounts.services import audit_record
from core import signing, transport
from core.names import name_clean, name_constraint_violated, name_taken_message
from segmentation.feed import FeedChange
from segmentation.models import (
    DeliveryStatus,
    MembershipChangeKind,
    Segment,
    WebhookDelivery,
    WebhookEvent,
    WebhookSegment,
    WebhookSubscription,
)
from segmentation.webhooks import selectors
from tracking.models import Identity, IdentityKind, Person

logger = logging.getLogger(__name__)

# A delivery enqueued or claimed this long ago without an outcome is taken up again by the sweep.
STALE_AFTER = timedelta(minutes=10)
# Delivery ids per send task.
TASK_CHUNK = 50


def _allow_private() -> bool:
    return bool(settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS)


# Every character below U+0020 and DEL: a line break in a URL would end the request line it is sent on.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def _url_syntax_problem(url: str) -> str | None:
    """Why ``url`` is not an absolute URI that can be sent as it is written, if it is not.

    RFC 3986's grammar (``rfc3986_validator``): no spaces, control characters or
    characters a URI may not hold unencoded (``<``, ``>``, ``"``, ``{``, ``}``, ``|``,
    ``\\``, ``^``, a backquote, non-ASCII letters), and every ``%`` followed by two
    hex digits. Such a URL would be stored and then fail at every attempt.
    """
    if _CONTROL_CHARACTERS.search(url):
        return "The URL must not contain line breaks, tabs or other control characters."
    if any(character.isspace() for character in url):
        return "The URL must not contain spaces; write a space as %20."
    if validate_rfc3986(url, rule="URI") is None:
        return (
            'Enter a valid URL: characters such as < > " { } | \\ ^ ` and non-ASCII letters must be '
            "percent-encoded (%XX), and a % must be followed by two hex digits."
        )
    return None


def webhook_url_check(url: str) -> str:
    """The URL, or ``ValidationError`` on ``url`` saying why it may not receive webhooks.

    Spaces around it are stripped (a paste often brings them); a line break or
    any other control character, even at the end, is refused.
    """
    url = url.strip(" ")
    if (problem := _url_syntax_problem(url)) is not None:
        raise ValidationError({"url": [problem]})
    try:
        transport.check_url(url, allow_private=_allow_private())
    except transport.TargetRefused as error:
        raise ValidationError({"url": [str(error)]}) from error
    return url


def _audit_target(url: str) -> str:
    """The URL as the audit log records it: scheme and host only, since every member reads the log."""
    return selectors.url_shown(url, full=False)


def webhook_create(
    *,
    workspace: Workspace,
    actor: User | None,
    url: str,
    segments: Iterable[Segment] | None,
    on_entered: bool,
    on_exited: bool,
    description: str = "",
) -> tuple[WebhookSubscription, str]:
    """A new subscription and its signing secret (shown once). ``segments=None``: every segment."""
    if not (on_entered or on_exited):
        raise ValidationError({"events": ["Choose entered, exited or both."]})
    url = webhook_url_check(url)
    chosen = list(segments) if segments is not None else None
    if chosen is not None:
        if not chosen:
            raise ValidationError({"segments": ["Choose at least one segment, or all segments."]})
        if any(segment.workspace_id != workspace.pk for segment in chosen):
            raise ValidationError({"segments": ["Choose segments of this workspace."]})
    others = WebhookSubscription.objects.filter(workspace=workspace).exclude(description="")
    description = name_clean(
        description,
        noun="A webhook",
        max_length=200,
        existing=others.values_list("description", flat=True),
        field="description",
        required=False,
    )
    salt = signing.new_secret_salt()
    secret = signing.subscription_secret(salt)
    try:
        with transaction.atomic():
            subscription = WebhookSubscription.objects.create(
                workspace=workspace,
                url=url,
                description=description,
                all_segments=chosen is None,
                on_entered=on_entered,
                on_exited=on_exited,
                secret_salt=salt,
                secret_hint=secret[: signing.HINT_LENGTH],
                created_by=actor,
            )
            WebhookSegment.objects.bulk_create(
                WebhookSegment(workspace=workspace, subscription=subscription, segment=segment)
                for segment in chosen or []
            )
            audit_record(
                workspace=workspace,
                actor=actor,
                action="webhook.created",
                target=_audit_target(url),
                details={"webhook": subscription.pk},
            )
    except IntegrityError as error:
        if not name_constraint_violated(error, "webhook_description_ci_unique"):
            raise
        raise ValidationError({"description": [name_taken_message("A webhook", description)]}) from error
    return subscription, secret


def webhook_rotate_secret(*, workspace: Workspace, subscription: WebhookSubscription, actor: User | None) -> str:
    """A new secret (shown once); the old one stops signing at once."""
    salt = signing.new_secret_salt()
    secret = signing.subscription_secret(salt)
    subscription.secret_salt = salt
    subscription.secret_hint = secret[: signing.HINT_LENGTH]
    subscription.secret_rotated_at = timezone.now()
    with transaction.atomic():
        subscription.save(update_fields=["secret_salt", "secret_hint", "secret_rotated_at"])
        audit_record(
            workspace=workspace,
            actor=actor,
            action="webhook.secret_rotated",
            target=_audit_target(subscription.url),
            details={"webhook": subscription.pk},
        )
    return secret


def webhook_delete(*, workspace: Workspace, subscription: WebhookSubscription, actor: User | None) -> None:
    """Deletes the subscription with its delivery log; pending deliveries are not sent."""
    with transaction.atomic():
        WebhookSubscription.objects.filter(workspace=workspace, pk=subscription.pk).delete()
        audit_record(
            workspace=workspace,
            actor=actor,
            action="webhook.deleted",
            target=_audit_target(subscription.url),
            details={"webhook": subscription.pk},
        )


def webhook_send_test(*, workspace: Workspace, subscription: WebhookSubscription) -> WebhookDelivery:
    """A ``webhook.test`` delivery, sent like any other (signed, logged, retried)."""
    now = timezone.now()
    delivery = WebhookDelivery.objects.create(
        workspace=workspace,
        subscription=subscription,
        event=WebhookEvent.TEST,
        at=now,
        next_attempt_at=now,
        queued_at=now,
    )
    transaction.on_commit(lambda: deliveries_enqueue(workspace_id=workspace.pk, delivery_ids=[delivery.pk]))
    return delivery


def deliveries_from_changes(*, workspace: Workspace, changes: Sequence[FeedChange]) -> None:
    """The change feed's webhook consumer: one pending delivery per matching subscription and change.

    Runs inside the feed's transaction, which also moves its cursor; the deliveries are
    enqueued once that commits (left to the sweep if the broker is down). A change read
    again finds its deliveries by the unique (workspace, change, subscription) and adds
    none. A subscription matches when it listens to the event and to every segment or
    the change's one. One query when the workspace has no subscription. A change without
    a person (an erased person's or a merge loser's exit) is announced to nobody: there is
    nobody to name and nothing to send about them.
    """
    subscriptions = list(
        WebhookSubscription.objects.filter(workspace=workspace).values_list(
            "pk", "all_segments", "on_entered", "on_exited"
        )
    )
    if not subscriptions:
        return
    chosen = set(
        WebhookSegment.objects.filter(
            workspace=workspace,
            subscription_id__in=[pk for pk, every, *_ in subscriptions if not every],
            segment_id__in={change.segment_id for change in changes},
        ).values_list("subscription_id", "segment_id")
    )
    now = timezone.now()
    rows = [
        WebhookDelivery(
            workspace=workspace,
            subscription_id=pk,
            event=WebhookEvent.ENTERED if change.kind == MembershipChangeKind.ENTERED else WebhookEvent.EXITED,
            change_id=change.id,
            segment_id=change.segment_id,
            person_id=change.person_id,
            at=change.at,
            next_attempt_at=now,
            queued_at=now,
        )
        for change in changes
        if change.person_id is not None
        for pk, every, on_entered, on_exited in subscriptions
        if (on_entered if change.kind == MembershipChangeKind.ENTERED else on_exited)
        and (every or (pk, change.segment_id) in chosen)
    ]
    if not rows:
        return
    WebhookDelivery.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=True)
    delivery_ids = list(
        WebhookDelivery.objects.filter(
            workspace=workspace, change_id__in=[change.id for change in changes], status=DeliveryStatus.PENDING
        ).values_list("pk", flat=True)
    )
    workspace_id = workspace.pk
    transaction.on_commit(lambda: deliveries_enqueue(workspace_id=workspace_id, delivery_ids=delivery_ids))


def deliveries_enqueue(*, workspace_id: int, delivery_ids: list[int]) -> bool:
    """Enqueue send tasks; on a broker failure, log and leave the rows to the sweep. Never raises."""
    from segmentation.webhooks.tasks import webhook_deliver

    try:
        for start in range(0, len(delivery_ids), TASK_CHUNK):
            # No publish retries: the sweep is the retry, and the caller must not wait on a dead broker.
            webhook_deliver.apply_async((workspace_id, delivery_ids[start : start + TASK_CHUNK]), retry=False)
    except Exception:
        logger.warning(
            "Could not enqueue %d webhook deliveries of workspace %s; the sweep will send them.",
            len(delivery_ids),
            workspace_id,
            exc_info=True,
        )
        try:
            # Crosses nothing: ids of this workspace, made unscoped because the caller may hold no scope.
            WebhookDelivery.objects.unscoped().filter(workspace_id=workspace_id, pk__in=delivery_ids).update(
                queued_at=None
            )
        except Exception:
            logger.warning("Could not mark webhook deliveries for the sweep", exc_info=True)
        return False
    return True


def _person_payload(workspace: Workspace, person_id: int | None) -> dict[str, object] | None:
    if person_id is None:
        return None
    person = Person.objects.filter(workspace=workspace, pk=person_id).only("user_id", "traits").first()
    anonymous_ids = list(
        Identity.objects.filter(workspace=workspace, person_id=person_id, kind=IdentityKind.ANONYMOUS_ID)
        .order_by("created_at", "id")
        .values_list("value", flat=True)
    )
    return {
        "id": person_id,
        "user_id": person.user_id if person else None,
        "anonymous_ids": anonymous_ids,
        "traits": person.traits if person else {},
    }


def delivery_payload(workspace: Workspace, delivery: WebhookDelivery) -> dict[str, object]:
    segment: dict[str, object] | None = None
    if delivery.segment_id is not None:
        name = Segment.objects.filter(workspace=workspace, pk=delivery.segment_id).values_list("name", flat=True)
        segment = {"id": delivery.segment_id, "name": name.first() or ""}
    return {
        "type": delivery.event,
        "workspace": workspace.pk,
        "segment": segment,
        "person": _person_payload(workspace, delivery.person_id),
        "at": delivery.at.isoformat(),
        "id": delivery.pk,
    }


def _claim(workspace: Workspace, delivery_id: int, now: datetime) -> bool:
    claimed = WebhookDelivery.objects.filter(
        workspace=workspace, pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now
    ).update(
        status=DeliveryStatus.SENDING,
        claimed_at=now,
        last_attempt_at=now,
        attempts=F("attempts") + 1,
    )
    return claimed == 1


def _outcome_failed(delivery: WebhookDelivery, *, error: str, status_code: int | None, retry: bool) -> None:
    now = timezone.now()
    delay = signing.retry_delay(delivery.attempts) if retry else None
    delivery.last_status_code = status_code
    delivery.last_error = error[:500]
    delivery.claimed_at = None
    delivery.queued_at = None
    if delay is None:
        delivery.status = DeliveryStatus.FAILED
    else:
        delivery.status = DeliveryStatus.PENDING
        delivery.next_attempt_at = now + timedelta(seconds=delay)
    delivery.save(
        update_fields=["status", "next_attempt_at", "last_status_code", "last_error", "claimed_at", "queued_at"]
    )


def delivery_attempt(*, workspace: Workspace, delivery_id: int) -> WebhookDelivery | None:
    """Send a due delivery once and record the outcome; ``None`` if it was not due or taken.

    Any 2xx is success. A redirect is not followed and counts as a failure. A
    refused target fails at once; other failures are retried on ``RETRY_SCHEDULE``.
    """
    now = timezone.now()
    if not _claim(workspace, delivery_id, now):
        return None
    delivery = WebhookDelivery.objects.select_related("subscription").get(workspace=workspace, pk=delivery_id)
    if delivery.payload is None:
        delivery.payload = delivery_payload(workspace, delivery)
        delivery.save(update_fields=["payload"])
    body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False).encode()
    timestamp = int(now.timestamp())
    secret = signing.subscription_secret(delivery.subscription.secret_salt)
    headers = {
        "Content-Type": "application/json",
        signing.SIGNATURE_HEADER: signing.signature_header(secret, timestamp, body),
        signing.DELIVERY_HEADER: str(delivery.pk),
        signing.EVENT_HEADER: delivery.event,
    }
    try:
        answer = transport.post(delivery.subscription.url, body, headers, allow_private=_allow_private())
    except transport.HostNotFound as error:
        _outcome_failed(delivery, error=str(error), status_code=None, retry=True)
        return delivery
    except transport.TargetRefused as error:
        _outcome_failed(delivery, error=f"Refused: {error}", status_code=None, retry=False)
        return delivery
    except (OSError, http.client.HTTPException) as error:
        reason = (
            "Timed out: no answer within 5 s" if isinstance(error, TimeoutError) else f"{type(error).__name__}: {error}"
        )
        _outcome_failed(delivery, error=reason, status_code=None, retry=True)
        return delivery
    except Exception as error:
        # Whatever else went wrong, the row must not stay "sending" until the sweep.
        logger.exception("Webhook delivery %s failed unexpectedly", delivery.pk)
        _outcome_failed(delivery, error=f"{type(error).__name__}: {error}", status_code=None, retry=True)
        return delivery
    if 200 <= answer.status < 300:
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = timezone.now()
        delivery.last_status_code = answer.status
        delivery.last_error = ""
        delivery.claimed_at = None
        delivery.save(update_fields=["status", "delivered_at", "last_status_code", "last_error", "claimed_at"])
        return delivery
    reason = (
        f"HTTP {answer.status}: redirects are not followed" if 300 <= answer.status < 400 else f"HTTP {answer.status}"
    )
    _outcome_failed(delivery, error=reason, status_code=answer.status, retry=True)
    return delivery


def deliveries_sweep(*, limit: int = 5000, now: datetime | None = None) -> dict[int, list[int]]:
    """Due deliveries of every workspace, marked as queued, by workspace.

    Also takes back deliveries whose worker stopped mid-send. Crosses workspaces:
    the sweep is the safety net for every workspace's deliveries. ``now``: tests move the clock.
    """
    now = now or timezone.now()
    stale = now - STALE_AFTER
    deliveries = WebhookDelivery.objects.unscoped()
    interrupted = deliveries.filter(status=DeliveryStatus.SENDING, claimed_at__lt=stale)
    interrupted.filter(attempts__gte=signing.MAX_ATTEMPTS).update(
        status=DeliveryStatus.FAILED, claimed_at=None, last_error="The last attempt was interrupted."
    )
    interrupted.update(
        status=DeliveryStatus.PENDING, claimed_at=None, queued_at=None, last_error="The attempt was interrupted."
    )
    with transaction.atomic():
        due = list(
            deliveries.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
            .filter(Q(queued_at__isnull=True) | Q(queued_at__lt=stale))
            .order_by("next_attempt_at")
            .select_for_update(skip_locked=True)
            .values_list("workspace_id", "pk")[:limit]
        )
        deliveries.filter(pk__in=[pk for _, pk in due]).update(queued_at=now)
    by_workspace: dict[int, list[int]] = {}
    for workspace_id, pk in due:
        by_workspace.setdefault(workspace_id, []).append(pk)
    return by_workspace
