"""Who is calling: the peer address, or, behind proxies we trust, the client they forwarded for."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=16)
def parse_networks(raw: str) -> tuple[Network, ...]:
    """`10.0.0.0/8, 127.0.0.1` → networks; raises ValueError naming a bad entry."""
    networks = []
    for part in raw.split(","):
        if part.strip():
            try:
                networks.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise ValueError(f"not an IP address or network: {part.strip()!r}") from None
    return tuple(networks)


def _trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_address(remote: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The first address, from the right of X-Forwarded-For, that is not one of our trusted proxies.

    A peer we do not trust is the client, whatever it claims in X-Forwarded-For (which anyone can send).
    """
    address = remote or "unknown"
    if not trusted or not _trusted(address, trusted) or not forwarded_for:
        return address
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        address = hop
        if not _trusted(hop, trusted):
            break
    return address
