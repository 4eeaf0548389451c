"""ctypes' calls of the C allocator made visible to memray (``--native``).

ctypes calls a library's function through the pointer ``dlsym`` gave it, and memray's hooks
patch the call tables of loaded objects: a ``ctypes.CDLL(None).malloc(n)`` is never seen, so
memory a workload takes from libc through ctypes and never frees would be unexplained process
growth even under ``--native``. While routed, looking up ``malloc``, ``calloc``, ``realloc`` or
``free`` on a library where it is the process's own allocator (``CDLL(None)``,
``CDLL("libc.so.6")``, ``ctypes.pythonapi``) returns a function pointer to the same function in
``soak.inprocess.probes._ctypes_allocators`` instead, which calls the allocator through its own call table
(memray's hooks see that call; soak.inprocess.probes.native_reader reads its frame as the C library's
allocator). The pointer behaves as the looked-up one would: the library's default ``restype``,
no ``argtypes``, both settable. Other functions, and allocators a library defines for itself,
are looked up as before.

Routing must come before the workload looks the functions up (a ``CDLL`` keeps an attribute once
looked up): the worker routes before importing the target, the agent's native probe before the
service runs. A pointer looked up before, or built from an address (``ctypes.cast``), is not
routed, and its calls stay invisible to memray.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

ALLOCATORS = ("malloc", "calloc", "realloc", "free")
"""The functions routed."""

_original: Callable[[ctypes.CDLL, Any], Any] | None = None
"""``ctypes.CDLL.__getitem__`` before routing, while routed."""
_process_addresses: dict[str, int] = {}
"""The process's own allocators' addresses (``dlsym`` of the whole process)."""


def ctypes_allocators_unavailable() -> str | None:
    """Why routing cannot work here (the extension is not built), or None."""
    try:
        from soak.inprocess.probes import _ctypes_allocators  # noqa: F401
    except ImportError as exc:
        return str(exc) or "the extension soak.inprocess.probes._ctypes_allocators is not built"
    return None


def is_routed() -> bool:
    return _original is not None


def _address(function: Any) -> int | None:
    return ctypes.cast(function, ctypes.c_void_p).value


def route_ctypes_allocators() -> bool:
    """Route lookups of the C allocator through ``soak.inprocess.probes._ctypes_allocators``. True if routing
    started now; False if it already ran, or cannot (the extension is not built)."""
    global _original
    if _original is not None or ctypes_allocators_unavailable() is not None:
        return False
    from soak.inprocess.probes import _ctypes_allocators

    original = ctypes.CDLL.__getitem__
    process = ctypes.CDLL(None)
    _process_addresses.clear()
    _process_addresses.update({name: _address(original(process, name)) or 0 for name in ALLOCATORS})
    ours = _ctypes_allocators.addresses()

    def __getitem__(self: ctypes.CDLL, name_or_ordinal: Any) -> Any:
        function = original(self, name_or_ordinal)
        if name_or_ordinal in ours and _address(function) == _process_addresses[name_or_ordinal]:
            routed: Any = self._FuncPtr(ours[name_or_ordinal])
            routed.__name__ = name_or_ordinal
            return routed
        return function

    __getitem__.__doc__ = original.__doc__
    _original = original
    ctypes.CDLL.__getitem__ = __getitem__  # type: ignore[method-assign]
    return True


def unroute_ctypes_allocators() -> None:
    """Look the allocators up as ctypes does again; pointers handed out meanwhile keep working."""
    global _original
    if _original is not None:
        ctypes.CDLL.__getitem__ = _original  # type: ignore[method-assign]
        _original = None
