"""Which code a frame belongs to: the application, the standard library, or an installed distribution."""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.metadata
import os
import site
import sysconfig
from collections.abc import Iterable, Sequence

from soak.model.finding import Frame

APPLICATION, STDLIB = "application", "stdlib"


@functools.lru_cache(maxsize=1)
def _packages_to_distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


@functools.lru_cache(maxsize=4096)
def distribution_of(top: str) -> str | None:
    """The installed distribution that provides the top-level module ``top``, by its name.

    Most distributions are named as their module (urllib3, anyio, langchain_core for
    langchain-core): that one distribution's file list is read and must hold ``top``. Only
    for the others (``yaml`` of PyYAML) is every installed distribution's list read
    (``importlib.metadata.packages_distributions``, 0.1-0.5 s with a hundred installed, once per
    process): a watcher beside a busy service pays that only if it meets such a module.
    """
    try:
        dist = importlib.metadata.distribution(top)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        dist = None
    if dist is not None and _provides(dist, top):
        return str(dist.metadata["Name"])
    dists = _packages_to_distributions().get(top)
    return dists[0] if dists else None


def _provides(dist: importlib.metadata.Distribution, top: str) -> bool:
    names = (dist.read_text("top_level.txt") or "").split()
    if names:
        return top in names
    return any(_module_name(file.parts[0]) == top for file in dist.files or () if file.parts)


def _site_dirs() -> tuple[str, ...]:
    dirs = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()}
    user = site.getusersitepackages()
    if isinstance(user, str):
        dirs.add(user)
    return tuple(sorted((os.path.join(os.path.abspath(d), "") for d in dirs), key=len, reverse=True))


def _stdlib_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple({os.path.join(os.path.abspath(paths[k]), "") for k in ("stdlib", "platstdlib")})


def _module_name(entry: str) -> str:
    """The top-level module a site-packages entry holds: ``six.py`` → ``six``,
    ``_cffi_backend.cpython-311-x86_64-linux-gnu.so`` → ``_cffi_backend``, a package as it is."""
    for suffix in (*importlib.machinery.EXTENSION_SUFFIXES, ".py"):
        if entry.endswith(suffix):
            return entry[: -len(suffix)]
    return entry


class Attributor:
    """Labels files. ``application_roots`` (the target's own directory or package) always
    count as application code, wherever they are installed."""

    def __init__(self, application_roots: Iterable[str] = ()) -> None:
        self.application_roots = tuple(os.path.join(os.path.abspath(r), "") for r in application_roots)
        self.site_dirs = _site_dirs()
        self.stdlib_dirs = _stdlib_dirs()
        self._libraries: dict[str, str] = {}

    def library(self, filename: str) -> str:
        library = self._libraries.get(filename)
        if library is None:
            library = self._libraries[filename] = self._library(filename)
        return library

    def _library(self, filename: str) -> str:
        if filename.startswith("<frozen "):
            return STDLIB
        path = os.path.abspath(filename)
        if path.startswith(self.application_roots):
            return APPLICATION
        for directory in self.site_dirs:
            if path.startswith(directory):
                top = path[len(directory):].split(os.sep, 1)[0]
                top = _module_name(top)
                return distribution_of(top) or top
        if path.startswith(self.stdlib_dirs):
            return STDLIB
        return APPLICATION

    def call_site(self, frames: Sequence[Frame]) -> Frame | None:
        """First application frame of a traceback whose allocation frame is not application code."""
        if not frames or self.library(frames[0].file) == APPLICATION:
            return None
        for frame in frames[1:]:
            if self.library(frame.file) == APPLICATION:
                return frame
        return None


