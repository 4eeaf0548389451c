"""`soak ci` for real: the CLI in a subprocess, real worker processes, a real SQLite file.

Each target soaks a few seconds at sub-second intervals (the clean bounded LRU needs about
ten to fill on a busy machine; see test_run_end_to_end)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import REPO, TEST_WORKLOADS, db_rows, leak_lines, run_soak

from soak import api
from soak.reports.annotations import escape_data, escape_property
from soak.reports.ci_summary import MAX_BYTES, render_summary
from soak.supervisor.ci import CiResult, TargetResult

LEAKY = "workloads/reference/leaky_dict_cache.py:step"
CLEAN = "soak.workloads.reference.clean_bounded_lru:step"
GITHUB = {"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(REPO)}


def _annotations(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("::")]


def test_one_leaky_one_clean_target_fails_once_with_junit_summary_and_annotations(tmp_path: Path) -> None:
    db, junit, summary = tmp_path / "soak.db", tmp_path / "junit.xml", tmp_path / "summary.md"
    summary.write_text("written by an earlier step\n")
    result = run_soak("ci", LEAKY, CLEAN, "--duration", "10s", "--interval", "0.25s", "--db", str(db),
                      "--junit", str(junit), "--summary", str(summary), cwd=REPO, env=GITHUB)
    assert result.returncode == 1, result.stderr

    suite = ET.parse(junit).getroot()
    assert suite.tag == "testsuite" and suite.get("name") == "leaksoak"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "1", "0")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert set(cases) == {LEAKY, CLEAN} and all(c.get("classname") == "leaksoak" for c in cases.values())
    assert len(list(suite.iter("failure"))) == 1
    failure = cases[LEAKY].find("failure")
    assert failure is not None and cases[CLEAN].find("failure") is None
    assert failure.get("message", "").startswith("leak at workloads/reference/leaky_dict_cache.py:16 +")
    # one "leak at FILE:LINE +RATE" per finding, joined by "; "; the rate's unit follows the
    # machine's speed (KiB/h to GiB/h), not the test
    leaks = failure.get("message", "").split("; ")
    assert 1 <= len(leaks) <= 3 and all(leak.startswith("leak at ") for leak in leaks), leaks
    assert re.fullmatch(r"leak at \S+:16 \+\d+(\.\d+)? [KMG]iB/h", leaks[0]), leaks
    assert "verdict: LEAK" in (failure.text or "")
    assert float(cases[LEAKY].get("time", "0")) >= 10

    text = summary.read_text()
    assert text.startswith("written by an earlier step\n## leaksoak: 1 of 2 target(s) failed")  # appended
    assert "| target | verdict | top finding | growth/h | vs baseline |" in text
    assert "`workloads/reference/leaky_dict_cache.py:16`" in text
    assert "_responses[request_id] = body.upper()" in text  # the failing target's top finding, with its line

    annotations = _annotations(result.stdout)
    lines = leak_lines(REPO / "workloads/reference/leaky_dict_cache.py")
    assert annotations and len(annotations) <= 10
    assert annotations[0].startswith("::error file=workloads/reference/leaky_dict_cache.py,line=16,title=memory leak%3A +")
    assert all(int(a.split(",line=")[1].split(",")[0]) in lines | {14} for a in annotations)

    assert "soak ci [1/2]" in result.stderr and "soak ci [2/2]" in result.stderr and "PASS: clean" in result.stderr
    assert db_rows(db, "SELECT target, mode, status FROM runs ORDER BY id") == [
        (LEAKY, "ci", "completed"), (CLEAN, "ci", "completed")]


def test_two_clean_targets_from_pyproject_pass(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "app"\n\n[tool.leaksoak]\n'
        'targets = ["soak.workloads.reference.clean_churn:step", "soak.workloads.reference.clean_sawtooth:step"]\n'
        'duration = "8s"\ninterval = "0.25s"\nfail-on = "leak"\n'
    )
    # --interval on the command line wins over the file's.
    result = run_soak("ci", "--interval", "0.4s", "--junit", "junit.xml", "--summary", "summary.md", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    suite = ET.parse(tmp_path / "junit.xml").getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "0", "0")
    assert (tmp_path / "summary.md").read_text().startswith("## leaksoak: all 2 target(s) passed (fail on leak)")
    runs = db_rows(tmp_path / "soak.db", "SELECT target, mode, verdict, interval_s, planned_duration_s FROM runs ORDER BY id")
    assert runs == [
        ("soak.workloads.reference.clean_churn:step", "ci", "clean", 0.4, 8.0),
        ("soak.workloads.reference.clean_sawtooth:step", "ci", "clean", 0.4, 8.0),
    ]
    assert _annotations(result.stdout) == []  # not under GitHub Actions


def test_annotations_are_capped_at_ten_most_severe_first(tmp_path: Path) -> None:
    target = "tests/workloads/many_leaks.py:step"
    result = run_soak("ci", target, "--duration", "8s", "--interval", "0.25s", "--db", str(tmp_path / "soak.db"),
                      cwd=REPO, env=GITHUB)
    assert result.returncode == 1, result.stderr
    report = run_soak("report", "--db", str(tmp_path / "soak.db"), "--format", "json").json()
    leaks = [f for f in report["findings"] if f["verdict"] == "leak"]
    assert len(leaks) > 10
    annotations = _annotations(result.stdout)
    assert len(annotations) == 10
    expected = [f"::error file=tests/workloads/many_leaks.py,line={f['where']['line']},title=memory leak%3A +" for f in leaks[:10]]
    assert [a[: len(e)] for a, e in zip(annotations, expected, strict=True)] == expected
    rates = [f["growth_bytes_per_hour"] for f in leaks]
    assert rates == sorted(rates, reverse=True)
    assert all("\n" not in a and a.count("::") == 2 for a in annotations)


    # The Markdown summary of many such targets stops short of GitHub's 1 MiB, with a note.
    stored = api.load_report(str(tmp_path / "soak.db"))
    many = CiResult([TargetResult(f"t{n}.py:step", "fail", stored.run.id, "completed", None, "leak", stored)
                     for n in range(3000)], "suspect")
    summary = render_summary(many)
    assert MAX_BYTES - 1024 < len(summary.encode()) <= MAX_BYTES < 1024 * 1024
    assert summary.rstrip().endswith("`soak report` have everything._") and "Summary truncated" in summary
    # the top finding: the fastest leak as estimated (under the sampled tracer lines 20 and 21,
    # 1,100 and 1,200 bytes a call, are within its precision of each other)
    assert f"tests/workloads/many_leaks.py:{leaks[0]['where']['line']}" in summary


def test_annotation_escaping_follows_github_rules() -> None:
    assert escape_data("50% of\r\nlines: a, b") == "50%25 of%0D%0Alines: a, b"
    assert escape_property("50% of\r\nlines: a, b") == "50%25 of%0D%0Alines%3A a%2C b"


@pytest.mark.parametrize(
    ("args", "pyproject", "message"),
    [
        ((), None, "no targets: give TARGET arguments or set targets in [tool.leaksoak]"),
        ((LEAKY,), None, "give --duration (the budget of each target)"),
        ((LEAKY, "--duration", "5s", "--fail-on", "never"), None, "--fail-on must be one of leak, suspect"),
        ((LEAKY, "--duration", "5s", "--baseline", "missing.db"), None, "no baseline database at 'missing.db'"),
        ((LEAKY, "no/such/file.py:step", "--duration", "5s"), None, "no such file 'no/such/file.py'"),
        ((LEAKY, "--duration", "5s", "--interval", "10s"), None, "--interval is longer than --duration"),
        ((), '[tool.leaksoak]\ntargets = []\nduration = "5s"\n', "no targets"),
        ((), '[tool.leaksoak]\ntarget = ["a.py:f"]\n', "unknown key 'target' in [tool.leaksoak]"),
        ((), '[tool.leaksoak\n', "is not valid TOML"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path: Path, args: tuple[str, ...], pyproject: str | None,
                                                          message: str) -> None:
    (tmp_path / "workloads/reference").mkdir(parents=True)
    (tmp_path / "workloads/reference/leaky_dict_cache.py").write_text((REPO / LEAKY.split(":")[0]).read_text())
    if pyproject is not None:
        (tmp_path / "pyproject.toml").write_text(pyproject)
    result = run_soak("ci", *args, "--junit", "junit.xml", "--summary", "summary.md", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("soak: error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "soak.db").exists() and not (tmp_path / "junit.xml").exists() and not (tmp_path / "summary.md").exists()


def test_a_target_that_cannot_be_loaded_is_an_error_case_after_the_others_ran(tmp_path: Path) -> None:
    good = "soak.workloads.reference.clean_churn:step"
    bad = f"{TEST_WORKLOADS / 'not_callable.py'}:step"
    result = run_soak("ci", good, bad, "--duration", "2s", "--interval", "0.25s", "--junit", "junit.xml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith(f"soak: error: target {bad!r}: ")
    cases = {c.get("name"): c for c in ET.parse(tmp_path / "junit.xml").getroot().iter("testcase")}
    assert cases[good].find("error") is None and cases[bad].find("error") is not None
    assert db_rows(tmp_path / "soak.db", "SELECT target FROM runs") == [(good,)]
