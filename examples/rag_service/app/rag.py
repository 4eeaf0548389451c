"""Answer a question in a conversation: embed it (numpy), find the nearest documents in an
in-memory index, and ask the LLM with the conversation so far and the documents as context.

The conversation history is kept per session and never trimmed: the leak this example has.
"""

from __future__ import annotations

import hashlib

import numpy as np
from llmclient import LLMClient

DIMENSIONS = 256
DOCUMENTS = [
    f"Document {n}: {topic} is handled by the {team} team; see runbook section {n % 17}. "
    f"When {topic} misbehaves, page the {team} on-call, check the {topic} dashboard for error rates and"
    f" saturation, and roll back the last {topic} deploy if it went out within the hour."
    for n, (topic, team) in enumerate(
        (t, m) for t in ("billing", "search", "login", "uploads", "exports", "alerts", "quotas", "webhooks")
        for m in ("platform", "payments", "identity", "storage", "growth")
    )
]


def embed(text: str) -> np.ndarray:
    """A deterministic bag-of-words embedding: each word hashed to a dimension, then normalised."""
    vector = np.zeros(DIMENSIONS, dtype=np.float32)
    for word in text.lower().split():
        vector[int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little") % DIMENSIONS] += 1.0
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm else vector


class Index:
    """Documents and their embeddings; search is a cosine similarity over all of them."""

    def __init__(self, documents: list[str]) -> None:
        self.documents = documents
        self.matrix = np.stack([embed(doc) for doc in documents])

    def search(self, query: np.ndarray, k: int = 3) -> list[str]:
        scores = self.matrix @ query
        return [self.documents[i] for i in np.argsort(scores)[::-1][:k]]


class Assistant:
    def __init__(self, llm: LLMClient, index: Index) -> None:
        self.llm = llm
        self.index = index
        self.histories: dict[str, list[str]] = {}

    async def answer(self, session: str, question: str) -> str:
        context = self.index.search(embed(question))
        history = self.histories.setdefault(session, [])
        prompt = "\n".join([*history[-4:], *context, f"user: {question}"])
        reply = await self.llm.complete(prompt)  # CALLS THE CLIENT
        history.append(f"user: {question}\nassistant: {reply}\ncontext: {' | '.join(context)}")  # LEAK
        return reply
