"""Where webhooks may go, and the HTTP POST that goes there. No Django.

Server-side request forgery is the danger: a subscription must not make the
server call its own network. A target is checked twice: when a subscription is
saved (``check_url``) and at send time (``post``), after resolving the host,
against every address it resolves to; the request then connects to the address
that was checked, with the original ``Host`` header and TLS server name, so a
second DNS answer (rebinding) cannot redirect it. Redirects are never followed.

``Poster`` sends many POSTs over kept-alive connections (one per target host and port, pinned
to the address checked when it was opened), for a sender of many messages in a row; a
connection the server closed while idle is opened again, checked again, for the next POST.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httptools

TIMEOUT_SECONDS = 5.0
USER_AGENT = "Cohortly-Webhooks/1"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Refused even where Python calls them global: shared (CGNAT) space, NAT64 and
# 6to4/Teredo prefixes that can embed a private IPv4 address.
_REFUSED_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "::ffff:0:0/96",
        "64:ff9b::/96",
        "64:ff9b:1::/48",
        "2001::/32",
        "2002::/16",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)


class TargetRefused(Exception):
    """The URL or an address it resolves to may not receive webhooks. ``str()`` is for the user."""


class HostNotFound(TargetRefused):
    """The host did not resolve: refused at save time, retried at send time (DNS may recover)."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str


@dataclass(frozen=True)
class Answer:
    status: int


def parse_url(url: str) -> Target:
    """The parts of an http(s) URL, or ``TargetRefused`` saying what is wrong with it."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as error:
        raise TargetRefused("Enter a valid URL.") from error
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("Only http:// and https:// URLs can receive webhooks.")
    if not parts.hostname:
        raise TargetRefused("Enter a URL with a host name.")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("Remove the user name and password from the URL; verify the signature instead.")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    default_port = 443 if parts.scheme == "https" else 80
    return Target(parts.scheme, parts.hostname, port or default_port, path)


def address_refused(address: IPAddress) -> bool:
    """True for loopback, private, link-local, shared, multicast, reserved and unspecified addresses."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return True
    return any(address in network for network in _REFUSED_NETWORKS) or not address.is_global


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (an IP literal resolves to itself)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise HostNotFound(f"The host {host} could not be found.") from error
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise HostNotFound(f"The host {host} could not be found.")
    return addresses


def checked_addresses(target: Target, *, allow_private: bool) -> list[IPAddress]:
    """The addresses to connect to; ``TargetRefused`` if any of them is refused."""
    name = target.host.rstrip(".").lower()
    if not allow_private and (name == "localhost" or name.endswith(".localhost")):
        raise TargetRefused("Webhooks cannot be sent to this server's own network (localhost).")
    addresses = resolve(target.host, target.port)
    if not allow_private:
        for address in addresses:
            if address_refused(address):
                raise TargetRefused(
                    "Webhooks cannot be sent to private, loopback or link-local addresses "
                    f"({target.host} is {address})."
                )
    return addresses


def check_url(url: str, *, allow_private: bool) -> Target:
    """Save-time check of a subscription's URL."""
    target = parse_url(url)
    checked_addresses(target, allow_private=allow_private)
    return target


def _open(address: str, port: int, timeout: float | None) -> socket.socket:
    sock = socket.create_connection((address, port), timeout)
    # As http.client's own connect: headers and body go in two writes, which Nagle's algorithm
    # would hold behind the server's delayed ACK on a kept-alive connection (40 ms a request).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Speaks to ``host`` (Host header) over a socket opened to the checked ``address``."""

    def __init__(self, host: str, port: int, *, address: IPAddress, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = str(address)

    def connect(self) -> None:
        self.sock = _open(self._address, self.port, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """The TLS variant: certificate and SNI are checked against ``host``, not the address."""

    def __init__(self, host: str, port: int, *, address: IPAddress, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = str(address)

    def connect(self) -> None:
        sock = _open(self._address, self.port, self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def post(
    url: str, body: bytes, headers: dict[str, str], *, allow_private: bool, timeout: float = TIMEOUT_SECONDS
) -> Answer:
    """POST ``body`` to ``url`` once. Raises ``TargetRefused`` or ``OSError``/``http.client`` errors.

    The answer is returned whatever its status (a 3xx is not followed).
    """
    target = parse_url(url)
    address = checked_addresses(target, allow_private=allow_private)[0]
    connection_class: Any = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(target.host, target.port, address=address, timeout=timeout)
    # The socket timeout bounds each read; this bounds the whole exchange, so an
    # endpoint dripping bytes cannot hold a worker.
    expired = threading.Event()
    watchdog = threading.Timer(timeout, _abort, args=(connection, expired))
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.request(
            "POST",
            target.path,
            body=body,
            headers={**headers, "User-Agent": USER_AGENT, "Content-Length": str(len(body))},
        )
        response = connection.getresponse()
    except (OSError, http.client.HTTPException) as error:
        if expired.is_set():
            raise TimeoutError(f"no complete answer within {timeout:g} s") from error
        raise
    finally:
        watchdog.cancel()
        connection.close()
    if expired.is_set():  # cut off mid-headers: what was read is not a whole answer
        raise TimeoutError(f"no complete answer within {timeout:g} s")
    return Answer(status=response.status)


def _abort(connection: http.client.HTTPConnection, expired: threading.Event) -> None:
    expired.set()
    sock = connection.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            return


class _Watchdog:
    """One thread per ``Poster`` that cuts off the exchange in progress at its deadline (instead of
    a timer thread per request).

    Arming does not wake the thread unless the new deadline comes before the thread's next look:
    an idle thread looks again after ``idle`` seconds (the poster's timeout), so a deadline armed
    with that timeout is never earlier than its next look, and a POST costs no thread switch.
    """

    def __init__(self, idle: float) -> None:
        self._idle = idle
        self._lock = threading.Condition()
        self._armed: tuple[float, http.client.HTTPConnection, threading.Event] | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        # When the thread looks at ``_armed`` next (monotonic seconds).
        self._looks_at = float("inf")

    def arm(self, connection: http.client.HTTPConnection, timeout: float) -> threading.Event:
        expired = threading.Event()
        deadline = time.monotonic() + timeout
        with self._lock:
            self._armed = (deadline, connection, expired)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, daemon=True)
                self._thread.start()
            elif deadline < self._looks_at:
                self._lock.notify()
        return expired

    def disarm(self) -> None:
        with self._lock:
            # Not notified: the thread wakes at the old deadline, finds nothing due and waits again.
            self._armed = None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._armed = None
            self._lock.notify()

    def _watch(self) -> None:
        with self._lock:
            while not self._closed:
                now = time.monotonic()
                if self._armed is None:
                    self._looks_at = now + self._idle
                    self._lock.wait(self._idle)
                    continue
                deadline, connection, expired = self._armed
                if deadline > now:
                    self._looks_at = deadline
                    self._lock.wait(deadline - now)
                    continue
                self._armed = None
                _abort(connection, expired)


class Poster:
    """POSTs over kept-alive connections: ``post`` as the module's ``post``, for many messages.

    Each target is checked as ``post`` checks it when its connection is opened; the connection
    stays pinned to that address. Not thread-safe: one per thread. ``close()`` when done.
    """

    def __init__(self, *, allow_private: bool, timeout: float = TIMEOUT_SECONDS) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        self._connections: dict[tuple[str, str, int], http.client.HTTPConnection] = {}
        self._watchdog = _Watchdog(idle=timeout)

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        """POST ``body`` to ``url`` once. Raises ``TargetRefused`` or ``OSError``/``http.client`` errors."""
        target = parse_url(url)
        key = (target.scheme, target.host.lower(), target.port)
        connection = self._connections.get(key)
        if connection is not None:
            try:
                return self._exchange(connection, target, body, headers)
            except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
                # The server closed the idle connection: it answered nothing, so the POST goes again
                # once, over a new connection (the receiver dedupes on the message's own id anyway).
                self._drop(key)
        address = checked_addresses(target, allow_private=self.allow_private)[0]
        connection_class: Any = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
        connection = connection_class(target.host, target.port, address=address, timeout=self.timeout)
        self._connections[key] = connection
        try:
            return self._exchange(connection, target, body, headers)
        except BaseException:
            self._drop(key)
            raise

    def _exchange(
        self, connection: http.client.HTTPConnection, target: Target, body: bytes, headers: dict[str, str]
    ) -> Answer:
        """One POST and its answer over ``connection`` (opened here if it is not yet).

        The connection's class opens the socket (pinned to the checked address, TLS for https);
        the request is written here and the answer read with httptools' parser (llhttp, the
        one uvicorn serves with): http.client's reading of the answer's headers through the
        ``email`` package was the largest cost of a webhook. The body is read to its end (the
        next POST follows on the same connection) and not kept.
        """
        key = (target.scheme, target.host.lower(), target.port)
        expired = self._watchdog.arm(connection, self.timeout)
        try:
            if connection.sock is None:
                connection.connect()
            sock = connection.sock
            assert sock is not None
            sock.sendall(_request_head(target, headers, len(body)) + body)
            status, keep_alive = _answer_read(sock)
        except (OSError, http.client.HTTPException) as error:
            if expired.is_set():
                self._drop(key)
                raise TimeoutError(f"no complete answer within {self.timeout:g} s") from error
            raise
        finally:
            self._watchdog.disarm()
        if expired.is_set():
            self._drop(key)
            raise TimeoutError(f"no complete answer within {self.timeout:g} s")
        if not keep_alive:
            self._drop(key)
        return Answer(status=status)

    def _drop(self, key: tuple[str, str, int]) -> None:
        connection = self._connections.pop(key, None)
        if connection is not None:
            connection.close()

    def close(self) -> None:
        for key in list(self._connections):
            self._drop(key)
        self._watchdog.close()


# An answer's body is read (so that the connection can carry the next POST) up to this size;
# past it the connection is dropped.
MAX_ANSWER_BYTES = 1 << 20


def _request_head(target: Target, headers: dict[str, str], length: int) -> bytes:
    """The request line and headers of a POST, as http.client writes them."""
    default_port = 443 if target.scheme == "https" else 80
    host = target.host if target.port == default_port else f"{target.host}:{target.port}"
    if ":" in target.host and not target.host.startswith("["):  # an IPv6 literal
        host = f"[{target.host}]" if target.port == default_port else f"[{target.host}]:{target.port}"
    lines = [f"POST {target.path} HTTP/1.1", f"Host: {host}", "Accept-Encoding: identity"]
    for name, value in headers.items():
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value or ":" in name:
            raise ValueError(f"invalid header {name!r}")
        lines.append(f"{name}: {value}")
    lines += [f"User-Agent: {USER_AGENT}", f"Content-Length: {length}", "", ""]
    return "\r\n".join(lines).encode("latin-1")


class _AnswerEnd:
    """httptools' callbacks for one answer: whether its headers and the whole of it came, and how
    much body."""

    def __init__(self) -> None:
        self.parser: Any = None
        self.headers_complete = False
        self.complete = False
        self.keep_alive = False
        self.body_bytes = 0

    def on_headers_complete(self) -> None:
        self.headers_complete = True

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)

    def on_message_complete(self) -> None:
        self.complete = True
        # Asked here: once the callback returns, the parser is reset for a next message.
        self.keep_alive = bool(self.parser.should_keep_alive())


def _answer_read(sock: socket.socket) -> tuple[int, bool]:
    """Read one whole answer; its status and whether the connection may carry another request.

    Raises ``http.client.RemoteDisconnected`` when the server closed the connection before
    answering anything (an idle kept-alive connection it had closed), another
    ``http.client.HTTPException`` for an answer that is not HTTP or ends before its headers do.
    An answer whose body is cut short, or runs past ``MAX_ANSWER_BYTES``, still has its status
    (the connection is not reused).
    """
    end = _AnswerEnd()
    parser = httptools.HttpResponseParser(end)
    end.parser = parser
    received = 0
    while not end.complete:
        data = sock.recv(65536)
        if not data:
            if received == 0:
                raise http.client.RemoteDisconnected("the server closed the connection without an answer")
            if end.headers_complete:
                return parser.get_status_code(), False
            raise http.client.IncompleteRead(b"", None)
        received += len(data)
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            return parser.get_status_code(), False
        except httptools.HttpParserError as error:
            raise http.client.BadStatusLine(f"not an HTTP answer: {error}") from error
        if end.body_bytes > MAX_ANSWER_BYTES:
            return parser.get_status_code(), False
    return parser.get_status_code(), end.keep_alive
