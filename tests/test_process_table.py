"""Who is whose child (soak.inprocess.probes.process_table), on real processes: from the kernel's
per-thread lists where it keeps them, and from the shared pass over the process table."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from soak.inprocess.probes import process_table

# A child that starts a grandchild, says so, and waits for its stdin to close.
TWO_LEVELS = (
    "import subprocess, sys\n"
    "grandchild = subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'], stdin=subprocess.PIPE)\n"
    "print(grandchild.pid, flush=True)\n"
    "sys.stdin.read()\n"
    "grandchild.stdin.close(); grandchild.wait()\n"
)


@pytest.fixture(params=["kernel lists", "process table"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs both ways: the kernel's lists where this kernel keeps them, and the pass."""
    if request.param == "kernel lists":
        if not process_table._kernel_lists_children():
            pytest.skip("this kernel keeps no /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN)")
    else:
        monkeypatch.setattr(process_table, "_kernel_lists_children", lambda: False)
    return str(request.param)


def test_children_and_descendants_are_psutils_and_a_new_child_shows_within_the_max_age(way: str) -> None:
    child = subprocess.Popen([sys.executable, "-c", TWO_LEVELS], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        grandchild = int(child.stdout.readline())
        time.sleep(process_table.MAX_AGE_S)  # a pass made before the grandchild started is stale by now
        me = psutil.Process()
        assert [p.pid for p in process_table.children(child.pid)] == [grandchild]
        assert {p.pid for p in process_table.children(me.pid, recursive=True)} == {p.pid for p in me.children(recursive=True)}
        assert {child.pid, grandchild} <= {p.pid for p in process_table.children(me.pid, recursive=True)}
        late = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
        try:
            time.sleep(process_table.MAX_AGE_S)
            assert late.pid in {p.pid for p in process_table.children(me.pid)}
        finally:
            assert late.stdin is not None
            late.stdin.close()
            late.wait()
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()
    time.sleep(process_table.MAX_AGE_S)
    with pytest.raises(psutil.NoSuchProcess):
        process_table.children(child.pid)


# A child that starts two children from a thread that then ends: one that waits on its stdin, and
# one that exits at once and is never waited for (a zombie). It prints both pids.
FROM_AN_ENDED_THREAD = (
    "import subprocess, sys, threading\n"
    "started = []\n"
    "def start():\n"
    "    started.append(subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'], stdin=subprocess.PIPE))\n"
    "    started.append(subprocess.Popen([sys.executable, '-c', 'pass']))\n"
    "thread = threading.Thread(target=start); thread.start(); thread.join()\n"
    "started[1].wait = lambda *a, **k: None  # never reaped while this process lives\n"
    "print(started[0].pid, started[1].pid, flush=True)\n"
    "sys.stdin.read()\n"
    "started[0].stdin.close()\n"
)


def test_children_started_by_an_ended_thread_and_not_reaped_ones_are_children(way: str) -> None:
    child = subprocess.Popen([sys.executable, "-c", FROM_AN_ENDED_THREAD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        running, exited = map(int, child.stdout.readline().split())
        deadline = time.monotonic() + 10
        while psutil.Process(exited).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(process_table.MAX_AGE_S)
        assert sorted(p.pid for p in process_table.children(child.pid)) == sorted([running, exited])
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()
