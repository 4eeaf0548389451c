"""The shared pass over the process table (soak.inprocess.probes.process_table), on real processes."""

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


def test_children_and_descendants_are_psutils_and_a_new_child_shows_within_the_max_age() -> None:
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
