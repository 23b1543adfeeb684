"""The Unix-socket server's life cycle (the loopback bridge runs on aiohttp's).

Each listens with an ``asyncio.Server`` and serves every connection in its own task. A
stopping server stops listening, cancels those tasks and waits for them, so no handler
outlives it: each handler's own cleanup then runs (its socket closed, its two-step
session released).
"""

from __future__ import annotations

import asyncio
from typing import Self

__all__ = ["StreamServer"]


class StreamServer:
    """Base of the stream transports: subclasses set ``_server`` in :meth:`start` and
    serve one connection in :meth:`_connection`; ``async with`` starts and stops."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[object]] = set()
        self._stopping = False

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        """Stop listening and drop every connection (their sessions are released)."""
        if self._server is None:
            return
        self._server.close()
        self._stopping = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None
        self._stopping = False
        self._stopped()

    def _stopped(self) -> None:
        """After the last connection is gone (the Unix server removes its socket file)."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The ``asyncio`` connection callback: counts the task, so :meth:`stop` finds it."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a connection is served inside an asyncio task")
        self._tasks.add(task)
        try:
            await self._connection(reader, writer)
        except asyncio.CancelledError:
            # Cancelled by stop(): ending quietly, else asyncio's stream callback logs
            # the cancellation as an error for every connection (an event stream) open
            # at shutdown.
            if not self._stopping:
                raise
        finally:
            self._tasks.discard(task)

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError
