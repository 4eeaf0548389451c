"""Why the agent hands the GIL over once after a snapshot (soak/agent.py).

A thread that starts waiting for the GIL while the switch interval is raised (as it is around an
agent's snapshot) waits that whole interval before it asks for the GIL: restoring the interval
does not shorten a wait already begun. So whatever the agent's thread does next without
blocking (encoding its reply) keeps the service's thread waiting too. This measures a service
thread's longest wait for a 0.2 s "snapshot" at a raised interval followed by 1 s of CPU work,
without and with the handoff (``time.sleep(0)`` after restoring the interval).

    python benchmarks/gil_handoff.py [--raised 5.0]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time


def longest_wait(raised: float, handoff: bool) -> float:
    gaps: list[float] = []
    done = threading.Event()

    def service() -> None:
        last = time.perf_counter()
        while not done.is_set():
            time.sleep(0.0005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    thread = threading.Thread(target=service)
    thread.start()
    time.sleep(0.2)

    def busy(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    old = sys.getswitchinterval()
    sys.setswitchinterval(raised)
    busy(0.2)  # the snapshot
    sys.setswitchinterval(old)
    if handoff:
        time.sleep(0)
    busy(1.0)  # the reply encoded
    done.set()
    thread.join()
    return max(gaps)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--raised", type=float, default=5.0)
    args = parser.parse_args()
    for handoff in (False, True):
        print(f"switch interval {args.raised:g}s during a 0.2 s snapshot, then 1 s of work, handoff {'on ' if handoff else 'off'}:"
              f" the service thread's longest wait {longest_wait(args.raised, handoff):.3f} s")


if __name__ == "__main__":
    main()
