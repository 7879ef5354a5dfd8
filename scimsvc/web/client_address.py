"""Who is calling: the peer address, or, behind proxies we trust, the client they forwarded for."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from scimsvc.settings import Network


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
