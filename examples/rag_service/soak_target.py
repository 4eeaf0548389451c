"""The soak target: one conversation turn through the service's handler, with the fake LLM
server started beside it (a separate process on 127.0.0.1).

    soak run examples/rag_service/soak_target.py:ask --concurrency 8 --duration 10m
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from app.rag import DOCUMENTS, Assistant, Index  # noqa: E402
from llmclient import LLMClient  # noqa: E402

QUESTIONS = ["who handles billing alerts", "where is the login runbook", "how do quotas work for uploads",
             "which team owns webhooks", "exports are slow what now"]
_llm: subprocess.Popen[str] | None = None
_assistant: Assistant | None = None
_turns = itertools.count()


def setup() -> None:
    global _llm, _assistant
    _llm = subprocess.Popen([sys.executable, os.path.join(HERE, "fake_llm.py"), "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    assert _llm.stdout is not None
    port = int(_llm.stdout.readline().split()[-1])
    _assistant = Assistant(LLMClient(f"http://127.0.0.1:{port}"), Index(DOCUMENTS))


async def ask() -> None:
    assert _assistant is not None
    turn = next(_turns)
    await _assistant.answer(f"session-{turn % 20}", QUESTIONS[turn % len(QUESTIONS)])


def teardown() -> None:
    if _llm is not None:
        _llm.terminate()
        _llm.wait(5)
