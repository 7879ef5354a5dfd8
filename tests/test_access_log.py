"""The access log: one JSON line per request, with what operators match IdP logs against, never secrets."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import threading
import time
import uuid
from typing import Any

import orjson
import pytest

from scimsvc.ops import logs
from scimsvc.ops.logs import JsonFormatter
from scimsvc.settings import Settings
from scimsvc.web import access_log
from scimsvc.web.access_log import idp_family
from scimsvc.web.app import create_app
from tests.conftest import ADMIN_HEADERS, make_tenant, unique_email, user_body

OKTA = "Okta SCIM Client 1.0.0"
ENTRA = "Microsoft Azure AD SCIM provisioning 1.0"
FIELDS = {
    "ts",
    "request_id",
    "tenant_id",
    "method",
    "route",
    "status",
    "duration_ms",
    "bytes",
    "client",
    "idp",
}


def new_id() -> str:
    return "acc-" + uuid.uuid4().hex


def access_records(caplog: pytest.LogCaptureFixture, request_id: str) -> list[logging.LogRecord]:
    return [
        r
        for r in list(caplog.records)
        if r.name == "scimsvc.access" and getattr(r, "request_id", None) == request_id
    ]


async def access_line(caplog: pytest.LogCaptureFixture, request_id: str) -> dict[str, Any]:
    """The access line of one request as it is written (JSON), once the writer thread has handed it on."""
    deadline = time.monotonic() + 60
    while not (records := access_records(caplog, request_id)):
        assert time.monotonic() < deadline, f"no access line for {request_id}"
        await asyncio.sleep(0.01)
    text = JsonFormatter().format(records[0])
    return {"text": text, **orjson.loads(text)}


async def send(client: Any, method: str, path: str, **kwargs: Any) -> tuple[str, Any, bytes]:
    """A request with a request id of its own: (that id, the response, its body)."""
    request_id = new_id()
    headers = {"X-Request-Id": request_id, **kwargs.pop("headers", {})}
    resp = await client.request(method, path, headers=headers, **kwargs)
    return request_id, resp, await resp.read()


# --- the IdP family (pure) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agent", "family"),
    [
        ("Okta SCIM Client 1.0.0", "okta"),
        ("okta/2024.01.1", "okta"),
        ("  Okta-Provisioning-Agent/2.1", "okta"),
        ("Microsoft Azure AD SCIM provisioning 1.0.0", "entra"),
        ("Microsoft Entra ID provisioning", "entra"),
        ("Microsoft.Identity.Provisioning/1.0", "entra"),
        ("Azure-AD-Provisioning", "entra"),
        ("curl/8.5.0", "other"),
        ("python-httpx/0.27 (okta client)", "other"),
        ("Mozilla/5.0 (Windows NT 10.0) Edge Microsoft", "other"),
        ("", "other"),
        (None, "other"),
    ],
)
def test_the_idp_family_comes_from_the_start_of_the_user_agent(agent, family):
    assert idp_family(agent) == family


@pytest.mark.parametrize("request_id", ["r-1", None])
@pytest.mark.parametrize("tenant_id", ["6f1c1d2e-0000-4000-8000-000000000000", None])
def test_the_line_written_directly_is_the_one_the_json_formatter_writes(request_id, tenant_id):
    fields = {
        "request_id": request_id,
        "tenant_id": tenant_id,
        "method": "PATCH",
        "route": "/scim/v2/Groups/{id}",
        "status": 200,
        "duration_ms": 12.34,
        "bytes": 1234,
        "client": "203.0.113.7",
        "idp": "entra",
    }
    created = 1_790_000_000.0429
    record = access_log._record(created, fields)
    assert access_log._json_line(created, fields) == JsonFormatter().format(record) + "\n"


# --- through HTTP ---------------------------------------------------------------------------------


async def test_a_scim_call_is_one_json_line_with_tenant_route_status_and_idp(client, tenant, caplog):
    email = unique_email("ada")
    rid, resp, body = await send(
        client,
        "POST",
        "/scim/v2/Users",
        data=orjson.dumps(user_body(email)),
        headers={**tenant.headers, "User-Agent": OKTA},
    )
    assert resp.status == 201
    user_id = orjson.loads(body)["id"]
    line = await access_line(caplog, rid)
    assert FIELDS <= set(line)
    assert line["logger"] == "scimsvc.access"
    assert line["request_id"] == rid == resp.headers["X-Request-Id"]
    assert line["tenant_id"] == tenant.id
    assert (line["method"], line["route"], line["status"]) == ("POST", "/scim/v2/Users", 201)
    assert line["bytes"] > len(body) > 0  # what was sent, headers included
    assert line["duration_ms"] >= 0
    assert line["client"] == "127.0.0.1"
    assert line["idp"] == "okta"
    assert tenant.token not in line["text"] and email not in line["text"]

    rid, resp, _ = await send(
        client, "GET", f"/scim/v2/Users/{user_id}", headers={**tenant.headers, "User-Agent": ENTRA}
    )
    assert resp.status == 200
    line = await access_line(caplog, rid)
    assert (line["route"], line["status"], line["idp"]) == ("/scim/v2/Users/{id}", 200, "entra")
    assert user_id not in line["text"]  # the template, not the path


async def test_every_request_gets_exactly_one_line(client, tenant, caplog):
    ids = []
    for path in ("/ops/health", "/scim/v2/Users?count=1", "/scim/v2/ServiceProviderConfig", "/nowhere"):
        rid, _, _ = await send(client, "GET", path, headers=tenant.headers)
        ids.append(rid)
    # One connection answers in order and the writer keeps the order: once the last line is out, all are.
    last, _, _ = await send(client, "GET", "/ops/health")
    await access_line(caplog, last)
    assert [len(access_records(caplog, rid)) for rid in ids] == [1, 1, 1, 1]


async def test_a_filter_with_an_email_leaves_neither_the_email_nor_the_query_in_the_log(
    client, tenant, caplog
):
    email = unique_email("grace")
    rid, resp, _ = await send(
        client, "GET", "/scim/v2/Users", params={"filter": f'userName eq "{email}"'}, headers=tenant.headers
    )
    assert resp.status == 200
    line = await access_line(caplog, rid)
    assert line["route"] == "/scim/v2/Users"
    text = line["text"]
    assert email not in text and email.split("@")[0] not in text
    assert "filter" not in text and "userName" not in text and "?" not in text


async def test_a_wrong_token_is_logged_as_401_without_the_token_or_a_tenant(client, caplog):
    wrong = "wrong-" + uuid.uuid4().hex
    rid, resp, _ = await send(
        client, "GET", "/scim/v2/Users", headers={"Authorization": f"Bearer {wrong}", "User-Agent": ENTRA}
    )
    assert resp.status == 401
    line = await access_line(caplog, rid)
    assert (line["status"], line["tenant_id"], line["idp"]) == (401, None, "entra")
    assert wrong not in line["text"] and "Bearer" not in line["text"]


async def test_the_admin_key_is_never_logged(client, caplog):
    name = "t-" + uuid.uuid4().hex[:6]
    rid, resp, _ = await send(client, "POST", "/admin/v1/tenants", json={"name": name}, headers=ADMIN_HEADERS)
    assert resp.status == 201
    line = await access_line(caplog, rid)
    assert (line["route"], line["status"], line["idp"]) == ("/admin/v1/tenants", 201, "other")
    assert ADMIN_HEADERS["Authorization"].split()[1] not in line["text"]


async def test_an_unknown_path_is_logged_as_unmatched_404_without_the_path(client, tenant, caplog):
    email = unique_email("lost")
    rid, resp, _ = await send(client, "GET", f"/scim/v2/Nope/{email}", headers=tenant.headers)
    assert resp.status == 404
    line = await access_line(caplog, rid)
    assert (line["route"], line["status"]) == ("unmatched", 404)
    assert email not in line["text"] and "Nope" not in line["text"]


async def test_a_rate_limited_call_is_logged_as_429_with_its_tenant(client, caplog):
    tenant = await make_tenant(client, rate_limit={"credits_per_30s": 2000})
    for _ in range(500):
        rid, resp, _ = await send(client, "GET", "/scim/v2/Users", headers=tenant.headers)
        if resp.status == 429:
            break
    assert resp.status == 429
    line = await access_line(caplog, rid)
    assert (line["status"], line["tenant_id"], line["route"]) == (429, tenant.id, "/scim/v2/Users")


async def test_behind_a_trusted_proxy_the_client_is_the_forwarded_address(aiohttp_client, settings, caplog):
    client = await aiohttp_client(create_app(dataclasses.replace(settings, trusted_proxies="127.0.0.1/32")))
    rid, _, _ = await send(client, "GET", "/ops/health", headers={"X-Forwarded-For": "203.0.113.7"})
    line = await access_line(caplog, rid)
    assert line["client"] == "203.0.113.7"


async def test_lines_are_written_off_the_event_loop_so_a_stuck_output_stalls_no_request(client, caplog):
    stuck = StuckOutput()
    logging.getLogger().addHandler(stuck)
    try:
        for _ in range(20):
            _, resp, _ = await send(client, "GET", "/ops/health")
            assert resp.status == 200
        assert stuck.entered.wait(60), "no access line reached the output"
        assert threading.get_ident() not in stuck.threads  # written by another thread than the loop's
        assert not stuck.timed_out  # every answer came while the output was stuck on a line
    finally:
        stuck.unstick.set()
        logging.getLogger().removeHandler(stuck)


async def test_lines_the_output_cannot_take_are_dropped_and_counted(
    aiohttp_client, settings, caplog, monkeypatch
):
    monkeypatch.setattr(access_log, "QUEUE_LINES", 3)
    client = await aiohttp_client(create_app(settings))
    stuck = StuckOutput()
    logging.getLogger().addHandler(stuck)
    try:
        ids = [(await send(client, "GET", "/ops/health"))[0] for _ in range(10)]
        assert stuck.entered.wait(60)
    finally:
        stuck.unstick.set()
        logging.getLogger().removeHandler(stuck)

    sent = list(ids)

    def written_and_dropped() -> tuple[int, int]:
        records = list(caplog.records)
        reports = [r.getMessage() for r in records if r.name == "scimsvc.web.access_log"]
        dropped = sum(int(m.split()[2]) for m in reports if "lines dropped" in m)
        return sum(len(access_records(caplog, rid)) for rid in sent), dropped

    # Drops are reported with the next line written: more requests (whose lines may be dropped too, on a
    # slow machine) until every request sent is accounted for, its line written or counted as dropped.
    deadline = time.monotonic() + 60
    while sum(written_and_dropped()) != len(sent):
        assert time.monotonic() < deadline, f"written, dropped: {written_and_dropped()} of {len(sent)}"
        sent.append((await send(client, "GET", "/ops/health"))[0])
        await asyncio.sleep(0.05)
    written, dropped = written_and_dropped()
    assert written >= 1 and dropped >= 1


async def test_scimsvc_access_log_off_writes_no_line(aiohttp_client, settings, caplog, monkeypatch):
    monkeypatch.setenv("SCIMSVC_ACCESS_LOG", "off")
    assert Settings.from_env().access_log is False
    monkeypatch.setenv("SCIMSVC_ACCESS_LOG", "0")
    off = dataclasses.replace(settings, access_log=Settings.from_env().access_log)
    client = await aiohttp_client(create_app(off))
    tenant = await make_tenant(client)
    ids = [
        (
            await send(
                client, "POST", "/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers
            )
        )[0],
        (await send(client, "GET", "/nowhere"))[0],
    ]
    await client.close()  # every request's handling, access logging included, is over
    assert all(not access_records(caplog, rid) for rid in ids)
    assert not [r for r in caplog.records if r.name == "scimsvc.access"]
    monkeypatch.delenv("SCIMSVC_ACCESS_LOG")
    assert Settings.from_env().access_log is True


@pytest.fixture
def served_output():
    """The root's handlers as `scimsvc serve` has them (`logs.configure`), writing into a buffer."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def configure(fmt: str) -> io.StringIO:
        logs.configure(level="WARNING", fmt=fmt)
        out = io.StringIO()
        root.handlers[0].setStream(out)  # type: ignore[attr-defined]
        return out

    yield configure
    root.handlers[:] = handlers
    root.setLevel(level)


async def written_lines(out: io.StringIO, request_id: str) -> list[str]:
    """Every line written so far, once the one of `request_id` is among them."""
    deadline = time.monotonic() + 60
    while request_id not in out.getvalue():
        assert time.monotonic() < deadline, f"no access line for {request_id}"
        await asyncio.sleep(0.01)
    return out.getvalue().splitlines()


async def test_as_served_each_line_is_json_with_the_fields_and_no_secret(client, tenant, served_output):
    out = served_output("json")  # with the log level at WARNING, as the access log ignores it
    assert access_log._direct_handler() is not None  # lines written as JSON by the writer itself
    email = unique_email("hopper")
    rid, resp, _ = await send(
        client,
        "GET",
        "/scim/v2/Users",
        params={"filter": f'userName eq "{email}"'},
        headers={**tenant.headers, "User-Agent": OKTA},
    )
    assert resp.status == 200
    lines = [orjson.loads(line) for line in await written_lines(out, rid)]
    (line,) = [x for x in lines if x.get("request_id") == rid and x["logger"] == "scimsvc.access"]
    assert FIELDS <= set(line)
    assert (line["tenant_id"], line["route"], line["status"], line["idp"]) == (
        tenant.id,
        "/scim/v2/Users",
        200,
        "okta",
    )
    assert email not in out.getvalue() and tenant.token not in out.getvalue()


async def test_with_the_text_format_a_line_is_readable(client, served_output):
    out = served_output("text")
    rid, resp, _ = await send(client, "GET", "/ops/health")
    (line,) = [x for x in await written_lines(out, rid) if "scimsvc.access" in x]
    head, _, tail = line.partition(" ms  ")
    assert " INFO    scimsvc.access GET /ops/health 200 " in head
    # After the message, the fields it does not show, each once.
    assert tail.split()[0] == f"request_id={rid}"
    keys = [item.partition("=")[0] for item in tail.split()]
    assert keys == ["request_id", "tenant_id", "bytes", "client", "idp"]


class StuckOutput(logging.Handler):
    """A root handler that hangs on access lines until released, as stderr does on a full pipe."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.unstick = threading.Event()
        self.threads: set[int] = set()
        self.timed_out = False

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "scimsvc.access" and not self.timed_out:
            self.threads.add(threading.get_ident())
            self.entered.set()
            self.timed_out = not self.unstick.wait(60)
