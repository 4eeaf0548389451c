"""``soak watch --attach``: start the agent inside a Python process that is already running and was
never told about leaksoak, and take it out again when the watch ends.

How the agent gets in: CPython 3.14's own ``sys.remote_exec`` (PEP 768) where both interpreters
have it; before that, hypno, a maintained injector on PyPI (the ``attach`` extra) that loads a
small library into the process with ptrace (through pyinjector) and runs a few lines of Python
in it. (gdb's injection, which memray's attach uses, fails on these machines.) The injected lines
put this leaksoak's folder on the process's sys.path and start the agent at its default socket;
a ``detach`` request stops the tracer (the allocators are the interpreter's own again), removes
the socket and takes the folder off sys.path.

Refused with one line (exit 2), the process untouched: another user's process without the
capability, ptrace forbidden by Yama, a process that is not Python, another Python version than
this leaksoak's, a free-threaded build.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import psutil

from soak.errors import BadInput
from soak.inprocess.agent.embedding import AgentOptions
from soak.inprocess.agent.server import default_socket_path
from soak.inprocess.protocol import Channel

GRANT = ("grant it ptrace: run the sidecar as the service's user or with CAP_SYS_PTRACE "
         "(Kubernetes: securityContext.capabilities.add: [SYS_PTRACE], and shareProcessNamespace: true)")
ATTACH_TIMEOUT_S = 15.0
YAMA = "/proc/sys/kernel/yama/ptrace_scope"


@dataclass(frozen=True)
class Interpreter:
    """What runs in the target process."""

    version: tuple[int, int]
    free_threaded: bool


def _has_cap_sys_ptrace() -> bool:
    """Whether this process has CAP_SYS_PTRACE in its effective set (bit 19)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> 19 & 1)
    except OSError:
        pass
    return False


def check_permission(pid: int) -> None:
    """Refuse, with what to grant, an attach the kernel would refuse."""
    try:
        target_uid = psutil.Process(pid).uids().real
    except psutil.NoSuchProcess as exc:
        raise BadInput(f"no process with pid {pid}") from exc
    except psutil.AccessDenied as exc:
        raise BadInput(f"cannot attach to pid {pid}: its details are not readable; {GRANT}") from exc
    privileged = _has_cap_sys_ptrace()
    if target_uid != os.getuid() and not privileged:
        raise BadInput(f"cannot attach to pid {pid}: it runs as uid {target_uid}, this as uid {os.getuid()}; {GRANT}")
    try:
        with open(YAMA) as handle:
            scope = int(handle.read().strip() or 0)
    except (OSError, ValueError):
        scope = 0
    if scope >= 3:
        raise BadInput(f"cannot attach to pid {pid}: ptrace is disabled on this machine ({YAMA} is 3)")
    if scope == 2 and not privileged:
        raise BadInput(f"cannot attach to pid {pid}: {YAMA} is 2, which only allows CAP_SYS_PTRACE; {GRANT}")
    if scope == 1 and not privileged and pid not in {p.pid for p in psutil.Process().children(recursive=True)}:
        raise BadInput(f"cannot attach to pid {pid}: {YAMA} is 1 (only a parent may trace); "
                       f"set it to 0 or {GRANT}")


def interpreter_of(pid: int) -> Interpreter:
    """The Python version of the target, asked of its own executable; refused if it is not Python."""
    exe = f"/proc/{pid}/exe"
    maps = ""
    try:
        with open(f"/proc/{pid}/maps") as handle:
            maps = handle.read()
    except OSError as exc:
        raise BadInput(f"cannot attach to pid {pid}: its memory map is not readable ({exc.strerror}); {GRANT}") from exc
    if "python" not in maps.lower():
        raise BadInput(f"cannot attach to pid {pid}: it is not a Python process ({_name(pid)})")
    probe = "import sys, sysconfig; print(sys.version_info[0], sys.version_info[1], int(bool(sysconfig.get_config_var('Py_GIL_DISABLED'))))"
    try:
        answer = subprocess.run([exe, "-I", "-S", "-c", probe], capture_output=True, text=True, timeout=30, check=True).stdout.split()
        major, minor, free = (int(part) for part in answer)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise BadInput(f"cannot attach to pid {pid}: cannot tell which Python it runs ({_name(pid)}: {exc})") from exc
    return Interpreter((major, minor), bool(free))


def _name(pid: int) -> str:
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return f"pid {pid}"


def check_interpreter(pid: int, interpreter: Interpreter) -> None:
    mine = sys.version_info[:2]
    if interpreter.free_threaded:
        raise BadInput(f"cannot attach to pid {pid}: it runs a free-threaded Python, which leaksoak's agent does not support")
    if interpreter.version != mine:
        theirs = ".".join(map(str, interpreter.version))
        raise BadInput(f"cannot attach to pid {pid}: it runs Python {theirs} and this leaksoak Python {mine[0]}.{mine[1]}; "
                       f"run soak watch --attach with a leaksoak installed for Python {theirs}")


def injected_code(options: AgentOptions, socket_path: str) -> str:
    """The lines run inside the target: this leaksoak on its path, the agent started."""
    import soak

    assert soak.__file__ is not None
    folder = os.path.dirname(os.path.dirname(os.path.abspath(soak.__file__)))
    return (
        "import sys\n"
        f"_soak_path = {folder!r}\n"
        "_soak_added = _soak_path not in sys.path\n"
        "if _soak_added:\n"
        "    sys.path.append(_soak_path)\n"
        "from soak.inprocess.agent.embedding import attach as _soak_attach\n"
        f"_soak_attach({options.to_env()!r}, _soak_path if _soak_added else None, {socket_path!r})\n"
        "del _soak_path, _soak_added, _soak_attach\n"
    )


def _inject(pid: int, code: str) -> None:
    if sys.version_info >= (3, 14) and hasattr(sys, "remote_exec"):
        with tempfile.NamedTemporaryFile("w", suffix=".py", prefix="leaksoak-attach-", delete=False) as script:
            script.write(code)
        os.chmod(script.name, 0o644)
        try:
            sys.remote_exec(pid, script.name)
        except (OSError, RuntimeError) as exc:
            raise BadInput(f"cannot attach to pid {pid}: sys.remote_exec failed ({exc}); {GRANT}") from exc
        return  # the file is read at the target's next safe point: removed once the agent answers
    try:
        from hypno import inject_py
    except ImportError as exc:
        raise BadInput("soak watch --attach needs the attach extra on Python before 3.14: pip install 'leaksoak[attach]'") from exc
    try:
        inject_py(pid, code)
    except Exception as exc:  # noqa: BLE001 - pyinjector's InjectorError and the OS's errors alike: one line
        raise BadInput(f"cannot attach to pid {pid}: the injection failed ({type(exc).__name__}: {exc}); {GRANT}") from exc


def attach(pid: int, options: AgentOptions | None = None, socket_path: str | None = None) -> str:
    """Start an agent inside the running process ``pid``, listening at ``socket_path`` (default:
    the per-user default for that pid); the path of its socket once it listens."""
    check_permission(pid)
    check_interpreter(pid, interpreter_of(pid))
    options = options or AgentOptions()
    path = os.path.abspath(socket_path) if socket_path else default_socket_path(pid, psutil.Process(pid).uids().real)
    if os.path.exists(path):
        raise BadInput(f"pid {pid} already has an agent at {path}: watch it without --attach")
    _inject(pid, injected_code(options, path))
    deadline = time.monotonic() + ATTACH_TIMEOUT_S
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise BadInput(f"the agent injected into pid {pid} did not start within {ATTACH_TIMEOUT_S:.0f}s; "
                           "its own stderr says why")
        time.sleep(0.05)
    return path


def detach(path: str, timeout_s: float = 10.0) -> bool:
    """Ask the attached agent at ``path`` to take itself out; whether it said it did."""
    import socket

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout_s)
            conn.connect(path)
            channel = Channel(conn.makefile("rb"), conn.makefile("wb"))
            channel.send("detach")
            reply = channel.receive()
    except OSError:
        return False
    return reply is not None and reply.get("type") == "detached"


__all__ = ["attach", "check_interpreter", "check_permission", "detach", "injected_code", "interpreter_of"]
