"""The scale-out rehearsal's short variant (README.md, Scale-out rehearsal): `bench/rehearsal.py --short` as
a subprocess, on engines of its own (PgBouncer, a Redis Cluster, a queue Redis, 3 serves, 3 workers, nginx),
while a serve, a worker and a cluster master are killed; its exit status and the checks of its JSON report.
"""

from __future__ import annotations

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

pytestmark = pytest.mark.skipif(
    bool(MISSING),
    reason=f"{', '.join(MISSING)} not installed (Debian packages pgbouncer, nginx-light, redis-server; "
    ".ci/run installs them as root)",
)


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
