"""Suppression rules on real soaks: the run fails on the leaks no rule accepts, every report
format shows the accepted ones apart, the decision is stored with the run, and the rules that
need a look (expired, unused, too broad, malformed) say so.

Every soak is a real worker process writing a real SQLite file, for a few seconds.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST_LEAKS, TEST_WORKLOADS, Result, db_rows, metric_families, run_soak, soak_command, verdicts

from soak.judging.suppressions import TODO_REASON

TWO_LEAKS = TEST_WORKLOADS / "two_leaks.py"
TARGET = f"{TWO_LEAKS}:step"
TIMED_LEAK = f"{TEST_WORKLOADS / 'timed_leak.py'}:step"
SOAK = ("--duration", "8s", "--interval", "0.2s", "--quiet")

CACHE_RULE = """
[[suppress]]
id = "session-cache"
reason = "responses are never evicted; TICKET-123"
owner = "api-team"
expires = "2099-03-01"
frames = ["*two_leaks.py:_cache_response", "..."]
"""
EXPIRED_RULE = """
[[suppress]]
id = "old-logger"
reason = "was to be fixed long ago"
expires = "2020-01-31"
call_site = "*two_leaks.py:_session_logger"
"""
UNUSED_RULE = """
[[suppress]]
id = "fixed-parser"
reason = "the parser leak, fixed since"
frames = ["...", "*parser.py:parse", "..."]
"""
LOGGER_RULES = """
[[suppress]]
id = "logger-per-session"
reason = "logging keeps every logger; TICKET-456"
call_site = "*two_leaks.py:_session_logger"
"""


TYPE_LEAK = "soak.workloads.holders.cache_leak:step"
"""Caches a ``Response`` by request id, never evicted: a type finding with ``--type-findings``."""
TYPE_LEAK_RULES = """
[[suppress]]
id = "cached-responses"
reason = "responses are kept by design; TICKET-789"
type = "soak.workloads.holders.cache_leak.Response"

[[suppress]]
id = "response-cache-line"
reason = "the same cache, by the lines that fill it; TICKET-789"
frames = ["...", "*holders/cache_leak.py:*", "..."]
"""
"""A rule for the type's objects, and one for the lines that allocate them."""


def is_cache(finding: dict[str, Any]) -> bool:
    return finding["where"] is not None and finding["where"]["function"] == "_cache_response"


def is_logger(finding: dict[str, Any]) -> bool:
    return (finding["call_site"] or finding["where"] or {}).get("function") == "_session_logger"


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture(scope="module")
def soaked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two real soaks of the two-leak workload in one database: run 1 without rules, run 2 with
    ./leaksoak.toml holding a rule for the cache leak, an expired one for the logger leak, and
    one that matches nothing."""
    work = tmp_path_factory.mktemp("wired")
    db = work / "soak.db"
    plain = run_soak("run", TARGET, "--db", str(db), *SOAK, "--format", "json", "--fail-on", "never", cwd=work)
    assert plain.returncode == 0, plain.stderr
    write(work / "leaksoak.toml", CACHE_RULE + EXPIRED_RULE + UNUSED_RULE)
    ruled = run_soak("run", TARGET, "--db", str(db), *SOAK, "--format", "json", cwd=work)
    (work / "leaksoak.toml").unlink()
    return {"work": work, "db": db, "plain": plain, "ruled": ruled}


def test_without_a_rule_both_leaks_fail(soaked: dict[str, Any]) -> None:
    report = soaked["plain"].json()
    assert report["verdict"] == "leak" and report["accepted"] == []
    assert report["suppressions"] == {"expired": [], "unused": [], "too_broad": [], "warnings": []}
    assert any(is_cache(f) for f in report["findings"]) and any(is_logger(f) for f in report["findings"])


def test_one_rule_fails_the_run_on_the_other_leak_only(soaked: dict[str, Any]) -> None:
    result: Result = soaked["ruled"]
    assert result.returncode == 1, result.stderr
    report = result.json()
    assert report["verdict"] == "leak"
    assert report["findings"] and all(is_logger(f) for f in report["findings"]), report["findings"]
    [accepted] = report["accepted"]
    assert is_cache(accepted) and accepted["rule"] == "session-cache"
    assert accepted["reason"] == "responses are never evicted; TICKET-123"
    assert accepted["growth_bytes_per_hour"] > 0 and accepted["max_growth_bytes_per_hour"] is None
    assert accepted["id"] in {f["id"] for f in soaked["plain"].json()["findings"]}  # the same leak as in run 1


def test_expired_and_unused_rules_are_warned_on_stderr_and_listed(soaked: dict[str, Any]) -> None:
    result: Result = soaked["ruled"]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("soak: warning: ")]
    lines = (CACHE_RULE + EXPIRED_RULE + UNUSED_RULE).splitlines()
    expired_at, unused_at = [n for n, line in enumerate(lines, 1) if line == "[[suppress]]"][1:]
    assert warnings == [
        f"soak: warning: suppression 'old-logger' (leaksoak.toml:{expired_at}) expired on 2020-01-31: it no longer "
        "applies; remove it or renew it",
        f"soak: warning: suppression 'fixed-parser' (leaksoak.toml:{unused_at}) matched no finding of this run",
    ], result.stderr
    assert "Traceback" not in result.stderr
    suppressions = result.json()["suppressions"]
    assert (suppressions["expired"], suppressions["unused"], suppressions["too_broad"]) == (["old-logger"], ["fixed-parser"], [])


def test_every_report_format_shows_the_accepted_finding_with_its_rule_and_growth(soaked: dict[str, Any]) -> None:
    db = str(soaked["db"])
    accepted = soaked["ruled"].json()["accepted"][0]
    outputs = {fmt: run_soak("report", "--db", db, "--run", "2", "--format", fmt) for fmt in ("text", "markdown", "html", "json")}
    assert all(r.returncode == 0 and r.stderr == "" for r in outputs.values())
    assert json.loads(outputs["json"].stdout)["accepted"] == [accepted]  # the stored decision, read back the same
    text = outputs["text"].stdout
    assert "verdict: LEAK - " in text and "; 1 accepted by suppression rules" in text
    section = text.split("accepted by suppression rules (known growth, not counted in the verdict):\n", 1)[1]
    assert re.match(r"  A1\. LEAK \+[\d.]+ [KMG]iB/hour .*, accepted by 'session-cache' \(leaksoak\.toml:2\)\n", section), section
    assert "two_leaks.py:22 in _cache_response" in section and "reason: responses are never evicted; TICKET-123" in section
    assert "warning: suppression 'old-logger'" in text
    numbered = re.findall(r"^\d+\. .*$", text.split("accepted by suppression rules (", 1)[0], re.M)
    assert len(numbered) == len(soaked["ruled"].json()["findings"])  # the accepted one is not among the counted
    markdown = outputs["markdown"].stdout
    assert "### Accepted by suppression rules" in markdown
    [row] = [line for line in markdown.splitlines() if line.startswith("| A1 |")]
    assert "\\_cache\\_response" in row or "_cache_response" in row
    assert "accepted by 'session-cache' (leaksoak.toml:2)" in row and "/hour" in row
    html = outputs["html"].stdout
    assert "<h2>Accepted by suppression rules</h2>" in html
    assert re.search(r'<tr id="accepted-1">.*_cache_response.*\+[\d.]+ [KMG]iB/hour.*<code>session-cache</code>', html)


def test_the_decision_is_stored_with_the_run_for_sql_and_datasette(soaked: dict[str, Any]) -> None:
    db = soaked["db"]
    rules = db_rows(db, "SELECT rule_id, state, too_broad, accepted FROM suppression_rules WHERE run_id = 2 ORDER BY position")
    assert rules == [("session-cache", "applied", 0, 1), ("old-logger", "expired", 0, 0), ("fixed-parser", "unused", 0, 0)]
    accepted = soaked["ruled"].json()["accepted"][0]
    assert db_rows(db, "SELECT finding_id, rule_id FROM accepted_findings WHERE run_id = 2") == [(accepted["id"], "session-cache")]
    query = "SELECT accepted_by FROM finding_lines WHERE run_id = 2 AND finding_id = ?"
    assert db_rows(db, query, (accepted["id"],)) == [("session-cache",)]
    assert db_rows(db, "SELECT verdict FROM runs ORDER BY id") == [("leak",), ("leak",)]
    by_library = dict(db_rows(db, "SELECT library, findings FROM library_growth WHERE run_id = 2"))
    assert by_library.get("application", 0) == sum(f["library"] == "application" for f in soaked["ruled"].json()["findings"])
    assert db_rows(db, "SELECT count(*) FROM suppression_rules WHERE run_id = 1") == [(0,)]


def test_report_judges_a_stored_run_again_against_other_rules(soaked: dict[str, Any]) -> None:
    work, db = soaked["work"], str(soaked["db"])
    # no rules: both leaks count again
    none = run_soak("report", "--db", db, "--run", "2", "--format", "json", "--suppressions", str(write(work / "none.toml", "")))
    assert none.returncode == 0 and none.stderr == ""
    report = none.json()
    assert report["accepted"] == [] and any(is_cache(f) for f in report["findings"]) and report["verdict"] == "leak"
    # both leaks accepted: clean
    both = write(work / "both.toml", CACHE_RULE + LOGGER_RULES)
    judged = run_soak("report", "--db", db, "--run", "2", "--format", "json", "--suppressions", str(both))
    report = judged.json()
    assert report["verdict"] == "clean" and report["findings"] == [], report["findings"]
    assert {a["rule"] for a in report["accepted"]} == {"session-cache", "logger-per-session"}
    text = run_soak("report", "--db", db, "--run", "2", "--suppressions", str(both)).stdout
    assert "verdict: CLEAN - nothing else grows significantly; " in text
    # nothing was written: the stored decision is the run's own
    stored = run_soak("report", "--db", db, "--run", "2", "--format", "json").json()
    assert [a["rule"] for a in stored["accepted"]] == ["session-cache"]


def test_a_too_broad_rule_is_warned(soaked: dict[str, Any]) -> None:
    work, db = soaked["work"], str(soaked["db"])
    broad = write(work / "broad.toml", """
        [[suppress]]
        id = "all-stdlib"
        reason = "whatever the stdlib keeps"
        library = "stdlib"
    """)
    result = run_soak("report", "--db", db, "--run", "1", "--format", "json", "--suppressions", str(broad))
    assert result.returncode == 0
    assert result.stderr == (f"soak: warning: suppression 'all-stdlib' ({broad}:2) is too broad: it names no frames or call_site\n")
    report = result.json()
    assert report["suppressions"]["too_broad"] == ["all-stdlib"]
    assert report["accepted"] and all(a["library"] == "stdlib" for a in report["accepted"])


def test_compare_and_merge_show_the_same_decision(soaked: dict[str, Any]) -> None:
    work, db = soaked["work"], str(soaked["db"])
    compared = run_soak("compare", db, db, "--run-base", "1", "--run-new", "2", "--format", "json")
    assert compared.returncode in (0, 1), compared.stderr
    [target] = compared.json()["targets"]
    accepted = [c for c in target["findings"] if c["change"] == "accepted"]
    assert [(c["rule"], c["regression"]) for c in accepted] == [("session-cache", False)]
    assert not any(c["change"] == "gone" and c["id"] == accepted[0]["id"] for c in target["findings"])
    merged = work / "merged.db"
    result = run_soak("merge", str(merged), db)
    assert result.returncode == 0, result.stderr
    report = run_soak("report", "--db", str(merged), "--run", "2", "--format", "json").json()
    assert [(a["id"], a["rule"]) for a in report["accepted"]] == [(accepted[0]["id"], "session-cache")]
    assert report["suppressions"]["expired"] == ["old-logger"]
    fleet = run_soak("fleet", "--db", str(merged), "--format", "json")
    assert fleet.returncode == 0, fleet.stderr
    [cache] = [f for f in fleet.json()["findings"] if f["id"] == accepted[0]["id"]]
    assert cache["runs"] == 1  # counted in run 1, which had no rules; accepted in run 2


def test_soak_suppress_output_pasted_with_a_reason_accepts_exactly_its_findings_on_a_rerun(
        soaked: dict[str, Any], tmp_path: Path) -> None:
    made_from = soaked["plain"].json()["findings"]
    generated = run_soak("suppress", "1", "--db", str(soaked["db"]))
    assert generated.returncode == 0, generated.stderr
    assert generated.stdout.count(TODO_REASON) == len(made_from)
    pasted = generated.stdout.replace(TODO_REASON, "known: reviewed in TICKET-789")
    (tmp_path / "leaksoak.toml").write_text(pasted)
    rerun = run_soak("run", TARGET, "--db", str(tmp_path / "soak.db"), *SOAK, "--format", "json", cwd=tmp_path)
    report = rerun.json()
    ids = {f["id"] for f in made_from}
    rerun_ids = {f["id"] for f in report["findings"]} | {a["id"] for a in report["accepted"]}
    assert {a["id"] for a in report["accepted"]} == ids & rerun_ids
    assert not {f["id"] for f in report["findings"]} & ids  # nothing it was made from still counts
    assert any(is_cache(a) for a in report["accepted"]) and any(is_logger(a) for a in report["accepted"])
    assert len({a["rule"] for a in report["accepted"]}) == len(report["accepted"])  # one rule for each
    assert rerun.returncode == (1 if report["findings"] else 0), rerun.stderr


MAX_GROWTH_RULE = """
[[suppress]]
id = "paced-fill"
reason = "the table fills at a known pace"
frames = ["*timed_leak.py:step", "..."]
max_growth = "400 MB/h"
"""


@pytest.mark.parametrize("kib_per_s, accepted", [(64, True), (192, False)])
def test_max_growth_passes_at_the_known_rate_and_fails_at_three_times_it(tmp_path: Path, kib_per_s: int, accepted: bool) -> None:
    rules = write(tmp_path / "rules.toml", MAX_GROWTH_RULE)
    result = run_soak("run", TIMED_LEAK, "--db", str(tmp_path / "soak.db"), *SOAK, "--format", "json",
                      "--suppressions", str(rules), env={"LEAKSOAK_TEST_LEAK_KIB_PER_S": str(kib_per_s)})
    report = result.json()
    if accepted:  # 64 KiB/s is 236 MB/h
        assert result.returncode == 0, (result.stderr, report["findings"])
        assert report["verdict"] == "clean" and [a["rule"] for a in report["accepted"]] == ["paced-fill"]
        assert report["accepted"][0]["max_growth_bytes_per_hour"] == 400e6
    else:  # three times as fast
        assert result.returncode == 1, result.stderr
        assert report["verdict"] == "leak" and report["accepted"] == []
        assert re.search(r"soak: warning: suppression 'paced-fill' matches finding \w+ \(.*timed_leak\.py:\d+ in step\) "
                         r"but it grows [\d.]+ MB/h, above its max_growth 400 MB/h: not accepted", result.stderr), result.stderr


MALFORMED = """
[[suppress]]
id = "session-cache"
reason = "known"
frame = ["*two_leaks.py:_cache_response"]
"""
MALFORMED_ERROR = ("{path}:5: unknown key 'frame' in suppression 'session-cache'; known: id, reason, owner, expires, frames, "
                   "call_site, library, type, resource, target, max_growth")


@pytest.mark.parametrize("command", ["run", "ci", "watch", "report", "default file"])
def test_a_malformed_rules_file_is_one_line_exit_2_before_anything_runs(tmp_path: Path, command: str) -> None:
    bad = write(tmp_path / ("leaksoak.toml" if command == "default file" else "rules.toml"), MALFORMED)
    db = tmp_path / "soak.db"
    rules = [] if command == "default file" else ["--suppressions", str(bad)]
    if command == "report":
        made = run_soak("run", TIMED_LEAK, "--db", str(db), "--duration", "1s", "--interval", "0.25s", "--quiet")
        assert made.returncode in (0, 1), made.stderr
        before = db.stat().st_mtime_ns
    args = {
        "run": ["run", TARGET, "--db", str(db), *SOAK],
        "default file": ["run", TARGET, "--db", str(db), *SOAK],
        "ci": ["ci", TARGET, "--db", str(db), "--duration", "8s", "--junit", str(tmp_path / "junit.xml")],
        "watch": ["watch", "--pid", str(os.getpid()), "--db", str(db), "--duration", "2s", "--interval", "0.5s", "--quiet"],
        "report": ["report", "--db", str(db)],
    }[command]
    result = run_soak(*args, *rules, cwd=tmp_path)
    path = "leaksoak.toml" if command == "default file" else str(bad)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"soak: error: {MALFORMED_ERROR.format(path=path)}\n")
    if command == "report":
        assert db.stat().st_mtime_ns == before
    else:
        assert not db.exists() and not (tmp_path / "junit.xml").exists()


def test_soak_ci_reports_accepted_findings_fails_on_unused_rules_and_accepts_its_baseline(tmp_path: Path) -> None:
    rules = write(tmp_path / "rules.toml", CACHE_RULE + UNUSED_RULE)
    db, junit, summary = tmp_path / "soak.db", tmp_path / "junit.xml", tmp_path / "summary.md"
    result = run_soak("ci", TARGET, "--db", str(db), "--duration", "8s", "--interval", "0.2s", "--suppressions", str(rules),
                      "--junit", str(junit), "--summary", str(summary), "--fail-on-unused-suppressions",
                      env={"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(TEST_WORKLOADS.parent.parent)})
    assert result.returncode == 1, result.stderr
    assert "soak: error: suppression rule(s) matched no finding in any target's run: fixed-parser" in result.stderr
    suite = ET.parse(junit).getroot()
    cases = {case.get("classname"): case for case in suite}
    accepted = [case for case in suite if case.get("classname") == "leaksoak.accepted"]
    assert len(accepted) == 1 and accepted[0].find("failure") is None
    assert "accepted by 'session-cache'" in (accepted[0].findtext("system-out") or "")
    assert "_cache_response" not in (cases["leaksoak"].find("failure").get("message") or "")  # type: ignore[union-attr]
    [unused] = [case for case in suite if case.get("name") == "unused suppressions"]
    assert "fixed-parser" in (unused.find("failure").get("message") or "")  # type: ignore[union-attr]
    text = summary.read_text()
    assert "accepted by suppression rules (not counted)" in text and "accepted by 'session-cache'" in text
    assert "**Unused suppressions**" in text
    notices = [line for line in result.stdout.splitlines() if line.startswith("::notice ")]
    assert len(notices) == 1 and "accepted by 'session-cache'" in notices[0] and "two_leaks.py" in notices[0]

    # the next night: whatever last night's run had is accepted, and listed
    first = json.loads(run_soak("report", "--db", str(db), "--format", "json").stdout)
    baseline_ids = {f["id"] for f in first["findings"]} | {a["id"] for a in first["accepted"]}
    again = run_soak("ci", TARGET, "--db", str(db), "--duration", "8s", "--interval", "0.2s", "--suppressions", str(rules),
                     "--baseline", str(db), "--accept-baseline")
    report = json.loads(run_soak("report", "--db", str(db), "--format", "json").stdout)
    assert report["run"]["id"] == 2
    by_baseline = [a for a in report["accepted"] if a["rule"] == "accept-baseline"]
    assert by_baseline and {a["id"] for a in by_baseline} <= baseline_ids
    assert not {f["id"] for f in report["findings"]} & baseline_ids  # only new findings count
    assert re.search(rf"--accept-baseline accepted {len(by_baseline)} finding\(s\) of baseline run 1 of {re.escape(str(db))}:",
                     again.stderr), again.stderr
    assert again.returncode == (1 if report["findings"] else 0), again.stderr


def test_accept_baseline_needs_a_baseline(tmp_path: Path) -> None:
    result = run_soak("ci", TARGET, "--db", str(tmp_path / "soak.db"), "--duration", "8s", "--accept-baseline")
    assert (result.returncode, result.stderr) == (
        2, "soak: error: --accept-baseline accepts the findings of the --baseline run: give --baseline DB\n")
    assert not (tmp_path / "soak.db").exists()


def test_metrics_leave_accepted_findings_out(tmp_path: Path) -> None:
    rules = write(tmp_path / "rules.toml", CACHE_RULE)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = tmp_path / "soak.db"
    soak = subprocess.Popen(
        [*soak_command(), "run", TARGET, "--db", str(db), "--duration", "40s", "--interval", "0.2s", "--metrics-port", str(port),
         "--suppressions", str(rules), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **FAST_LEAKS})
    try:
        exported: set[str] = set()
        accepted: set[str] = set()  # accepted at any refresh while /metrics was read
        verdict: dict[str, float] = {}
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            families = metric_families(port)
            if families is None:
                continue
            verdict = verdicts(families)
            info = [s.labels for s in families.get("leaksoak_finding_info", [])]
            exported |= {labels["finding_id"] for labels in info}
            assert not any(labels["where"].startswith("two_leaks.py:22") for labels in info), info
            accepted |= {row[0] for row in db_rows(db, "SELECT finding_id FROM accepted_findings")} if db.exists() else set()
            if verdict.get("leak") == 1.0 and accepted:  # the logger leak counts; the cache leak was accepted
                break
            time.sleep(0.5)
        assert verdict.get("leak") == 1.0, verdict
    finally:
        if soak.poll() is None:
            soak.send_signal(signal.SIGINT)
        soak.communicate(timeout=60)
    # and at the end; a run stopped seconds in may judge its last refresh without the cache leak
    # (CI once read no accepted finding at the end, after the loop had seen one)
    accepted |= {row[0] for row in db_rows(db, "SELECT finding_id FROM accepted_findings")}
    assert accepted and exported and not accepted & exported


def test_a_type_rule_accepts_the_type_finding_of_a_real_soak(tmp_path: Path) -> None:
    """The ``type`` key matches a type finding by its type's ``module.qualname``: with it (and a
    rule for the leak's allocation lines) the run is clean and exits 0; judged again without it,
    the type finding is a leak."""
    db = tmp_path / "soak.db"
    write(tmp_path / "leaksoak.toml", TYPE_LEAK_RULES)
    # a dozen censuses on a busy machine (as tests/test_holders.py soaks the same workload)
    result = run_soak("run", TYPE_LEAK, "--type-findings", "--db", str(db), "--duration", "20s", "--interval", "0.25s",
                      "--quiet", "--format", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    report = result.json()
    assert report["verdict"] == "clean" and report["findings"] == [] and report["analysis"]["verdict"] == "leak"
    typed = [a for a in report["accepted"] if a["kind"] == "type"]
    assert [(a["rule"], a["evidence"]["series"]) for a in typed] == [("cached-responses", "soak.workloads.holders.cache_leak.Response")]
    assert "cached-responses" not in report["suppressions"]["too_broad"] + report["suppressions"]["unused"]
    text = run_soak("report", "--db", str(db)).stdout
    assert "verdict: CLEAN - nothing else grows significantly; " in text
    assert "accepted by 'cached-responses' (leaksoak.toml:2)" in text.split("accepted by suppression rules (", 1)[1]

    without = write(tmp_path / "lines-only.toml", TYPE_LEAK_RULES.split("\n\n", 1)[1])  # the second rule alone
    judged = run_soak("report", "--db", str(db), "--format", "json", "--suppressions", str(without)).json()
    assert judged["verdict"] == "leak" and {a["rule"] for a in judged["accepted"]} <= {"response-cache-line"}
    assert [f["evidence"]["series"] for f in judged["findings"] if f["kind"] == "type"] == ["soak.workloads.holders.cache_leak.Response"]
