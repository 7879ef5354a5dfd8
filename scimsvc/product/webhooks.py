"""Webhook rules (no I/O): signing secrets, which URLs and addresses a delivery may reach, and when to
retry (README.md, What happened, Webhooks).

Registration (the admin API, the console) and delivery (worker/webhooks.py) apply the same rules: a URL is
checked when it is registered and every address it resolves to is checked again before each attempt, so
a name that later resolves somewhere private is refused then too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import urlsplit
from uuid import UUID

from standardwebhooks import Webhook
from yarl import URL

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
SECRET_PREFIX = "whsec_"


def endpoint_secret(signing_key: str, endpoint_id: UUID, generation: int) -> str:
    """The endpoint's `whsec_` secret of this generation: derived from the deployment's key, never stored.

    HMAC-SHA256 of the endpoint id and generation under SCIMSVC_WEBHOOK_SIGNING_KEY: 32 bytes, base64, as
    Standard Webhooks secrets are. A rotation takes the next generation.
    """
    digest = hmac.new(signing_key.encode(), f"{endpoint_id}:{generation}".encode(), hashlib.sha256).digest()
    return SECRET_PREFIX + base64.b64encode(digest).decode()


def signature_header(secrets: Iterable[str], *, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one `v1,<base64>` per secret, space-separated (both during a
    rotation's overlap, so a receiver with either secret verifies)."""
    when = datetime.fromtimestamp(timestamp, UTC)
    return " ".join(Webhook(s).sign(message_id, when, body) for s in secrets)


def url_problem(url: str, *, allow_http: bool) -> str | None:
    """Why this URL cannot be a webhook endpoint (a sentence), or None.

    https only; plain http only with `allow_http` (a development setting) and only to a loopback
    address (`localhost` or a loopback IP); no credentials in the URL; a host is required, in ASCII, and
    read the same by the HTTP client as by these rules.
    """
    if len(url) > 2000:
        return "the URL is longer than 2000 characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "the URL is not a valid URL"
    del port
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        return "the URL must start with https://"
    if not parts.hostname:
        return "the URL has no host"
    if parts.username or parts.password:
        return "the URL must not carry a user name or password"
    if parts.fragment:
        return "the URL must not have a #fragment"
    if not parts.hostname.isascii():
        return "the URL's host must be written in ASCII (an international name in its xn-- form)"
    # The host the HTTP client connects to (yarl's reading) must be the one these rules read (urlsplit's):
    # a URL the two parsers read differently is refused rather than guessed at. yarl also refuses some
    # URLs urlsplit takes; such a URL must fail here, at registration, not in the worker.
    try:
        connected = URL(url).raw_host or ""
    except (ValueError, UnicodeError):
        return "the URL is not a valid URL"
    if host_form(connected) != host_form(parts.hostname):
        return "the URL is not a valid URL"
    if scheme == "http":
        if not allow_http:
            return "the URL must start with https:// (plain http is allowed only in development)"
        if not _loopback_name(parts.hostname):
            return "plain http:// is allowed only to a loopback address (127.0.0.1, ::1, localhost)"
    return None


def address_problem(address: str, *, allowed: Iterable[Network]) -> str | None:
    """Why a delivery must not connect to this resolved address (a sentence), or None.

    Private, loopback, link-local, multicast, reserved and unspecified addresses (IPv4-mapped IPv6 read
    as IPv4) are refused unless an operator allowed their network (SCIMSVC_WEBHOOK_ALLOWED_NETWORKS).
    """
    try:
        ip: Address = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address!r} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv4 carried in IPv6 (mapped, 6to4, Teredo's client) is judged as that IPv4 address.
        teredo = ip.teredo[1] if ip.teredo else None
        embedded = ip.ipv4_mapped or ip.sixtofour or teredo
        if ip.is_site_local:
            return f"{ip} is a site-local address"
        if embedded is not None:
            ip = embedded
    if any(ip.version == n.version and ip in n for n in allowed):
        return None
    if not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return (
            f"{ip} is a private, loopback, link-local or reserved address; "
            "an operator may allow its network with SCIMSVC_WEBHOOK_ALLOWED_NETWORKS"
        )
    return None


def host_form(host: str) -> str:
    """A host as one spelling: an IP address in its standard form, a name in lower case."""
    bare = host.strip("[]").split("%", 1)[0]
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return bare.lower()


def _loopback_name(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# Retries (Standard Webhooks' suggested schedule, then every 10 hours): the delay before attempt n+1
# after n failed attempts; jitter of ±20% spreads the retries of many deliveries that failed together.
RETRY_SCHEDULE_SECONDS = (5, 300, 1800, 7200, 18000, 36000)


def retry_delay(failed_attempts: int, *, jitter: float) -> float:
    """Seconds until the next attempt after `failed_attempts` failures; `jitter` in [-1, 1] (random)."""
    index = max(0, min(failed_attempts - 1, len(RETRY_SCHEDULE_SECONDS) - 1))
    return RETRY_SCHEDULE_SECONDS[index] * (1 + 0.2 * max(-1.0, min(1.0, jitter)))


def signing_secrets(
    signing_key: str, endpoint_id: UUID, generation: int, *, previous_valid: bool
) -> list[str]:
    """The secrets a delivery is signed with: the current generation's, and during a rotation's overlap
    (`previous_valid`: now is before `previous_until`) the previous one's too."""
    secrets = [endpoint_secret(signing_key, endpoint_id, generation)]
    if previous_valid and generation > 1:
        secrets.append(endpoint_secret(signing_key, endpoint_id, generation - 1))
    return secrets


def delivered(status: int) -> bool:
    """Whether an answer with this status means the receiver took the event: 2xx only (a redirect is not
    followed, so 3xx is a failure like 4xx and 5xx)."""
    return 200 <= status < 300


def lease_seconds(timeout_seconds: int) -> float:
    """How long a claimed delivery is hidden from other workers: an attempt takes at most twice the
    timeout (connect, then read; the name's resolution included), plus a margin to record it. A worker
    that dies mid-attempt leaves its deliveries due again after this (at least once)."""
    return 3.0 * timeout_seconds + 5.0


EXCERPT_CHARS = 200


def excerpt(text: str) -> str:
    """What an attempt keeps of an answer's body or of an error: its start, one line, at most 200
    characters (never a header: ours carry signatures)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 1] + "…"
