"""A small real HTTP service for the sidecar tests: /leak keeps every request's payload,
/ok does the same work and keeps nothing. Run: python http_service.py PORT"""

import json

from serving import QuietHandler, serve

_sessions: list[bytes] = []


class Handler(QuietHandler):
    def do_GET(self) -> None:
        payload = json.dumps({"path": self.path, "items": list(range(50))}).encode() * 20
        if self.path == "/leak":
            _sessions.append(payload + b" ")  # LEAK
        self.answer(b"ok %d\n" % len(payload))


if __name__ == "__main__":
    serve(Handler)
