"""Campaign content: templates written by a workspace's users, rendered for one person.

Templates are Jinja2 in an immutable sandbox. They see two names and nothing else:
``person`` (``id``, ``user_id``, ``traits``) and ``event`` (``properties``, for event
triggers; empty otherwise). No settings, no globals (not even ``range``), no loader: a
template cannot reach the server's objects, include another template or import one.

What is refused, and where:

- at save (``template_problem``): syntax errors, ``{% include %}``, ``{% import %}``,
  ``{% from %}``, ``{% extends %}``, Django's ``{% load %}``, and any attribute or key
  starting with an underscore (``''.__class__.__mro__``), each with its line;
- at render (``render_variant`` raising ``RenderFailed``): the same, should a template
  reach the renderer unchecked, the sandbox's refusals (unsafe attributes, huge
  repetitions), errors in the data (dividing by zero, adding to a missing value), and a
  webhook body that is not JSON once rendered. A failure is one send's, with its reason.

A missing trait renders empty, and ``default`` applies to it:
``{{ person.traits.first_name | default("there") }}``; missing values chain
(``person.traits.address.city`` is empty when ``address`` is missing).

Kinds: ``html`` escapes every value (a trait ``<b>`` shows as text in the email);
``text`` writes values as they are (plain-text bodies, subjects, webhook URLs); ``json``
(webhook bodies) writes plain ``{{ value }}`` escaped for the inside of a JSON string
(quotes, backslashes, control characters), numbers and booleans as JSON literals, and
``{{ value | tojson }}`` as a complete JSON value (``null`` when missing), so
``{"name": "{{ person.traits.name }}", "plan": {{ person.traits.plan | tojson }}}``
is valid JSON whatever the traits hold. The rendered body must parse as JSON.

Compiled templates are cached by (kind, source): a campaign's thousands of sends compile
each of its templates once per process.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import unescape
from typing import TYPE_CHECKING, Any, Literal

from jinja2 import ChainableUndefined, Template, TemplateSyntaxError, Undefined, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

if TYPE_CHECKING:
    from campaigns.models import Variant

Kind = Literal["text", "html", "json"]

# A rendered template larger than this fails its send: no message needs more, and a loop
# over a large trait must not fill a worker's memory.
MAX_OUTPUT_CHARS = 1_000_000
# Repeating a string or list (``"x" * n``) or raising to a power is refused beyond this.
MAX_REPEAT_LENGTH = 100_000
MAX_EXPONENT = 100

_FORBIDDEN_TAGS: tuple[tuple[type[nodes.Node], str], ...] = (
    (nodes.Include, "{% include %}"),
    (nodes.Import, "{% import %}"),
    (nodes.FromImport, "{% from ... import %}"),
    (nodes.Extends, "{% extends %}"),
)
_UNKNOWN_TAG = re.compile(r"Encountered unknown tag '(\w+)'")


class RenderFailed(Exception):
    """A template could not be rendered for this person; ``reason`` says why (kept on the send)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PersonContext:
    """What a template knows of a person."""

    id: int
    user_id: str | None
    traits: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rendered:
    """A variant rendered for one person. Fields a channel does not use are empty.

    Email: ``subject``, ``html`` and ``text`` (derived from the HTML when the variant has
    no text). Webhook: ``url`` and ``json_body`` (the parsed body). On-site, all plain text:
    ``subject`` (the title), ``text`` (the message), ``url`` (the link, http or https only:
    anything else renders empty) and ``link_text`` (its label).
    """

    subject: str = ""
    html: str = ""
    text: str = ""
    url: str = ""
    json_body: Any = None
    link_text: str = ""


class _JsonValue(str):
    """A complete JSON value written by ``tojson`` in a JSON template: written as it is."""


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, refusing loudly: an unsafe attribute raises instead of rendering empty."""

    intercepted_binops = frozenset({"*", "**"})

    def unsafe_undefined(self, obj: Any, attribute: Any) -> Undefined:
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe.")

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise SecurityError(f"exponent larger than {MAX_EXPONENT}.")
        elif operator == "*":
            for sequence, count in ((left, right), (right, left)):
                repeated = isinstance(sequence, str | list | tuple) and isinstance(count, int)
                if repeated and len(sequence) * count > MAX_REPEAT_LENGTH:
                    raise SecurityError(f"repetition longer than {MAX_REPEAT_LENGTH}.")
        return super().call_binop(context, operator, left, right)


def _json_finalize(value: Any) -> str:
    if isinstance(value, _JsonValue):
        return value
    if isinstance(value, Undefined) or value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if not isinstance(value, str):
        value = json.dumps(value, default=str, ensure_ascii=False)
    # The inside of a JSON string: its quotes stripped off.
    return json.dumps(value, ensure_ascii=False)[1:-1]


def _json_tojson(value: Any) -> _JsonValue:
    if isinstance(value, Undefined):
        return _JsonValue("null")
    return _JsonValue(json.dumps(value, default=str, ensure_ascii=False))


def _environment(kind: Kind) -> _Sandbox:
    if kind == "json":
        environment = _Sandbox(autoescape=False, undefined=ChainableUndefined, finalize=_json_finalize, loader=None)
        environment.filters["tojson"] = _json_tojson
    else:
        environment = _Sandbox(autoescape=kind == "html", undefined=ChainableUndefined, loader=None)
    # No globals: ``range``, ``lipsum``, ``cycler``, ``joiner``, ``namespace`` and ``dict`` are gone.
    environment.globals.clear()
    return environment


_ENVIRONMENTS: dict[str, _Sandbox] = {kind: _environment(kind) for kind in ("text", "html", "json")}
# The save-time check of a JSON template renders missing values as 0: a body that is JSON
# when the traits are there is accepted; a person without them fails their own send.
_JSON_TRIAL = _environment("json")
_JSON_TRIAL.finalize = lambda value: "0" if isinstance(value, Undefined) else _json_finalize(value)


def _walk(node: nodes.Node) -> Iterator[nodes.Node]:
    """Children before their parent: ``''.__class__.__mro__`` is refused for ``__class__``."""
    for child in node.iter_child_nodes():
        yield from _walk(child)
    yield node


def _ast_problem(tree: nodes.Template) -> str | None:
    for node in _walk(tree):
        for node_type, tag in _FORBIDDEN_TAGS:
            if isinstance(node, node_type):
                return f"line {node.lineno}: {tag} is not allowed in a campaign template."
        name: Any = None
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            name = node.arg.value
        elif isinstance(node, nodes.Filter) and node.name in ("attr", "map") and node.args:
            first = node.args[0]
            name = first.value if isinstance(first, nodes.Const) else None
        if isinstance(name, str) and name.startswith("_"):
            return (
                f"line {node.lineno}: {name!r} cannot be read in a campaign template "
                "(names starting with _ are private)."
            )
    return None


def _syntax_problem(error: TemplateSyntaxError) -> str:
    unknown = _UNKNOWN_TAG.search(error.message or "")
    if unknown:
        tag = unknown.group(1)
        return f"line {error.lineno}: {{% {tag} %}} is not allowed in a campaign template (unknown tag {tag!r})."
    return f"line {error.lineno}: {error.message}"


class _Refused(Exception):
    pass


@functools.lru_cache(maxsize=2048)
def _compiled(kind: Kind, source: str) -> Template:
    """The compiled template, or ``_Refused`` with the reason (both cached)."""
    environment = _ENVIRONMENTS[kind]
    try:
        tree = environment.parse(source)
    except TemplateSyntaxError as error:
        raise _Refused(_syntax_problem(error)) from None
    problem = _ast_problem(tree)
    if problem:
        raise _Refused(problem)
    return environment.from_string(tree)


_SAMPLE_CONTEXT = {"person": {"id": 1, "user_id": "user", "traits": {}}, "event": {"properties": {}}}


def template_problem(source: str, *, kind: Kind) -> str | None:
    """Why ``source`` cannot be saved as a template of this kind, with its line; ``None`` if it can.

    A JSON template is also rendered for a person with no traits, missing values written as
    ``0``: what is not JSON then (a missing quote or comma) is refused. Errors that depend on
    the data are not refused here: they fail the sends they happen to (a missing value outside
    quotes, ``"age": {{ person.traits.age }}``, is better written ``| tojson``).
    """
    try:
        _compiled(kind, source)
    except _Refused as refused:
        return str(refused)
    if kind == "json" and source.strip():
        try:
            output = _JSON_TRIAL.from_string(source).render(_SAMPLE_CONTEXT)
        except Exception:  # data-dependent: the send that meets it fails with its reason
            return None
        try:
            json.loads(output)
        except json.JSONDecodeError as error:
            return f"not valid JSON once rendered ({error.msg} at line {error.lineno}, column {error.colno})."
    return None


def render(source: str, *, kind: Kind, person: PersonContext, event_properties: dict[str, Any] | None) -> str:
    """``source`` rendered for ``person``; ``RenderFailed`` with the reason."""
    if "{" not in source and "\r" not in source and not source.endswith("\n") and len(source) <= MAX_OUTPUT_CHARS:
        # No tag, expression or comment (each starts with a brace), and nothing Jinja would
        # change (line ends, a last newline): the text is its own rendering, as a constant
        # webhook URL or subject is for every person of a campaign.
        return source
    try:
        template = _compiled(kind, source)
    except _Refused as refused:
        raise RenderFailed(str(refused)) from None
    context = {
        "person": {"id": person.id, "user_id": person.user_id, "traits": dict(person.traits)},
        "event": {"properties": dict(event_properties or {})},
    }
    try:
        output = template.render(context)
    except SecurityError as error:
        raise RenderFailed(f"refused by the sandbox: {error}") from None
    except Exception as error:  # one person's template failing must not fail the campaign
        raise RenderFailed(f"{type(error).__name__}: {error}") from None
    if len(output) > MAX_OUTPUT_CHARS:
        raise RenderFailed(f"the rendered template is longer than {MAX_OUTPUT_CHARS} characters.")
    return output


def render_variant(
    *, variant: Variant, channel: str, person: PersonContext, event_properties: dict[str, Any] | None
) -> Rendered:
    """The variant's content for ``person`` on ``channel``; ``RenderFailed`` naming the field."""

    def field_render(name: str, source: str, kind: Kind) -> str:
        try:
            return render(source, kind=kind, person=person, event_properties=event_properties)
        except RenderFailed as failed:
            raise RenderFailed(f"{name}: {failed.reason}") from None

    if channel == "email":
        html = field_render("body", variant.body, "html")
        text = field_render("text", variant.text, "text") if variant.text.strip() else text_from_html(html)
        subject = " ".join(field_render("subject", variant.subject, "text").split())
        return Rendered(subject=subject, html=html, text=text)
    if channel == "webhook":
        url = field_render("url", variant.url, "text").strip()
        if variant.body.strip():
            body = field_render("body", variant.body, "json")
            try:
                json_body = json.loads(body)
            except json.JSONDecodeError as error:
                raise RenderFailed(
                    f"body: not valid JSON once rendered ({error.msg} at line {error.lineno}, column {error.colno})."
                ) from None
        else:
            json_body = {"person": {"id": person.id, "user_id": person.user_id, "traits": dict(person.traits)}}
            if event_properties is not None:
                json_body["event"] = {"properties": event_properties}
        return Rendered(url=url, json_body=json_body)
    subject = " ".join(field_render("subject", variant.subject, "text").split())
    link = field_render("url", variant.url, "text").strip() if variant.url.strip() else ""
    if not _SAFE_LINK.match(link):
        link = ""  # a trait made it something else than an http(s) address: no link rather than a javascript: one
    link_text = " ".join(field_render("text", variant.text, "text").split()) if link else ""
    return Rendered(
        subject=subject, text=field_render("body", variant.body, "text").strip(), url=link, link_text=link_text
    )


# An on-site link as rendered: http(s), a host, and no whitespace or control character anywhere.
_SAFE_LINK = re.compile(r"^https?://[^\s/?#\x00-\x1f\x7f]+[^\s\x00-\x1f\x7f]*$", re.IGNORECASE)


# -- plain text from HTML ---------------------------------------------------------------

# Regular expressions rather than a parser: the text of every email of a chunk is derived
# here, and a parser costs more than the rest of the message. Email HTML is simple markup.
_SKIPPED = re.compile(r"<(script|style|head|title)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_ANCHOR = re.compile(r"""<a\b[^>]*?\bhref\s*=\s*(["'])(.*?)\1[^>]*>(.*?)</a\s*>""", re.IGNORECASE | re.DOTALL)
_IMAGE_ALT = re.compile(r"""<img\b[^>]*?\balt\s*=\s*(["'])(.*?)\1[^>]*>""", re.IGNORECASE | re.DOTALL)
_PARAGRAPH = re.compile(r"</?(p|h[1-6]|table|blockquote|pre)\b[^>]*>", re.IGNORECASE)
_LIST_ITEM = re.compile(r"<li\b[^>]*>", re.IGNORECASE)
_LINE = re.compile(
    r"</?(address|article|aside|br|dd|div|dl|dt|figcaption|figure|footer|form|header|hr|main|nav|ol|section|tr|ul)"
    r"\b[^>]*>",
    re.IGNORECASE,
)
_TAG = re.compile(r"<[^>]*>")
_SPACES = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def _anchor_text(match: re.Match[str]) -> str:
    href = unescape(match.group(2)).strip()
    text = _TAG.sub("", match.group(3))
    shown = " ".join(unescape(text).split())
    if href.startswith(("http://", "https://", "mailto:")) and href != shown:
        return f"{text} ({href})" if shown else href
    return text


def text_from_html(html: str) -> str:
    """A plain-text version of an HTML body: blocks become lines, list items ``- ``, links show their address."""
    text = _COMMENT.sub("", _SKIPPED.sub("", html))
    text = _ANCHOR.sub(_anchor_text, text)
    text = _IMAGE_ALT.sub(lambda m: m.group(2), text)
    text = _PARAGRAPH.sub("\n\n", text)
    text = _LIST_ITEM.sub("\n- ", text)
    text = _LINE.sub("\n", _TAG.sub(lambda m: m.group(0) if _LINE.fullmatch(m.group(0)) else "", text))
    text = unescape(text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
