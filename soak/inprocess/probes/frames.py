"""Which frames of an allocation traceback are the workload's: one rule for every tracer.

A traceback (allocation frame first) is cut where leaksoak's driver called the workload; one
with a frame in leaksoak's own machinery (control thread, wire format, probes) is leaksoak's
memory and is dropped whole, as is one whose allocation frame is the interpreter's bookkeeping.
"""

from __future__ import annotations

import importlib.util
import os
import tracemalloc

Frame = tuple[str, int]
"""(file, line) of one frame; function names are resolved from source by the supervisor."""


def _module_file(name: str) -> str:
    """The file name that the module's frames carry."""
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin is not None
    if spec.origin == "frozen":  # 3.11+ freezes runpy: its frames are in "<frozen runpy>"
        return f"<frozen {name}>"
    return os.path.abspath(spec.origin)


_MACHINERY = frozenset((_module_file("soak.inprocess.control"), _module_file("soak.inprocess.protocol")))
_PROBES_DIR = os.path.dirname(os.path.abspath(__file__))
DRIVER_FILES = frozenset(
    _module_file(name) for name in ("soak.inprocess.worker", "soak.inprocess.targets", "soak.workloads.adapters", "soak.agent",
                               "soak.inprocess.agent.command", "runpy")
)
"""The path that calls the workload: frames from here outward are cut from every traceback."""
_NOT_WORKLOAD_ALLOCATORS = frozenset(
    (tracemalloc.__file__, "<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>", "<unknown>")
)


class FrameFilter:
    """Cuts raw tracebacks down to the workload's frames; remembers each file's kind."""

    def __init__(self) -> None:
        self._file_kind: dict[str, str] = {}

    def _kind(self, filename: str) -> str:
        kind = self._file_kind.get(filename)
        if kind is None:
            if filename in DRIVER_FILES:
                kind = "driver"
            elif filename in _MACHINERY or os.path.dirname(filename) == _PROBES_DIR:
                kind = "machinery"
            else:
                kind = "workload"
            self._file_kind[filename] = kind
        return kind

    def workload_frames(self, traceback: tuple[Frame, ...]) -> tuple[Frame, ...]:
        """The workload's part of a raw traceback (allocation frame first); () for leaksoak's own memory."""
        frames: list[Frame] = []
        for frame in traceback:
            kind = self._kind(frame[0])
            if kind == "driver":
                break
            if kind == "machinery":
                return ()
            frames.append(frame)
        if not frames or frames[0][0] in _NOT_WORKLOAD_ALLOCATORS:
            return ()
        return tuple(frames)
