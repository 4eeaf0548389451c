"""Honest twin of fastapi_sync: ``async def`` endpoint and dependency, awaiting only the loop."""

import asyncio
from typing import Annotated

import httpx
from fastapi import Depends, FastAPI

app = FastAPI()


async def settings() -> dict[str, int]:
    await asyncio.sleep(0.03)
    return {"scale": 2}


@app.get("/items/{item}")
async def read_item(item: int, config: Annotated[dict[str, int], Depends(settings)]) -> dict[str, int]:
    await asyncio.sleep(0.03)
    return {"item": item * config["scale"]}


_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")


async def step() -> None:
    response = await _client.get("/items/21")
    assert response.json() == {"item": 42}
