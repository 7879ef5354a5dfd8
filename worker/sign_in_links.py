"""The worker's half of a sign-in request by email (README.md, For organization admins): the web process
only records the request (`services/portal.py:request_sign_in_links`), whatever the address, so its answer
tells nothing; here the address is looked up and each organization it is registered for gets a link and its
notice (`worker/notices.py` sends it and makes the token as it does)."""

from __future__ import annotations

import asyncpg

from scimsvc.product.portal import LINK_TOKEN_PLACEHOLDER, SIGN_IN_EMAILS_PER_HOUR, link_url
from scimsvc.product.portal import sign_in_email as sign_in_email_text
from scimsvc.settings import Settings
from scimsvc.store import portal as store
from scimsvc.store.db import transaction


async def resolve_sign_in_requests(pool: asyncpg.Pool, settings: Settings) -> int:
    """For each pending sign-in request, a sign-in link by email for each organization its address is
    registered for (at most SIGN_IN_EMAILS_PER_HOUR an hour per
    address, under concurrency too), each with its notice, in the request's transaction; how many notices
    were written. The notices hold the token's placeholder; the sender makes the token."""
    minutes = settings.portal_link_minutes
    written = 0
    while True:
        async with transaction(pool) as conn:
            request = await store.take_sign_in_request(conn)
            if request is None:
                return written
            address = request["email"]
            links = await store.create_emailed_links(
                conn, address, minutes=minutes, per_hour=SIGN_IN_EMAILS_PER_HOUR
            )
            for link in links:
                url = link_url(settings.public_url, LINK_TOKEN_PLACEHOLDER)
                subject, body = sign_in_email_text(organization=link["tenant_name"], url=url, minutes=minutes)
                await store.add_link_notice(
                    conn,
                    link["tenant_id"],
                    link["id"],
                    to=address,
                    subject=subject,
                    body=body,
                    request_id=request["request_id"],
                )
            written += len(links)
