"""A fake LLM server on 127.0.0.1: POST /v1/complete with {"prompt": ...} answers
{"text": ...} after a short delay, as a real completion endpoint would (slowly).

    python fake_llm.py [--port 0] [--delay 0.02]     # prints "listening on PORT" when ready
"""

from __future__ import annotations

import argparse
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Completion(BaseHTTPRequestHandler):
    delay_s = 0.02
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        prompt = json.loads(body or b"{}").get("prompt", "")
        time.sleep(self.delay_s)
        words = prompt.split()[-12:]
        reply = json.dumps({"text": "Based on the context: " + " ".join(reversed(words))}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.02)
    args = parser.parse_args()
    Completion.delay_s = args.delay
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Completion)
    server.daemon_threads = True
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
