"""The agent: a Python service loads it so that ``soak watch`` can take heap snapshots of it.

    import soak.agent; soak.agent.start()                       # in the service's own code
    python -m soak.agent [--socket PATH] -- app.py ARGS...      # no code change
    python -m soak.agent [--socket PATH] -m package.module ARGS...
    soak-agent [--socket PATH] -- app.py ARGS...                # the same, as an installed script

The agent never takes the service down: if it cannot start, it says why on stderr and steps
aside. It lives in :mod:`soak.inprocess.agent`; this module is its public name.
"""

from __future__ import annotations

import sys

from soak.inprocess.agent.command import USAGE, main
from soak.inprocess.agent.embedding import start, stop, watch_loop
from soak.inprocess.agent.server import SOCKET_ENV, Agent, AgentError, default_socket_path

__all__ = ["SOCKET_ENV", "USAGE", "Agent", "AgentError", "default_socket_path", "main", "start", "stop", "watch_loop"]

if __name__ == "__main__":
    sys.exit(main())
