"""A PgBouncer of a test's own, in transaction mode, in front of the shared PostgreSQL (Debian's pgbouncer).

Its configuration is written into a folder of its own; it listens on a free loopback port and is stopped by
its pid. PgBouncer refuses to run as root: started by root, it switches to the `postgres` user (`-u`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tests.conftest import wait_listening

PGBOUNCER = shutil.which("pgbouncer") or (
    "/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None
)


class PgBouncer:
    """`pool_size` server connections per database and user, shared by every client in turn."""

    def __init__(
        self, database_url: str, port: int, *, pool_size: int = 4, users: tuple[str, ...] = ("postgres",)
    ):
        assert PGBOUNCER is not None
        self.server = urlsplit(database_url)
        self.port = port
        self.pool_size = pool_size
        self.users = users
        self.folder = Path(tempfile.mkdtemp(prefix="scimsvc-pgbouncer-"))
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, database_url: str) -> str:
        """`database_url` (same user and database) through this PgBouncer."""
        parts = urlsplit(database_url)
        user = parts.netloc.rpartition("@")[0]
        return urlunsplit(
            parts._replace(netloc=f"{user}@127.0.0.1:{self.port}" if user else f"127.0.0.1:{self.port}")
        )

    def start(self) -> None:
        host, port = self.server.hostname or "127.0.0.1", self.server.port or 5432
        users = "".join(f'"{u}" ""\n' for u in self.users)
        (self.folder / "users.txt").write_text(users)
        (self.folder / "pgbouncer.ini").write_text(
            f"""[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.folder}/users.txt
pool_mode = transaction
default_pool_size = {self.pool_size}
max_client_conn = 1000
server_reset_query =
ignore_startup_parameters = extra_float_digits
query_timeout = 0
idle_transaction_timeout = 0
logfile =
pidfile =
"""
        )
        self.folder.chmod(0o755)
        for path in self.folder.iterdir():
            path.chmod(0o644)
        as_user = ["-u", "postgres"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen(
            [str(PGBOUNCER), *as_user, str(self.folder / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=open(self.folder / "stderr.log", "wb"),  # noqa: SIM115 - closed with the process
        )
        wait_listening(self.port, self.proc, "pgbouncer", self.log)

    def log(self) -> str:
        path = self.folder / "stderr.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def stop(self) -> None:
        """Stop the PgBouncer this test started (never another one) and remove its folder."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=60)
            self.proc = None
        shutil.rmtree(self.folder, ignore_errors=True)
