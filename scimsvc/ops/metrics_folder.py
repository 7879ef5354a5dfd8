"""PROMETHEUS_MULTIPROC_DIR, prometheus_client's multiprocess folder (README.md, Several processes).

prometheus_client writes every value to a file there whenever the variable is set when it is imported, and
a scrape sums every file in it, so one rule decides who uses it:
- a single `serve` process never does: it drops the variable before prometheus_client is imported and keeps
  its values in memory (`single_process`), so what an earlier run left there is never added up;
- `serve --processes N` (N > 1) does (`for_children`): the folder set, emptied at start, else one of its own
  in the temporary directory, named for the parent's pid and removed when the parent ends. A parent killed
  with SIGKILL cannot remove it: the next `serve --processes` removes the folders of parents no longer
  alive (`remove_stale`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
# The lower-case name prometheus_client still reads (deprecated).
OLD_MULTIPROCESS_DIR = "prometheus_multiproc_dir"
# Our own folders: scimsvc-metrics-<parent pid>-<random>.
OWN_PREFIX = "scimsvc-metrics-"


def single_process() -> None:
    """In a single web process, before prometheus_client is imported: values in memory, not in files."""
    for name in (MULTIPROCESS_DIR, OLD_MULTIPROCESS_DIR):
        os.environ.pop(name, None)


def for_children() -> tuple[str, bool]:
    """The folder the children of `serve --processes N` write to, set in this process's environment (which
    they inherit), and whether it is ours to remove at the end: the one set, emptied, else a new one."""
    folder = os.environ.get(MULTIPROCESS_DIR) or os.environ.get(OLD_MULTIPROCESS_DIR)
    os.environ.pop(OLD_MULTIPROCESS_DIR, None)
    if folder:
        os.makedirs(folder, exist_ok=True)
        for name in os.listdir(folder):  # values of an earlier run would be summed with ours
            if name.endswith(".db"):
                os.unlink(os.path.join(folder, name))
        os.environ[MULTIPROCESS_DIR] = folder
        return folder, False
    remove_stale(tempfile.gettempdir())
    folder = tempfile.mkdtemp(prefix=f"{OWN_PREFIX}{os.getpid()}-")
    os.environ[MULTIPROCESS_DIR] = folder
    return folder, True


def remove_stale(parent: str) -> list[str]:
    """Remove the folders in `parent` that `for_children` made for a parent no longer alive; their paths."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(parent):
            pid = _owner(entry.name)
            if pid is not None and entry.is_dir(follow_symlinks=False) and not _alive(pid):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.path)
    return removed


def _owner(name: str) -> int | None:
    """The parent pid in one of our folders' names, None for any other name."""
    if not name.startswith(OWN_PREFIX):
        return None
    pid, _, rest = name[len(OWN_PREFIX) :].partition("-")
    return int(pid) if pid.isascii() and pid.isdigit() and rest else None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
