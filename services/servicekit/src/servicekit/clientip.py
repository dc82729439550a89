"""The client's address behind trusted proxies (FORWARDED_ALLOW_IPS), for WSGI services.

uvicorn does this itself for the ASGI services (it reads the same variable). Contract: only a
peer listed in FORWARDED_ALLOW_IPS (comma-separated IPs or CIDRs; default loopback only) may
name the client in X-Forwarded-For. The client is the rightmost address in the header that is
not itself a trusted proxy; from any other peer the header is ignored (a forgery).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping, Sequence

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
DEFAULT_TRUSTED = "127.0.0.1,::1"


def trusted_proxies(environ: Mapping[str, str] | None = None) -> list[IpNetwork]:
    """FORWARDED_ALLOW_IPS as networks; a bad entry is a ValueError naming it."""
    raw = (os.environ if environ is None else environ).get("FORWARDED_ALLOW_IPS", DEFAULT_TRUSTED)
    networks = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        if item == "*":
            networks += [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ValueError(f"FORWARDED_ALLOW_IPS: {item!r} is not an IP address or CIDR") from exc
    return networks


def _trusted(address: str, proxies: Sequence[IpNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(
    peer: str, forwarded_for: str | None, proxies: Sequence[IpNetwork] | None = None
) -> str:
    """The client of a request from `peer` that carries `forwarded_for` (X-Forwarded-For)."""
    proxies = trusted_proxies() if proxies is None else proxies
    if not forwarded_for or not _trusted(peer, proxies):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop
    return hops[0] if hops else peer
