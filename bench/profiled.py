"""Run a module or a script with Python's deterministic profiler switched on and off by signals.

    python bench/profiled.py OUT (MODULE | SCRIPT.py) [ARG ...]

SIGUSR1 starts profiling the main thread (the event loop's; on Python 3.11, which CI runs, cProfile sees
no other thread) and then creates OUT.on; SIGUSR2 stops it and writes its figures to OUT (pstats format,
written whole: it appears at once). bench/calls.py runs `scimsvc serve` and the baseline this way, around a
workload it sends them, waiting for each file rather than for a time.
"""

from __future__ import annotations

import cProfile
import os
import runpy
import signal
import sys

_profile = cProfile.Profile()


def _start(*_: object) -> None:
    _profile.enable()
    with open(f"{OUT}.on", "w"):  # the sender waits for this: profiling is on from here
        pass


def _stop(*_: object) -> None:
    _profile.disable()
    partial = f"{OUT}.part"
    _profile.dump_stats(partial)
    os.replace(partial, OUT)
    _profile.clear()


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit("usage: profiled.py OUT (MODULE | SCRIPT.py) [ARG ...]")
    OUT, target = sys.argv[1], sys.argv[2]
    sys.argv = sys.argv[2:]
    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _stop)
    if target.endswith(".py"):
        sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
        runpy.run_path(target, run_name="__main__")
    else:
        runpy.run_module(target, run_name="__main__", alter_sys=True)
