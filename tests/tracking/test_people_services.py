"""Erasure across every app: no table keeps a row keyed by the person or holding their values.

The tables are not listed here: every model of every installed app is read from the app
registry, so a table added later is checked without touching this test.
"""

from __future__ import annotations

from datetime import timedelta

import orjson
from django.apps import apps
from django.db import models
from django.db.models.functions import Cast
from django.utils import timezone

from accounts.tenancy import workspace_scope
from campaigns.models import Campaign, Send, Suppression, TriggerInbox
from core import signing
from segmentation import services as segment_services
from segmentation.catalogue.models import CatalogueProperty, PropertySource
from segmentation.catalogue.services import catalogue_update
from segmentation.models import DeliveryStatus, Segment, WebhookDelivery, WebhookEvent, WebhookSubscription
from segmentation.webhooks.services import delivery_payload
from tests.tracking.conftest import basic_auth
from tracking import plan_services
from tracking.models import Identity, Person, SuppressedId
from tracking.people_services import person_erase
from tracking.plan import parse as plan_parse

# In every id and value of hers, and in nobody else's.
MARK = "q7ada"
# Her ids are suppressed by design: the suppression list keeps them so that later messages carrying
# them are dropped (and counted) instead of making her again. Nothing there points at her row.
KEPT_BY_DESIGN = {(SuppressedId, "value")}


def _batch(client, workspace, messages) -> None:
    response = client.post(
        "/v1/batch",
        orjson.dumps({"batch": messages}),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic_auth(workspace.write_key),
    )
    assert response.status_code == 200, response.content


def _holds_person_id(field: models.Field) -> bool:
    if field.is_relation:
        return field.related_model is Person
    return isinstance(field, models.IntegerField) and not field.primary_key and "person" in field.name


def _leftovers(person_ids: list[int]) -> list[str]:
    """Every (table, column) still holding one of ``person_ids`` or a value marked ``MARK``."""
    found = []
    ids = "|".join(str(pk) for pk in person_ids)
    id_pattern = rf'"(id|person|person_id)": ({ids})[,}}\]]'
    for model in apps.get_models():
        # The plain base manager on purpose: every workspace's rows, every table.
        rows = model._base_manager.all()
        for field in model._meta.concrete_fields:
            where = f"{model._meta.db_table}.{field.column}"
            if _holds_person_id(field):
                if rows.filter(**{f"{field.attname}__in": person_ids}).exists():
                    found.append(f"{where}: a person id")
            elif isinstance(field, models.JSONField):
                text = rows.annotate(_text=Cast(field.name, models.TextField()))
                if text.filter(_text__icontains=MARK).exists():
                    found.append(f"{where}: her values")
                if text.filter(_text__regex=id_pattern).exists():
                    found.append(f"{where}: a person id in JSON")
            elif isinstance(field, models.CharField | models.TextField) and (model, field.name) not in KEPT_BY_DESIGN:
                found += [f"{where}: her values"] if rows.filter(**{f"{field.name}__icontains": MARK}).exists() else []
    return found


def test_erasure_leaves_no_row_with_the_persons_id_or_values_in_any_table(client, workspace, owner):
    # Given Ada, known by a user id and two anonymous ids (one of them a person merged into her),
    # in segments, the catalogue, webhook deliveries and the quarantine; and Bob, who shares a plan
    # and a coupon with her
    _batch(
        client,
        workspace,
        [
            {"type": "track", "anonymousId": f"anon2-{MARK}", "event": "Viewed", "properties": {"ref": f"r-{MARK}"}},
            {"type": "identify", "userId": "bob", "traits": {"plan": "pro", "email": "bob@example.com"}},
            {"type": "track", "userId": "bob", "event": "Order Completed", "properties": {"coupon": "SHARED"}},
        ],
    )
    with workspace_scope(workspace):
        segments = [
            Segment.objects.create(workspace=workspace, name="buyers", definition={"type": "event", "event": "Viewed"}),
            Segment.objects.create(
                workspace=workspace,
                name="pros",
                definition={"type": "trait", "key": "plan", "operator": "eq", "value": "pro"},
            ),
        ]
        for segment in segments:
            segment_services.segment_refresh(segment=segment)
    merged = Identity.objects.unscoped().get(value=f"anon2-{MARK}").person_id
    # (a tracking plan her track call breaks: an example of it is kept with its properties)
    with workspace_scope(workspace):
        plan_services.tracking_plan_replace(
            workspace=workspace,
            actor=owner,
            document=plan_parse({"events": {"Order Completed": {"properties": {"coupon": {"type": "string"}}}}}),
        )
    _batch(
        client,
        workspace,
        [
            {
                "type": "identify",
                "userId": f"ada-{MARK}",
                "anonymousId": f"anon-{MARK}",
                "traits": {"plan": "pro", "email": f"{MARK}@example.com", "address": {"city": f"City-{MARK}"}},
            },
            {
                "type": "track",
                "userId": f"ada-{MARK}",
                "event": "Order Completed",
                "properties": {"coupon": "SHARED", "note": f"only-{MARK}"},
            },
            {"type": "page", "userId": f"ada-{MARK}", "properties": {"url": f"https://shop.example/{MARK}"}},
            {"type": "group", "userId": f"ada-{MARK}", "groupId": "g1", "traits": {"name": "Acme"}},
            # merges the first visitor into Ada
            {"type": "identify", "userId": f"ada-{MARK}", "anonymousId": f"anon2-{MARK}"},
            # refused (no event name): quarantined with her id
            {"type": "track", "userId": f"ada-{MARK}"},
        ],
    )
    ada = Identity.objects.unscoped().get(value=f"ada-{MARK}").person
    assert Identity.objects.unscoped().get(value=f"anon2-{MARK}").person_id == ada.pk != merged
    with workspace_scope(workspace):
        for segment in segments:
            segment_services.segment_refresh(segment=segment)
        catalogue_update(workspace=workspace, settle_seconds=0, recount_traits=True)
        salt = signing.new_secret_salt()
        subscription = WebhookSubscription.objects.create(
            workspace=workspace, url="https://hooks.example.com/in", secret_salt=salt, secret_hint="whsec_x"
        )
        now = timezone.now()
        for status in (DeliveryStatus.PENDING, DeliveryStatus.DELIVERED):
            delivery = WebhookDelivery.objects.create(
                workspace=workspace,
                subscription=subscription,
                event=WebhookEvent.ENTERED,
                segment_id=segments[0].pk,
                person_id=ada.pk,
                at=now,
                next_attempt_at=now + timedelta(minutes=1),
                status=status,
            )
            if status == DeliveryStatus.DELIVERED:
                delivery.payload = delivery_payload(workspace, delivery)
                delivery.save(update_fields=["payload"])
        # campaigns: a message sent to her (with an event trigger's properties), her unsubscribe, a noted trigger
        campaign = Campaign.objects.create(workspace=workspace, name="Welcome", channel="email", kind="broadcast")
        Send.objects.create(
            workspace=workspace,
            campaign=campaign,
            person_id=ada.pk,
            occurrence="run:1",
            channel="email",
            state="sent",
            due_at=now,
            sent_at=now,
            recipient=f"{MARK}@example.com",
            context={"event": {"properties": {"note": f"only-{MARK}"}}},
        )
        Suppression.objects.create(workspace=workspace, address=f"{MARK}@example.com", reason="unsubscribed")
        TriggerInbox.objects.create(workspace=workspace, person_id=ada.pk, event="Viewed", noted_at=now)
    # (the check sees her everywhere before)
    assert {
        "tracking_person.traits: her values",
        "tracking_identity.person_id: a person id",
        "tracking_event.properties: her values",
        "tracking_persongroup.person_id: a person id",
        "tracking_quarantinedmessage.raw: her values",
        "tracking_planviolation.examples: her values",
        "segmentation_membership.person_id: a person id",
        "segmentation_membershipchange.person_id: a person id",
        "segmentation_webhookdelivery.person_id: a person id",
        "segmentation_webhookdelivery.payload: a person id in JSON",
        "catalogue_catalogueproperty.values: her values",
        "campaigns_send.person_id: a person id",
        "campaigns_send.recipient: her values",
        "campaigns_send.context: her values",
        "campaigns_suppression.address: her values",
        "campaigns_triggerinbox.person_id: a person id",
    } <= set(_leftovers([ada.pk, merged]))

    # When she is erased
    with workspace_scope(workspace):
        assert person_erase(workspace=workspace, person=ada, actor=owner) is not None

    # Then no table holds her id (nor the merged visitor's) or any of her values
    assert _leftovers([ada.pk, merged]) == []
    # and what Bob shares with her is still there, counted for him alone
    with workspace_scope(workspace):
        coupon = CatalogueProperty.objects.get(source=PropertySource.EVENT, event="Order Completed", key="coupon")
        plan = CatalogueProperty.objects.get(source=PropertySource.TRAIT, key="plan")
        assert (coupon.count, coupon.values) == (1, [["SHARED", 1]])
        assert (plan.count, plan.values) == (1, [["pro", 1]])
        assert not CatalogueProperty.objects.filter(key="note").exists()
        assert dict(Segment.objects.values_list("name", "size")) == {"buyers": 0, "pros": 1}
