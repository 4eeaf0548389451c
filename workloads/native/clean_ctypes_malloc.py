"""Clean: each request takes 16 KiB from libc's ``malloc`` through ctypes and frees it again.

Under ``--native`` both calls are routed (soak.inprocess.probes.ctypes_allocators), so memray sees the free
of every block it saw allocated: nothing is left live.
"""

from __future__ import annotations

import ctypes
import time

EXPECTED = "clean"
_libc = ctypes.CDLL(None)
_libc.malloc.restype = ctypes.c_void_p
_libc.malloc.argtypes = [ctypes.c_size_t]
_libc.free.restype = None
_libc.free.argtypes = [ctypes.c_void_p]
_libc.memset.restype = ctypes.c_void_p
_libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]


def step() -> None:
    block = _libc.memset(_libc.malloc(16384), 7, 16384)
    _libc.free(block)
    time.sleep(0.002)
