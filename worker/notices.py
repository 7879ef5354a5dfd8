"""Delivering notices over SMTP: at-least-once, retried with backoff, every attempt recorded."""

from __future__ import annotations

import logging
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any
from urllib.parse import unquote, urlsplit

import aiosmtplib

from scimsvc.ops.logs import mask_email
from scimsvc.product.portal import LINK_TOKEN_PLACEHOLDER, link_token_hash, new_link_token
from scimsvc.services.portal import resolve_sign_in_requests
from scimsvc.settings import Settings
from scimsvc.store import notices as store
from scimsvc.store import portal

log = logging.getLogger(__name__)

NOT_CONFIGURED = "not sent: no SMTP configured (set SCIMSVC_SMTP_URL)"
LINK_GONE = "not sent: the sign-in link was used or expired before it could be sent"
BATCH = 50
LEASE_SECONDS = 120


def retry_delay(attempt: int) -> float:
    """Exponential backoff: 30 s, 1 min, 2 min, … capped at one hour."""
    return float(min(30 * 2 ** (attempt - 1), 3600))


def message_id_domain(sender: str) -> str:
    """The domain of the sender's address (SCIMSVC_SMTP_FROM), which Message-IDs are made under."""
    _, at, domain = parseaddr(sender)[1].rpartition("@")
    return domain if at and domain else "localhost"


async def send_mail(smtp_url: str, *, sender: str, to: str, subject: str, body: str) -> None:
    """Send one plain-text message, with the Date and Message-ID headers mail servers expect."""
    url = urlsplit(smtp_url)
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message["Date"] = formatdate(usegmt=True)
    # A domain is always given: without one make_msgid asks socket.getfqdn(), a blocking DNS lookup.
    message["Message-ID"] = make_msgid(domain=message_id_domain(sender))
    message.set_content(body)
    await aiosmtplib.send(
        message,
        hostname=url.hostname or "localhost",
        port=url.port or (465 if url.scheme == "smtps" else 25),
        username=unquote(url.username) if url.username else None,
        password=unquote(url.password) if url.password else None,
        use_tls=url.scheme == "smtps",
        start_tls=None,
        timeout=20,
    )


async def deliver_notices(ctx: dict[str, Any]) -> int:
    """Make the notices of pending sign-in link requests, then send every due notice; returns how many
    were sent."""
    settings: Settings = ctx["settings"]
    pool = ctx["pool"]
    await resolve_sign_in_requests(pool, settings)
    sent = 0
    while due := await store.claim_due(pool, limit=BATCH, lease_seconds=LEASE_SECONDS):
        for notice in due:
            if not settings.smtp_url:
                await store.record_not_sent(pool, notice["id"], NOT_CONFIGURED)
                continue
            body = notice["body"]
            if notice["portal_link_id"] is not None:
                # A sign-in link: its token is made now and exists only in this email (its hash is kept).
                token = new_link_token()
                if not await portal.set_emailed_token(pool, notice["portal_link_id"], link_token_hash(token)):
                    await store.record_not_sent(pool, notice["id"], LINK_GONE)
                    continue
                body = body.replace(LINK_TOKEN_PLACEHOLDER, token)
            elif LINK_TOKEN_PLACEHOLDER in body:  # its link was deleted (long expired): nothing to send
                await store.record_not_sent(pool, notice["id"], LINK_GONE)
                continue
            try:
                await send_mail(
                    settings.smtp_url,
                    sender=settings.smtp_from,
                    to=notice["to_address"],
                    subject=notice["subject"],
                    body=body,
                )
            except Exception as exc:  # noqa: BLE001 - any SMTP or network failure is retried later
                log.warning(
                    "notice %s to %s failed (attempt %s): %r",
                    notice["id"],
                    mask_email(notice["to_address"]),
                    notice["attempts"],
                    exc,
                )
                await store.record_error(
                    pool,
                    notice["id"],
                    repr(exc),
                    retry_in_seconds=retry_delay(notice["attempts"]),
                    max_attempts=settings.notice_max_attempts,
                )
            else:
                await store.record_sent(pool, notice["id"])
                sent += 1
    return sent
