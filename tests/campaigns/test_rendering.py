"""Campaign templates: what they see, what is refused at save, what fails one send at render."""

from __future__ import annotations

import json

import pytest

from campaigns.models import Variant
from campaigns.rendering import (
    PersonContext,
    Rendered,
    RenderFailed,
    render,
    render_variant,
    template_problem,
    text_from_html,
)

ADA = PersonContext(id=7, user_id="ada", traits={"first_name": "Ada", "plan": "pro", "age": 36})


def _render(source: str, kind: str = "text", person: PersonContext = ADA, event: dict | None = None) -> str:
    return render(source, kind=kind, person=person, event_properties=event)  # type: ignore[arg-type]


def test_templates_see_traits_user_id_and_event_properties():
    # Given a template using each name
    source = "{{ person.traits.first_name }} {{ person.user_id }} {{ person.id }} {{ event.properties.sku }}"
    # When rendered for Ada with an event
    # Then each is filled in
    assert _render(source, event={"sku": "A-1"}) == "Ada ada 7 A-1"


def test_a_missing_trait_renders_empty_and_default_applies():
    nobody = PersonContext(id=1, user_id=None, traits={})
    assert _render("Hi {{ person.traits.first_name }}!", person=nobody) == "Hi !"
    assert _render('Hi {{ person.traits.first_name | default("there") }}', person=nobody) == "Hi there"
    assert _render('Hi {{ person.traits.first_name | default("there") }}') == "Hi Ada"
    # missing values chain, and there is no event outside event triggers
    assert _render("[{{ person.traits.address.city }}|{{ event.properties.sku }}]", person=nobody) == "[|]"


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("{{ ''.__class__.__mro__ }}", "line 1: '__class__' cannot be read in a campaign template"),
        ("{{ person['__class__'] }}", "line 1: '__class__' cannot be read in a campaign template"),
        ("x\n{{ ''|attr('__globals__') }}", "line 2: '__globals__' cannot be read in a campaign template"),
        ("{% load static %}", "line 1: {% load %} is not allowed in a campaign template"),
        ("a\nb\n{% include 'base.html' %}", "line 3: {% include %} is not allowed in a campaign template"),
        ("{% import 'x.html' as x %}", "line 1: {% import %} is not allowed in a campaign template"),
        ("{% from 'x.html' import y %}", "line 1: {% from ... import %} is not allowed in a campaign template"),
        ("{% extends 'base.html' %}", "line 1: {% extends %} is not allowed in a campaign template"),
        ("Hello {{ person.traits.name ", "line 1: unexpected end of template"),
    ],
)
def test_dangerous_or_broken_templates_are_refused_at_save_with_their_line(source, problem):
    for kind in ("text", "html"):
        found = template_problem(source, kind=kind)
        assert found is not None
        assert found.startswith(problem), found
        # and, should one reach the renderer, it fails the send with the same reason
        with pytest.raises(RenderFailed) as failed:
            _render(source, kind)
        assert failed.value.reason == found


def test_sound_templates_have_no_problem():
    assert template_problem('Hi {{ person.traits.first_name | default("there") }}', kind="text") is None
    assert template_problem("<p>{{ person.traits.plan | upper }}</p>", kind="html") is None
    assert template_problem("", kind="json") is None


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("{{ person.traits|attr(person.traits.key) }}", "refused by the sandbox: access to attribute '__class__'"),
        ("{{ person.traits.pop('plan') }}", "refused by the sandbox: access to attribute 'pop' of 'dict'"),
        ("{{ 'x' * 10000000 }}", "refused by the sandbox: repetition longer than 100000"),
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
    ],
)
def test_what_only_the_render_meets_fails_that_send_with_its_reason(source, reason):
    # Given a name only the data supplies (not refusable at save)
    assert template_problem(source, kind="text") is None
    # When rendered, Then the send fails with the reason
    with pytest.raises(RenderFailed) as failed:
        render(source, kind="text", person=_with(key="__class__"), event_properties=None)
    assert failed.value.reason.startswith(reason), failed.value.reason


def _with(**traits) -> PersonContext:
    return PersonContext(id=ADA.id, user_id=ADA.user_id, traits={**ADA.traits, **traits})


def test_no_settings_globals_or_server_objects_are_reachable():
    # settings, range, lipsum, cycler, namespace, config, request: none of them is defined
    source = "[{{ settings }}{{ settings.SECRET_KEY }}{{ config }}{{ request }}{{ range }}{{ lipsum }}{{ namespace }}]"
    assert _render(source) == "[]"
    with pytest.raises(RenderFailed):
        _render("{% for i in range(3) %}{{ i }}{% endfor %}")


def test_traits_holding_html_are_escaped_in_html_and_kept_in_text():
    evil = _with(first_name='<script>alert(1)</script><a href="x">')
    assert _render("<p>Hi {{ person.traits.first_name }}</p>", "html", evil) == (
        "<p>Hi &lt;script&gt;alert(1)&lt;/script&gt;&lt;a href=&#34;x&#34;&gt;</p>"
    )
    assert _render("Hi {{ person.traits.first_name }}", "text", evil) == 'Hi <script>alert(1)</script><a href="x">'


def test_json_templates_escape_values_inside_strings_and_write_tojson_values_whole():
    # Given traits that would break a naive JSON body
    tricky = _with(first_name='Ada "the" \\ \n countess', tags=["a", "b"])
    source = (
        '{"name": "{{ person.traits.first_name }}", "age": {{ person.traits.age }}, '
        '"tags": {{ person.traits.tags | tojson }}, "missing": {{ person.traits.nope | tojson }}, '
        '"pro": {{ (person.traits.plan == "pro") | tojson }}}'
    )
    assert template_problem(source, kind="json") is None
    # When rendered, Then it parses, with every value intact
    assert json.loads(_render(source, "json", tricky)) == {
        "name": 'Ada "the" \\ \n countess',
        "age": 36,
        "tags": ["a", "b"],
        "missing": None,
        "pro": True,
    }


def test_a_json_template_that_is_not_json_is_refused_at_save_and_a_missing_value_fails_its_send():
    assert template_problem('{"a": "{{ person.id }}"', kind="json") == (
        "not valid JSON once rendered (Expecting ',' delimiter at line 1, column 10)."
    )
    # a value written bare is accepted (it is JSON when the trait is there) ...
    bare = '{"score": {{ person.traits.score }}}'
    assert template_problem(bare, kind="json") is None
    variant = Variant(url="https://hooks.example.com/in", body=bare)
    assert render_variant(
        variant=variant, channel="webhook", person=_with(score=3), event_properties=None
    ).json_body == {"score": 3}
    # ... and fails the send of a person without it, with the reason
    with pytest.raises(RenderFailed) as failed:
        render_variant(variant=variant, channel="webhook", person=ADA, event_properties=None)
    assert failed.value.reason == "body: not valid JSON once rendered (Expecting value at line 1, column 11)."


def test_an_email_variant_renders_subject_html_and_text_derived_from_the_html():
    variant = Variant(
        subject="Hi {{ person.traits.first_name }},\n welcome",
        body=(
            "<html><head><style>p{}</style></head><body><h1>Welcome, {{ person.traits.first_name }}</h1>"
            '<p>Your plan: <a href="https://shop.example/plans?p={{ person.traits.plan }}&amp;x=1">'
            "{{ person.traits.plan }}</a></p>"
            "<ul><li>one</li><li>two</li></ul></body></html>"
        ),
    )
    rendered = render_variant(variant=variant, channel="email", person=ADA, event_properties=None)
    assert rendered.subject == "Hi Ada, welcome"
    assert rendered.text == "Welcome, Ada\n\nYour plan: pro (https://shop.example/plans?p=pro&x=1)\n\n- one\n- two"
    # a text version given by the variant is used as it is
    variant.text = "Plain {{ person.traits.first_name }}"
    assert render_variant(variant=variant, channel="email", person=ADA, event_properties=None).text == "Plain Ada"


def test_a_webhook_variant_without_a_body_sends_the_person_and_the_event():
    variant = Variant(url="https://hooks.example.com/{{ person.user_id }}", body="")
    assert render_variant(variant=variant, channel="webhook", person=ADA, event_properties={"sku": "A"}) == Rendered(
        url="https://hooks.example.com/ada",
        json_body={"person": {"id": 7, "user_id": "ada", "traits": ADA.traits}, "event": {"properties": {"sku": "A"}}},
    )


def test_a_failure_names_the_field_it_happened_in():
    variant = Variant(subject="{{ 1 / 0 }}", body="<p>fine</p>")
    with pytest.raises(RenderFailed) as failed:
        render_variant(variant=variant, channel="email", person=ADA, event_properties=None)
    assert failed.value.reason == "subject: ZeroDivisionError: division by zero"


def test_text_from_html_drops_scripts_and_keeps_link_addresses():
    html = "<script>x()</script><p>A &amp; B <a href='mailto:a@b.c'>write</a> <a href='https://x.y'>https://x.y</a></p>"
    assert text_from_html(html) == "A & B write (mailto:a@b.c) https://x.y"
