"""Honest twin of anyio_to_thread: an anyio pipeline of memory object streams and sleeps, no threads."""

import anyio
from anyio.abc import ObjectSendStream


async def _produce(send: ObjectSendStream[int]) -> None:
    async with send:
        for n in range(5):
            await anyio.sleep(0.002)
            await send.send(n)


async def step() -> None:
    send, receive = anyio.create_memory_object_stream[int](1)
    async with anyio.create_task_group() as group:
        group.start_soon(_produce, send)
        async with receive:
            assert [n async for n in receive] == [0, 1, 2, 3, 4]
