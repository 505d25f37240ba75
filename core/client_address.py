"""The address of the client behind the proxies this deployment trusts.

``REMOTE_ADDR`` is the peer of the TCP connection: behind a reverse proxy that
is the proxy, for everybody. A proxy appends the peer it saw to
``X-Forwarded-For``; a client can put anything before that. So the header is
read from the right: while the hop we know of (the peer, then each address
taken from the header) is one of ``TRUSTED_PROXIES``, the entry before it is
who that proxy saw. The first address not trusted is the client. Entries
written by the client itself (left of the first untrusted one) are never read.

django-ipware was considered: it matches trusted proxies by text prefix rather
than network and reads the header from the left unless told how many proxies
there are; this is the rule of RFC 7239 section 7.4 in a few lines.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(proxies: Iterable[str]) -> tuple[Network, ...]:
    """``TRUSTED_PROXIES`` entries (addresses or CIDRs) as networks; a bad entry raises ValueError."""
    return tuple(ipaddress.ip_network(proxy.strip(), strict=False) for proxy in proxies if proxy.strip())


trusted_networks = lru_cache(maxsize=8)(parse_networks)


def _parse(value: str) -> Address | None:
    text = value.strip().strip('"')
    if text.startswith("["):  # "[2001:db8::1]:443"
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # "203.0.113.7:5123"
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, networks: Iterable[Network]) -> bool:
    return any(address.version == network.version and address in network for network in networks)


def client_address(request: HttpRequest) -> str:
    """The client's address as text: ``REMOTE_ADDR`` unless it is a trusted proxy (see the module)."""
    peer_text = str(request.META.get("REMOTE_ADDR", ""))
    peer = _parse(peer_text)
    networks = trusted_networks(tuple(settings.TRUSTED_PROXIES))
    if peer is None or not networks:
        return str(peer) if peer is not None else peer_text
    client = peer
    hops = [hop for hop in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(client, networks):
            break
        parsed = _parse(hop)
        if parsed is None:
            # Not an address: written by someone we do not trust; the proxy that passed it on is the client.
            break
        client = parsed
    return str(client)


def throttle_subject(address: str) -> str:
    """The unit one address is throttled as: the address, or its /64 for IPv6 (one host's usual share)."""
    parsed = _parse(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed) if parsed is not None else address
