"""A campaign body (rest-api.md, "Campaigns") read into a :class:`CampaignSpec`, or refused with
every problem keyed by its path in the body (``audience.segments[0]``, ``variants[1].subject``).

The reading is pure: what needs the database (which segments are the workspace's, whether a
webhook host resolves to a public address) comes in as callables, so the rules can be read,
and tested, in one place. ``campaigns.services`` calls it before writing anything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from campaigns.models import CampaignKind, Channel, SendTime, TriggerOn
from core.names import name_key
from segmentation.definition import parse_duration, parse_timestamp

MAX_VARIANTS = 5
MAX_HOLDOUT_PERCENT = 90
MAX_WEIGHT = 1_000_000
MAX_EVENT_LENGTH = 200
MAX_VARIANT_NAME = 50
MAX_SUBJECT = 500
MAX_URL = 2000
MAX_BODY = 200_000
MAX_DESCRIPTION = 2000
MAX_AUDIENCE_SEGMENTS = 50
MAX_CONTROL_PERCENT = 50
DEFAULT_CONTROL_PERCENT = 10
MIN_TEST_PERCENT, MAX_TEST_PERCENT = 1, 90
MAX_WINNER_WAIT = 30 * 86_400
AUTO_WINNER_FIELDS = ("test_percent", "wait", "default_variant")

# What each channel's variants hold besides name and weight, and the template kind of each.
VARIANT_FIELDS: dict[str, dict[str, str]] = {
    Channel.EMAIL: {"subject": "text", "body": "html", "text": "text"},
    Channel.WEBHOOK: {"url": "text", "body": "json"},
    # On-site: the title, the message, an optional link and its label; all plain text (the snippet
    # writes them with textContent). ``format`` (banner or modal) is not a template: see ONSITE_FORMATS.
    Channel.ONSITE: {"subject": "text", "body": "text", "url": "text", "text": "text"},
}
# An on-site variant's ``format``: how the snippet shows it (default: a banner).
ONSITE_FORMATS = ("banner", "modal")
# The fixed start of an on-site link: the browser follows it, so http(s) only (no javascript:, data:).
_ONSITE_LINK = re.compile(r"^https?://[^\s/?#{}]+", re.IGNORECASE)
# Fields of the campaign document the server writes: refused in a body, by name.
READ_ONLY = ("id", "status", "created_at", "launched_at", "progress")
FIELDS = (
    "name",
    "description",
    "channel",
    "kind",
    "trigger",
    "audience",
    "variants",
    "holdout_percent",
    "goal",
    "once_per_person",
    "reeligible_after",
    "send_at",
    "local_time",
    "send_time",
    "send_time_control_percent",
    "auto_winner",
)

Errors = dict[str, list[str]]
# Why a template is refused (``campaigns.rendering.template_problem``), or None.
TemplateCheck = Callable[[str, str], str | None]
# Why a webhook URL is refused (syntax, a private target), or None.
UrlCheck = Callable[[str], str | None]


@dataclass(frozen=True)
class VariantSpec:
    name: str
    weight: int
    subject: str = ""
    body: str = ""
    text: str = ""
    url: str = ""
    format: str = ""


@dataclass
class CampaignSpec:
    """Everything a campaign row, its audience and its variants are written from."""

    name: str
    description: str
    channel: str
    kind: str
    trigger: dict[str, Any] | None
    trigger_on: str
    trigger_segment_id: int | None
    trigger_event: str
    delay_seconds: int
    exit_event: str
    include: list[int]
    exclude: list[int]
    variants: list[VariantSpec]
    holdout_percent: int
    goal: dict[str, str] | None
    goal_event: str
    goal_within: str
    goal_within_seconds: int | None
    once_per_person: bool
    reeligible_after: str
    reeligible_after_seconds: int | None
    send_at: datetime | None
    local_time: bool
    send_time: str = SendTime.AT_SEND_AT
    send_time_control_percent: int = DEFAULT_CONTROL_PERCENT
    auto_winner: dict[str, Any] | None = None
    errors: Errors = field(default_factory=dict)


class _Reader:
    def __init__(self) -> None:
        self.errors: Errors = {}

    def error(self, path: str, message: str) -> None:
        self.errors.setdefault(path, []).append(message)

    def string(
        self, value: Any, path: str, *, max_length: int, required: bool = False, blank_ok: bool = True
    ) -> str | None:
        if value is None and not required:
            return ""
        if not isinstance(value, str):
            self.error(path, f"Expected a string, got {_type(value)}.")
            return None
        if "\x00" in value:
            self.error(path, "Must not contain the NUL character.")
            return None
        if (required or not blank_ok) and not value.strip():
            self.error(path, "This field may not be blank.")
            return None
        if len(value) > max_length:
            self.error(path, f"At most {max_length} characters (this has {len(value)}).")
            return None
        return value

    def event_name(self, value: Any, path: str) -> str | None:
        name = self.string(value, path, max_length=MAX_EVENT_LENGTH, required=True)
        return name.strip() if name is not None else None

    def boolean(self, value: Any, path: str) -> bool | None:
        if not isinstance(value, bool):
            self.error(path, f"Expected true or false, got {_type(value)}.")
            return None
        return value

    def integer(self, value: Any, path: str, *, minimum: int, maximum: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(path, f"Expected a whole number, got {_type(value)}.")
            return None
        if not minimum <= value <= maximum:
            self.error(path, f"Must be from {minimum} to {maximum}, not {value}.")
            return None
        return value

    def duration(self, value: Any, path: str) -> tuple[str, int] | None:
        parsed = parse_duration(value)
        if parsed is None:
            self.error(path, f'Expected a duration such as "30m", "48h", "7d" or "4w", not {value!r}.')
            return None
        return parsed.text, parsed.seconds

    def mapping(self, value: Any, path: str, allowed: Iterable[str]) -> Mapping[str, Any] | None:
        if not isinstance(value, Mapping):
            self.error(path, f"Expected an object, got {_type(value)}.")
            return None
        known = set(allowed)
        for key in value:
            if key not in known:
                self.error(f"{path}.{key}", f"Unknown field; expected {', '.join(sorted(known))}.")
        return value


def _type(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def campaign_read(
    data: Any,
    *,
    known_segments: Callable[[set[int]], set[int]],
    template_check: TemplateCheck,
    url_check: UrlCheck,
) -> CampaignSpec | Errors:
    """The spec of a whole campaign body, or its errors by path (nothing is partial).

    ``known_segments(ids)``: which of ``ids`` are segments of the workspace (another
    workspace's id is as unknown as a missing one, and its message says no more).
    """
    r = _Reader()
    if not isinstance(data, Mapping):
        return {"": [f"Expected a JSON object, got {_type(data)}."]}
    for key in data:
        if key in READ_ONLY:
            r.error(key, "Read-only: the server sets it (launch and pause change the status).")
        elif key not in FIELDS:
            r.error(key, "Unknown field.")

    name = r.string(data.get("name"), "name", max_length=10_000, required=True)
    description = r.string(data.get("description", ""), "description", max_length=MAX_DESCRIPTION)

    channel = data.get("channel")
    if channel not in VARIANT_FIELDS:
        r.error("channel", f"One of {', '.join(VARIANT_FIELDS)}, not {channel!r}.")
        channel = None
    kind = data.get("kind")
    if kind not in CampaignKind.values:
        r.error("kind", f"One of {', '.join(CampaignKind.values)}, not {kind!r}.")
        kind = None

    wanted_segments: set[int] = set()
    trigger = _trigger(r, data.get("trigger"), kind, wanted_segments)
    include, exclude = _audience(r, data.get("audience"), kind, wanted_segments)
    variants = _variants(r, data.get("variants"), channel, template_check, url_check)

    holdout = r.integer(data.get("holdout_percent", 0), "holdout_percent", minimum=0, maximum=MAX_HOLDOUT_PERCENT)

    goal: dict[str, str] | None = None
    goal_seconds: int | None = None
    raw_goal = data.get("goal")
    if raw_goal is not None and r.mapping(raw_goal, "goal", ("event", "within")) is not None:
        event = r.event_name(raw_goal.get("event"), "goal.event")
        if "within" not in raw_goal:
            r.error("goal.within", "Required: how long after the send a conversion counts.")
        within = r.duration(raw_goal.get("within"), "goal.within") if "within" in raw_goal else None
        if event is not None and within is not None:
            goal, goal_seconds = {"event": event, "within": within[0]}, within[1]

    once = r.boolean(data.get("once_per_person", True), "once_per_person")
    reeligible: tuple[str, int] | None = None
    if data.get("reeligible_after") is not None:
        reeligible = r.duration(data["reeligible_after"], "reeligible_after")
        if once:
            r.error("reeligible_after", "Only with once_per_person false: a person gets it again after this long.")

    send_at: datetime | None = None
    if data.get("send_at") is not None:
        send_at = parse_timestamp(data["send_at"])
        if send_at is None:
            r.error("send_at", f"Expected an ISO-8601 date and time, not {data['send_at']!r}.")
        elif kind == CampaignKind.TRIGGERED:
            r.error("send_at", "Only a broadcast has a send time; a triggered campaign sends on its trigger.")
    local_time = r.boolean(data.get("local_time", False), "local_time")
    if local_time and kind == CampaignKind.TRIGGERED:
        r.error("local_time", "Only a broadcast is sent at a local time.")
    elif local_time and data.get("send_at") is None:
        r.error("local_time", "Needs send_at: the time of day to send at in each person's timezone.")

    send_time, control = _send_time(r, data, kind, local_time)
    auto_winner = _auto_winner(r, data.get("auto_winner"), kind, variants, raw_goal, send_time, local_time)

    unknown = wanted_segments - known_segments(wanted_segments) if wanted_segments else set()
    for path, pk in _segment_paths(data):
        if isinstance(pk, int) and pk in unknown:  # a malformed id (an object) was refused already
            r.error(path, f"No segment with id {pk} in this workspace.")

    if r.errors:
        return r.errors
    assert name is not None
    assert description is not None
    assert channel is not None
    assert kind is not None
    assert holdout is not None
    assert once is not None
    assert local_time is not None
    assert variants is not None
    trigger_doc, trigger_on, trigger_segment, trigger_event, delay, exit_event = trigger or (None, "", None, "", 0, "")
    return CampaignSpec(
        name=name,
        description=description,
        channel=channel,
        kind=kind,
        trigger=trigger_doc,
        trigger_on=trigger_on,
        trigger_segment_id=trigger_segment,
        trigger_event=trigger_event,
        delay_seconds=delay,
        exit_event=exit_event,
        include=include,
        exclude=exclude,
        variants=variants,
        holdout_percent=holdout,
        goal=goal,
        goal_event=goal["event"] if goal else "",
        goal_within=goal["within"] if goal else "",
        goal_within_seconds=goal_seconds,
        once_per_person=once,
        reeligible_after=reeligible[0] if reeligible else "",
        reeligible_after_seconds=reeligible[1] if reeligible else None,
        send_at=send_at,
        local_time=local_time,
        send_time=send_time,
        send_time_control_percent=control,
        auto_winner=auto_winner,
    )


def _send_time(r: _Reader, data: Mapping[str, Any], kind: str | None, local_time: bool | None) -> tuple[str, int]:
    """``send_time`` (null or "best_hour") and the control share of a best-hour broadcast."""
    send_time = data.get("send_time")
    if send_time is None:
        send_time = SendTime.AT_SEND_AT
    elif send_time != SendTime.BEST_HOUR:
        r.error("send_time", f'null (at send_at, or at launch) or "best_hour", not {send_time!r}.')
        send_time = SendTime.AT_SEND_AT
    elif kind == CampaignKind.TRIGGERED:
        r.error("send_time", "Only a broadcast is sent at each person's best hour.")
    elif local_time:
        r.error("send_time", "Either local_time or best_hour: a send has one time.")
    control = r.integer(
        data.get("send_time_control_percent", DEFAULT_CONTROL_PERCENT),
        "send_time_control_percent",
        minimum=0,
        maximum=MAX_CONTROL_PERCENT,
    )
    return str(send_time), control if control is not None else DEFAULT_CONTROL_PERCENT


def _auto_winner(
    r: _Reader,
    raw: Any,
    kind: str | None,
    variants: list[VariantSpec] | None,
    goal: Any,
    send_time: str,
    local_time: bool | None,
) -> dict[str, Any] | None:
    """``{"test_percent", "wait", "default_variant"}`` as given (the wait as its normal text), or None."""
    if raw is None:
        return None
    if r.mapping(raw, "auto_winner", AUTO_WINNER_FIELDS) is None:
        return None
    problems = len(r.errors)
    if kind == CampaignKind.TRIGGERED:
        r.error("auto_winner", "Only a broadcast picks a winner; a triggered campaign keeps its split.")
    if variants is not None and len(variants) < 2:
        r.error("auto_winner", "Needs 2 or more variants to pick from.")
    if goal is None:
        r.error("auto_winner", "Needs a goal: the winner is the variant with the best goal conversion.")
    if send_time == SendTime.BEST_HOUR or local_time:
        r.error(
            "auto_winner",
            "Not with local_time or best_hour: the test share's sends would still be spread out when the wait ends.",
        )
    test = r.integer(
        raw.get("test_percent", 20), "auto_winner.test_percent", minimum=MIN_TEST_PERCENT, maximum=MAX_TEST_PERCENT
    )
    wait: tuple[str, int] | None = None
    if "wait" not in raw:
        r.error("auto_winner.wait", 'Required: how long to test before choosing, e.g. "4h".')
    else:
        wait = r.duration(raw["wait"], "auto_winner.wait")
        if wait is not None and not 60 <= wait[1] <= MAX_WINNER_WAIT:
            r.error("auto_winner.wait", "From 1 minute to 30 days.")
    default = raw.get("default_variant")
    names = [name_key(v.name) for v in variants or []]
    if default is None and variants:
        default = variants[0].name
    elif not isinstance(default, str) or (variants is not None and name_key(default) not in names):
        r.error(
            "auto_winner.default_variant",
            f"The name of one of the variants ({', '.join(v.name for v in variants or [])}), not {default!r}.",
        )
    if len(r.errors) > problems or test is None or wait is None:
        return None
    return {"test_percent": test, "wait": wait[0], "default_variant": default}


def _segment_id(r: _Reader, value: Any, path: str) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        r.error(path, f"Expected a segment id (a whole number), got {value!r}.")
        return None
    return value


def _segment_paths(data: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Every place a body names a segment, with its path."""
    paths: list[tuple[str, Any]] = []
    trigger = data.get("trigger")
    if isinstance(trigger, Mapping) and "segment" in trigger:
        paths.append(("trigger.segment", trigger["segment"]))
    audience = data.get("audience")
    if isinstance(audience, Mapping):
        for key in ("segments", "exclude"):
            if isinstance(audience.get(key), list):
                paths.extend((f"audience.{key}[{index}]", pk) for index, pk in enumerate(audience[key]))
    return paths


TriggerParts = tuple[dict[str, Any], str, int | None, str, int, str]


def _trigger(r: _Reader, raw: Any, kind: str | None, segments: set[int]) -> TriggerParts | None:
    if kind == CampaignKind.BROADCAST:
        if raw is not None:
            r.error("trigger", "A broadcast has no trigger (null); a triggered campaign has one.")
        return None
    if raw is None:
        if kind == CampaignKind.TRIGGERED:
            r.error(
                "trigger",
                'Required for a triggered campaign: {"on": "segment_entry", "segment": id} '
                'or {"on": "event", "event": name}.',
            )
        return None
    on = raw.get("on") if isinstance(raw, Mapping) else None
    allowed = ["on", "delay", "exit_event", "segment" if on == TriggerOn.SEGMENT_ENTRY else "event"]
    if r.mapping(raw, "trigger", allowed) is None:
        return None
    document: dict[str, Any] = {"on": on}
    segment: int | None = None
    event = ""
    if on == TriggerOn.SEGMENT_ENTRY:
        segment = _segment_id(r, raw.get("segment"), "trigger.segment")
        if segment is not None:
            segments.add(segment)
            document["segment"] = segment
    elif on == TriggerOn.EVENT:
        event = r.event_name(raw.get("event"), "trigger.event") or ""
        document["event"] = event
    else:
        r.error("trigger.on", f"One of {', '.join(TriggerOn.values)}, not {on!r}.")
    delay = 0
    if raw.get("delay") is not None:
        parsed = r.duration(raw["delay"], "trigger.delay")
        if parsed is not None:
            document["delay"], delay = parsed
    exit_event = ""
    if raw.get("exit_event") is not None:
        exit_event = r.event_name(raw["exit_event"], "trigger.exit_event") or ""
        document["exit_event"] = exit_event
    return document, str(on), segment, event, delay, exit_event


def _audience(r: _Reader, raw: Any, kind: str | None, segments: set[int]) -> tuple[list[int], list[int]]:
    lists: dict[str, list[int]] = {"segments": [], "exclude": []}
    if raw is None and kind == CampaignKind.TRIGGERED:
        return [], []
    if raw is None:
        r.error("audience", 'Required: {"segments": [ids], "exclude": [ids]}.')
        return [], []
    if r.mapping(raw, "audience", lists) is None:
        return [], []
    for key, ids in lists.items():
        value = raw.get(key, [])
        if not isinstance(value, list):
            r.error(f"audience.{key}", f"Expected a list of segment ids, got {_type(value)}.")
            continue
        if len(value) > MAX_AUDIENCE_SEGMENTS:
            r.error(f"audience.{key}", f"At most {MAX_AUDIENCE_SEGMENTS} segments.")
            continue
        for index, item in enumerate(value):
            pk = _segment_id(r, item, f"audience.{key}[{index}]")
            if pk is None:
                continue
            if pk in ids:
                r.error(f"audience.{key}[{index}]", f"Segment {pk} is listed twice.")
                continue
            ids.append(pk)
            segments.add(pk)
    for index, pk in enumerate(lists["exclude"]):
        if pk in lists["segments"]:
            r.error(f"audience.exclude[{index}]", f"Segment {pk} is both included and excluded.")
    if kind == CampaignKind.BROADCAST and isinstance(raw.get("segments", []), list) and not raw.get("segments"):
        r.error("audience.segments", "A broadcast needs at least one segment to send to.")
    return lists["segments"], lists["exclude"]


def _variants(
    r: _Reader, raw: Any, channel: str | None, template_check: TemplateCheck, url_check: UrlCheck
) -> list[VariantSpec] | None:
    if not isinstance(raw, list):
        r.error("variants", f"Expected a list of 1 to {MAX_VARIANTS} variants, got {_type(raw)}.")
        return None
    if not 1 <= len(raw) <= MAX_VARIANTS:
        r.error("variants", f"From 1 to {MAX_VARIANTS} variants (2 or more make an A/B split), not {len(raw)}.")
        return None
    variants: list[VariantSpec] = []
    seen: dict[str, int] = {}
    contents = VARIANT_FIELDS.get(channel or "", {})
    allowed = (*contents, "format") if channel == Channel.ONSITE else tuple(contents)
    for index, item in enumerate(raw):
        path = f"variants[{index}]"
        if not isinstance(item, Mapping):
            r.error(path, f"Expected an object, got {_type(item)}.")
            continue
        if channel is not None:
            for key in item:
                if key not in ("name", "weight", *allowed):
                    r.error(
                        f"{path}.{key}",
                        f"Not a field of a {channel} variant ({', '.join(['name', 'weight', *allowed])}).",
                    )
        default_name = chr(ord("A") + index)
        name = r.string(item.get("name", default_name), f"{path}.name", max_length=MAX_VARIANT_NAME, required=True)
        if name is not None:
            name = name.strip()
            if name_key(name) in seen:
                r.error(f"{path}.name", f"Variant {seen[name_key(name)] + 1} has this name already.")
            seen.setdefault(name_key(name), index)
        weight = r.integer(item.get("weight", 1), f"{path}.weight", minimum=1, maximum=MAX_WEIGHT)
        values: dict[str, str] = {}
        for key, template_kind in contents.items():
            value = item.get(key, "")
            if key == "body" and channel == Channel.WEBHOOK and isinstance(value, dict | list):
                value = _json_text(value)
            limit = {"subject": MAX_SUBJECT, "url": MAX_URL}.get(key, MAX_BODY)
            required = key in REQUIRED_CONTENT.get(channel or "", ())
            text = r.string(value, f"{path}.{key}", max_length=limit, required=required)
            if text is None:
                continue
            if text.strip():
                problem = template_check(text, template_kind)
                if problem is None and key == "url":
                    problem = _onsite_link_problem(text) if channel == Channel.ONSITE else url_check(text)
                if problem is not None:
                    r.error(f"{path}.{key}", problem)
                    continue
            values[key] = text.strip() if key == "url" else text
        if channel == Channel.ONSITE:
            shown_as = item.get("format", "banner")
            if shown_as not in ONSITE_FORMATS:
                r.error(f"{path}.format", f"Expected one of {', '.join(ONSITE_FORMATS)}, got {shown_as!r}.")
            else:
                values["format"] = shown_as
        if name is not None and weight is not None:
            variants.append(VariantSpec(name=name, weight=weight, **values))
    return variants


def _onsite_link_problem(url: str) -> str | None:
    """Why an on-site link is refused: it must start with http:// or https:// and a host, written plainly."""
    if not _ONSITE_LINK.match(url.strip()):
        return "An on-site link starts with http:// or https:// and its host, written plainly (templates after it)."
    return None


# The content a variant of each channel cannot do without.
REQUIRED_CONTENT: dict[str, tuple[str, ...]] = {
    Channel.EMAIL: ("subject", "body"),
    Channel.WEBHOOK: ("url",),
    Channel.ONSITE: ("body",),
}


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
