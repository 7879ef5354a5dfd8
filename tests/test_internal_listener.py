"""SCIMSVC_INTERNAL_PORT: one `scimsvc serve` on two ports. The main port serves SCIM and the health checks
and answers the operator's paths 404, as it answers an unknown path; the internal port serves everything.

The server reads its database URL and admin key from files (SCIMSVC_*_FILE), as compose's secrets give them.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.conftest import (
    ADMIN_HEADERS,
    ADMIN_KEY,
    answers_health,
    free_port,
    service_env,
    tenant_with_token,
    user_body,
)

# Every family of the operator's paths, as a request that the internal port answers 200 with the admin key.
OPERATOR_PATHS = [
    "/admin/v1/tenants/{tenant}",
    "/admin/v1/tenants/{tenant}/scim/tokens",
    "/console/login",
    "/console/",
    "/console/static/console.css",
    "/metrics",
    "/ops/queue",
    "/api/docs",
    "/api/docs/openapi.json",
]
PUBLIC_PATHS = ["/ops/health", "/ops/ready", "/scim/v2/ServiceProviderConfig", "/scim/v2/Users"]


async def _get(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> tuple[int, str, Any]:
    async with http.get(url, headers=headers, allow_redirects=False) as resp:
        text = await resp.text()
        return resp.status, resp.content_type, text


async def test_operator_paths_only_on_the_internal_port_scim_and_health_on_both(
    processes, database_url, tmp_path
):
    (tmp_path / "database_url").write_text(database_url + "\n")
    (tmp_path / "admin_key").write_text(ADMIN_KEY + "\n")
    env = service_env(database_url)
    del env["SCIMSVC_DATABASE_URL"]
    port, internal_port = free_port(), free_port()
    env |= {
        "SCIMSVC_DATABASE_URL_FILE": str(tmp_path / "database_url"),
        "SCIMSVC_ADMIN_KEY_FILE": str(tmp_path / "admin_key"),
        "SCIMSVC_INTERNAL_PORT": str(internal_port),
    }
    proc = await processes.start("serve", "--port", str(port), env=env)
    public, internal = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{internal_port}"
    await processes.until(proc, lambda: answers_health(public), what="the main port to answer /ops/health")
    await processes.until(proc, lambda: answers_health(internal), what="the internal port to answer")

    async with aiohttp.ClientSession() as http:
        # The admin API, with the key from the file, on the internal port: a tenant and its SCIM token.
        tenant, token = await tenant_with_token(http, internal, "two-ports")
        scim = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
        operator = ADMIN_HEADERS

        # SCIM and the health checks on both ports; a user written through the main port.
        async with http.post(f"{public}/scim/v2/Users", json=user_body("ada@example.com"), headers=scim) as r:
            assert r.status == 201, await r.text()
        for base in (public, internal):
            for path in PUBLIC_PATHS:
                status, _, text = await _get(http, base + path, scim)
                assert status == 200, (base, path, status, text)

        unknown = await _get(http, f"{public}/no/such/path", operator)
        assert unknown[0] == 404
        for template in OPERATOR_PATHS:
            path = template.format(tenant=tenant)
            status, content_type, text = await _get(http, internal + path, operator)
            assert status < 400, (path, status, text[:300])
            # The main port: 404 as for a path that does not exist, credentials or not.
            for headers in (operator, scim, {}):
                status, content_type, text = await _get(http, public + path, headers)
                assert (status, content_type) == unknown[:2], (path, status, text[:300])
                assert text == unknown[2].replace("/no/such/path", path), (path, text)
            async with http.head(public + path, headers=operator) as r:
                assert r.status == 404, (path, r.status)

        # A write of the admin API is refused on the main port and changes nothing.
        async with http.put(
            f"{public}/admin/v1/tenants/{tenant}/scim", json={"enabled": False}, headers=ADMIN_HEADERS
        ) as r:
            assert r.status == 404, await r.text()
        async with http.get(f"{internal}/admin/v1/tenants/{tenant}", headers=ADMIN_HEADERS) as r:
            assert (await r.json())["scim_enabled"] is True
