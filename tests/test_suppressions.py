"""Suppression rules: matching findings, generating rules, and ``soak suppress`` (reading and checking
them: test_suppression_reading.py)."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import MB, RULES_TODAY, TEST_WORKLOADS, leak_lines, run_soak

from soak.api import load_report
from soak.judging.suppressions import (
    TODO_REASON,
    Rule,
    SuppressionsError,
    add_months,
    apply_rules,
    frames_match,
    generate_rules,
    parse_rate,
    parse_rules,
    path_matches,
)
from soak.model.finding import Finding, Frame


def frame(file: str, function: str, line: int = 1) -> Frame:
    return Frame(file, line, function)


def finding(ident: str, traceback: list[Frame], *, kind: str = "site", library: str | None = "application",
            call_site: Frame | None = None, growth: float | None = 10 * MB, resource: str | None = None,
            type: str | None = None) -> Finding:
    """A finding as analysis makes it (a ``type`` finding names its type as its series)."""
    return Finding(ident, kind, "leak", traceback, library, call_site, growth, None, None, None, None, None, resource,
                   {"series": type} if type else {})


def report_findings(db: Path, run: str) -> list[Finding]:
    """The findings of a stored run, as its report (and the JSON report's ``findings``) gives them."""
    return load_report(str(db), run).findings


APP = finding("app1", [frame("/srv/app/cache.py", "Cache.put", 40), frame("/srv/app/handlers.py", "handle_one", 12)])
LIB = finding("lib1", [frame("/venv/lib/python3.11/site-packages/requests/sessions.py", "Session.send", 700),
                       frame("/srv/app/client.py", "fetch", 8), frame("/srv/app/handlers.py", "handle_one", 14)],
              kind="library", library="requests", call_site=frame("/srv/app/client.py", "fetch", 8))
PROC = finding("fds1", [], kind="process", library=None, growth=None, resource="fds")
FINDINGS = [APP, LIB, PROC]


# --- matching --------------------------------------------------------------------------------


def rule(**keys: Any) -> Rule:
    frames = keys.pop("frames", None)
    return Rule(id=keys.pop("id", "r"), reason="known", source="leaksoak.toml", line=1,
                frames=tuple(frames) if frames is not None else None, **keys)


@pytest.mark.parametrize(("patterns", "expected"), [
    (["app/cache.py:Cache.put", "app/handlers.py:handle_one"], True),
    (["app/cache.py:Cache.put"], False),                       # anchored: the caller is not matched
    (["app/cache.py:Cache.put", "..."], True),
    (["...", "*handlers.py:handle_one"], True),
    (["...", "*handlers.py:handle_one", "..."], True),         # "..." may stand for no frames
    (["...", "*cache.py", "...", "*handlers.py", "..."], True),
    (["...", "*handlers.py", "*cache.py", "..."], False),      # order is allocation frame outward
    (["*:Cache.*", "..."], True),
    (["*:put", "..."], False),                                 # the function glob is on the whole name
    (["...", "*client.py:fetch", "..."], False),
    (["..."], True),
])
def test_frames(patterns: list[str], expected: bool) -> None:
    assert frames_match(patterns, APP.traceback) is expected


@pytest.mark.parametrize(("pattern", "path", "expected"), [
    ("*client.py", "/srv/app/http/client.py", True),           # * crosses /
    ("/srv/*/client.py", "/srv/app/http/client.py", True),
    ("app/handlers.py", "/srv/app/handlers.py", True),         # relative: at any directory
    ("app/handlers.py", "/srv/myapp/handlers.py", False),      # ...but only at a directory
    ("handlers.py", "/srv/app/handlers.py", True),
    ("/app/handlers.py", "/srv/app/handlers.py", False),       # absolute: the whole path
    ("app/handler?.py", "/srv/app/handlers.py", True),
    ("app/[!h]*.py", "/srv/app/handlers.py", False),
])
def test_path_globs(pattern: str, path: str, expected: bool) -> None:
    assert path_matches(pattern, path) is expected


def accepted_ids(rules_: list[Rule], findings: list[Finding] = FINDINGS,
                 target: str = "app/handlers.py:handle_one") -> list[tuple[str, str]]:
    decision = apply_rules(findings, rules_, target=target, today=RULES_TODAY)
    return [(a.finding.finding_id, a.rule) for a in decision.accepted]


def test_call_site_is_the_first_application_frame() -> None:
    assert accepted_ids([rule(call_site="*client.py:fetch")]) == [("lib1", "r")]
    # an application finding's first application frame is its allocation frame
    assert accepted_ids([rule(call_site="app/cache.py:Cache.put")]) == [("app1", "r")]
    assert accepted_ids([rule(call_site="*handlers.py:handle_one")]) == []


def test_library_type_resource_and_target() -> None:
    assert accepted_ids([rule(library="requests", call_site="*:fetch")]) == [("lib1", "r")]
    assert accepted_ids([rule(library="Requests", call_site="*:fetch")]) == [("lib1", "r")]
    assert accepted_ids([rule(library="application", call_site="*:fetch")]) == []
    assert accepted_ids([rule(library="application", frames=["*cache.py:*", "..."])]) == [("app1", "r")]
    assert accepted_ids([rule(resource="fds")]) == [("fds1", "r")]
    assert accepted_ids([rule(resource="threads")]) == []
    typed = finding("t1", [frame("/srv/app/models.py", "load")], kind="type", type="app.models.Row")
    assert accepted_ids([rule(type="app.models.*", frames=["..."])], [typed]) == [("t1", "r")]
    assert accepted_ids([rule(type="dict", frames=["..."])], [typed]) == []
    assert accepted_ids([rule(type="dict", frames=["..."])]) == []  # findings without a type name
    assert accepted_ids([rule(target="app/*.py:handle_*", frames=["*cache.py:*", "..."])]) == [("app1", "r")]
    assert accepted_ids([rule(target="app/*.py:handle_*", frames=["*cache.py:*", "..."])], target="jobs.py:run") == []
    # every key given must hold
    assert accepted_ids([rule(library="requests", call_site="*cache.py:*")]) == []


def test_max_growth_tolerates_the_known_rate_and_not_three_times_it() -> None:
    tolerant = rule(id="cache", frames=["*cache.py:Cache.put", "..."], max_growth="15 MB/h",
                    max_growth_bytes_per_hour=parse_rate("15 MB/h"))
    known = finding("app1", APP.traceback, growth=10 * MB)
    faster = finding("app1", APP.traceback, growth=30 * MB)
    decision = apply_rules([known], [tolerant], target=None, today=RULES_TODAY)
    assert [(a.rule, a.growth_bytes_per_hour, a.max_growth_bytes_per_hour) for a in decision.accepted] == [("cache", 10 * MB, 15 * MB)]
    assert [(a.finding, a.rule, a.max_growth_bytes_per_hour) for a in decision.accepted] == [(known, "cache", 15 * MB)]
    assert decision.suppressions.as_dict() == {"expired": [], "unused": [], "too_broad": []}
    assert decision.warnings == []

    decision = apply_rules([faster], [tolerant], target=None, today=RULES_TODAY)
    assert decision.accepted == [] and decision.remaining == [faster]
    assert [(o.rule, o.growth_bytes_per_hour) for o in decision.over_limit] == [("cache", 30 * MB)]
    assert decision.suppressions.unused == []  # it matched: it is doing its job
    assert decision.warnings == ["suppression 'cache' matches finding app1 (/srv/app/cache.py:40 in Cache.put) "
                                 "but it grows 30 MB/h, above its max_growth 15 MB/h: not accepted"]
    # no byte rate: a max_growth cannot vouch for it
    assert apply_rules([finding("app1", APP.traceback, growth=None)], [tolerant], target=None, today=RULES_TODAY).accepted == []


def test_the_first_rule_that_accepts_wins() -> None:
    tight = rule(id="tight", frames=["*cache.py:*", "..."], max_growth_bytes_per_hour=1 * MB)
    loose = rule(id="loose", frames=["*cache.py:*", "..."])
    assert accepted_ids([loose, tight]) == [("app1", "loose")]
    assert accepted_ids([tight, loose]) == [("app1", "loose")]  # over the first's limit, the next may accept


def test_expired_rules_stop_applying() -> None:
    past = rule(id="past", frames=["*cache.py:*", "..."], expires=datetime.date(2026, 6, 14))
    last_day = rule(id="last-day", call_site="*client.py:fetch", expires=RULES_TODAY)
    garbled = rule(id="garbled", resource="fds", expires_text="2026-02-30")
    decision = apply_rules(FINDINGS, [past, last_day, garbled], target=None, today=RULES_TODAY)
    assert [(a.finding.finding_id, a.rule) for a in decision.accepted] == [("lib1", "last-day")]
    assert [f.finding_id for f in decision.remaining] == ["app1", "fds1"]
    assert decision.suppressions.as_dict() == {"expired": ["past", "garbled"], "unused": [], "too_broad": []}
    assert decision.warnings == [
        "suppression 'past' (leaksoak.toml:1) expired on 2026-06-14: it no longer applies; remove it or renew it",
        "suppression 'garbled' (leaksoak.toml:1) expires '2026-02-30', which is not a date YYYY-MM-DD: "
        "treated as expired, it no longer applies",
    ]


def test_unused_rules() -> None:
    decision = apply_rules(FINDINGS, [rule(id="gone", frames=["*old.py:*", "..."])], target=None, today=RULES_TODAY)
    assert decision.suppressions.unused == ["gone"] and len(decision.remaining) == 3
    assert decision.warnings == ["suppression 'gone' (leaksoak.toml:1) matched no finding of this run"]


def test_too_broad_rules_warn_and_still_apply() -> None:
    no_code = rule(id="all-requests", library="requests")
    only_dots = rule(id="dots", frames=["...", "*:*", "..."], library="application")
    decision = apply_rules(FINDINGS, [no_code, only_dots], target=None, today=RULES_TODAY)
    assert [(a.finding.finding_id, a.rule) for a in decision.accepted] == [("app1", "dots"), ("lib1", "all-requests")]
    assert decision.suppressions.too_broad == ["all-requests", "dots"]
    assert "suppression 'all-requests' (leaksoak.toml:1) is too broad: it names no frames or call_site" in decision.warnings

    half = rule(id="half", frames=["...", "*handlers.py:handle_one"])  # both application-reached findings
    decision = apply_rules(FINDINGS, [half], target=None, today=RULES_TODAY)
    assert len(decision.accepted) == 2 and decision.suppressions.too_broad == ["half"]
    assert decision.warnings == ["suppression 'half' (leaksoak.toml:1) is too broad: it accepted 2 of the run's 3 findings"]
    # one finding of one (or of two) is not broad: the rule names its code
    assert apply_rules([APP], [half], target=None, today=RULES_TODAY).suppressions.too_broad == []
    assert apply_rules([APP, PROC], [half], target=None, today=RULES_TODAY).suppressions.too_broad == []


# --- generating ------------------------------------------------------------------------------


def paste(text: str, reason: str = "known") -> list[Rule]:
    """Generated rules as a user pastes them: unchanged but for the reason."""
    return parse_rules(text.replace(TODO_REASON, reason), "leaksoak.toml")


def test_generated_rules_accept_exactly_their_findings() -> None:
    text = generate_rules(FINDINGS, today=RULES_TODAY, target="app/handlers.py:handle_one", run_label="run 7")
    assert 'expires = "2026-09-15"' in text and "from run 7" in text
    with pytest.raises(SuppressionsError, match="still the TODO"):
        parse_rules(text, "leaksoak.toml")
    generated = paste(text)
    assert [r.id for r in generated] == ["cache-Cache.put", "requests-client-fetch", "fds"]
    assert generated[1].library == "requests" and generated[1].call_site == "app/client.py:fetch" and generated[1].frames is None
    assert generated[2].resource == "fds" and generated[2].target == "app/handlers.py:handle_one"
    assert "# no frames to match: this rule is too broad" in text
    for one in FINDINGS:
        decision = apply_rules(FINDINGS, paste(generate_rules([one], today=RULES_TODAY, target="app/handlers.py:handle_one")),
                               target="app/handlers.py:handle_one", today=RULES_TODAY)
        assert [a.finding for a in decision.accepted] == [one]


def test_generation_says_when_frames_cannot_tell_two_findings_apart() -> None:
    # two lines of one function: rules name functions, not lines
    first = finding("a", [frame("/srv/app/cache.py", "put", 10)])
    second = finding("b", [frame("/srv/app/cache.py", "put", 11)])
    text = generate_rules([first, second], today=RULES_TODAY)
    assert "# also matches finding(s) b: the frames cannot tell them apart" in text
    assert [r.id for r in paste(text)] == ["cache-put", "cache-put-2"]


def test_generation_escapes_glob_characters() -> None:
    odd = finding("odd", [frame("/srv/app[v2]/x*.py", "<lambda>")])
    [generated] = paste(generate_rules([odd], today=RULES_TODAY))
    assert generated.frames == ("app[[]v2]/x[*].py:<lambda>", "...")
    assert frames_match(generated.frames, odd.traceback)
    assert not frames_match(generated.frames, [frame("/srv/appXv2]/xy.py", "<lambda>")])


def test_a_type_finding_gets_a_rule_by_its_type() -> None:
    rows = finding("t1", [], kind="type", library=None, resource="types", type="app.models.Row")
    columns = finding("t2", [], kind="type", library=None, resource="types", type="app.models.Column")
    text = generate_rules([rows], today=RULES_TODAY, target="app/handlers.py:handle_one")
    assert "too broad" not in text
    [generated] = paste(text)
    assert (generated.id, generated.type, generated.frames, generated.resource) == ("app.models.Row", "app.models.Row", None, None)
    decision = apply_rules([rows, columns], [generated], target="app/handlers.py:handle_one", today=RULES_TODAY)
    assert [a.finding.finding_id for a in decision.accepted] == ["t1"] and decision.warnings == []


@pytest.mark.parametrize(("day", "expected"), [
    ((2026, 6, 15), (2026, 9, 15)), ((2026, 11, 30), (2027, 2, 28)), ((2027, 11, 30), (2028, 2, 29)),
    ((2026, 10, 1), (2027, 1, 1)),
])
def test_expires_three_months_out(day: tuple[int, int, int], expected: tuple[int, int, int]) -> None:
    assert add_months(datetime.date(*day), 3) == datetime.date(*expected)


# --- the round trip on real runs -------------------------------------------------------------

TWO_LEAKS = TEST_WORKLOADS / "two_leaks.py"
TARGET = f"{TWO_LEAKS}:step"


@pytest.fixture(scope="module")
def soaked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]], list[dict[str, Any]]]:
    """Two real short soaks of a workload with two leaks, in one database: runs 1 and 2."""
    db = tmp_path_factory.mktemp("suppress") / "soak.db"
    reports = []
    for _ in range(2):
        result = run_soak("run", TARGET, "--db", str(db), "--duration", "8s", "--interval", "0.2s", "--quiet",
                          "--format", "json", "--fail-on", "never")
        assert result.returncode == 0, result.stderr
        reports.append(result.json()["findings"])
    return db, reports[0], reports[1]


def test_soak_suppress_round_trip_on_a_stored_run(soaked: tuple[Path, list[dict[str, Any]], list[dict[str, Any]]]) -> None:
    db, findings, rerun = soaked
    lines = leak_lines(TWO_LEAKS)
    cache = [f for f in findings if f["where"]["function"] == "_cache_response"]
    logger = [f for f in findings if (f["call_site"] or f["where"])["function"] == "_session_logger"]
    assert len(cache) == 1 and cache[0]["where"]["line"] in lines and logger, findings

    result = run_soak("suppress", "1", "--db", str(db))
    assert result.returncode == 0, result.stderr
    generated = paste(result.stdout)
    assert len(generated) == len(findings)
    decision = apply_rules(report_findings(db, "1"), generated, target=TARGET, today=datetime.date.today())
    assert decision.remaining == [] and decision.warnings == []
    assert [a.finding.finding_id for a in decision.accepted] == [f["id"] for f in findings]
    assert len({a.rule for a in decision.accepted}) == len(findings)  # one rule each

    # one finding only: the other leak still fails
    result = run_soak("suppress", "1", "--finding", cache[0]["id"], "--db", str(db))
    assert result.returncode == 0, result.stderr
    decision = apply_rules(report_findings(db, "1"), paste(result.stdout), target=TARGET, today=datetime.date.today())
    assert [a.finding.finding_id for a in decision.accepted] == [cache[0]["id"]]
    assert [f.finding_id for f in decision.remaining] == [f["id"] for f in findings if f is not cache[0]]

    # on a rerun, a rule accepts its own finding again, and nothing else
    by_rule = {a.rule: a.finding.finding_id
               for a in apply_rules(report_findings(db, "1"), generated, target=TARGET, today=datetime.date.today()).accepted}
    decision = apply_rules(report_findings(db, "2"), generated, target=TARGET, today=datetime.date.today())
    assert all(by_rule[a.rule] == a.finding.finding_id for a in decision.accepted)
    assert {a.finding.finding_id for a in decision.accepted} == {f["id"] for f in rerun} & set(by_rule.values())
    assert any(a.finding.finding_id == cache[0]["id"] for a in decision.accepted)


def test_soak_suppress_bad_finding_id(soaked: tuple[Path, list[dict[str, Any]], list[dict[str, Any]]]) -> None:
    db, findings, _ = soaked
    result = run_soak("suppress", "1", "--finding", "0123456789abcdef", "--db", str(db))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("soak: error: run 1 has no finding '0123456789abcdef'; its findings: ")
    assert findings[0]["id"] in result.stderr


def test_the_manuals_examples_are_valid_rules() -> None:
    # the manual's suppressions page (the README's "Suppressions" section before it moved to docs/)
    section = (Path(__file__).parent.parent / "docs" / "guide" / "suppressions.md").read_text()
    blocks = [b.split("```", 1)[0] for b in section.split("```toml\n")[1:]]
    examples = [b for b in blocks if TODO_REASON not in b]
    assert len(examples) == 3
    parsed = [r for text in examples for r in parse_rules(text, "docs/guide/suppressions.md")]
    assert [r.id for r in parsed] == ["session-cache", "stdlib-logger-per-session", "price-table-fill"]
    assert all(r.names_code for r in parsed)
    assert parsed[2].max_growth_bytes_per_hour == 5 * MB
    [generated] = [b for b in blocks if TODO_REASON in b]
    assert paste(generated)[0].call_site == "workloads/two_leaks.py:_session_logger"
