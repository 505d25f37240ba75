"""Where webhooks may go, and the HTTP POST that goes there. No Django.

Server-side request forgery is the danger: a subscription must not make the
server call its own network. A target is checked twice: when a subscription is
saved (``check_url``) and at send time (``post``), after resolving the host,
against every address it resolves to; the request then connects to the address
that was checked, with the original ``Host`` header and TLS server name, so a
second DNS answer (rebinding) cannot redirect it. Redirects are never followed.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

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


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Speaks to ``host`` (Host header) over a socket opened to the checked ``address``."""

    def __init__(self, host: str, port: int, *, address: IPAddress, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = str(address)

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """The TLS variant: certificate and SNI are checked against ``host``, not the address."""

    def __init__(self, host: str, port: int, *, address: IPAddress, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = str(address)

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
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
