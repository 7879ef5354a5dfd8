"""Sending one webhook over HTTP, with the outbound rules of `scimsvc/product/webhooks.py` enforced.

Outbound safety (README.md, What happened, Webhook delivery): the URL is checked (`url_problem`), and every
address the host resolves to is checked (`address_problem`) right before the connection, by the session's own
resolver, so a name that now resolves somewhere private is refused even if it was public when the endpoint was
registered, and the connection only ever goes to an address that was checked. An IP literal in the URL never
reaches a resolver (aiohttp connects to it as is), so it is checked here first. Redirects are not followed,
connect and read are bounded by the timeout, and at most `MAX_ANSWER_BYTES` of an answer are read. The session
keeps no cookies and reads no proxy from the environment.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from scimsvc import __version__
from scimsvc.product.webhooks import Network, address_problem, delivered, excerpt, url_problem

MAX_ANSWER_BYTES = 64 * 1024
USER_AGENT = f"scimsvc-webhooks/{__version__}"
# Connections kept per worker process: deliveries to one receiver reuse theirs.
CONNECTIONS = 100


class RefusedTarget(OSError):
    """The URL or an address it resolves to may not be reached; nothing was sent."""


class CheckedResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, then refuses the name if ANY of its addresses is one a
    delivery may not reach; the connector only ever gets checked addresses."""

    def __init__(self, allowed: Iterable[Network]) -> None:
        self._allowed = tuple(allowed)
        self._resolver = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The host's addresses, all checked; raises `RefusedTarget` naming the first refused one."""
        results = await self._resolver.resolve(host, port, family)
        for result in results:
            problem = address_problem(result["host"], allowed=self._allowed)
            if problem:
                raise RefusedTarget(f"{host}: {problem}")
        return results

    async def close(self) -> None:
        await self._resolver.close()


def new_session(*, allowed: Iterable[Network], timeout_seconds: int) -> aiohttp.ClientSession:
    """The worker process's one HTTP session for webhooks (create it in a running event loop)."""
    connector = aiohttp.TCPConnector(
        resolver=CheckedResolver(allowed),
        use_dns_cache=False,  # every attempt resolves and checks again
        limit=CONNECTIONS,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(
            total=2 * timeout_seconds, sock_connect=timeout_seconds, sock_read=timeout_seconds
        ),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,  # a small compressed answer must not inflate past the read cap
        trust_env=False,
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
    )


@dataclass(frozen=True)
class Sent:
    """What one attempt got: the status (None: no answer, or refused before sending), the time it took,
    and a short excerpt of the answer or of the error."""

    status: int | None
    latency_ms: float
    excerpt: str
    refused: bool = False

    @property
    def delivered(self) -> bool:
        return self.status is not None and delivered(self.status)

    @property
    def outcome(self) -> str:
        """delivered, refused (not sent) or failed, as the metrics count it."""
        return "delivered" if self.delivered else "refused" if self.refused else "failed"


async def post(
    session: aiohttp.ClientSession,
    url: str,
    *,
    body: bytes,
    headers: dict[str, str],
    allowed: Iterable[Network],
    allow_http: bool,
    timeout_seconds: int,
) -> Sent:
    """POST `body` to `url` once, never raising for anything the receiver or the network does."""
    problem = target_problem(url, allowed=allowed, allow_http=allow_http)
    if problem:
        return Sent(None, 0.0, excerpt(f"refused, not sent: {problem}"), refused=True)
    started = time.perf_counter()

    def took() -> float:
        return round((time.perf_counter() - started) * 1000, 1)

    try:
        async with asyncio.timeout(2 * timeout_seconds + 1):  # the session's bounds, and a net under them
            async with session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
                latency = took()
                answer = await _read_capped(resp)
                if 300 <= resp.status < 400:
                    where = resp.headers.get("Location", "")
                    return Sent(resp.status, latency, excerpt(f"redirect not followed (Location: {where})"))
                return Sent(resp.status, latency, excerpt(answer[:1024].decode("utf-8", "replace")))
    except aiohttp.ClientConnectorError as exc:
        refused = _refusal(exc)
        if refused is not None:
            return Sent(None, took(), excerpt(f"refused, not sent: {refused}"), refused=True)
        return Sent(None, took(), excerpt(f"could not connect: {exc.os_error.strerror or exc.os_error}"))
    except aiohttp.ConnectionTimeoutError:
        return Sent(None, took(), f"could not connect within {timeout_seconds} s")
    except aiohttp.SocketTimeoutError:
        return Sent(None, took(), f"no answer within {timeout_seconds} s")
    except TimeoutError:
        return Sent(None, took(), f"no complete answer within {2 * timeout_seconds} s")
    except aiohttp.ClientError as exc:
        return Sent(None, took(), excerpt(f"failed: {type(exc).__name__}: {exc}"))
    except OSError as exc:
        return Sent(None, took(), excerpt(f"failed: {exc.strerror or exc}"))


def target_problem(url: str, *, allowed: Iterable[Network], allow_http: bool) -> str | None:
    """Why this URL may not be reached before anything is resolved: its form, or its host when the host
    is an IP address (a name's addresses are checked by `CheckedResolver`)."""
    problem = url_problem(url, allow_http=allow_http)
    if problem:
        return problem
    # The host aiohttp will connect to (yarl's reading), which must be the one the rules read (urlsplit's):
    # a URL the two parsers read differently is refused rather than guessed at.
    host = _host_form(URL(url).raw_host or "")
    if host != _host_form(urlsplit(url).hostname or ""):
        return "the URL is not a valid URL"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return address_problem(host, allowed=allowed)


def _host_form(host: str) -> str:
    """A host as one spelling: an IP address in its standard form, a name in lower case."""
    bare = host.strip("[]").split("%", 1)[0]
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return bare.lower()


async def _read_capped(resp: aiohttp.ClientResponse) -> bytes:
    """At most `MAX_ANSWER_BYTES` of the answer; a longer answer's connection is closed, not drained.

    The status decides the attempt; the body only gives the excerpt. A body that stops coming (past the
    read timeout) or breaks off keeps what came, and its connection is closed.
    """
    chunks: list[bytes] = []
    size = 0
    try:
        while size < MAX_ANSWER_BYTES:
            chunk = await resp.content.read(MAX_ANSWER_BYTES - size)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
    except (TimeoutError, aiohttp.ClientError):
        pass
    resp.close()
    return b"".join(chunks)


def _refusal(exc: BaseException) -> str | None:
    """The refusal of `CheckedResolver` behind an aiohttp connection error, if that is what it was."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, RefusedTarget):
            return str(seen)
        seen = getattr(seen, "os_error", None) or seen.__cause__
    return None
