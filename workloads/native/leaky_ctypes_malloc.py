"""Leaky: each request takes 16 KiB from libc's ``malloc`` through ctypes and never frees it.

ctypes calls ``malloc`` through the pointer ``dlsym`` gave it, which no allocation hook on the
library's call table sees (memray's included): the growth is seen only as process memory that
the traced heap does not explain.
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
