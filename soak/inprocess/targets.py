"""Workload targets: ``path/to/file.py:func`` or ``package.module:func``.

The supervisor only parses and checks a target (it never imports user code); the worker loads it.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from soak.errors import BadInput

_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


@dataclass(frozen=True)
class TargetSpec:
    """A parsed target. Exactly one of ``path`` and ``module`` is set."""

    text: str
    function: str
    path: str | None = None
    """Absolute path of the workload file, for the file form."""
    module: str | None = None
    """Dotted module name, for the module form."""

    @property
    def default_name(self) -> str:
        stem = os.path.splitext(os.path.basename(self.path))[0] if self.path else self.module
        return f"{stem}:{self.function}"


@dataclass
class LoadedTarget:
    """A target imported in the worker, with its optional module-level hooks."""

    module: ModuleType
    function: Callable[[], Any]
    is_async: bool
    setup: Callable[[], Any] | None
    teardown: Callable[[], Any] | None


class BadTarget(BadInput):
    """The target cannot be loaded as given (missing file, module, function, or import)."""


def parse_target(text: str) -> TargetSpec:
    """Check a target's shape (and that its file exists) without importing anything."""
    head, sep, function = text.strip().rpartition(":")
    if not sep or not head or not function:
        raise BadInput(
            f"target {text!r} must look like path/to/file.py:func or package.module:func"
        )
    if not function.isidentifier():
        raise BadInput(f"target {text!r}: {function!r} is not a function name")
    if head.endswith(".py") or os.sep in head or "/" in head:
        path = os.path.abspath(head)
        if not os.path.isfile(path):
            raise BadInput(f"target {text!r}: no such file {head!r}")
        return TargetSpec(text=text, function=function, path=path)
    if not _MODULE_NAME.fullmatch(head):
        raise BadInput(f"target {text!r}: {head!r} is neither a .py file nor a module name")
    return TargetSpec(text=text, function=function, module=head)


def load_target(spec: TargetSpec) -> LoadedTarget:
    """Import the target's module and find its function.

    Raises BadTarget for what the user must fix (no file, no module, an ImportError or
    SyntaxError inside it, no such function, not callable). Any other exception the module
    raises while importing propagates unchanged: that is the workload failing, not bad input.
    """
    module = _import_file(spec) if spec.path else _import_module(spec)
    func = getattr(module, spec.function, None)
    if func is None:
        raise BadTarget(f"target {spec.text!r}: module has no function {spec.function!r}")
    if not callable(func):
        raise BadTarget(f"target {spec.text!r}: {spec.function!r} is not callable")
    return LoadedTarget(
        module=module,
        function=func,
        is_async=inspect.iscoroutinefunction(func),
        setup=_hook(module, "setup"),
        teardown=_hook(module, "teardown"),
    )


def _hook(module: ModuleType, name: str) -> Callable[[], Any] | None:
    hook = getattr(module, name, None)
    return hook if callable(hook) else None


def _import_file(spec: TargetSpec) -> ModuleType:
    assert spec.path is not None
    directory = os.path.dirname(spec.path)
    if directory not in sys.path:
        sys.path.insert(0, directory)  # sibling imports work as they would for `python file.py`
    name = os.path.splitext(os.path.basename(spec.path))[0]
    module_spec = importlib.util.spec_from_file_location(name, spec.path)
    if module_spec is None or module_spec.loader is None:
        raise BadTarget(f"target {spec.text!r}: cannot import {spec.path!r} as Python")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except (ImportError, SyntaxError) as exc:
        raise BadTarget(f"target {spec.text!r}: {_describe(exc)}") from exc
    return module


def _import_module(spec: TargetSpec) -> ModuleType:
    assert spec.module is not None
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` would
    try:
        return importlib.import_module(spec.module)
    except ModuleNotFoundError as exc:
        if exc.name and spec.module.startswith(exc.name):
            raise BadTarget(f"target {spec.text!r}: no module named {exc.name!r}") from exc
        raise BadTarget(f"target {spec.text!r}: {_describe(exc)}") from exc
    except (ImportError, SyntaxError) as exc:
        raise BadTarget(f"target {spec.text!r}: {_describe(exc)}") from exc


def _describe(exc: BaseException) -> str:
    where = ""
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f" ({os.path.basename(exc.filename)}:{exc.lineno})"
    return f"{type(exc).__name__}: {exc}{where}"
