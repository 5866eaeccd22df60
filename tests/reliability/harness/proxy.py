"""A TCP proxy that injects network faults: delay, blackhole and connection resets.

The application connects to ``127.0.0.1:proxy.port`` instead of the service; the
service itself stays untouched. Modes switch at runtime and replace each other:

- `FaultProxy.pass_through` forwards every byte (the starting mode);
- `FaultProxy.delay` holds each chunk, either way, for some milliseconds;
- `FaultProxy.blackhole` accepts connections but forwards nothing either way; held
  bytes flow again when the mode changes, as after a healed network partition;
- `FaultProxy.reset_after` resets a connection once it forwarded N bytes to the server;
- `FaultProxy.reset_after_match` resets the connection whose client→server bytes
  contain a pattern, right after forwarding them, for the next ``times`` matches.

`FaultProxy.reset_now` resets every current connection at once, and
`FaultProxy.on_client_bytes` installs a hook that sees each client→server chunk and
may ask for a reset. A reset sends the client a TCP RST (``SO_LINGER`` 0) while the
server gets whatever was forwarded followed by an orderly close: a PostgreSQL
``COMMIT`` forwarded just before a reset is executed, and the client never hears
of it (an ambiguous commit). ``resets`` counts them, so a test can assert that the
fault happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

ChunkHook = Callable[[bytes], bool | None]
"""Sees a client→server chunk before it is forwarded; returning True resets after it."""

CHUNK_SIZE = 65536
CONNECT_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 10.0


@dataclass(eq=False)
class _Link:
    """One client connection and its connection to the service."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    forwarded: int = 0  # client→server bytes
    tail: bytes = b""  # end of the previous chunk, to match a pattern split in two
    closed: bool = False


class FaultProxy:
    """Forwards TCP connections from 127.0.0.1 (ephemeral port) to a target, with faults.

    Use ``async with FaultProxy(host, port) as proxy`` or `start`/`stop`. Every
    connection's tasks belong to the proxy and end at `stop`.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.connections = 0
        self.resets = 0
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._failures: list[Exception] = []
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._delay_seconds = 0.0
        self._reset_after_bytes: int | None = None
        self._pattern = b""
        self._matches_left = 0
        self._hook: ChunkHook | None = None

    @property
    def port(self) -> int:
        """Return the port the proxy listens on; only after `start`."""
        if self._server is None:
            msg = "the proxy is not started"
            raise RuntimeError(msg)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        """Listen on 127.0.0.1 at a free port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def stop(self) -> None:
        """Stop listening, close every connection and end every task (bounded wait).

        Raises an `ExceptionGroup` of whatever a connection's task raised that was
        not a network error (a bug in the proxy or in a hook), so none goes unseen.
        """
        if self._server is None:
            return
        self._server.close()
        for link in list(self._links):
            self._close(link, abortive=True)
        for task in self._tasks:
            task.cancel()
        async with asyncio.timeout(STOP_TIMEOUT_SECONDS):
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()
        self._server = None
        if self._failures:
            failures, self._failures = self._failures, []
            msg = "fault proxy connection tasks failed"
            raise ExceptionGroup(msg, failures)

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # ---------------------------------------------------------------- modes

    def pass_through(self) -> None:
        """Forward everything from now on (releases what a blackhole held)."""
        self._delay_seconds, self._reset_after_bytes, self._matches_left = 0.0, None, 0
        self._flowing.set()

    def delay(self, ms: float) -> None:
        """Hold each chunk, in both directions, ``ms`` milliseconds before forwarding it."""
        self.pass_through()
        self._delay_seconds = ms / 1000

    def blackhole(self) -> None:
        """Accept connections but forward nothing, either way, until the mode changes."""
        self.pass_through()
        self._flowing.clear()

    def reset_after(self, n_bytes: int) -> None:
        """Reset each connection once it has forwarded ``n_bytes`` client→server bytes."""
        self.pass_through()
        self._reset_after_bytes = n_bytes

    def reset_after_match(self, pattern: bytes, times: int = 1) -> None:
        """Reset the connection right after forwarding a chunk that holds ``pattern``.

        Acts on the next ``times`` matches (a pattern split across two chunks counts),
        then returns to passing everything.
        """
        self.pass_through()
        self._pattern, self._matches_left = pattern, times

    def on_client_bytes(self, hook: ChunkHook | None) -> None:
        """Install (or with None remove) a hook that sees every client→server chunk."""
        self._hook = hook

    def reset_now(self) -> int:
        """Reset every current connection; return how many were reset."""
        links = [link for link in self._links if not link.closed]
        for link in links:
            self._reset(link)
        return len(links)

    # ---------------------------------------------------------------- forwarding

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        error = None if task.cancelled() else task.exception()
        if isinstance(error, Exception):
            self._failures.append(error)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link(writer)
        self._links.add(link)
        self.connections += 1
        try:
            await self._flowing.wait()  # a blackhole does not even connect onwards
            if link.closed:
                return
            async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                upstream_reader, link.upstream = await asyncio.open_connection(
                    self.target_host, self.target_port
                )
            async with asyncio.TaskGroup() as group:
                group.create_task(self._pump(reader, link.upstream, link, outbound=True))
                group.create_task(self._pump(upstream_reader, writer, link, outbound=False))
        except (OSError, TimeoutError):
            self._close(link, abortive=True)  # the target is unreachable
        finally:
            self._links.discard(link)
            self._close(link, abortive=False)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: _Link,
        *,
        outbound: bool,
    ) -> None:
        try:
            while not link.closed:  # ends at end of stream, on a reset, or when stopped
                data = await reader.read(CHUNK_SIZE)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                await self._flowing.wait()
                if self._delay_seconds:
                    await asyncio.sleep(self._delay_seconds)
                reset = False
                if outbound:
                    data, reset = self._inspect(link, data)
                writer.write(data)
                await writer.drain()
                if reset:
                    self._reset(link)
        except OSError:
            self._close(link, abortive=True)  # one side broke: break the other too

    def _inspect(self, link: _Link, data: bytes) -> tuple[bytes, bool]:
        reset = False
        if self._reset_after_bytes is not None:
            room = max(0, self._reset_after_bytes - link.forwarded)
            if len(data) >= room:
                data, reset = data[:room], True
        if self._hook is not None and self._hook(data):
            reset = True
        if self._matches_left > 0:
            window = link.tail + data
            if self._pattern in window:
                reset = True
                self._matches_left -= 1
            link.tail = window[max(0, len(window) - len(self._pattern) + 1) :]
        link.forwarded += len(data)
        return data, reset

    def _reset(self, link: _Link) -> None:
        if not link.closed:
            self.resets += 1
            self._close(link, abortive=True)

    def _close(self, link: _Link, *, abortive: bool) -> None:
        link.closed = True
        if link.upstream is not None:
            link.upstream.close()  # orderly: the server gets every forwarded byte first
        if not abortive:
            link.client.close()
            return
        client_socket = link.client.get_extra_info("socket")
        if client_socket is not None:
            with contextlib.suppress(OSError):
                linger = struct.pack("ii", 1, 0)
                client_socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        link.client.transport.abort()
