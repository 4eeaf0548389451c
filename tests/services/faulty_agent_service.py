"""The /leak service of http_service.py under an agent whose snapshots fail on cue: the 4th
raises inside the agent (the agent answers with an error), the 8th kills the agent's connection
thread (the connection drops). Run: python faulty_agent_service.py PORT SOCKET"""

import sys
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from http_service import Handler  # noqa: E402

import soak.agent  # noqa: E402
from soak.inprocess.probes.inprocess import InProcessProbes  # noqa: E402


class _ConnectionKilled(BaseException):
    """Not an Exception: it escapes the agent's handlers and ends its connection thread."""


_real_collect = InProcessProbes.collect
_calls = 0


def _collect(self: InProcessProbes) -> dict[str, Any]:
    global _calls
    _calls += 1
    if _calls == 4:
        raise RuntimeError("injected failure")
    if _calls == 8:
        raise _ConnectionKilled()
    return _real_collect(self)


if __name__ == "__main__":
    InProcessProbes.collect = _collect  # type: ignore[method-assign]
    soak.agent.start(sys.argv[2], frames=4)
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print("listening", flush=True)
    server.serve_forever()
