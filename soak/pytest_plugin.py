"""The pytest plugin: ``@pytest.mark.soak(duration="30s", interval="1s")`` soaks a test function.

The marked test is not run in pytest's process. leaksoak calls it over and over in a worker
process, as ``soak run path/to/test_file.py:test_name`` would, and the test fails with the
report's findings when memory grows without bound. Registered through the ``pytest11`` entry point.
"""

from __future__ import annotations

import inspect
import os
import shutil
import tempfile
from dataclasses import replace
from typing import TYPE_CHECKING

import pytest

from soak.durations import parse_duration, parse_size
from soak.errors import SoakError
from soak.inprocess.probes.tracer import BadTracer, check_tracer
from soak.model.options import DEFAULT_TRACER, RunOptions
from soak.model.verdicts import FAILING_LEVELS

if TYPE_CHECKING:
    from soak.supervisor.results import RunResult

MARK_OPTIONS = ("duration", "interval", "fail_on", "tracer", "suppressions")


class BadMark(Exception):
    """A soak mark that cannot be run as given."""


class SuppressionWarning(pytest.PytestWarning):
    """A suppression rule needs a look: expired, unused, too broad, or a match over its max_growth."""


MARK_KEY = pytest.StashKey[RunOptions]()
"""The run a marked test asks for, checked (its database is chosen when it runs)."""
SOAKED_KEY = pytest.StashKey[int]()
"""How many soaks of this session stored a run."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("leaksoak", "memory-leak soak tests (@pytest.mark.soak)")
    group.addoption("--soak-db", metavar="PATH", default=None,
                    help="keep the soaks' runs in this SQLite file (default: a temporary file, deleted at the end)")
    group.addoption("--soak-tracer", metavar="NAME", default=None,
                    help="allocation tracer of every soak: sampled (the default), exact (tracemalloc) or off; "
                         "a mark's tracer= wins")
    group.addoption("--soak-sample-interval", metavar="BYTES", default=None,
                    help="the sampled tracer's mean bytes between samples, e.g. 16KiB")
    group.addoption("--soak-suppressions", metavar="PATH", default=None,
                    help="suppression rules of every soak ([[suppress]] tables; default: ./leaksoak.toml and "
                         "[[tool.leaksoak.suppress]] of ./pyproject.toml); a mark's suppressions= wins")
    group.addoption("--soak-duration-scale", metavar="FACTOR", type=float, default=1.0,
                    help="multiply every soak's duration, e.g. 0.2 for a quick run, 10 for a nightly one")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "soak(duration='30s', interval='1s', fail_on='leak', tracer='sampled', suppressions=None): call the test over and "
        "over in a leaksoak worker and fail if its memory grows without bound (fail_on='suspect' fails on suspects too; "
        "findings a rule of the suppressions file accepts do not count)",
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    directory = getattr(config, "_soak_tmpdir", None)
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


def _db_path(config: pytest.Config) -> str:
    given: str | None = config.getoption("soak_db")
    if given:
        return os.path.abspath(given)
    if getattr(config, "_soak_tmpdir", None) is None:
        config._soak_tmpdir = tempfile.mkdtemp(prefix="leaksoak-pytest-")  # type: ignore[attr-defined]
    tmpdir: str = config._soak_tmpdir  # type: ignore[attr-defined]
    return os.path.join(tmpdir, "soak.db")


def _read_mark(item: pytest.Function, marker: pytest.Mark) -> RunOptions:
    """The run that ``@pytest.mark.soak(...)`` asks for, checked: the test called over and over
    for ``duration`` (times ``--soak-duration-scale``), a snapshot every ``interval``; failing on
    ``fail_on`` (``leak``, or ``suspect`` too); the mark's ``tracer=`` and ``suppressions=``, else
    ``--soak-tracer`` and ``--soak-suppressions``; ``--soak-sample-interval`` in bytes."""
    if marker.args or set(marker.kwargs) - set(MARK_OPTIONS):
        raise BadMark(f"@pytest.mark.soak takes keyword arguments only, of {', '.join(MARK_OPTIONS)}")
    if item.cls is not None:
        raise BadMark("@pytest.mark.soak works on module-level test functions, not methods")
    params = list(inspect.signature(item.function).parameters)
    if params:
        raise BadMark(f"a soaked test is called with no arguments, but {item.originalname} takes {', '.join(params)} "
                          "(fixtures and parameters do not reach the worker)")
    fail_on = marker.kwargs.get("fail_on", "leak")
    if fail_on not in FAILING_LEVELS:
        raise BadMark(f"@pytest.mark.soak(fail_on=...) must be one of {', '.join(FAILING_LEVELS)}, not {fail_on!r}")
    scale = item.config.getoption("soak_duration_scale")
    if not scale > 0:
        raise BadMark("--soak-duration-scale must be a positive number")
    tracer = str(marker.kwargs.get("tracer") or item.config.getoption("soak_tracer") or DEFAULT_TRACER)
    try:
        duration_s = parse_duration(str(marker.kwargs.get("duration", "30s"))) * scale
        interval_s = parse_duration(str(marker.kwargs.get("interval", "1s")), option="interval")
        given_interval = item.config.getoption("soak_sample_interval")
        sample_interval = parse_size(given_interval, option="soak-sample-interval") if given_interval else None
        check_tracer(tracer, sample_interval=sample_interval)
    except (SoakError, BadTracer) as exc:
        raise BadMark(f"@pytest.mark.soak: {exc}") from exc
    suppressions = marker.kwargs.get("suppressions") or item.config.getoption("soak_suppressions")
    if suppressions is not None and not isinstance(suppressions, (str, os.PathLike)):
        raise BadMark(f"@pytest.mark.soak(suppressions=...) must be a path, not {suppressions!r}")
    options = RunOptions(
        f"{item.path}:{item.originalname}", duration_s=duration_s, interval_s=interval_s, db_path="", name=item.nodeid,
        fail_on=fail_on, tracer=tracer, sample_interval=sample_interval, suppressions=os.fspath(suppressions) if suppressions else None,
    )
    from soak.supervisor.checks import load_rules

    try:
        load_rules(options)  # a malformed rules file is an error of the test, before any soak
    except SoakError as exc:
        raise BadMark(f"@pytest.mark.soak: {exc}") from exc
    return options


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Check the mark before any fixture is set up: a bad one is an error of the test."""
    marker = item.get_closest_marker("soak")
    if marker is None or not isinstance(item, pytest.Function):
        return
    try:
        item.stash[MARK_KEY] = _read_mark(item, marker)
    except BadMark as exc:
        raise pytest.fail.Exception(str(exc), pytrace=False) from None


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Soak a marked test instead of calling it once here."""
    options = pyfuncitem.stash.get(MARK_KEY, None)
    if options is None:
        return None
    from soak import api  # the scheduler and the statistics load only when a soak runs

    options = replace(options, db_path=_db_path(pyfuncitem.config))
    try:
        result = api.run(options)
    except SoakError as exc:  # bad input, or the database cannot be written
        raise pytest.fail.Exception(f"soak: error: {exc}", pytrace=False) from None
    pyfuncitem.config.stash[SOAKED_KEY] = pyfuncitem.config.stash.get(SOAKED_KEY, 0) + 1
    _judge(pyfuncitem, result)
    return True


def _judge(item: pytest.Function, result: RunResult) -> None:
    """Fail the test on a leak (or a suspect, as asked), or when the worker failed."""
    from soak import api

    report = api.report(result.db_path, str(result.run_id))
    if result.status == "interrupted":
        raise KeyboardInterrupt  # Ctrl-C ended the soak; let it end the session too
    for warning in result.warnings:
        item.warn(SuppressionWarning(warning))
    if result.status == "failed":
        pytest.fail(f"soak: the worker failed, so the soak could not judge the test: {result.reason}\n\n{report}",
                    pytrace=False)
    if result.status == "oom-killed":
        pytest.fail(f"soak: the test ran out of memory while called over and over: {result.reason}\n\n{report}",
                    pytrace=False)
    if result.exit_code != 0:
        pytest.fail(f"memory grows without bound while the test is called over and over "
                    f"(verdict: {result.verdict})\n\n{report}", pytrace=False)
    item.add_report_section("call", "leaksoak", report)  # shown with -rP


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    db = config.getoption("soak_db")
    soaked = config.stash.get(SOAKED_KEY, 0)
    if db and soaked:
        terminalreporter.write_line(f"leaksoak: {soaked} soak(s) stored in {db} (soak runs --db {db})")
