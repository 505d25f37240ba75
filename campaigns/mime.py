"""A campaign email as the bytes an SMTP server receives, written directly.

Python's ``email`` package (behind Django's ``EmailMessage``) parses and re-folds every header
and walks the message tree to serialise it: about half of an email's CPU in the sending engine.
A campaign email always has the same shape, so the SMTP path writes it here instead:

- ``multipart/alternative`` with a text part and an HTML part, both UTF-8 in quoted-printable
  (7-bit safe whatever the content, lines of at most 76 characters, and a literal ``=`` is
  always written ``=3D``: a boundary starting with ``=_`` can never occur in a part, so one
  boundary serves every message);
- headers whose values are ASCII and short are written as they are; the others as RFC 2047
  encoded words (UTF-8, base64), folded to lines under 78 characters;
- a value with a line break is refused (``HeaderRefused``): it would start a header of its own.

ESP backends (django-anymail) still get Django's message objects; only the SMTP backend's
connection is given these bytes (``campaigns.channels.EmailSender``).
"""

from __future__ import annotations

import binascii
import secrets
from base64 import b64encode
from collections.abc import Iterable
from email.utils import formatdate

# One boundary per process; see the module's docstring for why it cannot collide with a part.
BOUNDARY = f"=_cohortly_{secrets.token_hex(16)}"
# Longest header value written as it is (a header line must stay under 998 characters).
_PLAIN_MAX = 900
# Bytes of UTF-8 input per encoded word: 36 bytes -> 48 base64 characters, 60 with ``=?utf-8?b?``
# and ``?=``, which keeps each folded line under 78 characters, the first one with a header name
# of up to 16 characters before it.
_WORD_BYTES = 36


class HeaderRefused(ValueError):
    """A header value that cannot be written (a line break in it)."""


def header_value(value: str) -> str:
    """``value`` as it may stand in a header: itself when ASCII and short, else encoded words."""
    if "\r" in value or "\n" in value:
        raise HeaderRefused("a header value contains a line break")
    if value.isascii() and len(value) <= _PLAIN_MAX:
        return value
    return "\r\n ".join(f"=?utf-8?b?{b64encode(piece).decode('ascii')}?=" for piece in _pieces(value))


def _pieces(value: str) -> Iterable[bytes]:
    """``value`` in UTF-8, cut into runs of at most ``_WORD_BYTES`` bytes between characters."""
    piece = bytearray()
    for char in value:
        encoded = char.encode("utf-8")
        if len(piece) + len(encoded) > _WORD_BYTES:
            yield bytes(piece)
            piece.clear()
        piece += encoded
    if piece:
        yield bytes(piece)


def _body(text: str) -> bytes:
    """A part's body: UTF-8, quoted-printable, CRLF line ends."""
    normalised = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return binascii.b2a_qp(normalised, quotetabs=False, istext=True, header=False).replace(b"\n", b"\r\n")


def email_bytes(
    *,
    from_header: str,
    to: str,
    subject: str,
    text: str,
    html: str,
    headers: dict[str, str],
    reply_to: str = "",
    date: str | None = None,
) -> bytes:
    """The whole message, headers and both parts, with CRLF line ends (as SMTP's DATA takes it).

    ``from_header``: the From header's value (``formataddr`` output, already ASCII-safe);
    ``headers``: the others (``Message-ID``, ``List-Unsubscribe``, ...), in the order given.
    Raises ``HeaderRefused`` for a value with a line break.
    """
    lines = [
        f'Content-Type: multipart/alternative;\r\n boundary="{BOUNDARY}"',
        "MIME-Version: 1.0",
        f"Subject: {header_value(subject)}",
        f"From: {header_value(from_header)}",
        f"To: {header_value(to)}",
    ]
    if reply_to:
        lines.append(f"Reply-To: {header_value(reply_to)}")
    lines.append(f"Date: {date or formatdate()}")
    for name, value in headers.items():
        if not name.isascii() or ":" in name or not name.strip() or any(c.isspace() for c in name):
            raise HeaderRefused(f"not a header name: {name!r}")
        lines.append(f"{name}: {header_value(value)}")
    head = "\r\n".join(lines).encode("ascii")
    part = (
        b'Content-Type: text/%s; charset="utf-8"\r\nMIME-Version: 1.0\r\n'
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    )
    boundary = BOUNDARY.encode("ascii")
    return b"".join(
        (
            head,
            b"\r\n\r\n--",
            boundary,
            b"\r\n",
            part % b"plain",
            _body(text),
            b"\r\n--",
            boundary,
            b"\r\n",
            part % b"html",
            _body(html),
            b"\r\n--",
            boundary,
            b"--\r\n",
        )
    )
