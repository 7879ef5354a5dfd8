"""Which base URLs a load test may hit: loopback only, unless the operator passes --allow-remote."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback_host(host: str | None) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1: the only hosts a load test may hit without --allow-remote."""
    if not host:
        return False
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_target(base_url: str, *, allow_remote: bool) -> str:
    """The base URL without a trailing slash; ValueError when it is not http(s) or (unasked) not loopback."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"--base-url must be an http(s) URL such as http://127.0.0.1:8080/scim/v2, got {base_url!r}"
        )
    if not allow_remote and not is_loopback_host(parts.hostname):
        raise ValueError(
            f"refusing to load-test {parts.hostname!r}: it is not a loopback address (127.0.0.0/8, ::1, "
            "localhost). Pass --allow-remote if you own that server and mean it"
        )
    return base_url.rstrip("/")
