"""Triggers: events the snippet sends without touching the site's code.

Pure rules (no Django): what a trigger of each kind must carry, the event name
a click trigger gets when none is given, and thresholds parsed from text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CLICK = "click"
SCROLL = "scroll"
ENGAGED_TIME = "engaged_time"

SELECTOR_MAX_LENGTH = 300
EVENT_NAME_MAX_LENGTH = 200
THRESHOLDS_MAX = 10
ENGAGED_SECONDS_MAX = 86_400
DEFAULT_THRESHOLDS = {SCROLL: [25, 50, 75, 100], ENGAGED_TIME: [180]}
DEFAULT_EVENT_NAMES = {SCROLL: "Page Scrolled", ENGAGED_TIME: "Page Engaged"}

# Characters that end a CSS rule or open markup: never part of a selector.
_FORBIDDEN_IN_SELECTOR = set("{};<")
_PAIRS = {"(": ")", "[": "]"}


class TriggerInvalid(ValueError):
    """Input a trigger cannot have. ``field`` names the offending input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class TriggerSpec:
    kind: str
    selector: str
    event_name: str
    thresholds: list[int]


def default_event_name(selector: str) -> str:
    """``#product-image`` -> ``Product Image Clicked``: words of the selector's last part."""
    last = re.split(r"[\s>+~]+", selector.strip())[-1] if selector.strip() else ""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", last)
    words = [w for w in re.split(r"[^A-Za-z0-9]+", spaced) if w]
    return " ".join(w[:1].upper() + w[1:] for w in words)[: EVENT_NAME_MAX_LENGTH - 8] + " Clicked" if words else ""


def check_selector(selector: str) -> str:
    """A plausible CSS selector: bounded, one line, brackets and quotes balanced.

    The browser is the final judge; the snippet skips a selector it refuses.
    """
    selector = selector.strip()
    if not selector:
        raise TriggerInvalid("selector", "Enter the CSS selector of the elements to track, e.g. #product-image.")
    if len(selector) > SELECTOR_MAX_LENGTH:
        raise TriggerInvalid("selector", f"Keep the selector under {SELECTOR_MAX_LENGTH} characters.")
    if any(c in _FORBIDDEN_IN_SELECTOR or c in "\r\n\t" for c in selector):
        raise TriggerInvalid("selector", "A selector cannot contain braces, semicolons, “<” or line breaks.")
    stack: list[str] = []
    quote = ""
    for char in selector:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in _PAIRS:
            stack.append(_PAIRS[char])
        elif char in ")]" and (not stack or stack.pop() != char):
            raise TriggerInvalid("selector", "This selector has an unmatched bracket.")
    if quote or stack:
        raise TriggerInvalid("selector", "This selector has an unclosed quote or bracket.")
    if selector[-1] in ",>+~":
        raise TriggerInvalid("selector", "This selector ends in the middle: complete it after the last combinator.")
    problem = _SelectorReader(selector).problem()
    if problem:
        raise TriggerInvalid("selector", f"This is not a valid CSS selector: {problem}")
    return selector


# --- The grammar of selectors (Selectors Level 4, without namespaces), as browsers parse them ------

_IDENT_START = re.compile(r"-?(?:[A-Za-z_]|[^\x00-\x7f]|\\.)|--")
_IDENT_CHAR = re.compile(r"[A-Za-z0-9_-]|[^\x00-\x7f]|\\.")
_ATTRIBUTE_MATCHERS = ("~=", "|=", "^=", "$=", "*=", "=")


class _SelectorReader:
    """Reads a selector list and says what first stops it being one, or "" when it is one.

    Quotes and brackets are already known to be balanced; arguments of functional pseudo-classes
    (``:not(...)``, ``:nth-child(2n+1)``) are not read further than their parentheses.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def problem(self) -> str:
        try:
            self._list()
        except ValueError as error:
            return str(error)
        return ""

    def _peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else ""

    def _spaces(self) -> bool:
        start = self.at
        while self._peek() in (" ", "\f"):
            self.at += 1
        return self.at > start

    def _stop(self, expected: str) -> ValueError:
        char = self._peek()
        found = f"“{char}” at character {self.at + 1}" if char else "the end"
        return ValueError(f"{expected}, not {found}.")

    def _ident(self) -> str:
        start = self.at
        match = _IDENT_START.match(self.text, self.at)
        if match is None:
            return ""
        self.at = match.end()
        while (match := _IDENT_CHAR.match(self.text, self.at)) is not None:
            self.at = match.end()
        return self.text[start : self.at]

    def _list(self) -> None:
        while True:
            self._spaces()
            self._complex()
            self._spaces()
            if self._peek() != ",":
                break
            self.at += 1
        if self.at < len(self.text):
            raise self._stop("expected a comma or the end of the selector")

    def _complex(self) -> None:
        self._compound()
        while True:
            spaced = self._spaces()
            if self._peek() in (">", "+", "~"):
                self.at += 1
                self._spaces()
            elif not spaced or self._peek() in (",", ""):
                return
            self._compound()

    def _compound(self) -> None:
        parts = 0
        if self._peek() == "*":
            self.at += 1
            parts += 1
        elif self._ident():
            parts += 1
        while True:
            char = self._peek()
            if char == "#":
                self.at += 1
                if not self._ident():
                    raise ValueError(f"“#” at character {self.at} must be followed by a name, as in #product-image.")
            elif char == ".":
                self.at += 1
                if not self._ident():
                    raise ValueError(f"“.” at character {self.at} must be followed by a class name, as in .buy-now.")
            elif char == "[":
                self._attribute()
            elif char == ":":
                self._pseudo()
            else:
                break
            parts += 1
        if not parts:
            raise self._stop("expected an element, #id, .class, [attribute] or :pseudo-class")

    def _attribute(self) -> None:
        self.at += 1
        self._spaces()
        if not self._ident():
            raise self._stop("expected an attribute name after “[”")
        self._spaces()
        matcher = next((m for m in _ATTRIBUTE_MATCHERS if self.text.startswith(m, self.at)), "")
        if matcher:
            self.at += len(matcher)
            self._spaces()
            if self._peek() in ("'", '"'):
                self.at = self.text.index(self._peek(), self.at + 1) + 1
            elif not self._ident():
                raise self._stop("expected a value, quoted or a plain word, after “" + matcher + "”")
            self._spaces()
            if self._peek() in ("i", "I", "s", "S"):
                self.at += 1
                self._spaces()
        if self._peek() != "]":
            raise self._stop("expected “]” to close the attribute")
        self.at += 1

    def _pseudo(self) -> None:
        self.at += 1
        if self._peek() == ":":
            self.at += 1
        if not self._ident():
            raise self._stop("expected a name after “:”, as in :hover")
        if self._peek() != "(":
            return
        depth, start = 0, self.at
        while self.at < len(self.text):
            char = self.text[self.at]
            if char in ("'", '"'):
                self.at = self.text.index(char, self.at + 1)
            elif char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
                if depth == 0:
                    break
            self.at += 1
        if not self.text[start + 1 : self.at].strip():
            raise ValueError(f"the parentheses at character {start + 1} are empty.")
        self.at += 1


def check_event_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise TriggerInvalid("event_name", "Enter the name of the event to send.")
    if len(name) > EVENT_NAME_MAX_LENGTH:
        raise TriggerInvalid("event_name", f"Keep the event name under {EVENT_NAME_MAX_LENGTH} characters.")
    if name.startswith("$"):
        raise TriggerInvalid("event_name", "Names starting with $ are reserved for Cohortly's own events.")
    if any(ord(c) < 32 for c in name):
        raise TriggerInvalid("event_name", "An event name cannot contain line breaks or control characters.")
    return name


def parse_thresholds(text: str) -> list[int]:
    """``"25, 50 75"`` -> ``[25, 50, 75]``."""
    parts = [p for p in re.split(r"[\s,;]+", text.strip()) if p]
    values = []
    for part in parts:
        if not part.isdigit():
            raise TriggerInvalid("thresholds", f"“{part[:20]}” is not a whole number.")
        values.append(int(part))
    return values


def check_thresholds(kind: str, values: list[int]) -> list[int]:
    if kind == CLICK:
        return []
    if not values:
        raise TriggerInvalid("thresholds", "Enter at least one threshold.")
    if len(values) > THRESHOLDS_MAX:
        raise TriggerInvalid("thresholds", f"Use at most {THRESHOLDS_MAX} thresholds.")
    low, high, unit = (1, 100, "percentages") if kind == SCROLL else (1, ENGAGED_SECONDS_MAX, "seconds")
    if any(v < low or v > high for v in values):
        raise TriggerInvalid("thresholds", f"Thresholds are {unit} from {low} to {high}.")
    return sorted(set(values))


def check(kind: str, selector: str, event_name: str, thresholds: list[int]) -> TriggerSpec:
    """The trigger as stored, or ``TriggerInvalid`` naming the first bad field."""
    if kind not in (CLICK, SCROLL, ENGAGED_TIME):
        raise TriggerInvalid("kind", "Choose click, scroll depth or engaged time.")
    if kind == CLICK:
        selector = check_selector(selector)
        if not event_name.strip() and not default_event_name(selector):
            raise TriggerInvalid(
                "event_name", "Enter the name of the event to send: the selector has no words to name it after."
            )
        event_name = event_name.strip() or default_event_name(selector)
    else:
        selector = ""
        event_name = event_name.strip() or DEFAULT_EVENT_NAMES[kind]
    return TriggerSpec(kind, selector, check_event_name(event_name), check_thresholds(kind, thresholds))
