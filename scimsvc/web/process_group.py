"""`scimsvc serve --processes N`: N processes, each running `create_app` as one process would, on one port.

Each child binds its own listening sockets with SO_REUSEPORT (`reuse_port_socket`), so the kernel spreads
new connections over the processes, and the app factory, its pools and its caches stay as they are
(README.md, Several processes). The parent serves nothing: it starts the children, and
- on SIGTERM or SIGINT it passes SIGTERM on (each child stops as `serve` does: open requests finish) and
  exits 0 once all have ended;
- when a child ends while it was not asked to, it stops the others and exits 1 with one line saying which:
  a process that crashed is not restarted here, so a crash loop shows and the orchestrator (compose's
  restart policy, Kubernetes) restarts the whole `serve`, which is what restarts a single process too.
Children get SIGTERM from the kernel if the parent is killed (Linux parent-death signal).

prometheus_client's multiprocess mode keeps /metrics whole: every child writes its values to files in
PROMETHEUS_MULTIPROC_DIR, and the one that answers a scrape reads them all (scimsvc/ops/metrics.py); which
folder, and when it is emptied or removed: scimsvc/ops/metrics_folder.py.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import shutil
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from scimsvc.ops import metrics_folder

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def reuse_port_socket(host: str, port: int, *, backlog: int = 128) -> socket.socket:
    """A listening socket on host:port that other processes of this user may listen on too."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    return socket.create_server((host, port), family=family, backlog=backlog, reuse_port=True)


def port_taken(host: str, port: int) -> OSError | None:
    """The error of binding host:port without SO_REUSEPORT, None if it is free.

    Children bind with SO_REUSEPORT, which would quietly share a port another `serve --processes` holds:
    checking first without it refuses any port already bound, as a single process does.
    """
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's servers do
            probe.bind((host, port))
    except OSError as exc:
        return exc
    return None


def die_with_parent() -> None:
    """In a child: SIGTERM when the parent ends (PR_SET_PDEATHSIG = 1), and at once if it already has."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    if os.getppid() == 1:
        os.kill(os.getpid(), signal.SIGTERM)


def supervise(
    target: Callable[..., Any],
    args: Sequence[Any],
    *,
    processes: int,
    say: Callable[[str], None],
) -> int:
    """Run `target(index, *args)` in `processes` child processes until a stop signal (0) or until one of
    them ends unasked (1, after stopping the others; `say` gets the line that says which)."""
    folder, own_folder = metrics_folder.for_children()
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing of this one is shared
    children: list[BaseProcess] = []
    stopping = False

    def stop(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        _terminate(children)

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        for index in range(processes):
            started = context.Process(
                target=target, args=(index, *args), name=f"scimsvc-web-{index}", daemon=False
            )
            started.start()
            children.append(started)
            if stopping:  # a signal came while starting: what started is being stopped
                _terminate(children)
        status = 0
        while not stopping:
            ended = _ended(children)
            if ended and not stopping:
                child = ended[0]
                child.join()  # its end is known: reap it for its status
                say(
                    f"web process {children.index(child)} (pid {child.pid}) exited with status "
                    f"{child.exitcode}: stopping the other {processes - 1} and exiting"
                )
                status = 1
                stopping = True
                _terminate(children)
        for child in children:
            child.join()
        return status
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for child in children:  # only if this very function failed: never leave one running
            if child.is_alive():
                child.kill()
                child.join()
        if own_folder:
            shutil.rmtree(folder, ignore_errors=True)


def _ended(children: Sequence[BaseProcess]) -> list[BaseProcess]:
    """The children that have ended, waiting until one does (or a signal handler stopped the wait)."""
    ready = wait([c.sentinel for c in children])
    return [c for c in children if c.sentinel in ready]


def _terminate(children: Sequence[BaseProcess]) -> None:
    for child in children:
        if child.pid is not None and child.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGTERM)
