"""What the small HTTP services here share: a short 200 answer, no request log, and a threading
server on 127.0.0.1 at the port given as the program's one argument."""

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietHandler(BaseHTTPRequestHandler):
    def answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def serve(handler: type[QuietHandler]) -> None:
    """Serve until killed; prints ``listening`` once the port is bound (the tests wait for it)."""
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), handler)
    print("listening", flush=True)
    server.serve_forever()
