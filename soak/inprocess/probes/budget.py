"""The pause budget: one share of wall time for the in-process work that pauses the target.

Every snapshot pauses the measured process (the worker's workload, or the service beside the
agent) with the GIL held. Most of it is cheap and runs every snapshot (the tracer's table, the
thread and fd probes); three jobs grow with the heap and are rationed here: the full garbage
collection before a worker's snapshot (``gc_collect``), the type census (``types``, see
soak.inprocess.probes.types) and the holder searches (``holders``, see soak.inprocess.probes.holders). At 1M live
objects each costs tens to hundreds of milliseconds.

The budget counts every pause of every snapshot (the cheap ones too, see :meth:`spend`) against
its share of the wall time since it started. A rationed job runs when what has been spent plus
its own previous cost fits within the share (:meth:`allows`); a job that has never run goes
first, whatever it may cost, and every job runs at least every :data:`MAX_EVERY_S` seconds, so
that no series stops for good on a big heap. Unspent budget is kept for at most
:data:`CREDIT_S` seconds' worth, so a long quiet stretch does not buy a burst of pauses later.

The share is :data:`WORKER_BUDGET` in the worker and :data:`AGENT_BUDGET` in the agent (a
service's requests wait out every pause); ``--pause-budget`` sets it, ``inf`` turns rationing off.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from soak.errors import BadInput

WORKER_BUDGET = 0.02
"""Default share of wall time the worker's snapshots may pause the workload (``soak run``)."""
AGENT_BUDGET = 0.01
"""Default share beside a live service (the agent, ``soak watch``)."""
MAX_EVERY_S = 60.0
"""Each rationed job runs at least this often, whatever it costs."""
CREDIT_S = 60.0
"""Budget left unspent is kept for this long at most (as ``share * CREDIT_S`` seconds of pause)."""

RATIONED = ("gc_collect", "types", "holders")
"""The jobs the budget rations, in the order a snapshot runs them."""


def parse_pause_budget(text: str, option: str = "pause-budget") -> float:
    """A ``--pause-budget`` value: ``2%``, ``0.02`` or ``inf`` (no rationing).
    Raises BadInput (one line) for anything else."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise BadInput(f"--{option} must be a share of wall time such as 2% or 0.02 (or inf), not {raw!r}") from None
    check_pause_budget(value, option, raw)
    return value


def check_pause_budget(value: float, option: str = "pause-budget", given: str | None = None) -> None:
    """Raise BadInput unless ``value`` is a share of wall time (more than 0, less than 1) or inf."""
    if not (0 < value < 1 or value == math.inf):
        raise BadInput(f"--{option} must be more than 0% and less than 100% (or inf), not {given or repr(value)}")


class PauseBudget:
    """Spent pause against ``share`` of the wall time since the budget started."""

    def __init__(self, share: float, clock: Callable[[], float] = time.monotonic, max_every_s: float = MAX_EVERY_S) -> None:
        self.share = share
        self.max_every_s = max_every_s
        self._clock = clock
        self.started = clock()
        self.spent_s = 0.0
        """Every pause :meth:`ran` and :meth:`spend` were told of."""
        self._charged_s = 0.0
        """What :meth:`allows` holds against the share: :attr:`spent_s`, less credit too old to keep."""
        self._cost_s: dict[str, float] = {}
        self._ran_at: dict[str, float] = {}
        self.deferred: dict[str, int] = {}
        """Per job, how many times it was held back (for the benchmark and the tests)."""

    def allows(self, job: str) -> bool:
        """Whether ``job`` may run now (then call :meth:`ran` with its cost)."""
        now = self._clock()
        ran_at = self._ran_at.get(job)
        if ran_at is None or now - ran_at >= self.max_every_s or math.isinf(self.share):
            return True
        allowed = self.share * (now - self.started)
        # unspent budget older than CREDIT_S is forgotten
        self._charged_s = max(self._charged_s, allowed - self.share * CREDIT_S)
        if self._charged_s + self._cost_s[job] <= allowed:
            return True
        self.deferred[job] = self.deferred.get(job, 0) + 1
        return False

    def ran(self, job: str, cost_s: float) -> None:
        """``job`` ran and paused the target for ``cost_s``; its next run is judged by this cost."""
        self._cost_s[job] = cost_s
        self._ran_at[job] = self._clock()
        self.spend(cost_s)

    def spend(self, pause_s: float) -> None:
        """The target was paused this long by work that is not rationed (the rest of a snapshot)."""
        pause_s = max(0.0, pause_s)
        self.spent_s += pause_s
        self._charged_s += pause_s

    def share_spent(self) -> float:
        """Spent pause over wall time so far."""
        wall = self._clock() - self.started
        return self.spent_s / wall if wall > 0 else 0.0
