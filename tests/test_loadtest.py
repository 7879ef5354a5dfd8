"""`scimsvc loadtest`: the pure report parts, and short runs against the test app on a small budget."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import orjson
import pytest

from scimsvc.ratelimit.levels import LEVELS
from scimsvc.tools.loadtest.admissions import credit_accounting, early_admissions
from scimsvc.tools.loadtest.driver import Options, run_loadtest
from scimsvc.tools.loadtest.mixes import GROUP_ACTIONS, MIN_POOL, MIXES, choose_action
from scimsvc.tools.loadtest.payloads import (
    deactivate_patch,
    member_add_patch,
    member_remove_patch,
    profile_patch,
    request_cost,
    user_resource,
    written,
)
from scimsvc.tools.loadtest.report import build_report, format_report
from scimsvc.tools.loadtest.samples import Sample, parse_limit, parse_retry_after
from scimsvc.tools.loadtest.stats import percentile
from scimsvc.tools.loadtest.target import check_target
from tests.conftest import ADMIN_HEADERS, Processes, cli_main, make_tenant


def sample(worker: int, sent: float, status: int | None, **extra) -> Sample:
    fields = {"route": "GET /Users", "latency": 0.01, "cost": 50, "limit": 2000, **extra}
    return Sample(worker=worker, sent=sent, status=status, **fields)


# --- pure parts -------------------------------------------------------------------------------------


def test_percentiles_are_nearest_rank():
    values = [i / 1000 for i in range(1, 101)]
    assert [percentile(values, p) for p in (50, 90, 99, 100)] == [0.05, 0.09, 0.099, 0.1]
    assert percentile([0.2], 99) == 0.2 and percentile([], 50) == 0.0


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080/scim/v2", "http://127.9.9.9/scim/v2/", "http://[::1]:80/", "http://localhost"],
)
def test_loopback_targets_are_accepted(url):
    assert check_target(url, allow_remote=False) == url.rstrip("/")


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/scim/v2",
        "https://10.0.0.5/scim/v2",
        "http://0.0.0.0:8080/",
        "http://localhost.example.com/",
        "http://[::2]/",
    ],
)
def test_remote_targets_are_refused_unless_allowed(url):
    with pytest.raises(ValueError, match="--allow-remote"):
        check_target(url, allow_remote=False)
    assert check_target(url, allow_remote=True)


def test_cli_refuses_a_remote_base_url_before_sending_anything(capsys):
    code = cli_main(["loadtest", "--base-url", "http://scim.example.com/scim/v2", "--token", "t", "--json"])
    assert code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "not a loopback address" in captured.err
    assert cli_main(["loadtest", "--base-url", "ftp://127.0.0.1/", "--token", "t"]) == 2


def test_retry_after_and_limit_headers_are_read():
    assert parse_retry_after("3") == 3.0
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_retry_after(format_datetime(now + timedelta(seconds=7), usegmt=True), now=now) == 7.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_limit("10000") == 10000 and parse_limit("10000, 10000;w=30") == 10000
    assert parse_limit(None) is None and parse_limit("lots") is None


def test_admission_before_a_workers_retry_after_is_early_and_others_are_not():
    samples = [
        sample(1, 1.0, 429, retry_after=2.0),  # announced: not before 3.0
        sample(1, 1.5, 429, retry_after=1.0),  # announces 2.5: the later 3.0 still stands
        sample(1, 2.5, 200),  # early
        sample(1, 3.1, 200),
        sample(2, 1.2, 200),  # another worker owes nothing to worker 1's 429
        sample(3, 0.5, 429, retry_after=1.0),
        sample(3, 1.0, None),  # no response: neither admitted nor early
        sample(3, 1.6, 201),
    ]
    early, announced = early_admissions(samples)
    assert [(e.worker, e.sent, e.not_before) for e in early] == [(1, 2.5, 3.0)]
    assert announced == 3


def test_admitted_credits_are_compared_with_the_budget_plus_its_refill():
    samples = [sample(0, i * 0.1, 200) for i in range(40)] + [sample(0, 4.0, 429, retry_after=1.0)]
    samples.append(sample(0, 5.0, 404, cost=500, route="DELETE /Users/{id}"))  # charged: counts
    c = credit_accounting(samples, elapsed=6.0)
    assert c["limit"] == 2000 and c["admitted_credits"] == 40 * 50 + 500
    assert c["allowed_over_run"] == 2400.0 and c["ratio"] == round(2500 / 2400, 4)
    assert c["offered_credits"] == 2550 and c["overload"] == round(2550 / 400, 2)
    unlimited = credit_accounting([sample(0, 0.0, 200, limit=None)], elapsed=1.0)
    assert unlimited["limit"] is None and unlimited["ratio"] is None and unlimited["admitted_credits"] == 0


def test_report_has_rates_routes_statuses_and_reads_as_text():
    samples = [
        sample(0, 0.0, 201, route="POST /Users", latency=0.004),
        sample(0, 0.1, 200, latency=0.002),
        sample(1, 0.2, 429, retry_after=1.0, latency=0.001),
        sample(1, 0.3, None, latency=30.0),
    ]
    report = build_report(samples, elapsed=2.0, settings={"base_url": "u"}, notes=["n"])
    assert report["sent"] == 4 and report["admitted"] == 2 and report["sent_per_s"] == 2.0
    assert report["admitted_per_s"] == 1.0 and report["rejected_429"] == 1 and report["share_429"] == 0.25
    assert report["status_counts"] == {"200": 1, "201": 1, "429": 1, "error": 1}
    assert report["routes"]["GET /Users"] == {
        "sent": 3,
        "admitted": 1,
        "429": 1,
        "p50_ms": 2.0,
        "p90_ms": 2.0,
        "p99_ms": 2.0,
        "max_ms": 2.0,
    }
    report |= {"mix": "okta", "concurrency": 2, "rate": None, "retry_after": "honoured"}
    text = format_report(report)
    assert "429s        1  (25.0% of sent)" in text and "POST /Users" in text and "note: n" in text


def test_actions_need_a_pool_and_a_group():
    rng = random.Random(1)
    # Until the run owns a few users, an action on one creates one instead (paging needs none).
    first = {choose_action(MIXES["reads"], rng, pool_size=0, has_group=True) for _ in range(100)}
    assert first == {"create", "list"}
    chosen = {choose_action(MIXES["okta"], rng, pool_size=MIN_POOL, has_group=False) for _ in range(500)}
    assert not chosen & GROUP_ACTIONS and {"create", "put", "deactivate", "lookup"} <= chosen
    chosen = {choose_action(MIXES["entra"], rng, pool_size=MIN_POOL, has_group=True) for _ in range(500)}
    assert "group_member" in chosen and "put" not in chosen
    assert not {choose_action(MIXES["reads"], rng, pool_size=9, has_group=True) for _ in range(200)} - {
        "lookup",
        "get",
        "list",
    }


def test_idp_shapes_and_their_prices():
    entra = deactivate_patch(style="entra")["Operations"]
    assert entra == [{"op": "Replace", "path": "active", "value": "False"}]
    assert deactivate_patch(style="okta")["Operations"] == [{"op": "replace", "value": {"active": False}}]
    one = orjson.dumps(member_add_patch([("0" * 36, "a@x.example")], style="okta"))
    batch = orjson.dumps(member_add_patch([(str(i) * 36, f"u{i}@x.example") for i in range(8)], style="okta"))
    assert request_cost("PATCH", "/Groups/{id}", len(one)) == LEVELS["L2"]
    assert request_cost("PATCH", "/Groups/{id}", len(batch)) == LEVELS["L4"]
    remove = member_remove_patch("abc", style="entra")["Operations"][0]
    assert remove == {"op": "Remove", "path": 'members[value eq "abc"]'}
    assert request_cost("GET", "/Users/{id}", 0) == 50 and request_cost("PUT", "/Users/{id}", 400) == 100


# --- runs against the test app ------------------------------------------------------------------------


async def tenant_with_budget(client, credits: int):
    tenant = await make_tenant(client)
    resp = await client.patch(
        f"/admin/v1/tenants/{tenant.id}",
        json={"rate_limit": {"credits_per_30s": credits}},
        headers=ADMIN_HEADERS,
    )
    assert resp.status == 200, await resp.text()
    return tenant


def test_a_write_logs_the_attributes_it_sets_in_both_idp_shapes():
    assert written(user_resource("a@x.example", style="entra", serial=3)) == {
        "displayName": "Load Test3",
        "active": True,
    }
    assert written(deactivate_patch(style="entra")) == {"active": False}  # Entra's string "False"
    assert written(deactivate_patch(style="okta")) == {"active": False}
    for style in ("okta", "entra"):
        assert written(profile_patch(style=style, serial=7)) == {"displayName": "Load Test 7"}
    assert written(member_add_patch([("u1", "a@x.example")], style="okta")) == {}


async def test_log_has_each_request_with_its_request_id_as_the_outbox_records_it(client, db, tmp_path):
    tenant = await make_tenant(client)
    log = tmp_path / "requests.jsonl"
    options = Options(
        base_url=str(client.make_url("/scim/v2")),
        token=tenant.token,
        duration=600,  # a bound on a hang: the run stops after its requests
        requests=40,
        mix="writes",
        concurrency=4,
        seed=5,
        log=str(log),
    )
    report = await run_loadtest(options)

    lines = [orjson.loads(line) for line in log.read_bytes().splitlines()]
    assert len(lines) == report["sent"] == 40
    assert len({line["request_id"] for line in lines}) == 40
    for line in lines:
        assert line["sent_at"] <= line["done_at"] and line["cost"] > 0
    creates = [line for line in lines if line["route"] == "POST /Users" and line["status"] == 201]
    assert creates and all(line["state"]["active"] is True and line["id"] for line in creates)
    # The server took each request's own X-Request-Id: the outbox row of each create carries it.
    rows = await db.fetch(
        "SELECT request_id, resource_id::text AS id FROM outbox WHERE tenant_id = $1::uuid AND change = $2",
        tenant.id,
        "create",
    )
    assert {(r["request_id"], r["id"]) for r in rows} == {(c["request_id"], c["id"]) for c in creates}


@pytest.mark.parametrize("honour", [True, False], ids=["honouring", "ignoring"])
async def test_small_budget_gives_429s_and_admits_no_more_than_budget_plus_refill(client, db, honour):
    tenant = await tenant_with_budget(client, 2000)  # 40 L1 requests, refilling 66.7 credits/s
    options = Options(
        base_url=str(client.make_url("/scim/v2")),
        token=tenant.token,
        duration=3.0,
        mix="okta",
        concurrency=6,
        honour_retry_after=honour,
        seed=3,
    )
    report = await run_loadtest(options)

    assert report["rejected_429"] > 0 and report["status_counts"]["429"] == report["rejected_429"]
    assert report["admitted"] > 0 and report["sent"] == report["admitted"] + report["rejected_429"]
    credits = report["credits"]
    assert credits["limit"] == 2000
    assert credits["ratio"] <= 1 + LEVELS["L4"] / credits["allowed_over_run"], credits
    assert credits["admitted_credits"] >= 2000  # the full bucket was spent
    early = report["early_admissions"]
    assert early["rejections_with_retry_after"] == report["rejected_429"]
    if honour:
        assert early["count"] == 0
    # No team is named after the group: group traffic is skipped, and the report says why.
    assert report["group_id"] is None
    assert any("group traffic skipped" in n and "no team is named" in n for n in report["notes"])
    count = await db.fetchval("SELECT count(*) FROM users WHERE tenant_id = $1::uuid", tenant.id)
    assert count == report["users_created"] > 0


async def test_cli_json_report_with_group_traffic_and_a_request_bound(client, db, processes: Processes):
    tenant = await make_tenant(client)
    resp = await client.post(
        f"/admin/v1/tenants/{tenant.id}/teams", json={"name": "scimsvc-loadtest"}, headers=ADMIN_HEADERS
    )
    assert resp.status == 201
    out = await processes.run(
        "loadtest",
        "--base-url",
        str(client.make_url("/scim/v2")),
        "--token",
        tenant.token,
        "--mix",
        "writes",
        "--requests",
        "80",
        "--duration",
        "600",  # a bound on a hang: the run stops after its 80 requests
        "--rate",
        "200",
        "--concurrency",
        "4",
        "--ignore-retry-after",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    report = orjson.loads(out.stdout)  # stdout is exactly one JSON object
    assert {
        "sent",
        "admitted",
        "sent_per_s",
        "admitted_per_s",
        "routes",
        "status_counts",
        "rejected_429",
        "share_429",
        "early_admissions",
        "credits",
        "notes",
        "elapsed_s",
    } <= set(report)
    assert report["sent"] == 80 and report["stopped_by"] == "requests" and report["retry_after"] == "ignored"
    assert report["elapsed_s"] >= 79 / 200  # paced at 200 requests/s
    assert report["credits"]["limit"] == 400_000 and report["rejected_429"] == 0
    assert report["group_id"] is not None and report["notes"] == []
    routes = report["routes"]
    assert {"POST /Users", "PATCH /Groups/{id}", "POST /Groups"} <= set(routes)
    for stats in routes.values():
        assert set(stats) == {"sent", "admitted", "429", "p50_ms", "p90_ms", "p99_ms", "max_ms"}
        assert stats["p50_ms"] <= stats["p90_ms"] <= stats["p99_ms"] <= stats["max_ms"]
    linked = await db.fetchval(
        "SELECT count(*) FROM groups WHERE tenant_id = $1::uuid AND id = $2::uuid",
        tenant.id,
        report["group_id"],
    )
    assert linked == 1
    assert math.isclose(sum(r["sent"] for r in routes.values()), 80)
