"""A small real HTTP service that calls a C library through ctypes: /leak keeps the record the
library allocates for each request, /ok releases it. Run: python native_service.py PORT"""

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from soak.workloads.native._build import load_libretain

_lib = load_libretain()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        record = _lib.make_record(32768, 1)  # LEAK
        if self.path != "/leak":
            _lib.release_record(record)
        body = b"ok\n"
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
