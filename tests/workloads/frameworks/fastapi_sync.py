"""Dishonest: a FastAPI app whose endpoint and dependency are plain ``def``, driven in-process
through httpx's ``ASGITransport``. Starlette runs each in anyio's worker threads."""

import time
from typing import Annotated

import httpx
from fastapi import Depends, FastAPI

app = FastAPI()


def settings() -> dict[str, int]:  # SYNC DEPENDENCY
    time.sleep(0.03)  # a blocking read of a config store
    return {"scale": 2}


@app.get("/items/{item}")
def read_item(item: int, config: Annotated[dict[str, int], Depends(settings)]) -> dict[str, int]:  # SYNC ENDPOINT
    time.sleep(0.03)  # a blocking database call
    return {"item": item * config["scale"]}


_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")


async def step() -> None:
    response = await _client.get("/items/21")  # CALLS THE APP
    assert response.json() == {"item": 42}
