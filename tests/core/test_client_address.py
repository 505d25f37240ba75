"""The client's address behind trusted proxies (core/client_address.py)."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from core.client_address import client_address, parse_networks, throttle_subject

PROXIES = ["10.0.0.0/8", "2001:db8:ffff::1", "127.0.0.1"]


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded", "client"),
    [
        # No trusted proxies: the header is never read
        ([], "203.0.113.7", "198.51.100.1", "203.0.113.7"),
        # A peer that is not a trusted proxy: its header is the client's own writing
        (PROXIES, "203.0.113.7", "198.51.100.1", "203.0.113.7"),
        # Behind one trusted proxy: the last entry is who it saw; entries before it are ignored
        (PROXIES, "10.0.0.2", "192.0.2.1, 203.0.113.7", "203.0.113.7"),
        # Two trusted hops, read from the right
        (PROXIES, "127.0.0.1", "192.0.2.1, 203.0.113.7, 10.1.2.3", "203.0.113.7"),
        # IPv6 proxy, and a client address with a port
        (PROXIES, "2001:db8:ffff::1", "[2001:db8:1::5]:443", "2001:db8:1::5"),
        (PROXIES, "10.0.0.2", "203.0.113.7:5123", "203.0.113.7"),
        # IPv4-mapped IPv6 reads as IPv4
        (PROXIES, "::ffff:10.0.0.2", "203.0.113.7", "203.0.113.7"),
        # Garbage where the proxy's entry should be: the proxy is the client, not the garbage
        (PROXIES, "10.0.0.2", "203.0.113.7, not-an-address", "10.0.0.2"),
        # Every hop trusted: the leftmost
        (PROXIES, "10.0.0.2", "10.0.0.3", "10.0.0.3"),
        # A trusted proxy that sent no header
        (PROXIES, "10.0.0.2", "", "10.0.0.2"),
    ],
)
def test_client_address(settings, trusted, peer, forwarded, client):
    settings.TRUSTED_PROXIES = trusted
    request = RequestFactory().get("/", REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=forwarded)

    assert client_address(request) == client


def test_an_ipv6_client_is_throttled_by_its_64():
    assert throttle_subject("2001:db8:1:2:aaaa::1") == throttle_subject("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert throttle_subject("203.0.113.7") == "203.0.113.7"


def test_a_bad_proxy_entry_is_refused():
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        parse_networks(["10.0.0.0/8", "proxy.internal"])
