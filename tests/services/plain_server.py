"""A plain HTTP service that never imports leaksoak: ``soak watch --attach`` starts the agent in it.

``/leak`` keeps every response in a module-level dict; ``/ok`` keeps nothing; ``/allocators`` says
whether leaksoak's sampler is loaded here and whether its hooks are this interpreter's allocators
(read from ``sys.modules``: looking does not import it). Prints ``listening`` once it serves.
"""

from __future__ import annotations

import json
import os
import sys
import tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_responses: dict[int, bytes] = {}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        if self.path == "/allocators":
            sampler = sys.modules.get("soak.inprocess.probes._sampler")
            hooks = list(sampler._hooks_installed()) if sampler is not None else None
            body = json.dumps({"sampler_loaded": sampler is not None, "hooks": hooks, "tracemalloc": tracemalloc.is_tracing(),
                               "path": sys.path}).encode()
        else:
            body = f"{os.getpid()} {len(_responses)}".encode() * 20
            if self.path == "/leak":
                _responses[len(_responses)] = body + b"x" * 200  # LEAK
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the http.server signature
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print("listening", flush=True)
    server.serve_forever()
