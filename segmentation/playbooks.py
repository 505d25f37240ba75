"""One-click starts for the builder, taken from proven lifecycle playbooks.

Each template is a name, a line saying who it finds and why one would want
them, and a definition that opens in the builder for adjustment. The event
names are those of a typical shop tracking plan (``Order Completed`` with
``revenue``, ``Product Viewed``, ``Product Added``, ``Email Opened``), the
ones the demo workspace sends; every definition parses with
``segmentation.definition.parse`` (tests/segmentation/test_playbooks.py).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Playbook:
    slug: str
    name: str
    summary: str
    definition: dict[str, Any]

    def document(self) -> dict[str, Any]:
        """A fresh copy, so that whoever adjusts it never changes the template."""
        return copy.deepcopy(self.definition)


PLAYBOOKS: tuple[Playbook, ...] = (
    Playbook(
        "big-spenders",
        "Big spenders",
        "Spent 500 or more in the last 90 days: your VIPs, for early access and loyalty perks.",
        {
            "type": "aggregate",
            "event": "Order Completed",
            "key": "revenue",
            "function": "sum",
            "window": {"since": "90d"},
            "operator": "gte",
            "value": 500,
        },
    ),
    Playbook(
        "active-7-days",
        "Active in the last 7 days",
        "Did anything in the past week: the audience that sees announcements first.",
        {"type": "event", "event": "$any", "window": {"since": "7d"}},
    ),
    Playbook(
        "cart-abandoners",
        "Cart abandoners (48 h)",
        "Added to cart in the last 7 days but did not order within 48 hours: a reminder wins many back.",
        {
            "type": "sequence",
            "steps": [{"event": "Product Added"}, {"event": "Order Completed"}],
            "within": "48h",
            "window": {"since": "7d"},
            "completed": False,
        },
    ),
    Playbook(
        "lapsed-customers",
        "Lapsed customers",
        "Bought before, but not in the last 90 days: a win-back offer before they forget you.",
        {"type": "last_performed", "event": "Order Completed", "window": {"until": "90d"}},
    ),
    Playbook(
        "new-this-week",
        "New this week",
        "First seen in the last 7 days: welcome them and point them to what others love.",
        {"type": "first_performed", "event": "$any", "window": {"since": "7d"}},
    ),
    Playbook(
        "frequent-buyers",
        "Frequent buyers",
        "Ordered at least 3 times in the last 90 days: candidates for a subscription or referral ask.",
        {
            "type": "event",
            "event": "Order Completed",
            "window": {"since": "90d"},
            "count": {"operator": "gte", "value": 3},
        },
    ),
    Playbook(
        "window-shoppers",
        "Window shoppers",
        "Viewed 5 or more products in the last 30 days without buying: show them social proof.",
        {
            "type": "and",
            "conditions": [
                {
                    "type": "event",
                    "event": "Product Viewed",
                    "window": {"since": "30d"},
                    "count": {"operator": "gte", "value": 5},
                },
                {
                    "type": "event",
                    "event": "Order Completed",
                    "window": {"since": "30d"},
                    "count": {"operator": "eq", "value": 0},
                },
            ],
        },
    ),
    Playbook(
        "engaged-email-readers",
        "Engaged email readers",
        "Opened at least 3 emails in the last 30 days: send them more, and sooner.",
        {
            "type": "event",
            "event": "Email Opened",
            "window": {"since": "30d"},
            "count": {"operator": "gte", "value": 3},
        },
    ),
    Playbook(
        "stopped-using",
        "Stopped using",
        "Active between 60 and 30 days ago, silent since: ask what changed before they churn.",
        {
            "type": "and",
            "conditions": [
                {"type": "event", "event": "$any", "window": {"since": "60d", "until": "30d"}},
                {"type": "event", "event": "$any", "window": {"since": "30d"}, "count": {"operator": "eq", "value": 0}},
            ],
        },
    ),
)

BY_SLUG = {playbook.slug: playbook for playbook in PLAYBOOKS}
