"""core.names: one normal form for user-given names, and when two names are the same."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from core.names import (
    InvalidName,
    name_clash,
    name_clean,
    name_key,
    name_taken_message,
    names_made_unique,
    normalise_name,
)


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("Big spenders", "Big spenders"),
        ("  Big   spenders  ", "Big spenders"),
        ("Big\tspenders\r\n", "Big spenders"),
        ("Big\u00a0spenders", "Big spenders"),  # no-break space
        ("Big\u3000spenders", "Big spenders"),  # ideographic space
        ("Big spenders\u200b", "Big spenders"),  # zero-width space
        ("Big\u200d spenders", "Big spenders"),  # zero-width joiner
        ("\ufeffBig spenders", "Big spenders"),  # byte order mark
        ("Big spen\u00adders", "Big spenders"),  # soft hyphen
        ("Big\u2028spenders", "Big spenders"),  # line separator
        ("Big\x00spenders", "Big spenders"),  # a control character becomes a space
        ("\u202esrednepS giB", "srednepS giB"),  # right-to-left override: the text reads as typed
        ("a\u2066b\u2069c", "abc"),  # bidi isolates
        ("\uff22\uff49\uff47", "Big"),  # full-width letters
        ("\ufb01nance", "finance"),  # the fi ligature
        ("Cafe\u0301", "Café"),  # a combining accent composes
        ("Straße", "Straße"),  # case is kept as typed
        ("", ""),
        (" \u200b ", ""),
    ],
)
def test_the_normal_form(raw, stored):
    assert normalise_name(raw) == stored
    assert normalise_name(stored) == stored  # idempotent


@pytest.mark.parametrize("raw", ["a\ud800b", "\udfff", "ok\udbff"])
def test_a_lone_surrogate_is_refused_rather_than_replaced(raw):
    with pytest.raises(InvalidName, match="not valid text"):
        normalise_name(raw)


@pytest.mark.parametrize(
    "other",
    ["Big spenders", "big SPENDERS", "Big  spenders", "Big spenders\u200b", "\uff22ig spenders", " BIG\tSPENDERS "],
)
def test_names_that_look_the_same_have_one_key(other):
    assert name_key(other) == name_key("Big spenders") == "big spenders"


def test_case_folding_goes_further_than_lower_case():
    assert name_key("STRASSE") == name_key("Straße")
    assert name_key("Big spenders") != name_key("Big spender")


def test_a_clash_names_the_existing_name_it_is_the_same_as():
    existing = ["Lapsed customers", "Big spenders", "VIP"]

    assert name_clash("big  SPENDERS\u200b", existing) == "Big spenders"
    assert name_clash("Big spenders 2", existing) is None
    assert name_clash("vip", iter(existing)) == "VIP"


def test_clean_answers_the_stored_form():
    stored = name_clean("  Big\u00a0spenders\u200b ", noun="A segment", max_length=200, existing=["VIP"])
    assert stored == "Big spenders"


@pytest.mark.parametrize(
    ("raw", "existing", "message"),
    [
        ("   ", [], "A segment needs a name."),
        ("\u200b\u202e", [], "A segment needs a name."),
        ("x" * 11, [], "At most 10 characters (this has 11)."),
        ("a\ud800b", [], "The name contains a character that is not valid text."),
        ("VIP", ["VIP"], "A segment named 'VIP' already exists in this workspace."),
        (
            "vip\u200b",
            ["VIP"],
            "A segment named 'VIP' already exists in this workspace."
            " Names that differ only in case, spacing or invisible characters count as the same.",
        ),
    ],
)
def test_clean_refuses_with_a_message_for_the_field(raw, existing, message):
    with pytest.raises(ValidationError) as caught:
        name_clean(raw, noun="A segment", max_length=10, existing=existing)

    assert caught.value.message_dict == {"name": [message]}


def test_clean_checks_length_on_the_stored_form_and_names_the_field():
    # Eleven characters typed, ten kept: the zero-width space is not stored.
    assert name_clean("abcdefghi\u200bj", noun="A key", max_length=10) == "abcdefghij"
    with pytest.raises(ValidationError) as caught:
        name_clean("Zapier", noun="A webhook", max_length=200, existing=["ZAPIER"], field="description")
    assert list(caught.value.message_dict) == ["description"]


def test_an_optional_name_may_be_empty_and_is_then_never_taken():
    assert name_clean(" \u200b", noun="A webhook", max_length=200, existing=[""], required=False) == ""


def test_existing_names_are_read_only_when_the_name_is_otherwise_valid():
    def never_read():
        raise AssertionError("read")
        yield  # pragma: no cover

    with pytest.raises(ValidationError):
        name_clean("", noun="A segment", max_length=10, existing=never_read())


def test_the_taken_message_explains_a_difference_only_when_there_is_one():
    assert name_taken_message("An API key", "CI") == "An API key named 'CI' already exists in this workspace."
    assert name_taken_message("An API key", "CI", given="ci").endswith("count as the same.")


def test_names_made_unique_keeps_the_first_and_numbers_the_look_alikes():
    rows = [
        (1, "Big spenders"),
        (2, "big  spenders"),
        (3, "Big spenders\u200b"),
        (4, "VIP "),
        (5, "\u200b"),
        (6, "Big spenders (2)"),
        (7, "Lapsed"),
    ]

    assert names_made_unique(rows, max_length=200, fallback="Untitled segment") == {
        2: "big spenders (2)",
        3: "Big spenders (3)",
        4: "VIP",
        5: "Untitled segment",
        6: "Big spenders (2) (2)",
    }


def test_names_made_unique_cuts_to_fit_the_suffix_and_may_only_normalise():
    rows = [(1, "x" * 10), (2, "X" * 10 + "\u200b")]

    assert names_made_unique(rows, max_length=10) == {2: "XXXXXX (2)"}
    assert names_made_unique(rows, max_length=10, unique=False) == {2: "X" * 10}
