"""Honest twin of pydantic_large and requests_in_async: a small payload validated by pydantic in
a Starlette ``async def`` route, fetched with httpx's ``ASGITransport``."""

import httpx
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


class Item(BaseModel):
    id: int
    name: str


async def _echo(request: Request) -> JSONResponse:
    item = Item.model_validate_json(await request.body())
    return JSONResponse(item.model_dump())


_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=Starlette(routes=[Route("/", _echo, methods=["POST"])])),
                            base_url="http://app")


async def step() -> None:
    response = await _client.post("/", content=b'{"id": 1, "name": "one"}')
    assert response.json() == {"id": 1, "name": "one"}
