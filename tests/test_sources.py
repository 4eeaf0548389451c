"""Function names for stored frames: from a file's cached bytecode when it is current, else its source."""

from __future__ import annotations

import importlib.util
import linecache
import py_compile
import sys
from pathlib import Path

import pytest

from soak.judging import sources

MODULE = '''\
import functools

TABLE = [n * 2 for n in range(3)]  # line 3


def plain():
    return [x for x in range(3)]  # line 7


class Service:
    limit = 10  # line 11

    @functools.lru_cache(maxsize=None)
    def cached(self, key):
        keep = lambda: key  # line 15
        return keep()

    async def handle(self):
        try:
            pass
        except ValueError:
            return 1  # line 22
        match self.limit:
            case 10:
                return 2  # line 25


def outer():
    def inner():
        return 3  # line 30

    class Local:
        def method(self):
            return 4  # line 34

    return inner, Local
'''

EXPECTED = {3: "<module>", 7: "plain", 11: "Service", 15: "Service.cached", 22: "Service.handle",
            25: "Service.handle", 30: "outer.inner", 34: "outer.Local.method", 36: "outer"}


def _names(path: Path) -> dict[int, str]:
    sources._definitions.cache_clear()
    linecache.clearcache()
    return {line: sources.function_name(str(path), line) for line in EXPECTED}


@pytest.fixture
def module(tmp_path: Path) -> Path:
    path = tmp_path / "service_module.py"
    path.write_text(MODULE)
    return path


def test_names_from_source(module: Path) -> None:
    assert not Path(importlib.util.cache_from_source(str(module))).exists()
    assert sources._compiled(str(module)) is None
    assert _names(module) == EXPECTED


@pytest.mark.skipif(sys.version_info < (3, 11), reason="code objects have a qualified name from 3.11")
def test_names_from_current_bytecode_match_the_source(module: Path) -> None:
    py_compile.compile(str(module), cfile=importlib.util.cache_from_source(str(module)), doraise=True)
    assert sources._compiled(str(module)) is not None
    assert _names(module) == EXPECTED


def test_stale_bytecode_is_not_used(module: Path) -> None:
    py_compile.compile(str(module), cfile=importlib.util.cache_from_source(str(module)), doraise=True)
    module.write_text("\n" + MODULE)  # every line one further down; the .pyc no longer matches
    assert sources._compiled(str(module)) is None
    sources._definitions.cache_clear()
    linecache.clearcache()
    assert {line: sources.function_name(str(module), line + 1) for line in EXPECTED} == EXPECTED
