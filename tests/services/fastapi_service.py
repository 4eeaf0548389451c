"""A FastAPI service for benchmarks/fastapi_watch.py, on 127.0.0.1 at the port given: ``/sync`` is
a plain ``def`` endpoint (a 2 ms blocking call, run in anyio's worker threads), ``/async`` its
``async def`` twin. Under the agent its loop is watched (``soak.agent.watch_loop``)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

import soak.agent


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    soak.agent.watch_loop()
    print("listening", flush=True)
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/sync")
def sync_endpoint() -> dict[str, bool]:
    time.sleep(0.002)  # a blocking database call
    return {"ok": True}


@app.get("/async")
async def async_endpoint() -> dict[str, bool]:
    await asyncio.sleep(0.002)
    return {"ok": True}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
