"""``core.transport.Poster``: POSTs over kept-alive connections, with the checks of ``post``.
A real HTTP server on 127.0.0.1."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core import transport


@dataclass
class Server:
    url: str
    bodies: list[bytes] = field(default_factory=list)
    connections: set[int] = field(default_factory=set)


def serving(*, keep_alive: bool, close_after_answer: bool = False, delay: float = 0.0) -> Iterator[Server]:
    state = Server(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if delay:
                time.sleep(delay)
            state.bodies.append(body)
            state.connections.add(self.client_address[1])
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            if close_after_answer:
                # Closed without saying so: as a server dropping an idle kept-alive connection.
                self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def kept_alive() -> Iterator[Server]:
    yield from serving(keep_alive=True)


def test_posts_to_one_target_share_one_connection(kept_alive):
    # Given a poster allowed to reach loopback
    poster = transport.Poster(allow_private=True)
    try:
        # When it posts three messages to a keep-alive server
        answers = [poster.post(kept_alive.url, f"m{n}".encode(), {"X-N": str(n)}) for n in range(3)]
    finally:
        poster.close()

    # Then each was answered, received in order, over one connection
    assert [a.status for a in answers] == [202, 202, 202]
    assert kept_alive.bodies == [b"m0", b"m1", b"m2"]
    assert len(kept_alive.connections) == 1


def test_a_server_closing_its_connections_gets_each_post_over_a_new_one():
    for server in serving(keep_alive=True, close_after_answer=True):
        poster = transport.Poster(allow_private=True)
        try:
            answers = [poster.post(server.url, f"m{n}".encode(), {}) for n in range(3)]
        finally:
            poster.close()
        assert [a.status for a in answers] == [202, 202, 202]
        assert server.bodies == [b"m0", b"m1", b"m2"]
        assert len(server.connections) == 3


def test_an_http_1_0_server_gets_each_post_over_a_new_connection():
    for server in serving(keep_alive=False):
        poster = transport.Poster(allow_private=True)
        try:
            answers = [poster.post(server.url, b"x", {}) for _ in range(2)]
        finally:
            poster.close()
        assert [a.status for a in answers] == [202, 202]
        assert len(server.connections) == 2


def test_a_private_target_is_refused_and_nothing_is_sent(kept_alive):
    poster = transport.Poster(allow_private=False)
    try:
        with pytest.raises(transport.TargetRefused, match="private, loopback or link-local"):
            poster.post(kept_alive.url, b"x", {})
    finally:
        poster.close()
    assert kept_alive.bodies == []


def test_an_answer_slower_than_the_timeout_is_cut_off():
    for server in serving(keep_alive=True, delay=1.5):
        poster = transport.Poster(allow_private=True, timeout=0.3)
        try:
            with pytest.raises(TimeoutError):
                poster.post(server.url, b"x", {})
        finally:
            poster.close()


def answering(*answers: bytes) -> Iterator[tuple[str, list[bytes]]]:
    """A bare TCP server on 127.0.0.1: reads each request (its head and Content-Length bytes),
    writes the next of ``answers`` as it is, and closes the connection after the last one."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    requests: list[bytes] = []

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            buffer = b""
            for index, answer in enumerate(answers):
                while b"\r\n\r\n" not in buffer:
                    buffer += connection.recv(65536)
                head, _, rest = buffer.partition(b"\r\n\r\n")
                length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
                             .split(b":")[1])  # fmt: skip
                while len(rest) < length:
                    rest += connection.recv(65536)
                requests.append(head + b"\r\n\r\n" + rest[:length])
                buffer = rest[length:]
                connection.sendall(answer)
                if index == len(answers) - 1:
                    connection.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/in?x=1", requests
    finally:
        listener.close()


def test_a_chunked_answer_is_read_to_its_end_and_the_connection_kept():
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    for url, requests in answering(chunked, b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"):
        poster = transport.Poster(allow_private=True)
        try:
            answers = [poster.post(url, b'{"n": 1}', {"X-Id": "7"}), poster.post(url, b"{}", {})]
        finally:
            poster.close()
        # Both answers over the one connection (the server accepts once), in order
        assert [a.status for a in answers] == [200, 201]
        first = requests[0]
        assert first.startswith(b"POST /in?x=1 HTTP/1.1\r\n")
        assert b"\r\nX-Id: 7\r\n" in first
        assert b"\r\nContent-Length: 8\r\n" in first
        assert first.endswith(b'\r\n\r\n{"n": 1}')


def test_an_answer_without_a_length_ends_with_the_connection():
    for url, _ in answering(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"):
        poster = transport.Poster(allow_private=True)
        try:
            assert poster.post(url, b"x", {}).status == 204
        finally:
            poster.close()


def test_an_answer_that_is_not_http_is_an_error():
    for url, _ in answering(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"):
        poster = transport.Poster(allow_private=True)
        try:
            with pytest.raises(http.client.HTTPException):
                poster.post(url, b"x", {})
        finally:
            poster.close()


def test_a_header_with_a_line_break_is_refused_before_anything_is_sent():
    for url, requests in answering(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"):
        poster = transport.Poster(allow_private=True)
        try:
            with pytest.raises(ValueError, match="invalid header"):
                poster.post(url, b"x", {"X-Evil": "a\r\nX-Injected: 1"})
        finally:
            poster.close()
        assert requests == []
