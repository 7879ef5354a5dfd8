"""A bounded schemathesis run against the live app: no 5xx, and every response fits its own schema.

The app runs on 127.0.0.1 in a thread of its own (its own event loop), on the test database; the
document is read from the app's /api/docs/openapi.json. Every operation gets a fixed number of
positive and negative examples, derandomized, so a CI run is repeatable and short. Path ids are
replaced by real ones (a fresh user, group or team per example) so the handlers go past their 404s.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from scimsvc.settings import Settings
from scimsvc.web.app import create_app
from scimsvc.web.openapi import SPEC_PATH
from tests.conftest import ADMIN_KEY, PUBLIC_URL, QUEUE_NAME, REDIS_URL, RUN_ID, unique_email, user_body

EXAMPLES_PER_MODE = 6  # per operation, positive and negative each: about 20 s in all
REQUEST_TIMEOUT_SECONDS = 60  # a bound on a hang: the machine may be busy
CHECKS = [not_a_server_error, response_schema_conformance]


class LiveApp:
    """The app served on 127.0.0.1:<free port> by an event loop in a background thread."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="live-app", daemon=True)
        self.runner = web.AppRunner(app)
        self.base_url = ""

    async def _start(self) -> int:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return self.runner.addresses[0][1]

    def start(self) -> None:
        self.thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        self.base_url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class Api:
    """Plain HTTP calls that set up what the examples need (tenants, users, teams, groups)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        self.scim_headers: dict[str, dict[str, str]] = {}  # tenant id -> its SCIM token's headers

    def call(self, method: str, path: str, *, headers: dict[str, str], json: Any = None) -> Any:
        resp = self.session.request(
            method, self.base_url + path, headers=headers, json=json, timeout=REQUEST_TIMEOUT_SECONDS
        )
        assert resp.status_code < 300, (method, path, resp.status_code, resp.text)
        return resp.json() if resp.content else None

    def tenant(self) -> tuple[str, dict[str, str]]:
        """A tenant without a rate limit, and the headers of its SCIM token."""
        body = {"name": "st-" + uuid.uuid4().hex[:8], "rate_limit": {"preset": "off"}}
        tenant = self.call("POST", "/admin/v1/tenants", headers=self.admin, json=body)
        token = self.call("POST", f"/admin/v1/tenants/{tenant['id']}/scim/tokens", headers=self.admin)
        self.scim_headers[tenant["id"]] = {"Authorization": f"Bearer {token['token']}"}
        return tenant["id"], self.scim_headers[tenant["id"]]

    def restore(self, tenant_id: str) -> None:
        """Undo what the examples may have set on the tenant that stands in for `{tid}`."""
        body = {"scim_enabled": True, "allowed_domains": [], "rate_limit": {"preset": "off"}}
        self.call("PATCH", f"/admin/v1/tenants/{tenant_id}", headers=self.admin, json=body)

    def user(self, scim: dict[str, str]) -> str:
        return self.call("POST", "/scim/v2/Users", headers=scim, json=user_body(unique_email("st")))["id"]

    def team(self, tenant_id: str) -> tuple[str, str]:
        name = "st-team-" + uuid.uuid4().hex[:8]
        team = self.call(
            "POST", f"/admin/v1/tenants/{tenant_id}/teams", headers=self.admin, json={"name": name}
        )
        return team["id"], name

    def group(self, tenant_id: str, scim: dict[str, str]) -> str:
        _, name = self.team(tenant_id)
        return self.call("POST", "/scim/v2/Groups", headers=scim, json={"displayName": name})["id"]


@pytest.fixture(scope="module")
def live_app(database_url: str) -> Iterator[LiveApp]:
    settings = Settings(
        database_url=database_url,
        redis_url=REDIS_URL,
        admin_key=ADMIN_KEY,
        public_url=PUBLIC_URL,
        queue_name=QUEUE_NAME,
        db_pool_min=1,
        db_pool_max=5,
        sweep_after_seconds=0,
        rate_limit_prefix=f"scimsvc:test:{RUN_ID}:rl",
        auth_failures_per_minute=100_000,
    )
    live = LiveApp(create_app(settings))
    live.start()
    try:
        yield live
    finally:
        live.stop()


def _path_ids(
    api: Api, path: str, scim_tenant: tuple[str, dict[str, str]], admin_tenant: str
) -> dict[str, str]:
    """Real ids for the path's parameters, made fresh for this example."""
    tenant_id, scim = scim_tenant
    if path.startswith("/scim/v2/Users/{id}"):
        return {"id": api.user(scim)}
    if path.startswith("/scim/v2/Groups/{id}"):
        return {"id": api.group(tenant_id, scim)}
    if not path.startswith("/admin/v1/tenants/{tid}"):
        return {}
    api.restore(admin_tenant)
    ids = {"tid": admin_tenant}
    if "{uid}" in path:
        ids["uid"] = api.user(api.scim_headers[admin_tenant])
    if "{team_id}" in path:
        ids["team_id"] = api.team(admin_tenant)[0]
    return ids


def _credential(api: Api, path: str, scim: dict[str, str]) -> dict[str, str]:
    if path.startswith("/scim/v2"):
        return scim
    if path.startswith(("/admin/v1", "/ops/queue")):
        return api.admin
    return {}


def _runner(
    operation: Any, mode: schemathesis.GenerationMode, act: Callable[[Any], None]
) -> Callable[[], None]:
    @settings(
        max_examples=EXAMPLES_PER_MODE,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        act(case)

    return run


def test_schemathesis_finds_no_server_error_and_no_response_off_its_schema(live_app: LiveApp) -> None:
    api = Api(live_app.base_url)
    scim_tenant = api.tenant()
    admin_tenant, _ = api.tenant()  # stands in for every `{tid}`: the examples may change its settings
    schema = schemathesis.openapi.from_url(live_app.base_url + SPEC_PATH)
    started = time.monotonic()
    calls = 0
    failures: dict[str, str] = {}

    for result in schema.get_all_operations():
        operation = result.ok()
        path = operation.path

        def act(case: Any, path: str = path) -> None:
            nonlocal calls
            case.path_parameters = {
                **(case.path_parameters or {}),
                **_path_ids(api, path, scim_tenant, admin_tenant),
            }
            calls += 1
            case.call_and_validate(
                base_url=live_app.base_url,
                session=api.session,
                headers=_credential(api, path, scim_tenant[1]),
                checks=CHECKS,
                timeout=REQUEST_TIMEOUT_SECONDS,
            )

        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            try:
                _runner(operation, mode, act)()
            except Unsatisfiable:
                pass  # nothing to break: no parameter, header or body to make invalid
            except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report all
                failures[f"{operation.label} ({mode.value})"] = str(exc)[:3000]

    elapsed = time.monotonic() - started
    print(f"schemathesis: {calls} requests in {elapsed:.1f} s, {len(failures)} failing operations")
    assert not failures, "\n\n".join(f"== {label}\n{text}" for label, text in failures.items())
