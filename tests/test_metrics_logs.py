"""Prometheus /metrics of the web front end and the worker; JSON logs carrying the request id."""

from __future__ import annotations

import dataclasses
import io
import logging
import re

import aiohttp
import orjson
import pytest
from prometheus_client import REGISTRY, generate_latest

from scimsvc.ops.logs import REQUEST_ID, JsonFormatter, mask_email, mask_secret
from scimsvc.web.app import create_app
from tests.conftest import ADMIN_HEADERS, free_port, make_tenant, run_worker, unique_email, user_body


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text format, or None."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        series, value = line.rsplit(" ", 1)
        got = dict(re.findall(r'(\w+)="([^"]*)"', series[len(name) :]))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(value)
    return None


async def test_metrics_count_requests_by_route_template_and_status(client, tenant):
    resp = await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
    user_id = (await resp.json())["id"]
    await client.get(f"/scim/v2/Users/{user_id}", headers=tenant.headers)
    await client.get("/scim/v2/Users/does-not-exist", headers=tenant.headers)
    await client.get("/no/such/path")
    text = await (await client.get("/metrics")).text()
    assert (
        sample(text, "scimsvc_http_requests_total", route="/scim/v2/Users", method="POST", status="201") == 1
    )
    assert (
        sample(text, "scimsvc_http_requests_total", route="/scim/v2/Users/{id}", method="GET", status="200")
        == 1
    )
    assert (
        sample(text, "scimsvc_http_requests_total", route="/scim/v2/Users/{id}", method="GET", status="404")
        == 1
    )
    assert sample(text, "scimsvc_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert (
        sample(text, "scimsvc_http_request_duration_seconds_count", route="/scim/v2/Users", method="POST")
        == 1
    )
    assert user_id not in text  # ids never become labels


async def test_metrics_show_outbox_lag_seats_and_429s(client, db):
    tenant = await make_tenant(client, seats=7)
    resp = await client.patch(
        f"/admin/v1/tenants/{tenant.id}",
        json={"rate_limit": {"credits_per_30s": 2000}},
        headers=ADMIN_HEADERS,
    )
    assert resp.status == 200
    await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
    while (await client.get("/scim/v2/Users", headers=tenant.headers)).status != 429:
        pass
    text = await (await client.get("/metrics")).text()
    assert sample(text, "scimsvc_seats") >= 7  # every tenant's (tests/test_metrics_scale.py counts them)
    assert tenant.id not in text  # no tenant label
    pending = await db.fetchval("SELECT count(*) FROM outbox WHERE applied_at IS NULL")
    assert sample(text, "scimsvc_outbox_pending_rows") == pending >= 1
    assert sample(text, "scimsvc_outbox_lag_seconds") > 0
    assert sample(text, "scimsvc_rate_limited_total", level="L1") == 1


def jobs_succeeded(text: str) -> float:
    return sum(
        sample(text, "scimsvc_jobs_total", function=f, outcome="succeeded") or 0
        for f in ("apply_outbox", "drain_users")
    )


async def test_worker_serves_job_metrics(client, tenant, settings):
    # The counters are the process's (a worker is one process); earlier tests' in-process workers added to
    # them: this test counts what its own worker adds.
    before = jobs_succeeded(generate_latest(REGISTRY).decode())
    port = free_port()
    await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
    await run_worker(dataclasses.replace(settings, worker_metrics_port=port))
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    assert jobs_succeeded(text) >= before + 1
    assert "scimsvc_job_duration_seconds_count{" in text


@pytest.fixture
def json_log():
    """Root-logger lines as parsed JSON objects, formatted exactly as production logs them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    yield lambda: [orjson.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(level)


async def test_log_lines_carry_the_request_id_and_never_the_token(client, json_log):
    token = "scim_" + "s3cret" * 6
    resp = await client.get(
        "/scim/v2/Users", headers={"Authorization": f"Bearer {token}", "X-Request-Id": "idp-call-42"}
    )
    assert resp.status == 401 and resp.headers["X-Request-Id"] == "idp-call-42"
    lines = [e for e in json_log() if "failed authentication" in e["msg"]]
    assert lines and lines[0]["request_id"] == "idp-call-42" and lines[0]["level"] == "warning"
    assert all(token not in orjson.dumps(e).decode() for e in json_log())


async def test_request_id_is_generated_when_missing_or_unsafe(client):
    resp = await client.get("/ops/health", headers={"X-Request-Id": "bad id\twith spaces"})
    generated = resp.headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert REQUEST_ID.get() is None  # nothing leaks out of the request


def test_masks():
    assert mask_email("ada.lovelace@example.com") == "a***@example.com"
    assert mask_email("nobody") == "n***"
    assert mask_secret("scim_abcdefghijkl") == "scim_a…"


async def test_admin_key_required_for_metrics_is_not(aiohttp_client, settings):
    # /metrics is open to the scraper (the admin key is never needed) but reveals no tenant data beyond ids.
    client = await aiohttp_client(create_app(dataclasses.replace(settings, admin_key="")))
    resp = await client.get("/metrics")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")


async def test_request_id_follows_a_write_into_the_worker_log(client, tenant, settings, json_log):
    headers = {**tenant.headers, "X-Request-Id": "okta-req-7"}
    resp = await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=headers)
    user_id = (await resp.json())["id"]
    resp = await client.patch(
        f"/scim/v2/Users/{user_id}",
        json={"Operations": [{"op": "replace", "path": "active", "value": False}]},
        headers={**tenant.headers, "X-Request-Id": "okta-req-8"},
    )
    assert resp.status == 200
    await run_worker(settings)
    applied = [e for e in json_log() if e["logger"] == "scimsvc.applied" and e.get("resource_id") == user_id]
    assert [(e["request_id"], e["msg"]) for e in applied] == [
        ("okta-req-7", "applied user change create"),
        ("okta-req-8", "applied user change deactivate"),
    ]
