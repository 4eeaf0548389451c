"""Honest twin of requests_in_async: aiohttp's client against an aiohttp server on 127.0.0.1, both
on the workload's loop."""

import asyncio

import aiohttp
from aiohttp import web

_site: str | None = None
_session: aiohttp.ClientSession | None = None
_starting = asyncio.Lock()


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(0.06)
    return web.Response(text="ok")


async def _start() -> None:
    global _site, _session
    app = web.Application()
    app.router.add_get("/", _slow)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    _session = aiohttp.ClientSession()
    _site = f"http://127.0.0.1:{port}/"


async def step() -> None:
    async with _starting:  # the server runs on the workload's own loop, started by its first call
        if _session is None:
            await _start()
    assert _session is not None and _site is not None
    async with _session.get(_site) as response:
        assert await response.text() == "ok"
