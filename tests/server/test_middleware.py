"""The request gate's helpers: who a request comes from, as the per-address limits count it."""

from __future__ import annotations

import pytest

from charmspace.server.middleware import client_address


@pytest.mark.parametrize(
    ("peer", "counted_as"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),  # the same client
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),  # the next /64: another client
        ("::ffff:203.0.113.7", "203.0.113.7"),  # IPv4 through an IPv6 socket
        ("testclient", "testclient"),  # not an IP: counted as it is
    ],
)
def test_an_ipv6_client_counts_as_its_slash_64(peer: str, counted_as: str) -> None:
    """One host is usually given a whole IPv6 /64: counted address by address, it
    could log in and open connections as if it were countless clients."""
    assert client_address({"type": "http", "client": (peer, 50000)}) == counted_as


def test_a_request_with_no_peer_counts_as_unknown() -> None:
    assert client_address({"type": "http", "client": None}) == ""
    assert client_address({"type": "http"}) == ""
