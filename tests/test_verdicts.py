"""One verdict rule: whether a verdict fails under --fail-on is decided in soak.model.verdicts only."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from conftest import REPO

from soak.model import verdicts
from soak.model.verdicts import CLEAN, FAIL_ON, INCONCLUSIVE, LEAK, NEVER, SUSPECT, VERDICTS, fails


@pytest.mark.parametrize(
    "fail_on, failing",
    [(LEAK, {LEAK}), (SUSPECT, {LEAK, SUSPECT}), (NEVER, set())],
)
def test_which_verdicts_fail_under_each_level(fail_on: str, failing: set[str]) -> None:
    assert {verdict for verdict in VERDICTS if fails(verdict, fail_on)} == failing


def test_the_enumerations() -> None:
    assert VERDICTS == (LEAK, SUSPECT, CLEAN, INCONCLUSIVE) == ("leak", "suspect", "clean", "inconclusive")
    assert FAIL_ON == ("leak", "suspect", "never")
    with pytest.raises(ValueError):
        fails(LEAK, "sometimes")


def test_the_enumerations_are_the_ones_everyone_uses() -> None:
    from soak.analyzers import growth
    from soak.supervisor import checks as supervisor
    from soak.supervisor import metrics

    # The names each module imported (not re-exported, hence the ignores) are the shared objects.
    assert (growth.LEAK, growth.SUSPECT, growth.CLEAN, growth.INCONCLUSIVE) == VERDICTS  # type: ignore[attr-defined]
    assert metrics.VERDICTS is VERDICTS and supervisor.FAIL_ON is FAIL_ON  # type: ignore[attr-defined]
    assert set(verdicts.FAILING_LEVELS) < set(FAIL_ON)  # soak ci and the plugin: a job that never fails checks nothing


def _sources() -> list[Path]:
    return [*(REPO / "soak").rglob("*.py"), *(REPO / "analyzers").rglob("*.py"), *(REPO / "storage").rglob("*.py")]


def test_no_second_copy_of_an_enumeration() -> None:
    """No module spells out verdicts, fail-on levels or tracer names as its own tuple."""
    from soak.inprocess.probes.tracer import TRACERS

    names = set(VERDICTS) | set(FAIL_ON) | set(TRACERS)
    copies = []
    for path in _sources():
        if path.name in ("verdicts.py", "tracer.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and len(node.elts) >= 2 and all(
                    isinstance(e, ast.Constant) and e.value in names for e in node.elts):
                copies.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert copies == []


def test_no_other_module_decides_what_fails() -> None:
    """The decision is written once: nobody else compares a fail-on level with == or !=."""
    decided = re.compile(r"fail_on\s*[!=]=|[!=]=\s*[\w.]*fail_on\b")
    offenders = [f"{path.relative_to(REPO)}:{n}" for path in _sources() if path.name != "verdicts.py"
                 for n, line in enumerate(path.read_text().splitlines(), 1) if decided.search(line)]
    assert offenders == []
