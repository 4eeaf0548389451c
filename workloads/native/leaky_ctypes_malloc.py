"""Leaky: each request takes 16 KiB from libc's ``malloc`` through ctypes and never frees it.

No Python object is allocated for the block. ctypes calls ``malloc`` through the pointer
``dlsym`` gave it, which no allocation hook on a library's call table sees (memray's included):
without ``--native`` the growth is process memory that the traced heap does not explain; with it,
the lookup of ``malloc`` is routed through leaksoak's copy (soak.inprocess.probes.ctypes_allocators), and
the leak is libc's ``malloc`` called from the line below.
"""

from __future__ import annotations

import ctypes
import time

EXPECTED = "leak"
_libc = ctypes.CDLL(None)
_libc.malloc.restype = ctypes.c_void_p
_libc.malloc.argtypes = [ctypes.c_size_t]
_libc.memset.restype = ctypes.c_void_p
_libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]


def step() -> None:
    _libc.memset(_libc.malloc(16384), 7, 16384)  # LEAK
    time.sleep(0.002)
