"""Dishonest: a large pydantic validation inside ``async def``. pydantic-core holds the GIL for
the whole call, so no other thread (leaksoak's watchdog among them) runs until it returns."""

import asyncio
import json

from pydantic import BaseModel


class Item(BaseModel):
    id: int
    name: str
    tags: list[str]
    price: float


class Order(BaseModel):
    items: list[Item]


PAYLOAD = json.dumps({"items": [{"id": n, "name": f"item {n}", "tags": ["a", "b", "c"], "price": n * 1.5}
                                for n in range(60_000)]})


async def step() -> None:
    await asyncio.sleep(0.05)  # the payload arrives
    Order.model_validate_json(PAYLOAD)  # VALIDATES
