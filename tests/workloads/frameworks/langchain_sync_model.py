"""Dishonest: a langchain-core chat model with only a sync ``_generate``, called with ``ainvoke``.
langchain's default ``_agenerate`` runs ``_generate`` in the loop's executor, through a task of
its own (``asyncio.gather``'s)."""

import time
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult


class SyncOnlyModel(BaseChatModel):
    @property
    def _llm_type(self) -> str:
        return "sync-only"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        time.sleep(0.02)  # a sync SDK's HTTP call
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="pong"))])


_model = SyncOnlyModel()


async def step() -> None:
    reply = await _model.ainvoke("ping")  # CALLS THE MODEL
    assert reply.content == "pong"
