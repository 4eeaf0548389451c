"""Suppression rules as read: every key, dates and rates, malformed files (one line naming the file,
line and problem), leaksoak.toml and pyproject.toml together, an explicit file, no TOML reader."""

from __future__ import annotations

import datetime
import textwrap
from pathlib import Path

import pytest
from conftest import MB, RULES_TODAY

from soak.errors import BadInput
from soak.judging.pyproject import read_config
from soak.judging.suppressions import (
    TODO_REASON,
    Rule,
    SuppressionsError,
    format_rate,
    load_rules,
    parse_rate,
    parse_rules,
)


def rules(text: str, source: str = "leaksoak.toml") -> list[Rule]:
    return parse_rules(textwrap.dedent(text), source)


def test_every_key_is_read() -> None:
    [rule] = rules("""
        [[suppress]]
        id = "requests-session-pool"
        reason = "https://github.com/psf/requests/issues/1"
        owner = "platform team"
        expires = "2026-09-30"
        frames = ["...", "*client.py:fetch", "..."]
        call_site = "app/client.py:fetch"
        library = "requests"
        type = "requests.Session"
        resource = "fds"
        target = "app/*.py:handle_*"
        max_growth = "5 MB/h"
    """)
    assert rule.id == "requests-session-pool" and rule.reason.startswith("https://") and rule.owner == "platform team"
    assert rule.expires == datetime.date(2026, 9, 30) and rule.expires_text is None
    assert rule.frames == ("...", "*client.py:fetch", "...")
    assert (rule.call_site, rule.library, rule.type, rule.resource) == ("app/client.py:fetch", "requests", "requests.Session", "fds")
    assert rule.target == "app/*.py:handle_*"
    assert rule.max_growth == "5 MB/h" and rule.max_growth_bytes_per_hour == 5 * MB
    assert rule.source == "leaksoak.toml" and rule.line == 2


def test_a_toml_date_and_an_unparseable_date() -> None:
    native, bad = rules("""
        [[suppress]]
        id = "a"
        reason = "r"
        expires = 2026-09-30
        frames = ["x.py"]

        [[suppress]]
        id = "b"
        reason = "r"
        expires = "end of summer"
        frames = ["x.py"]
    """)
    assert native.expires == datetime.date(2026, 9, 30)
    assert bad.expires is None and bad.expires_text == "end of summer" and bad.expired(RULES_TODAY)


@pytest.mark.parametrize(("text", "per_hour"), [
    ("5 MB/h", 5 * MB), ("5MB/h", 5 * MB), ("512KiB/10m", 512 * 1024 * 6), ("1 GB/day", 1e9 / 24),
    ("100 kB / hour", 100e3), ("2 MiB/30s", 2 * 1024**2 * 120),
])
def test_rates(text: str, per_hour: float) -> None:
    assert parse_rate(text) == pytest.approx(per_hour)


@pytest.mark.parametrize("rate", [5 * MB, 4.44e9, 123e3, 12.0])
def test_a_formatted_rate_reads_back_to_three_digits(rate: float) -> None:
    assert parse_rate(format_rate(rate)) == pytest.approx(rate, rel=5e-3)


@pytest.mark.parametrize("text", ["5 MB", "fast/h", "5 MB/", "/h", "-5 MB/h", "5 MB/fortnight"])
def test_rates_that_are_not(text: str) -> None:
    with pytest.raises(ValueError, match="not a rate"):
        parse_rate(text)


RULE = 'id = "a"\nreason = "r"\nframes = ["x.py"]\n'

MALFORMED = [
    # (file text, line of the error, words in the message)
    ('[[suppress]]\nid = "a"\nreason = \n', 3, "not valid TOML"),
    ('[[suppress]]\nid = "a"\nreason = "r"\nframe = ["x.py"]\n', 4, "unknown key 'frame'"),
    ('[[suppress]]\nreason = "r"\nframes = ["x.py"]\n', 1, "has no 'id' (required)"),
    ('[[suppress]]\n' + RULE + '\n[[suppress]]\nid = "b"\nframes = ["x.py"]\n', 6, "suppression 'b' has no 'reason'"),
    ('[[suppress]]\n' + RULE + '\n[[suppress]]\n' + RULE, 7, "duplicate suppression id 'a' (first at line 1)"),
    ('[[suppress]]\nid = ""\nreason = "r"\n', 2, "id of suppression #1 must be a non-empty string"),
    ('[[suppress]]\nid = "a"\nreason = 42\n', 3, "reason of suppression 'a' must be a non-empty string"),
    (f'[[suppress]]\nid = "a"\nreason = "{TODO_REASON}"\n', 3, "still the TODO"),
    ('[[suppress]]\nid = "a"\nreason = "r"\nowner = ["me"]\n', 4, "owner of suppression 'a' must be"),
    ('[[suppress]]\nid = "a"\nreason = "r"\nexpires = 20260930\n', 4, "expires of suppression 'a' must be a date YYYY-MM-DD"),
    ('[[suppress]]\nid = "a"\nreason = "r"\nframes = "x.py"\n', 4, "frames of suppression 'a' must be a non-empty list"),
    ('[[suppress]]\nid = "a"\nreason = "r"\nframes = []\n', 4, "must be a non-empty list"),
    ('[[suppress]]\nid = "a"\nreason = "r"\nframes = [\n  "...",\n  ":fetch",\n]\n', 6, "':fetch' has no file glob"),
    ('[[suppress]]\nid = "a"\nreason = "r"\nframes = ["x.py", "y.py:"]\n', 4, "'y.py:' has an empty function"),
    ('[[suppress]]\nid = "a"\nreason = "r"\ncall_site = "..."\n', 4, "call_site of suppression 'a': '...' cannot be"),
    ('[[suppress]]\nid = "a"\nreason = "r"\nlibrary = 3\n', 4, "library of suppression 'a' must be"),
    ('[[suppress]]\nid = "a"\nreason = "r"\nmax_growth = "5 MB"\n', 4, "max_growth of suppression 'a': '5 MB' is not a rate"),
    ('[[suppress]]\nid = "a"\nreason = "r"\nmax_growth = 5\n', 4, "max_growth of suppression 'a' must be a non-empty string"),
    ('# rules\n[[supress]]\nid = "a"\n', 2, "unknown key 'supress'"),
    ('suppress = "everything"\n', 1, "suppress must be an array of tables"),
]


@pytest.mark.parametrize(("text", "line", "words"), MALFORMED)
def test_a_malformed_file_is_one_line_naming_file_line_and_problem(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = tmp_path / "leaksoak.toml"
    path.write_text(text)
    with pytest.raises(SuppressionsError) as caught:
        load_rules(str(path))
    error = caught.value
    assert isinstance(error, BadInput)
    assert error.exit_code == 2
    assert (error.path, error.line) == (str(path), line)
    assert words in str(error)
    assert str(error).startswith(f"{path}:{line}: ") and "\n" not in str(error)


def test_a_malformed_rule_in_pyproject_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent("""\
        [project]
        name = "app"

        [tool.leaksoak]
        duration = "5m"

        [[tool.leaksoak.suppress]]
        id = "a"
        reason = "r"
        frames = ["x.py"]

        [[ tool.leaksoak."suppress" ]]
        id = "b"
        reason = "r"
        expires = false
    """))
    with pytest.raises(SuppressionsError, match=r"pyproject.toml:15: expires of suppression 'b' must be a date"):
        load_rules(directory=str(tmp_path))


def test_rules_from_leaksoak_toml_and_pyproject_together(tmp_path: Path) -> None:
    (tmp_path / "leaksoak.toml").write_text('[[suppress]]\n' + RULE)
    (tmp_path / "pyproject.toml").write_text('[tool.leaksoak]\nduration = "5m"\n\n[[tool.leaksoak.suppress]]\n'
                                             + RULE.replace('"a"', '"b"'))
    loaded = load_rules(directory=str(tmp_path))
    assert [(r.id, Path(r.source).name, r.line) for r in loaded] == [("a", "leaksoak.toml", 1), ("b", "pyproject.toml", 4)]
    # [tool.leaksoak] with rules is still a valid soak ci configuration
    assert read_config(str(tmp_path))["duration"] == "5m"

    (tmp_path / "pyproject.toml").write_text('[[tool.leaksoak.suppress]]\n' + RULE)
    with pytest.raises(SuppressionsError, match=r"pyproject.toml:2: duplicate suppression id 'a' \(first at .*leaksoak.toml:1\)"):
        load_rules(directory=str(tmp_path))


def test_an_explicit_file(tmp_path: Path) -> None:
    assert load_rules(directory=str(tmp_path)) == []
    path = tmp_path / "known-growth.toml"
    path.write_text('[[suppress]]\n' + RULE)
    assert [r.id for r in load_rules(str(path))] == ["a"]
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[[tool.leaksoak.suppress]]\n' + RULE)
    assert [r.id for r in load_rules(str(pyproject))] == ["a"]
    with pytest.raises(SuppressionsError, match="missing.toml: no such file"):
        load_rules(str(tmp_path / "missing.toml"))


def test_without_a_toml_reader_only_a_file_with_rules_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import soak.judging.suppressions.reading

    monkeypatch.setattr(soak.judging.suppressions.reading, "toml_reader", lambda: None)
    assert parse_rules('[project]\nname = "app"\n', "pyproject.toml", table=("tool", "leaksoak", "suppress")) == []
    with pytest.raises(SuppressionsError, match="leaksoak.toml: reading suppression rules needs Python 3.11"):
        parse_rules('[[suppress]]\n' + RULE, "leaksoak.toml")
