"""Leaky (stdlib): a logger per session, ``logging.getLogger(f"app.session.{id}")``; logging keeps every logger forever."""

import logging
import time

from soak.workloads.reference._rates import fresh_ids

EXPECTED = "leak"
EXPECTED_LIBRARY = "stdlib"

_parent = logging.getLogger("app.session")  # exists, so each session's logger hangs off it directly
_session_ids = fresh_ids(0.1)  # a new session on a share of requests (LEAKSOAK_LEAK_SCALE)


def step() -> None:
    session_id = next(_session_ids)
    log = logging.getLogger(f"app.session.{session_id}")  # LEAK
    log.debug("handling a request for session %s", session_id)  # LEAK
    time.sleep(0.0005)
