"""The builder's templates: each a valid definition, with its own slug, reading as its playbook says."""

from __future__ import annotations

import pytest

from segmentation.definition import parse
from segmentation.playbooks import BY_SLUG, PLAYBOOKS
from segmentation.sentence import sentence_text

EXPECTED = {
    "Big spenders": "People whose total revenue on Order Completed in the last 90 days is at least 500",
    "Active in the last 7 days": "People who performed any event in the last 7 days",
    "Cart abandoners (48 h)": (
        "People who performed Product Added but did not perform Order Completed within 48 hours in the last 7 days"
    ),
    "Lapsed customers": "People who last performed Order Completed more than 90 days ago",
    "New this week": "People who first performed any event in the last 7 days",
    "Frequent buyers": "People who performed Order Completed at least 3 times in the last 90 days",
    "Window shoppers": (
        "People who performed Product Viewed at least 5 times in the last 30 days"
        " and did not perform Order Completed in the last 30 days"
    ),
    "Engaged email readers": "People who performed Email Opened at least 3 times in the last 30 days",
    "Stopped using": (
        "People who performed any event between 60 and 30 days ago and did not perform any event in the last 30 days"
    ),
}


def test_the_nine_playbooks_of_the_issue_are_there_in_order():
    assert [p.name for p in PLAYBOOKS] == list(EXPECTED)
    assert len(BY_SLUG) == len(PLAYBOOKS)


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=[p.slug for p in PLAYBOOKS])
def test_each_playbook_parses_and_reads_as_its_name_promises(playbook):
    assert sentence_text(parse(playbook.definition)) == EXPECTED[playbook.name]


def test_a_document_is_a_copy_the_builder_may_change():
    document = BY_SLUG["cart-abandoners"].document()
    document["within"] = "24h"
    assert BY_SLUG["cart-abandoners"].definition["within"] == "48h"
