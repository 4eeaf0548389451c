"""Builds ``libretain.c`` into a shared library once per source version, with the system C compiler."""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "libretain.c")


def load_libretain() -> ctypes.CDLL:
    """The compiled library with its two functions typed; raises RuntimeError without a compiler."""
    with open(SOURCE, "rb") as handle:
        digest = hashlib.sha1(handle.read()).hexdigest()[:12]
    directory = os.path.join(tempfile.gettempdir(), f"leaksoak-native-{os.getuid()}")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    library = os.path.join(directory, f"libretain-{digest}.so")
    if not os.path.exists(library):
        compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
        if compiler is None:
            raise RuntimeError("the native workloads need a C compiler (cc) to build libretain.c")
        partial = f"{library}.{os.getpid()}.tmp"
        subprocess.run([compiler, "-shared", "-fPIC", "-O1", "-g", "-o", partial, SOURCE], check=True)
        os.replace(partial, library)  # atomic: concurrent workers never load half a file
    lib = ctypes.CDLL(library)
    lib.make_record.restype = ctypes.c_void_p
    lib.make_record.argtypes = [ctypes.c_size_t, ctypes.c_int]
    lib.release_record.restype = None
    lib.release_record.argtypes = [ctypes.c_void_p]
    return lib


@functools.cache
def libretain() -> ctypes.CDLL:
    """:func:`load_libretain` once per process: what a workload's ``setup`` loads and its ``step`` calls."""
    return load_libretain()
