"""The pytest plugin, loaded through its installed ``pytest11`` entry point in a pytest subprocess.

Each soak is a real worker process and a real SQLite file; soaks last a few seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import db_rows

pytest_plugins = ["pytester"]

SOAKED = '''
import sys
import time

import pytest

_kept = []


@pytest.mark.soak(duration="16s", interval="0.25s")
def test_leaky():
    _kept.append(bytearray(2048))  # LEAK
    time.sleep(0.001)


@pytest.mark.soak(duration="16s", interval="0.25s")
def test_clean():
    # Fails if pytest also called it in its own process: only the worker has --request-fd.
    assert "--request-fd" in sys.argv
    words = [str(n) for n in range(200)]
    assert len(" ".join(words)) > 0
    time.sleep(0.001)


def test_not_soaked():
    assert "--request-fd" not in sys.argv
'''


def test_leaky_test_fails_with_its_line_and_clean_test_passes(pytester: pytest.Pytester) -> None:
    source = pytester.makepyfile(test_soaked=SOAKED).read_text().splitlines()
    db = pytester.path / "kept.db"
    result = pytester.runpytest_subprocess("--soak-db", str(db), "--soak-duration-scale", "0.5", "-rP")
    result.assert_outcomes(passed=2, failed=1)
    leak_line = source.index("    _kept.append(bytearray(2048))  # LEAK") + 1
    result.stdout.fnmatch_lines([
        "*_ test_leaky _*",
        "memory grows without bound while the test is called over and over (verdict: leak)",
        "verdict: LEAK - *",
        "1. LEAK +*/hour*",
        f"   test_soaked.py:{leak_line} in test_leaky",
        "*_kept.append(bytearray(2048))  # LEAK",
        "*_ test_clean _*",
        "*Captured leaksoak call*",
        "verdict: CLEAN - nothing grows significantly",
        f"leaksoak: 2 soak(s) stored in {db} (soak runs --db {db})",
    ])
    assert db_rows(db, "SELECT DISTINCT tracer, sample_interval FROM snapshots") == [("sampled", 16384)]
    runs = db_rows(db, "SELECT name, status, verdict, planned_duration_s FROM runs ORDER BY id")
    assert runs == [("test_soaked.py::test_leaky", "completed", "leak", 8.0),
                    ("test_soaked.py::test_clean", "completed", "clean", 8.0)]


def test_fixtures_bad_marks_and_a_failing_worker(pytester: pytest.Pytester, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = pytester.makepyfile(test_wrong='''
        import pytest

        @pytest.mark.soak(duration="2s", interval="0.25s")
        def test_wants_a_fixture(tmp_path):
            pass

        @pytest.mark.soak(duration="2s", interval="0.25s", fail_on="sometimes")
        def test_bad_fail_on():
            pass

        @pytest.mark.soak(duration="2 fortnights")
        def test_bad_duration():
            pass

        @pytest.mark.soak(duration="2s", tracer="fast")
        def test_bad_tracer():
            pass

        @pytest.mark.soak(duration="3s", interval="0.25s")
        def test_raises():
            raise ValueError("bad request payload")
    ''')
    raise_line = path.read_text().splitlines().index('    raise ValueError("bad request payload")') + 1
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=4, failed=1)
    result.stdout.fnmatch_lines_random([
        "a soaked test is called with no arguments, but test_wants_a_fixture takes tmp_path (fixtures and parameters*",
        "@pytest.mark.soak(fail_on=...) must be one of leak, suspect, not 'sometimes'",
        "@pytest.mark.soak: --duration '2 fortnights' is not a duration*",
        "@pytest.mark.soak: --tracer must be one of sampled, exact, off, not 'fast'",
        "soak: the worker failed, so the soak could not judge the test: the workload raised "
        f"ValueError: bad request payload at */test_wrong.py:{raise_line} (call)",
    ])
    assert "stored in" not in result.stdout.str()
    assert list(temporary.iterdir()) == []  # the default database was a temporary file, now deleted


def test_a_suppression_rule_accepts_known_growth_and_a_malformed_file_is_an_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_known='''
        import time

        import pytest

        _kept = []


        @pytest.mark.soak(duration="8s", interval="0.2s", suppressions="rules.toml")
        def test_known_growth():
            _kept.append(bytearray(2048))  # LEAK, accepted
            time.sleep(0.001)


        @pytest.mark.soak(duration="8s", interval="0.2s")
        def test_unknown_growth():
            _kept.append(bytearray(2048))  # LEAK
            time.sleep(0.001)
    ''')
    (pytester.path / "rules.toml").write_text(
        '[[suppress]]\nid = "known-buffer"\nreason = "bounded by the deployment; TICKET-7"\n'
        'frames = ["*test_known.py:test_known_growth", "..."]\n'
        '[[suppress]]\nid = "gone"\nreason = "fixed"\nexpires = "2020-01-01"\nframes = ["*x.py:y"]\n')
    (pytester.path / "bad.toml").write_text('[[suppress]]\nid = "x"\n')
    result = pytester.runpytest_subprocess("-rP")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines_random([
        "*_ test_unknown_growth _*",
        "memory grows without bound while the test is called over and over (verdict: leak)",
        "verdict: CLEAN - nothing else grows significantly; 1 accepted by suppression rules",
        "  A1. LEAK +*/hour*, accepted by 'known-buffer' (rules.toml:1)",
        "       reason: bounded by the deployment; TICKET-7",
        "*SuppressionWarning: suppression 'gone' (rules.toml:5) expired on 2020-01-01: it no longer applies; remove it or renew it",
    ])
    # --soak-suppressions for every soak; a malformed file is an error of each test, before any soak
    bad = pytester.runpytest_subprocess("--soak-suppressions", "bad.toml", "-k", "unknown")
    bad.assert_outcomes(errors=1, deselected=1)
    bad.stdout.fnmatch_lines(["*@pytest.mark.soak: bad.toml:1: suppression 'x' has no 'reason' (required)*"])
