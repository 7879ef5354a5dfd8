"""Review probe (branch review1): /metrics of a single-process `serve` when PROMETHEUS_MULTIPROC_DIR is set.

README.md (Several processes) says the folder you set is emptied at start; `_metrics_folder` only runs for
`--processes N` with N > 1, so a single `serve` sums the values an earlier run left there.
"""

from __future__ import annotations

import os
import re
import signal

import aiohttp

from tests.conftest import ADMIN_KEY, answers_health, free_port, service_env

HEALTH = re.compile(r'scimsvc_http_requests_total\{method="GET",route="/ops/health",status="200"\} ([0-9.]+)')


async def health_count(processes, env, folder) -> float:
    port, internal = free_port(), free_port()
    env = env | {
        "SCIMSVC_INTERNAL_PORT": str(internal),
        "SCIMSVC_ADMIN_KEY": ADMIN_KEY,
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
    }
    proc = await processes.start("serve", "--port", str(port), env=env)
    base = f"http://127.0.0.1:{port}"
    await processes.until(proc, lambda: answers_health(base), what="serve to answer /ops/health")
    async with aiohttp.ClientSession() as http:
        for _ in range(5):
            async with http.get(f"{base}/ops/health") as resp:
                assert resp.status == 200
        async with http.get(f"http://127.0.0.1:{internal}/metrics") as resp:
            text = await resp.text()
    os.kill(proc.pid, signal.SIGTERM)
    assert await processes.ended(proc) == 0
    found = HEALTH.search(text)
    assert found, text[:2000]
    return float(found[1])


async def test_a_single_serve_counts_only_its_own_requests_with_a_metrics_folder_set(
    processes, database_url, tmp_path
):
    env = service_env(database_url)
    folder = tmp_path / "prom"
    folder.mkdir()
    first = await health_count(processes, env, folder)
    second = await health_count(processes, env, folder)
    # Each run answered the same requests: the second must not include the first's.
    assert second <= first, (first, second)
