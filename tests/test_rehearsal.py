"""The scale-out rehearsal (README.md, Scale-out rehearsal): its checks on made-up request logs and rows,
and its short variant, `bench/rehearsal.py --short` as a subprocess, on engines of its own (PgBouncer, a
Redis Cluster, a queue Redis, 3 serves, 3 workers, nginx) while a serve, a worker and a cluster master are
killed: its exit status and the checks of its JSON report.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REDIS_URL, SERVER_URL, bare_env

ROOT = Path(__file__).resolve().parent.parent
ENGINES = ("pgbouncer", "nginx", "redis-server", "redis-cli")
MISSING = [
    name
    for name in ENGINES
    if not (shutil.which(name) or any(os.access(f"{d}/{name}", os.X_OK) for d in ("/usr/sbin", "/usr/bin")))
]
WALL_CLOCK = 240  # the short variant takes under 3 minutes on 2 cores; this only bounds a hang

needs_engines = pytest.mark.skipif(
    bool(MISSING),
    reason=f"{', '.join(MISSING)} not installed (Debian packages pgbouncer, nginx-light, redis-server; "
    ".ci/run installs them as root)",
)


def load_rehearsal():
    """bench/rehearsal.py as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_rehearsal", ROOT / "bench" / "rehearsal.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


rehearsal = load_rehearsal()
U1, U2 = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"


def line(route, status, sent, done, *, rid, uid=U1, state=None, cost=100):
    path = "/Users" if route.startswith("POST") else f"/Users/{uid}"
    return {
        "route": route,
        "path": path,
        "status": status,
        "sent_at": sent,
        "done_at": done,
        "request_id": rid,
        "id": uid if status in (200, 201) else None,
        "state": state,
        "cost": cost,
        "limit": 60_000,
    }


def row(rid, uid=U1, applied=True):
    return {"request_id": rid, "resource_type": "user", "resource_id": uid, "change": "x", "applied": applied}


def database(rows, users, audit_twice=()):
    return {"outbox": rows, "users": users, "audit_twice": list(audit_twice)}


def user(uid, name, active):
    return {uid: {"id": uid, "user_name": "u@x.example", "display_name": name, "active": active}}


def test_the_last_answered_write_decides_and_overlapping_ones_may_both_be_last():
    first = line("PUT /Users/{id}", 200, 1.0, 1.1, rid="a", state={"displayName": "A", "active": True})
    second = line("PUT /Users/{id}", 200, 1.2, 1.3, rid="b", state={"displayName": "B", "active": True})
    overlapping = line("PUT /Users/{id}", 200, 1.25, 1.4, rid="c", state={"displayName": "C", "active": True})
    assert rehearsal.possible_last_values([first, second], "displayName") == {"B"}
    assert rehearsal.possible_last_values([first, second, overlapping], "displayName") == {"B", "C"}


def test_writes_are_checked_against_the_outbox_and_the_users():
    create = line("POST /Users", 201, 1.0, 1.1, rid="c", state={"displayName": "A", "active": True})
    noop = line("PATCH /Users/{id}", 200, 1.2, 1.3, rid="p", state={"active": True})
    refused = line("PUT /Users/{id}", 429, 1.4, 1.5, rid="r", state={"displayName": "Z", "active": True})
    lost = line("POST /Users", 503, 1.6, 1.7, rid="l", uid=U2, state={"displayName": "L", "active": True})
    good = rehearsal.write_checks(
        [create, noop, refused, lost], database([row("c")], user(U1, "A", True)), []
    )
    assert good["ok"] and good["acknowledged_without_change"] == 1 and good["unanswered_applied"] == 0, good

    landed = database([row("c"), row("l", U2)], {**user(U1, "A", True), **user(U2, "L", True)})
    assert rehearsal.write_checks([create, lost], landed, [])["unanswered_applied"] == 1

    def problems(db, lines=(create,)):
        return rehearsal.write_checks(list(lines), db, [])["problems"]

    assert "has 0 outbox rows" in problems(database([], user(U1, "A", True)))[0]
    assert "has 2 outbox rows" in problems(database([row("c"), row("c")], user(U1, "A", True)))[0]
    assert "not applied" in " ".join(problems(database([row("c", applied=False)], user(U1, "A", True))))
    assert "not in the database" in problems(database([row("c")], {}))[0]
    assert (
        "no create of this run"
        in problems(database([row("c")], {**user(U1, "A", True), **user(U2, "", True)}))[0]
    )
    assert "displayName is 'B'" in problems(database([row("c")], user(U1, "B", True)))[0]
    assert (
        "wrote an outbox row"
        in problems(database([row("c"), row("r")], user(U1, "A", True)), lines=(create, refused))[0]
    )
    twice = {"action": "allocation", "user_id": U1, "request_id": "c"}
    assert "audited twice" in problems(database([row("c")], user(U1, "A", True), [twice]))[0]
    # A PUT in flight on a killed serve, applied there and replayed by nginx on another: two rows.
    put = line("PUT /Users/{id}", 200, 2.0, 2.5, rid="u", state={"displayName": "P", "active": True})
    replayed = database([row("c"), row("u"), row("u")], user(U1, "P", True))
    assert rehearsal.write_checks([create, put], replayed, [2.2])["acknowledged_replayed_by_nginx"] == 1
    assert not rehearsal.write_checks([create, put], replayed, [])["ok"]


def test_only_503s_during_a_kill_and_502s_of_writes_in_flight_on_a_killed_serve_are_allowed():
    lines = [
        line("POST /Users", 503, 10.0, 10.2, rid="a"),  # during the worker's kill
        line("PATCH /Users/{id}", 502, 19.5, 20.1, rid="b"),  # in flight when the serve died
        line("GET /Users/{id}", 502, 19.5, 20.1, rid="c"),  # nginx replays a GET: a 502 is wrong
        line("POST /Users", 503, 40.0, 40.5, rid="d"),  # no kill then
        line("POST /Users", None, 41.0, 71.0, rid="e"),  # no answer
    ]
    errors = rehearsal.error_check(lines, [("worker", 9.0, 12.0), ("serve", 20.0, 22.0)], [20.0], lambda t: t)
    assert errors["allowed_count"] == 2 and errors["other_count"] == 3 and not errors["ok"]
    assert [e["status"] for e in errors["other"]] == [502, 503, None]


def test_admitted_credits_are_held_to_budget_and_refill_but_for_the_fail_open_window():
    # 30 s at a budget of 3,000: 3,000 + 3,000 allowed; 61 admitted requests of 100 credits is one too many.
    lines = [line("GET /Users/{id}", 200, 0.0 + i * 0.5, 0.0 + i * 0.5, rid=str(i)) for i in range(61)]
    assert not rehearsal.credit_check(lines, budget=3000, fail_open=[])["ok"]
    spared = rehearsal.credit_check(lines, budget=3000, fail_open=[(10.0, 10.4)])
    assert spared["ok"] and spared["admitted_while_failing_open"] == 100, spared


@needs_engines
def test_short_rehearsal_keeps_every_acknowledged_write_through_its_kills(tmp_path):
    out = tmp_path / "rehearsal.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "rehearsal.py"), "--short", "--json-out", str(out)],
        env=bare_env(
            SCIMSVC_BENCH_SERVER_URL=SERVER_URL.rsplit("/", 1)[0], SCIMSVC_BENCH_REDIS_URL=REDIS_URL
        ),
        capture_output=True,
        text=True,
        timeout=WALL_CLOCK,
        cwd=ROOT,
    )
    assert out.exists(), f"no report written: {result.stdout[-3000:]}{result.stderr[-3000:]}"
    report = json.loads(out.read_text())
    assert result.returncode == 0, f"{result.stdout[-4000:]}{result.stderr[-2000:]}"
    assert report["ok"] and all(report["checks"].values()), report["checks"]
    assert report["engines"]["pgbouncer"] and report["engines"]["redis_cluster"]

    kills = {kill["kill"]: kill for kill in report["kills"]}
    assert set(kills) == {"serve", "worker", "cluster master"}
    assert all(kill["recovered_s"] is not None for kill in kills.values()), kills
    assert kills["cluster master"]["rejoined_s"] is not None

    assert report["live_workers"]["reported"] == report["live_workers"]["running"] == 3
    assert {t["mix"] for t in report["tenants"]} == {"okta", "entra"}
    for tenant in report["tenants"]:
        writes = tenant["writes"]
        assert writes["acknowledged"] > 100 and writes["problems"] == [], writes
        assert writes["users"] > 0 and writes["outbox_unapplied"] == 0 and writes["audited_twice"] == 0
        # The budget was reached (some 429s), so admitting no more than it allows says something.
        assert tenant["credits"]["rejected_429"] > 0 and tenant["credits"]["ok"], tenant["credits"]
        seats = tenant["seats"]
        assert seats["most_used_seen"] <= seats["seats"] and not seats["overruns"], seats
        assert tenant["errors"]["other_count"] == 0, tenant["errors"]
