"""A fault-injecting TCP proxy of the tests' own: forward, cut every connection, stall, refuse new ones."""

from __future__ import annotations

import asyncio
import contextlib


class FaultProxy:
    """Listens on 127.0.0.1:`port` and forwards each connection to `upstream`; faults are switched on demand.

    - `cut()`: close every open connection at once (a server restart as a client sees it);
    - `refuse()`: stop listening, so new connections are refused; `forward()` listens again;
    - `stall()`: keep connections open but pass no bytes until `forward()`.
    """

    def __init__(self, upstream_host: str, upstream_port: int, port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = port
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.accepted = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def open_links(self) -> int:
        """Connections still open: a link ends when both sides have closed (each got the other's bytes)."""
        return len(self._links)

    async def start(self) -> None:
        """Listen (again) and pass bytes."""
        self._flowing.set()
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)

    async def forward(self) -> None:
        """Back to normal: listening, passing bytes."""
        await self.start()

    async def refuse(self) -> None:
        """Stop listening: new connections get ECONNREFUSED (open ones are left alone)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def stall(self) -> None:
        """Hold every byte in either direction until `forward()`."""
        self._flowing.clear()

    async def cut(self) -> None:
        """Close every open connection, both sides."""
        links = list(self._links)
        for task in links:
            task.cancel()
        await asyncio.gather(*links, return_exceptions=True)

    async def close(self) -> None:
        await self.refuse()
        await self.cut()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        task = asyncio.current_task()
        assert task is not None
        self._links.add(task)
        up_writer: asyncio.StreamWriter | None = None
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._links.discard(task)
            for w in (writer, up_writer):
                if w is not None:
                    w.transport.abort()  # a reset, as when the server process dies

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            await self._flowing.wait()
            writer.write(data)
            await writer.drain()
