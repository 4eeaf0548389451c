"""The service over HTTP on asyncio streams: ``POST /ask`` with {"session", "question"}.

    python app/server.py --llm http://127.0.0.1:PORT [--port 8080]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from llmclient import LLMClient  # noqa: E402

from app.rag import DOCUMENTS, Assistant, Index  # noqa: E402


async def handle(assistant: Assistant, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            request_line = await reader.readline()
            if not request_line:
                return
            headers = {}
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            if request_line.split()[:2] != [b"POST", b"/ask"]:
                status, reply = "404 Not Found", {"error": "POST /ask"}
            else:
                data = json.loads(body or b"{}")
                status, reply = "200 OK", {"answer": await assistant.answer(str(data.get("session", "")), str(data.get("question", "")))}
            payload = json.dumps(reply).encode()
            head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
            writer.write(head.encode() + payload)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        return
    finally:
        writer.close()


async def serve(llm_url: str, port: int) -> None:
    try:  # under leaksoak's agent (python -m soak.agent -- app/server.py ...), let it watch this loop
        import soak.agent
    except ImportError:
        pass
    else:
        soak.agent.watch_loop()
    assistant = Assistant(LLMClient(llm_url), Index(DOCUMENTS))
    server = await asyncio.start_server(lambda r, w: handle(assistant, r, w), "127.0.0.1", port)
    print(f"listening on {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--llm", required=True)
    parser.add_argument("--port", type=int, default=8080)
    options = parser.parse_args()
    asyncio.run(serve(options.llm, options.port))
