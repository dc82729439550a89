"""Client addresses behind trusted proxies (FORWARDED_ALLOW_IPS)."""

from __future__ import annotations

import pytest
from servicekit.clientip import client_address, trusted_proxies

GATEWAY = trusted_proxies({"FORWARDED_ALLOW_IPS": "10.42.0.0/16"})


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        ("203.0.113.5", "198.51.100.1", "203.0.113.5"),  # not a proxy: its header is a forgery
        ("10.42.0.7", "198.51.100.1", "198.51.100.1"),  # the gateway names the client
        ("10.42.0.7", "1.2.3.4, 198.51.100.1", "198.51.100.1"),  # client-made part ignored
        ("10.42.0.7", "198.51.100.1, 10.42.0.9", "198.51.100.1"),  # proxies skipped
        ("10.42.0.7", None, "10.42.0.7"),
        ("10.42.0.7", "not-an-ip", "not-an-ip"),
    ],
)
def test_only_a_trusted_peer_names_the_client(
    peer: str, forwarded_for: str | None, client: str
) -> None:
    assert client_address(peer, forwarded_for, GATEWAY) == client


def test_the_default_trusts_loopback_only() -> None:
    proxies = trusted_proxies({})
    assert client_address("127.0.0.1", "198.51.100.1", proxies) == "198.51.100.1"
    assert client_address("192.0.2.1", "198.51.100.1", proxies) == "192.0.2.1"


def test_a_bad_entry_names_itself() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300'"):
        trusted_proxies({"FORWARDED_ALLOW_IPS": "10.0.0.1,10.0.0.300"})
