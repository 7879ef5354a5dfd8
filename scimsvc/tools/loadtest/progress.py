"""The live progress of a run: a line redrawn on a terminal (rich), or printed every few seconds."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TextIO

from scimsvc.tools.loadtest.driver import Driver


def progress_line(counts: Mapping[str, int], *, elapsed: float, duration: float) -> str:
    """One line of live progress."""
    rate = counts["sent"] / elapsed if elapsed > 0 else 0.0
    return (
        f"{elapsed:5.1f}/{duration:.0f} s  sent {counts['sent']} ({rate:.0f}/s)  "
        f"admitted {counts['admitted']}  429 {counts['429']}  errors {counts['errors']}"
    )


async def live_progress(driver: Driver) -> None:
    """A progress line redrawn four times a second (rich), for a terminal."""
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    def line() -> Text:
        return Text(progress_line(driver.counts, elapsed=driver.elapsed(), duration=driver.o.duration))

    with Live(line(), console=Console(), refresh_per_second=4, transient=True) as live:
        try:
            while True:
                await asyncio.sleep(0.25)
                live.update(line())
        finally:
            live.update(line())


def plain_progress(out: TextIO, every: float = 5.0) -> Callable[[Driver], Awaitable[None]]:
    """A progress line every few seconds, for logs and pipes."""

    async def watch(driver: Driver) -> None:
        while True:
            await asyncio.sleep(every)
            print(
                progress_line(driver.counts, elapsed=driver.elapsed(), duration=driver.o.duration), file=out
            )
            out.flush()

    return watch
