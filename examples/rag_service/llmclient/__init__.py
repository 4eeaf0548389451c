"""A client library for the (fake) LLM server: ``async`` outside, a thread pool inside."""

from llmclient.client import LLMClient

__all__ = ["LLMClient"]
