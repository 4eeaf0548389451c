"""The reader of ``--native`` tracking: a child of the measured process that holds memray's live
view of its native allocations and answers each snapshot request with live bytes per native site.

memray's ``SocketReader`` keeps the live allocations of a tracked process up to date as records
arrive; it cannot share a process with the ``Tracker`` it reads (both wait for the GIL while the
connection is made), and in a child its memory and its symbol resolution stay out of the
measured process. Started by :class:`soak.inprocess.probes.native.NativeProbe` as
``python -c READER_MAIN PORT FRAMES``; speaks one JSON line per request on stdin/stdout.

A native site is (the native code that allocated, its function, the workload's Python frames).
The native code is the first frame, from the allocation outward, that is not the interpreter,
the C/C++ runtime or ctypes' call machinery; an allocation made by the interpreter alone (a list
growing, a new pymalloc arena) is Python-visible memory, which the Python tracer sees, and is
left out. An allocation reached through ctypes with no frame of its own in between (ctypes
calling ``malloc`` itself, through soak.inprocess.probes._ctypes_allocators under ``--native``) is the C library's.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from soak.inprocess.probes.frames import FrameFilter

LIBC = "libc"
"""The object named for memory that ctypes asked the C allocator for directly."""
C_ALLOCATORS = frozenset({"malloc", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc",
                          "memalign", "valloc", "pvalloc"})
"""The C library's allocators: called by ctypes itself, the memory is the C library's site."""
ROUTED_ALLOCATORS = {"leaksoak_malloc": "malloc", "leaksoak_calloc": "calloc", "leaksoak_realloc": "realloc",
                     "leaksoak_free": "free"}
"""soak.inprocess.probes._ctypes_allocators' functions, which ctypes calls in place of the C library's
(soak.inprocess.probes.ctypes_allocators): a frame of one is the C library's allocator, by its name."""
NATIVE_FRAMES_KEPT = 8
"""Native frames of a site sent as its evidence (allocation frame first)."""

_RUNTIME_PREFIXES = ("libc.so", "libc-", "ld-linux", "libstdc++", "libgcc_s", "libm.so", "libpthread")
_GLUE_PREFIXES = ("libffi", "_ctypes.")
_OWN_DIRECTORY = os.path.dirname(os.path.abspath(__file__))
"""The probes' folder, where the sampled tracer's C core lives: it allocates its own tables
(reported as the tracer's overhead, never as the workload's memory)."""


def object_role(path: str, interpreter: str) -> str:
    """What a loaded object is to attribution: ``interpreter``, ``runtime`` (the C and C++
    runtime: allocators, not owners), ``glue`` (ctypes and libffi), ``own`` (leaksoak's sampled
    tracer), or ``code``."""
    name = os.path.basename(path)
    if path == interpreter or name.startswith("libpython"):
        return "interpreter"
    if name.startswith("_sampler.") and os.path.dirname(os.path.realpath(path)) == os.path.realpath(_OWN_DIRECTORY):
        return "own"
    if name.startswith(_RUNTIME_PREFIXES):
        return "runtime"
    if name.startswith(_GLUE_PREFIXES):
        return "glue"
    return "code"


class LoadedObjects:
    """Which loaded ELF object defines a function, read from the tracked process's maps and the
    objects' symbol tables (pyelftools); memray names a native frame's function and, with debug
    information, its source file, but not the object it lives in."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        try:
            self.interpreter = os.path.realpath(f"/proc/{pid}/exe")
        except OSError:
            self.interpreter = ""
        self._read: set[str] = set()
        self._defined: dict[str, str] = {}
        self.libc: str = LIBC

    def _mapped(self) -> list[str]:
        paths: list[str] = []
        try:
            with open(f"/proc/{self.pid}/maps", encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    parts = line.split(None, 5)
                    if len(parts) == 6 and "x" in parts[1] and parts[5].startswith("/"):
                        path = parts[5].strip()
                        if path not in paths:
                            paths.append(path)
        except OSError:
            pass
        return paths

    def refresh(self) -> bool:
        """Read the symbols of objects loaded since the last refresh (an import loads more);
        True if there were any."""
        new = False
        for path in self._mapped():
            if path in self._read:
                continue
            self._read.add(path)
            new = True
            if os.path.basename(path).startswith("libc.so"):
                self.libc = path
            if object_role(path, self.interpreter) in ("interpreter", "runtime"):
                continue  # a function found in no other object is theirs, or unknown: not an owner
            for symbol in _defined_functions(path):
                self._defined.setdefault(symbol, path)  # load order: the executable's first
        return new

    def defining(self, symbol: str) -> str | None:
        return self._defined.get(symbol)


def _defined_functions(path: str) -> Iterable[str]:
    """Names of the functions ``path`` defines, from its ``.symtab`` and ``.dynsym``.

    pyelftools finds the sections; the symbols themselves are read as one numpy array, since
    decoding hundreds of thousands of them one by one (a BLAS library has that many) takes seconds.
    """
    import numpy as np
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    symbol = np.dtype([("name", "<u4"), ("info", "u1"), ("other", "u1"), ("shndx", "<u2"),
                       ("value", "<u8"), ("size", "<u8")])
    names: list[str] = []
    try:
        with open(path, "rb") as handle:
            elf = ELFFile(handle)
            if elf.elfclass != 64 or not elf.little_endian:
                return []
            for section in elf.iter_sections():
                if section["sh_type"] not in ("SHT_SYMTAB", "SHT_DYNSYM"):
                    continue
                table = np.frombuffer(section.data(), dtype=symbol)
                strings = elf.get_section(section["sh_link"]).data()
                functions = table[((table["info"] & 0xF) == 2) & (table["shndx"] != 0) & (table["name"] != 0)]
                for offset in functions["name"].tolist():
                    names.append(strings[offset:strings.index(b"\0", offset)].decode("utf-8", "replace"))
    except (OSError, ELFError, ValueError):
        return []
    return names


@dataclass
class NativeSite:
    object: str
    """Path of the ELF object whose code allocated (or :data:`LIBC`'s path for ctypes' malloc)."""
    symbol: str
    native: list[list[Any]]
    """[function, source file, line, object] from the allocation outward, up to the Python frame."""
    python: list[list[Any]]
    """[file, line, function] of the workload's Python frames, innermost first."""
    size: int = 0
    count: int = 0

    @property
    def series(self) -> str:
        """A stable, readable series name: object, function, innermost Python line, and a short
        hash of the whole Python stack (two stacks through one line stay apart)."""
        file, line, _ = self.python[0]
        digest = hashlib.sha1(repr((self.object, self.symbol, self.python)).encode()).hexdigest()[:8]
        return f"{os.path.basename(self.object)}:{self.symbol} <- {os.path.basename(file)}:{line} #{digest}"


class Sites:
    """Turns memray's live allocation records into native sites."""

    def __init__(self, objects: LoadedObjects, frames: int) -> None:
        self.objects = objects
        self.frames = frames
        self.filter = FrameFilter()
        self._by_stack: dict[tuple[int, int, int], NativeSite | None] = {}
        """What each of memray's (Python stack, native stack) pairs was found to be: a stack keeps
        its frames, so each is resolved and attributed once, not at every snapshot."""

    def collect(self, records: Iterable[Any]) -> list[NativeSite]:
        if self.objects.refresh():
            # a stack found to be no site's may have named a function of an object not read yet
            self._by_stack = {stack: site for stack, site in self._by_stack.items() if site is not None}
        sites: dict[tuple[Any, ...], NativeSite] = {}
        for record in records:
            stack = (record.stack_id, record.native_stack_id, record.native_segment_generation)
            if stack not in self._by_stack:
                self._by_stack[stack] = self._site(record)
            found = self._by_stack[stack]
            if found is None:
                continue
            key = (found.object, found.symbol, tuple(map(tuple, found.python)))
            site = sites.get(key)
            if site is None:
                site = sites[key] = NativeSite(found.object, found.symbol, found.native, found.python)
            site.size += record.size
            site.count += record.n_allocations
        return sorted(sites.values(), key=lambda s: -s.size)

    def _site(self, record: Any) -> NativeSite | None:
        python = record.stack_trace(max_stacks=200)  # (function, file, line), innermost first
        workload = self.filter.workload_frames(tuple((file, line) for _, file, line in python))
        if not workload:
            return None  # leaksoak's own, the interpreter's start-up, or a thread with no Python
        hybrid = record.hybrid_stack_trace(max_stacks=200)
        first_python = next((i for i, frame in enumerate(hybrid) if tuple(frame) == tuple(python[0])), len(hybrid))
        native = []
        owner: tuple[str, str] | None = None
        through_ctypes = False
        for function, source, line in hybrid[:first_python]:
            if function == "<unknown>":
                continue  # an address no symbol table names: nothing to show or attribute
            allocator = ROUTED_ALLOCATORS.get(function)
            if allocator is not None:  # ctypes called the C library's allocator through ours
                native.append([allocator, None, 0, self.objects.libc])  # libc's, not our source line
                through_ctypes = True
                continue
            path = self.objects.defining(function) or ""
            role = object_role(path, self.objects.interpreter) if path else "unknown"
            if role == "own":
                return None  # the sampled tracer's own tables: its overhead, not the workload's
            native.append([function, source, line, path or None])
            if role == "glue":
                through_ctypes = True
            elif role == "code" and owner is None:
                owner = (path, function)
        if owner is None:
            if not through_ctypes or not native or native[0][0] not in C_ALLOCATORS:
                # the interpreter's own allocation (also one made by ctypes' C code, such as a
                # new ctypes type's dict): Python-visible memory
                return None
            owner = (self.objects.libc, native[0][0] if native else "malloc")
        by_line = {(file, line): function for function, file, line in python}
        frames = [[file, line, by_line.get((file, line), "?")] for file, line in workload[: self.frames]]
        return NativeSite(owner[0], owner[1], native[:NATIVE_FRAMES_KEPT], frames)


def snapshot_message(sites: list[NativeSite]) -> dict[str, Any]:
    return {"sites": [{"series": s.series, "object": s.object, "symbol": s.symbol, "size": s.size,
                       "count": s.count, "native": s.native, "python": s.python} for s in sites]}


def main(argv: list[str] | None = None) -> int:
    import memray

    args = sys.argv[1:] if argv is None else argv
    port, frames = int(args[0]), int(args[1])
    out = sys.stdout
    with memray.SocketReader(port) as reader:
        sites = Sites(LoadedObjects(reader.pid or os.getppid()), frames)
        out.write(json.dumps({"ready": True, "native_traces": reader.has_native_traces}) + "\n")
        out.flush()
        # Symbol tables and memray's first symbol resolution (seconds, with debug information) are
        # read now, while the workload runs, rather than in the first snapshot it waits for.
        sites.collect(reader.get_current_snapshot(merge_threads=True))
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                message = snapshot_message(sites.collect(reader.get_current_snapshot(merge_threads=True)))
            except Exception as exc:  # noqa: BLE001 - one failed snapshot is reported, the reader goes on
                message = {"error": f"{type(exc).__name__}: {exc}"}
            out.write(json.dumps(message) + "\n")
            out.flush()
    return 0


READER_MAIN = "import sys; from soak.inprocess.probes.native_reader import main; sys.exit(main())"
