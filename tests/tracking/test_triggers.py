from __future__ import annotations

import re

import pytest

from tracking import triggers
from tracking.triggers import TriggerInvalid


@pytest.mark.parametrize(
    ("selector", "name"),
    [
        ("#product-image", "Product Image Clicked"),
        (".buy-now", "Buy Now Clicked"),
        ("button.addToCart", "Button Add To Cart Clicked"),
        ("main > #hero  .cta", "Cta Clicked"),
        ("[data-x]", "Data X Clicked"),
        ("*", ""),
    ],
)
def test_default_event_name_is_the_words_of_the_last_selector_part(selector, name):
    assert triggers.default_event_name(selector) == name


@pytest.mark.parametrize(
    "selector",
    [
        "#a",
        "a[href='/pricing']",
        "ul > li:nth-child(2n+1)",
        ".a, .b",
        'input[name="q"]',
        "x" * 300,
        "*",
        "a:hover::before",
        '[data-x="a b" i]',
        "a:is(.x, .y) > b ~ c + d",
        "#\u00e9t\u00e9",
        "a\\:b",
        "[href^=http]",
        "main>#hero  .cta",
    ],
)
def test_check_selector_accepts_plausible_selectors(selector):
    assert triggers.check_selector(f"  {selector} ") == selector


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("", "Enter the CSS selector of the elements to track, e.g. #product-image."),
        ("x" * 301, "Keep the selector under 300 characters."),
        ("a { color: red }", "A selector cannot contain braces, semicolons, “<” or line breaks."),
        ("<script>", "A selector cannot contain braces, semicolons, “<” or line breaks."),
        ("a\nb", "A selector cannot contain braces, semicolons, “<” or line breaks."),
        ("a[href", "This selector has an unclosed quote or bracket."),
        ("a[href='x]", "This selector has an unclosed quote or bracket."),
        ("a)", "This selector has an unmatched bracket."),
        (":not(a]", "This selector has an unmatched bracket."),
        ("nav >", "This selector ends in the middle: complete it after the last combinator."),
        (
            "###",
            "This is not a valid CSS selector: “#” at character 1 must be followed by a name, as in #product-image.",
        ),
        (
            "#1a",
            "This is not a valid CSS selector: “#” at character 1 must be followed by a name, as in #product-image.",
        ),
        (
            "a..b",
            "This is not a valid CSS selector: “.” at character 2 must be followed by a class name, as in .buy-now.",
        ),
        (
            "div >> p",
            "This is not a valid CSS selector: expected an element, #id, .class, [attribute] or :pseudo-class,"
            " not “>” at character 6.",
        ),
        (
            ".a,,.b",
            "This is not a valid CSS selector: expected an element, #id, .class, [attribute] or :pseudo-class,"
            " not “,” at character 4.",
        ),
        ("a:not()", "This is not a valid CSS selector: the parentheses at character 6 are empty."),
        ("a:", "This is not a valid CSS selector: expected a name after “:”, as in :hover, not the end."),
        ("[=x]", "This is not a valid CSS selector: expected an attribute name after “[”, not “=” at character 2."),
        (
            "[a=]",
            "This is not a valid CSS selector: expected a value, quoted or a plain word, after “=”,"
            " not “]” at character 4.",
        ),
        ("[a b]", "This is not a valid CSS selector: expected “]” to close the attribute, not “b” at character 4."),
        (
            "a !b",
            "This is not a valid CSS selector: expected an element, #id, .class, [attribute] or :pseudo-class,"
            " not “!” at character 3.",
        ),
    ],
)
def test_check_selector_refuses_with_a_message(selector, message):
    with pytest.raises(TriggerInvalid) as caught:
        triggers.check_selector(selector)
    assert (caught.value.field, caught.value.message) == ("selector", message)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("  ", "Enter the name of the event to send."),
        ("x" * 201, "Keep the event name under 200 characters."),
        ("$pageview", "Names starting with $ are reserved for Cohortly's own events."),
        ("a\tb", "An event name cannot contain line breaks or control characters."),
    ],
)
def test_check_event_name_refuses_with_a_message(name, message):
    with pytest.raises(TriggerInvalid) as caught:
        triggers.check_event_name(name)
    assert (caught.value.field, caught.value.message) == ("event_name", message)


def test_parse_thresholds_reads_commas_and_spaces():
    assert triggers.parse_thresholds(" 25, 50 75;100 ") == [25, 50, 75, 100]
    assert triggers.parse_thresholds("") == []
    with pytest.raises(TriggerInvalid, match=re.escape("“2.5” is not a whole number.")):
        triggers.parse_thresholds("2.5")
    with pytest.raises(TriggerInvalid, match=re.escape("“-5” is not a whole number.")):
        triggers.parse_thresholds("-5")


def test_check_thresholds_bounds_by_kind():
    assert triggers.check_thresholds("scroll", [75, 25, 25, 100]) == [25, 75, 100]
    assert triggers.check_thresholds("engaged_time", [180, 30]) == [30, 180]
    assert triggers.check_thresholds("click", [1, 2]) == []
    with pytest.raises(TriggerInvalid, match=re.escape("Thresholds are percentages from 1 to 100.")):
        triggers.check_thresholds("scroll", [101])
    with pytest.raises(TriggerInvalid, match=re.escape("Thresholds are seconds from 1 to 86400.")):
        triggers.check_thresholds("engaged_time", [0])
    with pytest.raises(TriggerInvalid, match=re.escape("Use at most 10 thresholds.")):
        triggers.check_thresholds("scroll", list(range(1, 12)))
    with pytest.raises(TriggerInvalid, match=re.escape("Enter at least one threshold.")):
        triggers.check_thresholds("scroll", [])


def test_check_fills_defaults_and_drops_what_the_kind_does_not_use():
    assert triggers.check("click", "#product-image", "", [25]) == triggers.TriggerSpec(
        "click", "#product-image", "Product Image Clicked", []
    )
    assert triggers.check("scroll", "#ignored", "", [50]) == triggers.TriggerSpec("scroll", "", "Page Scrolled", [50])
    assert triggers.check("engaged_time", "", " Read ", [180]) == triggers.TriggerSpec(
        "engaged_time", "", "Read", [180]
    )
    with pytest.raises(TriggerInvalid, match=re.escape("Choose click, scroll depth or engaged time.")):
        triggers.check("hover", "#a", "", [])


def test_an_invalid_selector_is_named_before_the_event_name_it_could_not_give():
    # "###" used to pass the checks and leave no words for a name: the message spoke of the event name
    with pytest.raises(TriggerInvalid) as caught:
        triggers.check("click", "###", "", [])
    assert caught.value.field == "selector"
    assert caught.value.message.startswith("This is not a valid CSS selector: “#” at character 1")

    # A valid selector without words still needs a name, and says why
    with pytest.raises(TriggerInvalid) as caught:
        triggers.check("click", "*", "", [])
    assert (caught.value.field, caught.value.message) == (
        "event_name",
        "Enter the name of the event to send: the selector has no words to name it after.",
    )
    assert triggers.check("click", "*", "Anything Clicked", []).event_name == "Anything Clicked"
