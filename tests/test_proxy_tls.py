"""deploy/nginx.conf for real: Debian's nginx with the repository's configuration, a certificate made by
deploy/self-signed-cert, in front of a real `scimsvc serve` with its internal port.

The test changes only what Docker gives the proxy: the upstream addresses (`web` through Docker's DNS, and
`resolve`, which nginx before 1.27.3 lacks, become this test's loopback ports), the ports it listens on and
the folder of the certificate. nginx runs as one process of the test's own (`master_process off`), its
files in tmp_path, stopped by its pid.
"""

from __future__ import annotations

import re
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import (
    ADMIN_HEADERS,
    ADMIN_KEY,
    answers_health,
    free_port,
    service_env,
    tenant_with_token,
    user_body,
    wait_listening,
)

ROOT = Path(__file__).resolve().parent.parent
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
OPENSSL = shutil.which("openssl")

pytestmark = pytest.mark.skipif(
    NGINX is None or OPENSSL is None,
    reason="needs nginx and openssl on PATH or in /usr/sbin (Debian packages nginx-light, openssl)",
)

OPERATOR_PATHS = ["/admin/v1/tenants", "/console/login", "/metrics", "/ops/queue", "/api/docs"]
OPERATOR_PATHS += ["/api/docs/openapi.json", "/", "/scim", "/scim/v1/Users"]
NOT_PUBLISHED = {
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
    "status": "404",
    "detail": "no such endpoint",
}


def for_this_test(
    conf: str, *, web: int, internal: int, https: int, operator: int, http: int, tls: Path
) -> str:
    """deploy/nginx.conf with the loopback addresses of this test instead of compose's."""
    replaced = {
        r"^resolver(_timeout)? .*$": "",
        r"server web:8080 resolve\b": f"server 127.0.0.1:{web}",
        r"server web:8081 resolve\b": f"server 127.0.0.1:{internal}",
        r"listen 8443 ssl;": f"listen 127.0.0.1:{https} ssl;",
        r"listen 9443 ssl;": f"listen 127.0.0.1:{operator} ssl;",
        r"listen 8080;": f"listen 127.0.0.1:{http};",
        r"/etc/nginx/tls/": f"{tls}/",
    }
    for pattern, replacement in replaced.items():
        conf, count = re.subn(pattern, replacement, conf, flags=re.M)
        assert count, f"deploy/nginx.conf no longer has {pattern!r}: update this test"
    return conf


@pytest.fixture
def nginx_files(tmp_path: Path) -> Path:
    folder = tmp_path / "nginx"
    for sub in ("tls", "temp"):
        (folder / sub).mkdir(parents=True)
    made = subprocess.run(
        [str(ROOT / "deploy" / "self-signed-cert"), str(folder / "tls"), "localhost"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    return folder


def start_nginx(folder: Path, server_conf: str) -> subprocess.Popen[bytes]:
    (folder / "default.conf").write_text(server_conf)
    temp = folder / "temp"
    (folder / "nginx.conf").write_text(
        f"""daemon off;
master_process off;
pid {folder}/nginx.pid;
error_log {folder}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {folder}/access.log;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {folder}/default.conf;
}}
"""
    )
    check = subprocess.run(
        [
            str(NGINX),
            "-t",
            "-e",
            str(folder / "error.log"),
            "-p",
            str(folder),
            "-c",
            str(folder / "nginx.conf"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr
    return subprocess.Popen(
        [str(NGINX), "-e", str(folder / "error.log"), "-p", str(folder), "-c", str(folder / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture
def stopped_at_the_end() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:  # only the nginx this test started, by its pid
        proc.kill()
        proc.wait(timeout=60)


async def test_https_reaches_scim_and_health_and_the_proxy_publishes_nothing_else(
    processes, database_url, nginx_files, stopped_at_the_end
):
    web, internal = free_port(), free_port()
    env = service_env(
        database_url,
        SCIMSVC_ADMIN_KEY=ADMIN_KEY,
        SCIMSVC_INTERNAL_PORT=str(internal),
    )
    proc = await processes.start("serve", "--port", str(web), env=env)
    await processes.until(proc, lambda: answers_health(f"http://127.0.0.1:{web}"), what="scimsvc serve")

    https, operator, http_port = free_port(), free_port(), free_port()
    conf = for_this_test(
        (ROOT / "deploy" / "nginx.conf").read_text(),
        web=web,
        internal=internal,
        https=https,
        operator=operator,
        http=http_port,
        tls=nginx_files / "tls",
    )
    nginx = start_nginx(nginx_files, conf)
    stopped_at_the_end.append(nginx)
    for port in (https, operator, http_port):
        wait_listening(port, nginx, "nginx", lambda: (nginx_files / "error.log").read_text()[-2000:])

    # The client trusts the self-signed certificate and checks it names the address it connects to.
    trust = ssl.create_default_context(cafile=str(nginx_files / "tls" / "tls.crt"))
    public, inside = f"https://127.0.0.1:{https}", f"https://127.0.0.1:{operator}"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust)) as http:
        # The operator's port (host loopback in compose) reaches the internal listener: a tenant, a token.
        tenant, token = await tenant_with_token(http, inside, "behind-tls")
        async with http.get(f"{inside}/metrics") as r:
            assert r.status == 200 and "scimsvc_" in await r.text()

        # HTTPS on the public port: SCIM and the health checks reach scimsvc.
        scim = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
        async with http.post(
            f"{public}/scim/v2/Users", json=user_body("grace@example.com"), headers=scim
        ) as r:
            assert r.status == 201, await r.text()
            created = await r.json()
        async with http.get(f"{public}/scim/v2/Users/{created['id']}", headers=scim) as r:
            assert r.status == 200 and (await r.json())["userName"] == "grace@example.com"
        for path in ("/ops/health", "/ops/ready"):
            async with http.get(public + path) as r:
                assert r.status == 200, (path, await r.text())

        # Everything else is 404 at the proxy, credentials or not: nginx's SCIM error body (scimsvc's own
        # would name the method and path), so no replica was asked.
        for path in OPERATOR_PATHS:
            for headers in (ADMIN_HEADERS, {}):
                async with http.get(public + path, headers=headers) as r:
                    assert r.status == 404, (path, r.status)
                    assert await r.json(content_type=None) == NOT_PUBLISHED, path
        async with http.put(
            f"{public}/admin/v1/tenants/{tenant}/scim", json={"enabled": False}, headers=ADMIN_HEADERS
        ) as r:
            assert r.status == 404
        async with http.get(f"{inside}/admin/v1/tenants/{tenant}", headers=ADMIN_HEADERS) as r:
            assert (await r.json())["scim_enabled"] is True

        # Plain HTTP (compose does not publish it): the health checks only.
        plain = f"http://127.0.0.1:{http_port}"
        async with http.get(f"{plain}/ops/health") as r:
            assert r.status == 200
        async with http.get(f"{plain}/scim/v2/Users", headers=scim) as r:
            assert r.status == 404
            assert await r.json(content_type=None) == NOT_PUBLISHED
