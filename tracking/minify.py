"""A small, conservative JavaScript minifier for the snippet.

It drops comments and the whitespace no token needs, and keeps every line
break that automatic semicolon insertion might depend on. Strings, template
literals and regular-expression literals pass through untouched. It knows
nothing of scopes: names are not shortened (gzip makes repeats cheap).
Written for ``static/tracking/cohortly.js``; a template literal with a nested
backtick inside ``${...}`` is refused rather than guessed at.
"""

from __future__ import annotations

_WORD = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$")
# After these characters (or these words) a "/" opens a regular expression, not a division.
_REGEX_AFTER_CHARS = set("(,=:[!&|?{};+-*%<>~^")
_REGEX_AFTER_WORDS = ("return", "typeof", "case", "do", "else", "in", "of", "void", "delete", "throw", "new")
# A line break after one of these, or before one of these, is never needed.
_JOIN_AFTER = set("{;,([=:&|?+-*%<>!~^")
_JOIN_BEFORE = set("}),;.]:?=&|")


class MinifyError(ValueError):
    pass


def _regex_allowed(out: list[str]) -> bool:
    text = "".join(out[-12:]).rstrip()
    if not text:
        return True
    if text[-1] in _REGEX_AFTER_CHARS:
        return True
    return any(
        text.endswith(word) and (len(text) == len(word) or text[-len(word) - 1] not in _WORD)
        for word in _REGEX_AFTER_WORDS
    )


def _read_quoted(src: str, i: int) -> int:
    """Index just past the string or template literal starting at ``src[i]``."""
    quote = src[i]
    i += 1
    while i < len(src):
        char = src[i]
        if char == "\\":
            i += 2
            continue
        if quote == "`" and src.startswith("${", i):
            end = src.find("}", i)
            if end < 0 or "`" in src[i:end]:
                raise MinifyError("nested template literals are not supported")
        if char == quote:
            return i + 1
        if char == "\n" and quote != "`":
            raise MinifyError("unterminated string literal")
        i += 1
    raise MinifyError("unterminated literal")


def _read_regex(src: str, i: int) -> int:
    in_class = False
    i += 1
    while i < len(src):
        char = src[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "/" and not in_class:
            i += 1
            while i < len(src) and src[i] in _WORD:
                i += 1  # flags
            return i
        elif char == "\n":
            raise MinifyError("unterminated regular expression")
        i += 1
    raise MinifyError("unterminated regular expression")


def minify(src: str) -> str:
    out: list[str] = []
    pending = ""  # whitespace seen since the last token: "", " " or "\n"
    i = 0
    while i < len(src):
        char = src[i]
        if src.startswith("//", i):
            end = src.find("\n", i)
            i = len(src) if end < 0 else end
            continue
        if src.startswith("/*", i):
            end = src.find("*/", i + 2)
            if end < 0:
                raise MinifyError("unterminated comment")
            if "\n" in src[i:end]:
                pending = "\n"
            elif not pending:
                pending = " "
            i = end + 2
            continue
        if char in " \t\r\n":
            if char == "\n":
                pending = "\n"
            elif not pending:
                pending = " "
            i += 1
            continue
        if char in "'\"`":
            end = _read_quoted(src, i)
        elif char == "/" and _regex_allowed(out):
            end = _read_regex(src, i)
        else:
            end = i + 1
            if char in _WORD:
                while end < len(src) and src[end] in _WORD:
                    end += 1
        token = src[i:end]
        if pending and out:
            last = out[-1][-1]
            first = token[0]
            # "i++" then a line break ends a statement: ASI must still see the break.
            postfix = "".join(out[-2:])[-2:] in ("++", "--")
            if pending == "\n" and (postfix or (last not in _JOIN_AFTER and first not in _JOIN_BEFORE)):
                out.append("\n")
            elif (last in _WORD and first in _WORD) or (last in "+-" and first == last):
                out.append(" ")
        pending = ""
        out.append(token)
        i = end
    return "".join(out) + "\n"
