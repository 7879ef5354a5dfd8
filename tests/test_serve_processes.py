"""`scimsvc serve --processes N`: N processes on one port, each answering, all stopping together.

Which process answered a connection is read from the kernel, not from the service: the server side of
each connection is a socket in /proc/net/tcp{,6}, and /proc/PID/fd of the process holding it names it.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import re
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import (
    ADMIN_KEY,
    PROCESS_DEADLINE,
    Processes,
    answers_health,
    free_port,
    service_env,
    wait_until,
)

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads connections from /proc")

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def children_of(pid: int) -> set[int]:
    """The pids whose parent is `pid`."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # it ended meanwhile
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def server_sockets(port: int) -> dict[int, int]:
    """Established connections to local `port`: the client's port → the server-side socket's inode."""
    inodes = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
                if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes[int(remote.rsplit(":", 1)[1], 16)] = inode
    return inodes


def socket_owners(pids: set[int]) -> dict[int, int]:
    """Socket inode → the pid (of `pids`) holding it."""
    owners = {}
    for pid in pids:
        fds = Path(f"/proc/{pid}/fd")
        for fd in fds.iterdir() if fds.exists() else ():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                owners[int(target[8:-1])] = pid
    return owners


@contextmanager
def connections(port: int, count: int) -> Iterator[list[http.client.HTTPConnection]]:
    """`count` kept-alive HTTP connections to 127.0.0.1:`port`, each opened by a request."""
    opened = [http.client.HTTPConnection("127.0.0.1", port, timeout=PROCESS_DEADLINE) for _ in range(count)]
    try:
        for conn in opened:
            assert get(conn, "/ops/health") == 200
        yield opened
    finally:
        for conn in opened:
            conn.close()


def alive(pid: int) -> bool:
    """Whether a process `pid` exists (the parent reaps its children: an ended one is gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def get(conn: http.client.HTTPConnection, path: str, headers: dict[str, str] | None = None) -> int:
    conn.request("GET", path, headers=headers or {})
    resp = conn.getresponse()
    resp.read()
    return resp.status


def answering_pids(serve_pid: int, port: int, opened: list[http.client.HTTPConnection]) -> list[int]:
    """For each connection, the child of `serve` holding its server side."""
    inodes = server_sockets(port)
    owners = socket_owners(children_of(serve_pid))
    return [owners[inodes[conn.sock.getsockname()[1]]] for conn in opened]


async def start_serve(
    processes: Processes, env: dict[str, str], *, setting: bool = False
) -> tuple[int, int, int]:
    """`scimsvc serve --processes 2` (or SCIMSVC_WEB_PROCESSES=2: `setting`) with an internal port; (its
    pid, the port, the internal port)."""
    port, internal = free_port(), free_port()
    env = env | {"SCIMSVC_INTERNAL_PORT": str(internal), "SCIMSVC_ADMIN_KEY": ADMIN_KEY}
    if setting:
        env["SCIMSVC_WEB_PROCESSES"] = "2"
    two = () if setting else ("--processes", "2")
    proc = await processes.start("serve", "--port", str(port), *two, env=env)
    base = f"http://127.0.0.1:{port}"
    await processes.until(proc, lambda: answers_health(base), what="serve to answer /ops/health")
    return proc.pid, port, internal


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return service_env(database_url)


async def test_two_processes_answer_on_one_port_and_sum_their_metrics(processes, env):
    pid, port, internal = await start_serve(processes, env)
    with connections(port, 24) as opened:
        # The kernel spreads connections by their addresses: 24 all on one of 2 would be 1 in 8 million.
        pids = await asyncio.to_thread(answering_pids, pid, port, opened)
        assert len(set(pids)) == 2, pids
        assert all(get(conn, "/ops/health") == 200 for conn in opened)
        assert get(opened[0], "/metrics") == 404  # the operator's paths stay on the internal port
    async with aiohttp.ClientSession() as http_session:
        async with http_session.get(f"http://127.0.0.1:{internal}/metrics") as resp:
            text = await resp.text()
    # Every process's requests in one scrape, whichever process answered it: 24 × 2 on the main port.
    line = next(x for x in text.splitlines() if 'route="/ops/health",status="200"' in x)
    assert float(line.rsplit(" ", 1)[1]) >= 48
    assert "scimsvc_seats " in text


async def test_a_revoked_token_is_refused_by_every_process(processes, env):
    pid, port, internal = await start_serve(processes, env)
    async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{internal}", headers=ADMIN) as admin:
        async with admin.post("/admin/v1/tenants", json={"name": "procs"}) as resp:
            tenant_id = (await resp.json())["id"]
        async with admin.post(f"/admin/v1/tenants/{tenant_id}/scim/tokens") as resp:
            token = await resp.json()
    scim = {"Authorization": f"Bearer {token['token']}"}
    with connections(port, 24) as opened:
        assert len(set(await asyncio.to_thread(answering_pids, pid, port, opened))) == 2
        # Each process now holds the token in its cache.
        assert all(get(conn, "/scim/v2/Users", scim) == 200 for conn in opened)
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{internal}", headers=ADMIN) as admin:
            async with admin.delete(f"/admin/v1/tenants/{tenant_id}/scim/tokens/{token['id']}") as resp:
                assert resp.status == 204
        for conn in opened:
            await wait_until(
                lambda conn=conn: get(conn, "/scim/v2/Users", scim) == 401,
                what="every process to refuse the revoked token",
            )


async def test_sigterm_stops_every_process(processes, env):
    pid, port, _ = await start_serve(processes, env, setting=True)
    children = children_of(pid)
    with connections(port, 24) as opened:
        web = set(await asyncio.to_thread(answering_pids, pid, port, opened))
    assert len(web) == 2 and web <= children
    proc = next(p for p in processes.procs if p.pid == pid)
    os.kill(pid, signal.SIGTERM)
    assert await processes.ended(proc) == 0
    assert not any(alive(child) for child in web)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


async def test_a_process_that_dies_stops_serve_with_one_line(processes, env):
    pid, port, _ = await start_serve(processes, env)
    with connections(port, 24) as opened:
        web = sorted(set(await asyncio.to_thread(answering_pids, pid, port, opened)))
    os.kill(web[0], signal.SIGKILL)
    proc = next(p for p in processes.procs if p.pid == pid)
    assert await processes.ended(proc) == 1
    assert f"(pid {web[0]}) exited with status -9: stopping the other 1 and exiting" in processes.stderr(proc)
    assert not alive(web[1])


async def test_serve_refuses_a_port_in_use_before_starting_processes(processes, env):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        proc = await processes.start("serve", "--port", str(port), "--processes", "2", env=env)
        assert await processes.ended(proc) == 1
    assert processes.stderr(proc).strip() == (
        f"scimsvc: error: cannot listen on 127.0.0.1:{port} (--host/--port, SCIMSVC_HOST/SCIMSVC_PORT): "
        "address already in use"
    )


HEALTH_COUNT = re.compile(
    r'scimsvc_http_requests_total\{method="GET",route="/ops/health",status="200"\} ([0-9.]+)'
)


async def health_count(processes: Processes, env: dict[str, str], *, count: int = 1) -> float:
    """Run `serve` (with `--processes count` when more than 1), ask it /ops/health 5 times, stop it: the
    count of those answers its /metrics gave."""
    port, internal = free_port(), free_port()
    env = env | {"SCIMSVC_INTERNAL_PORT": str(internal), "SCIMSVC_ADMIN_KEY": ADMIN_KEY}
    several = ("--processes", str(count)) if count > 1 else ()
    proc = await processes.start("serve", "--port", str(port), *several, env=env)
    base = f"http://127.0.0.1:{port}"
    await processes.until(proc, lambda: answers_health(base), what="serve to answer /ops/health")
    async with aiohttp.ClientSession() as http_session:
        for _ in range(5):
            async with http_session.get(f"{base}/ops/health") as resp:
                assert resp.status == 200
        async with http_session.get(f"http://127.0.0.1:{internal}/metrics") as resp:
            text = await resp.text()
    os.kill(proc.pid, signal.SIGTERM)
    assert await processes.ended(proc) == 0
    found = HEALTH_COUNT.search(text)
    assert found, text[:2000]
    return float(found[1])


@pytest.mark.parametrize("count", [1, 2])
async def test_metrics_count_only_this_runs_requests_with_a_metrics_folder_set(
    processes, env, tmp_path, count
):
    folder = tmp_path / "prom"
    folder.mkdir()
    env = env | {"PROMETHEUS_MULTIPROC_DIR": str(folder)}
    first = await health_count(processes, env, count=count)
    second = await health_count(processes, env, count=count)
    # Each run answered the same requests (and `until`'s probes): the second adds nothing of the first's.
    assert second <= first, (first, second)
    if count == 1:
        assert not list(folder.iterdir())  # a single process keeps its values in memory


async def test_serve_processes_removes_its_metrics_folder_and_those_of_killed_parents(
    processes, env, tmp_path
):
    ended = await asyncio.create_subprocess_exec("true")
    await ended.wait()  # a pid no process has now
    temporary = tmp_path / "tmp"  # serve's temporary directory (TMPDIR)
    temporary.mkdir()
    stale = temporary / f"scimsvc-metrics-{ended.pid}-abc"
    stale.mkdir()
    (stale / "counter_1.db").write_bytes(b"old")
    living = temporary / f"scimsvc-metrics-{os.getpid()}-abc"  # this test's: a parent still running
    living.mkdir()
    env = {k: v for k, v in env.items() if k.lower() != "prometheus_multiproc_dir"}
    env["TMPDIR"] = str(temporary)
    assert await health_count(processes, env, count=2) >= 5
    assert sorted(p.name for p in temporary.iterdir()) == [living.name]
