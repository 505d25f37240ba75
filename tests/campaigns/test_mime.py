"""``campaigns.mime``: a campaign email's bytes, read back by Python's email parser (as a mail
server or client reads them), and sent through a real SMTP server."""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest

from campaigns import mime
from campaigns.channels import Outgoing, SendFailed, channel_sender
from tests.campaigns.channels_support import smtp_sink


def _read(data: bytes):  # type: ignore[no-untyped-def]
    return message_from_bytes(data, policy=policy.default)


def _content(message, kind: str) -> str:  # type: ignore[no-untyped-def]
    """A part's text with LF line ends (the parser keeps the wire's CRLF)."""
    return message.get_body(preferencelist=(kind,)).get_content().replace("\r\n", "\n")


def test_a_plain_message_reads_back_as_written():
    data = mime.email_bytes(
        from_header="Shop <news@shop.example>",
        to="ada@example.com",
        subject="Hello Ada",
        text="Hi Ada\n\nSee you",
        html="<p>Hi Ada</p>",
        headers={"Message-ID": "<send-1.2@host>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        reply_to="help@shop.example",
        date="Thu, 03 Dec 2026 15:00:00 -0000",
    )
    message = _read(data)
    assert message["From"] == "Shop <news@shop.example>"
    assert message["To"] == "ada@example.com"
    assert message["Reply-To"] == "help@shop.example"
    assert message["Subject"] == "Hello Ada"
    assert message["Date"] == "Thu, 03 Dec 2026 15:00:00 -0000"
    assert message["Message-ID"] == "<send-1.2@host>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert _content(message, "plain") == "Hi Ada\n\nSee you"
    assert _content(message, "html") == "<p>Hi Ada</p>"
    # 7-bit, CRLF line ends, no line over 78 characters
    assert data.isascii()
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert max(len(line) for line in data.split(b"\r\n")) <= 78


def test_unicode_long_lines_and_the_boundary_itself_survive():
    subject = "Ünïcødé 🎉 " + "ß" * 200
    body = ("é" * 3000) + "\n" + mime.BOUNDARY + "\n.\n" + "=" * 10 + "\r\nend  \n"
    data = mime.email_bytes(
        from_header="=?utf-8?b?w4lsaXNl?= <news@shop.example>",
        to="ada@example.com",
        subject=subject,
        text=body,
        html=f"<p>{body}</p>",
        headers={"X-Long": "x" * 2000},
    )
    message = _read(data)
    assert message["Subject"] == subject
    assert message["From"].addresses[0].display_name == "Élise"
    assert message["X-Long"] == "x" * 2000
    # a part containing the boundary's text does not end the part: QP writes its "=" as "=3D"
    assert len(list(message.iter_parts())) == 2
    text = _content(message, "plain")
    assert text == body.replace("\r\n", "\n")
    assert max(len(line) for line in data.split(b"\r\n")) <= 78


def test_a_header_with_a_line_break_is_refused():
    with pytest.raises(mime.HeaderRefused):
        mime.email_bytes(
            from_header="news@shop.example",
            to="ada@example.com",
            subject="Hi\r\nBcc: everyone@example.com",
            text="",
            html="",
            headers={},
        )


def test_over_smtp_a_line_starting_with_a_dot_arrives_whole_and_a_refused_header_fails_the_send(settings):
    with smtp_sink(pipelining=True) as sink:
        for name, value in sink.email_settings().items():
            setattr(settings, name, value)
        text = "first\n.\n.hidden\nlast"
        outgoing = Outgoing(
            send_id=1, workspace_id=1, channel="email", recipient="ada@example.com", subject="Dots",
            text=text, html="<p>x</p>", from_email="news@shop.example", headers={"Message-ID": "<send-1.1@t>"},
        )  # fmt: skip
        broken = Outgoing(
            send_id=2, workspace_id=1, channel="email", recipient="bob@example.com", subject="x",
            text="", html="", from_email="news@shop.example", headers={"X-Bad": "a\nb"},
        )  # fmt: skip
        with channel_sender(channel="email", workspace=1) as sender:
            sender.send(outgoing)
            with pytest.raises(SendFailed) as refused:
                sender.send(broken)
        [message] = sink.wait_for(1)
        assert _content(message, "plain") == text
        assert refused.value.permanent
        assert "line break" in refused.value.reason
