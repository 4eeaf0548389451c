"""`soak compare` and `soak ci --baseline` for real: short soaks of a workload whose leak rate is
set by an environment variable, in real databases.

tests/workloads/timed_leak.py leaks a set number of bytes per second of wall-clock time (not per
call, which a busy machine would slow down), so that doubling the variable doubles the slope.
Measured on a loaded 2-core machine, 6 s soaks at 0.25 s intervals: 64 KiB/s gave slopes of
66.5-66.7 KiB/s with 95% intervals about 0.2 KiB/s wide, 128 KiB/s gave 133.0-133.3 KiB/s.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest
from conftest import REPO, Result, run_soak

from soak.judging.compare import DECREASED, INCREASED, UNCHANGED, Rate, rate_change

TARGET = "tests/workloads/timed_leak.py:step"
# Exact tracing: these tests pin the comparison rule to slopes known to a few percent; a sampled
# tracer's slopes carry its sampling noise (at 16 KiB, a 6 s soak of 64 KiB/s holds about 24 samples).
SOAK = ("--duration", "6s", "--interval", "0.25s", "--tracer", "exact")
MIB_PER_H = 1024 * 1024 / 3600


def _rate(kib_per_s: int) -> dict[str, str]:
    return {"LEAKSOAK_TEST_LEAK_KIB_PER_S": str(kib_per_s)}


@pytest.fixture(scope="module")
def soaked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A baseline at 64 KiB/s; `soak ci --baseline` at twice the rate; a rerun at 64 KiB/s in the
    baseline's database, of the same file named by its absolute path (another target text, so
    the runs must be named to be compared)."""
    tmp = tmp_path_factory.mktemp("compare")
    base, new = tmp / "base.db", tmp / "new.db"
    first = run_soak("ci", TARGET, *SOAK, "--db", str(base), cwd=REPO, env=_rate(64))
    doubled = run_soak("ci", TARGET, *SOAK, "--db", str(new), "--baseline", str(base), "--junit", str(tmp / "junit.xml"),
                       "--summary", str(tmp / "summary.md"), cwd=REPO, env=_rate(128))
    again = run_soak("run", f"{REPO / TARGET}", *SOAK, "--db", str(base), "--quiet", cwd=REPO, env=_rate(64))
    return {"tmp": tmp, "base": base, "new": new, "first": first, "doubled": doubled, "again": again}


def _compare(*args: object) -> Result:
    return run_soak("compare", *(str(a) for a in args), cwd=REPO)


def test_compare_flags_a_leak_whose_rate_doubled(soaked: dict[str, Any]) -> None:
    assert soaked["first"].returncode == 1 and soaked["doubled"].returncode == 1
    result = _compare(soaked["base"], soaked["new"])
    assert result.returncode == 1, result.stdout + result.stderr
    assert "REGRESSION - 1 of 1 target(s) regressed" in result.stdout
    assert "INCREASED   tests/workloads/timed_leak.py:26" in result.stdout

    data = _compare(soaked["base"], soaked["new"], "--format", "json").json()
    assert data["schema"] == "leaksoak.compare/1" and data["regression"] is True
    (target,) = data["targets"]
    assert target["target"] == TARGET and target["status"] == "regression"
    leak = target["findings"][0]
    assert leak["change"] == INCREASED and leak["regression"] and leak["where"]["line"] == 26
    assert 1.7 < leak["ratio"] < 2.3
    assert leak["new"]["interval_bytes_per_hour"][0] > leak["base"]["interval_bytes_per_hour"][1]
    assert target["memory"]["series"] == "traced heap" and target["memory"]["change"] == INCREASED



def test_compare_passes_a_rerun_at_the_same_rate_and_reports_a_slower_one(soaked: dict[str, Any]) -> None:
    assert soaked["again"].returncode == 1
    data = _compare(soaked["base"], soaked["base"], "--run-base", "1", "--run-new", "2", "--format", "json")
    assert data.returncode == 0, data.stdout + data.stderr
    (target,) = data.json()["targets"]
    assert target["status"] == UNCHANGED
    assert [f["change"] for f in target["findings"] if f["where"]["line"] == 26] == [UNCHANGED]
    assert 0.8 < target["findings"][0]["ratio"] < 1.25

    slower = _compare(soaked["new"], soaked["base"])
    assert slower.returncode == 0 and "IMPROVEMENT" in slower.stdout and "decreased   tests/workloads/timed_leak.py:26" in slower.stdout


def test_ci_with_baseline_names_the_regression_in_junit_and_summary(soaked: dict[str, Any]) -> None:
    tmp = soaked["tmp"]
    failure = ET.parse(tmp / "junit.xml").getroot().find("testcase/failure")
    assert failure is not None
    assert failure.get("message", "").startswith("regression vs baseline at tests/workloads/timed_leak.py:26: +")
    summary = (tmp / "summary.md").read_text()
    assert "**regression**: " in summary and "x faster at `tests/workloads/timed_leak.py:26`" in summary
    assert "Regressions against the baseline:" in summary


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("missing.db", "{base}"), "no base database at 'missing.db'"),
        (("{base}", "{base}", "--run-new", "99"), "no run '99'"),
        (("{base}", "{base}", "--format", "xml"), "--format must be one of text, json"),
    ],
)
def test_compare_bad_input_is_one_line_exit_2(soaked: dict[str, Any], args: tuple[str, ...], message: str) -> None:
    result = _compare(*(a.format(base=soaked["base"]) for a in args))
    assert result.returncode == 2 and result.stderr.startswith("soak: error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1


def test_compare_without_a_shared_target_is_bad_input(soaked: dict[str, Any]) -> None:
    # One database against itself: each target's newest run against its previous one; these have none.
    result = _compare(soaked["base"], soaked["base"])
    assert result.returncode == 2 and "pass --run-base and --run-new" in result.stderr


def test_rate_change_needs_separate_intervals_and_a_large_enough_ratio() -> None:
    mib = MIB_PER_H
    base = Rate(10 * mib, 9 * mib, 11 * mib)
    assert rate_change(base, Rate(20 * mib, 19 * mib, 21 * mib)) == INCREASED
    assert rate_change(base, Rate(13 * mib, 12 * mib, 14 * mib)) == UNCHANGED   # significant, but only 1.3x
    assert rate_change(base, Rate(20 * mib, 10 * mib, 30 * mib)) == UNCHANGED   # 2x, but the intervals overlap
    assert rate_change(base, Rate(4 * mib, 3 * mib, 5 * mib)) == DECREASED
    tiny = Rate(0.1 * mib, 0.09 * mib, 0.11 * mib)
    assert rate_change(tiny, Rate(0.5 * mib, 0.49 * mib, 0.51 * mib)) == UNCHANGED  # below the 1 MiB/h floor
