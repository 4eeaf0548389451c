"""A small real HTTP service for the sidecar tests: /leak keeps every request's payload,
/ok does the same work and keeps nothing. Run: python http_service.py PORT"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_sessions: list[bytes] = []


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        payload = json.dumps({"path": self.path, "items": list(range(50))}).encode() * 20
        if self.path == "/leak":
            _sessions.append(payload + b" ")  # LEAK
        body = b"ok %d\n" % len(payload)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print("listening", flush=True)
    server.serve_forever()
