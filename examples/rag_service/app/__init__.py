"""The RAG-style service: embed a question, search an in-memory index, ask the LLM."""
