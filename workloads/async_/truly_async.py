"""Honest: ``asyncio.sleep`` and a round trip over a non-blocking socket to an echo server on
127.0.0.1 run by the same loop. Neither blocks the loop nor uses a thread pool."""

import asyncio

EXPECTED = "clean"

_server: asyncio.AbstractServer | None = None
_address: tuple[str, int] | None = None
_starting = asyncio.Lock()


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.readline():
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def _start() -> None:
    global _server, _address
    _server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    _address = _server.sockets[0].getsockname()[:2]


async def step() -> None:
    async with _starting:  # the server runs on the workload's own loop, started by its first call
        if _server is None:
            await _start()
    assert _address is not None
    reader, writer = await asyncio.open_connection(*_address)
    try:
        writer.write(b"ping\n")
        await writer.drain()
        assert await reader.readline() == b"ping\n"
    finally:
        writer.close()
        await writer.wait_closed()
    await asyncio.sleep(0.005)
