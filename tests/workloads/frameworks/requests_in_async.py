"""Dishonest: ``requests`` inside ``async def``, against a slow server on 127.0.0.1 (in a thread of
the workload's process). The loop waits in ``socket.py``, called by urllib3, called by requests."""

import asyncio
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

_server: ThreadingHTTPServer | None = None


class _Slow(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        time.sleep(0.06)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        pass


def setup() -> None:
    global _server
    _server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    threading.Thread(target=_server.serve_forever, daemon=True).start()


def teardown() -> None:
    if _server is not None:
        _server.shutdown()


async def step() -> None:
    assert _server is not None
    host, port = _server.server_address[:2]
    response = requests.get(f"http://{host!s}:{port}/", timeout=5)  # BLOCKS IN REQUESTS
    assert response.text == "ok"
    await asyncio.sleep(0.005)
