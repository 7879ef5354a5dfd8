"""Getting an organization admin's portal session in a test: a portal link made through the admin API,
opened by the test client (its cookie jar then holds the portal session's cookie).

    from tests.portal import portal_session

    async def test_something(client, tenant):
        portal = await portal_session(client, tenant.id)      # `client` is now signed in to tenant's portal
        resp = await client.post(f"/console/tenants/{tenant.id}/...", data={"csrf_token": portal.csrf, ...})

For the operator and a portal session side by side, use two clients (`aiohttp_client(create_app(settings))`
twice): one cookie jar holds one console session.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

from scimsvc.web.console.session import COOKIE
from tests.conftest import ADMIN_HEADERS

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass(frozen=True)
class PortalSession:
    """A signed-in portal session: its organization, the CSRF token of its forms, its cookie's value."""

    tenant_id: str
    csrf: str
    cookie: str


async def portal_link(
    client: Any,
    tenant_id: str,
    *,
    email: str | None = None,
    minutes: int | None = None,
    redirect: bool = True,
) -> str:
    """A new portal link's path (`/console/portal/<token>`), made through the admin API (by default for a
    redirect, `"redirect": true`: it signs in on a GET; without it, its page has a Continue button)."""
    body: dict[str, Any] = {"redirect": True} if redirect else {}
    if email is not None:
        body["email"] = email
    if minutes is not None:
        body["minutes"] = minutes
    resp = await client.post(f"/admin/v1/tenants/{tenant_id}/portal-links", json=body, headers=ADMIN_HEADERS)
    assert resp.status == 201, await resp.text()
    url = (await resp.json())["url"]
    return "/console/portal/" + url.rsplit("/console/portal/", 1)[1]


async def portal_session(client: Any, tenant_id: str, *, email: str | None = None) -> PortalSession:
    """Sign `client` in to the portal of `tenant_id` (its cookie jar keeps the session)."""
    path = await portal_link(client, tenant_id, email=email)
    resp = await client.get(path, allow_redirects=False)
    assert resp.status == 200, await resp.text()  # a page that moves on to the SCIM page by itself
    cookie = resp.cookies[COOKIE].value
    page = await client.get(f"/console/tenants/{tenant_id}/scim")
    assert page.status == 200, await page.text()
    found = CSRF.search(await page.text())
    assert found, "no CSRF token on the SCIM page"
    return PortalSession(tenant_id, html.unescape(found.group(1)), cookie)
