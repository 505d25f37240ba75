"""The real Segment Python SDK, pointed at a live server, works by changing only its host."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from segment.analytics import Client

from accounts.tenancy import workspace_scope
from tracking.models import Event, Person


def test_segment_python_sdk_identify_track_page_alias(live_server, workspace):
    errors = []
    analytics = Client(
        workspace.write_key,
        host=live_server.url,
        sync_mode=True,
        max_retries=1,
        on_error=lambda error, batch: errors.append(error),
    )
    visited_at = datetime.now(UTC) - timedelta(minutes=30)

    # Anonymous history first, then identify, then more as the known user.
    analytics.page(
        anonymous_id="sdk-anon",
        name="Spring sale",
        properties={
            "url": "https://shop.test/sale?utm_source=newsletter&utm_medium=email&utm_campaign=spring",
            "path": "/sale",
            "referrer": "https://mail.example.com/inbox",
        },
        timestamp=visited_at,
    )
    analytics.track(anonymous_id="sdk-anon", event="Product Added", properties={"sku": "H-1", "price": 120})
    analytics.identify(user_id="sdk-user", anonymous_id="sdk-anon", traits={"email": "sdk@example.com", "plan": "free"})
    analytics.track(user_id="sdk-user", event="Order Completed", properties={"revenue": 120}, message_id="order-1")
    analytics.track(user_id="sdk-user", event="Order Completed", properties={"revenue": 120}, message_id="order-1")
    analytics.identify(user_id="sdk-user", traits={"plan": "pro"})
    analytics.track(user_id="earlier-account", event="Logged In")
    analytics.alias(previous_id="earlier-account", user_id="sdk-user")
    analytics.flush()

    assert errors == []
    with workspace_scope(workspace):
        person = Person.objects.get()
        identities = sorted(person.identities.values_list("kind", "value"))
        events = list(Event.objects.order_by("timestamp", "id"))
    assert person.user_id == "sdk-user"
    assert identities == [
        ("anonymous_id", "sdk-anon"),
        ("user_id", "earlier-account"),
        ("user_id", "sdk-user"),
    ]
    assert person.traits == {
        "email": "sdk@example.com",
        "plan": "pro",
        "$initial_referrer": "https://mail.example.com/inbox",
        "$initial_referring_domain": "mail.example.com",
        "$initial_utm_source": "newsletter",
        "$initial_utm_medium": "email",
        "$initial_utm_campaign": "spring",
        "$initial_path": "/sale",
    }
    assert [(e.name, e.person_id) for e in events] == [
        ("$pageview", person.pk),
        ("Product Added", person.pk),
        ("Order Completed", person.pk),
        ("Logged In", person.pk),
    ]
    page = events[0]
    assert page.properties["name"] == "Spring sale"
    assert page.properties["path"] == "/sale"
    # The SDK stamps timestamp and sentAt with the same clock: the skew correction keeps the time.
    assert abs(page.timestamp - visited_at) < timedelta(seconds=5)
    assert person.first_seen == page.timestamp
    assert events[2].properties == {"revenue": 120}
    assert events[2].context["library"]["name"] == "analytics-python"
