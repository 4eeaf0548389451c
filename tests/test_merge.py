"""`soak merge` and `soak fleet` on databases made by the real writer, as twenty CI hosts would."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import statistics
from pathlib import Path
from typing import cast

import pytest
from conftest import db_rows, run_soak
from sqlite_utils import Database

from soak.errors import BadInput
from soak.judging import fleet
from soak.judging.analysis import finding_id
from soak.model.finding import Finding
from soak.storage import open_database
from soak.storage.merge import planned_tables
from soak.storage.writer import RunWriter

LEAK_FRAMES = [{"file": "/srv/shop/cart.py", "line": 41, "function": "add"}]
SUSPECT_FRAMES = [{"file": "/srv/billing/pdf.py", "line": 7, "function": "render"}]


def _site_id(frames: list[dict[str, object]]) -> str:
    return finding_id("site", [(str(f["file"]), cast("int", f["line"])) for f in frames])


LEAK_ID = _site_id(LEAK_FRAMES)
SUSPECT_ID = _site_id(SUSPECT_FRAMES)
HOSTS = 20


def _finding(ident: str, stack_id: int, verdict: str, growth: float) -> Finding:
    return Finding(finding_id=ident, kind="site", verdict=verdict, traceback=[], library="application", call_site=None,
                   growth_bytes_per_hour=growth, growth_count_per_hour=1.0, p_value=1e-6, q_value=1e-5, confidence=0.999,
                   detected_at_s=None, resource=None, stack_id=stack_id)


def _run(db: Database, *, target: str, started: float, host: int,
         finding: tuple[str, list[dict[str, object]], str, float] | None) -> int:
    """One finished run as the supervisor writes it; each host interns its stacks in its own order."""
    writer = RunWriter.create_run(db, name=target.split(":")[0], target=target, mode="ci", planned_duration_s=60,
                                  interval_s=1, options={}, started_ts=started,
                                  function_name=lambda file, line: {41: "add", 7: "render"}.get(line, "noise"))
    noise = {str(n): [[f"/srv/common/noise_{host}_{n}.py", n]] for n in range(host % 5)}  # shifts stack ids per host
    stacks = {**noise, "100": [[f["file"], f["line"]] for f in (finding[1] if finding else LEAK_FRAMES)]}
    for seq in range(6):
        sites = [[100, 1000 * (seq + 1) if finding else 1000, seq + 1]] + [[int(n), 10, 1] for n in noise]
        writer.record_snapshot(float(seq), {"rss": 10_000_000 + seq}, {"sites": sites, "new_stacks": stacks if seq == 0 else {},
                                                                         "iterations": seq * 10, "tracer": "exact"})
    stack_id = writer.db.execute("SELECT id FROM stacks WHERE hash = (SELECT hash FROM stacks ORDER BY id DESC LIMIT 1)").fetchone()[0]
    if finding is not None:
        ident, _frames, verdict, growth = finding
        writer.replace_findings([_finding(ident, stack_id, verdict, growth)], 3.0)
    writer.set_verdict(finding[2] if finding else "clean", {"points": 6})
    writer.finish("completed", None, 6.0)
    return writer.run_id


def _host_db(tmp: Path, host: int) -> Path:
    path = tmp / f"ci-{host:02d}" / "soak.db"
    path.parent.mkdir()
    db = open_database(str(path))
    leaky = host % 4 != 0  # 15 of the 20 hosts see the leak
    _run(db, target="shop/cart.py:step", started=1_700_000_000.0 + host, host=host,
         finding=(LEAK_ID, LEAK_FRAMES, "leak", 1e6 * (host + 1)) if leaky else None)
    _run(db, target="billing/pdf.py:step", started=1_700_000_100.0 + host, host=host,
         finding=(SUSPECT_ID, SUSPECT_FRAMES, "suspect", 5e4) if host < 5 else None)
    db.execute("UPDATE runs SET host = ?", [f"ci-{host:02d}"])  # as if each file was written on its own machine
    db.conn.commit()
    db.close()
    return path


@pytest.fixture
def hosts(tmp_path: Path) -> list[Path]:
    return [_host_db(tmp_path, host) for host in range(HOSTS)]


def _dump(path: Path) -> dict[str, list[str]]:
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: sorted(repr(row) for row in conn.execute(f"SELECT * FROM {t}")) for t in tables}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_twenty_hosts_merge_into_one_fleet_summary(hosts: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "fleet.db"
    result = run_soak("merge", str(out), *map(str, hosts))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("2 runs merged") == HOSTS
    assert db_rows(out, "SELECT count(*), count(DISTINCT host) FROM runs") == [(2 * HOSTS, HOSTS)]
    # run ids were 1 and 2 on every host: unique now, and each remembers its origin
    origins = db_rows(out, "SELECT m.source_run_id, r.host, m.source_file FROM merged_runs m JOIN runs r ON r.id = m.run_id")
    assert len(origins) == 2 * HOSTS and {o[0] for o in origins} == {1, 2}
    assert all(o[2].endswith(f"{o[1]}/soak.db") for o in origins)

    summary = json.loads(run_soak("fleet", "--db", str(out), "--format", "json").stdout)
    assert summary["schema"] == "leaksoak.fleet/1"
    by_id = {f["id"]: f for f in summary["findings"]}
    assert set(by_id) == {LEAK_ID, SUSPECT_ID}
    leak = by_id[LEAK_ID]
    leaky_hosts = [h for h in range(HOSTS) if h % 4]
    assert (leak["runs"], leak["hosts"], leak["verdict"]) == (15, 15, "leak")
    assert leak["where"] == LEAK_FRAMES[0] and leak["library"] == "application"
    rates = [1e6 * (h + 1) for h in leaky_hosts]
    assert leak["growth_bytes_per_hour"] == {"min": min(rates), "median": statistics.median(rates), "max": max(rates)}
    assert leak["host_names"] == [f"ci-{h:02d}" for h in leaky_hosts]
    assert (by_id[SUSPECT_ID]["runs"], by_id[SUSPECT_ID]["hosts"], by_id[SUSPECT_ID]["verdict"]) == (5, 5, "suspect")
    assert summary["findings"][0]["id"] == LEAK_ID  # the most widespread first
    targets = {t["target"]: t["hosts"] for t in summary["targets"]}
    assert targets["shop/cart.py:step"]["clean"] == [f"ci-{h:02d}" for h in range(0, HOSTS, 4)]
    assert len(targets["shop/cart.py:step"]["leak"]) == 15 and len(targets["billing/pdf.py:step"]["clean"]) == 15

    # the stacks were renumbered per host; each merged finding still points at its own line
    lines = db_rows(out, "SELECT DISTINCT finding_id, file, line FROM finding_lines")
    assert sorted(lines) == sorted([(LEAK_ID, "/srv/shop/cart.py", 41), (SUSPECT_ID, "/srv/billing/pdf.py", 7)])
    assert db_rows(out, "SELECT count(*) FROM stacks WHERE hash IN (SELECT hash FROM stacks GROUP BY hash HAVING count(*) > 1)") == [(0,)]
    per_host = [db_rows(h, "SELECT count(*) FROM site_samples")[0][0] for h in hosts]
    assert db_rows(out, "SELECT count(*) FROM site_samples") == [(sum(per_host),)]

    for fmt, words in [("text", "on 15 runs, 15 hosts"), ("markdown", "| leak |"), ("html", "<td>15</td>")]:
        rendered = run_soak("fleet", "--db", str(out), "--format", fmt)
        assert rendered.returncode == 0 and words in rendered.stdout and LEAK_ID in rendered.stdout, rendered.stdout


def test_merging_a_file_twice_changes_nothing(hosts: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "fleet.db"
    fleet.merge(str(out), [str(h) for h in hosts[:3]])
    before = _dump(out)
    again = fleet.merge(str(out), [str(h) for h in hosts[:3]])
    assert [(r.merged, r.present) for r in again] == [([], 2)] * 3
    assert _dump(out) == before
    # a merged file merged into another keeps each run's first origin, and no run twice
    other = tmp_path / "other.db"
    fleet.merge(str(other), [str(h) for h in hosts[2:5]])
    fleet.merge(str(other), [str(out)])
    assert db_rows(other, "SELECT count(*) FROM runs") == [(10,)]
    assert {Path(f).parent.name for (f,) in db_rows(other, "SELECT source_file FROM merged_runs")} == {f"ci-0{n}" for n in range(5)}


def test_a_run_that_went_on_replaces_its_copy_and_a_running_one_waits(hosts: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "fleet.db"
    fleet.merge(str(out), [str(hosts[1])])
    with sqlite3.connect(hosts[1]) as conn:  # resumed and finished later: more snapshots
        conn.execute("UPDATE runs SET snapshots = snapshots + 4, duration_s = 10, ended_at = 'later' WHERE id = 1")
        conn.execute("UPDATE runs SET status = 'running', host = 'elsewhere' WHERE id = 2")
    (result,) = fleet.merge(str(out), [str(hosts[1])])
    assert (result.merged, result.replaced, result.present, result.running) == ([], [1], 0, [2])
    second_ended = db_rows(out, "SELECT ended_at FROM runs WHERE id = 2")[0][0]
    assert db_rows(out, "SELECT id, snapshots, ended_at FROM runs ORDER BY id") == [(1, 10, "later"), (2, 6, second_ended)]
    assert db_rows(out, "SELECT count(*) FROM findings WHERE run_id = 1") == [(1,)]
    assert db_rows(out, "SELECT count(*) FROM snapshots WHERE run_id = 1") == [(6,)]


def test_report_works_on_the_merged_file(hosts: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "fleet.db"
    fleet.merge(str(out), [str(h) for h in hosts[:4]])
    (run_id,) = db_rows(out, "SELECT id FROM runs WHERE host = 'ci-03' AND target = 'shop/cart.py:step'")[0]
    report = run_soak("report", "--db", str(out), "--run", str(run_id), "--format", "json").json()
    assert report["verdict"] == "leak" and report["findings"][0]["id"] == LEAK_ID
    assert report["findings"][0]["where"] == LEAK_FRAMES[0] | {"function": "add"}
    assert run_soak("runs", "--db", str(out)).stdout.count("completed") == 8


def test_datasette_serves_the_merged_file(hosts: list[Path], tmp_path: Path) -> None:
    datasette_app = pytest.importorskip("datasette.app", reason="datasette is not installed (pip install datasette)")
    import asyncio

    out = tmp_path / "fleet.db"
    fleet.merge(str(out), [str(h) for h in hosts[:4]])

    async def query() -> dict[str, list[dict[str, object]]]:
        ds = datasette_app.Datasette([str(out)])
        response = await ds.client.get("/fleet/finding_lines.json?_shape=array&finding_id=" + LEAK_ID)
        assert response.status_code == 200, response.text
        return {"rows": response.json()}

    rows = asyncio.run(query())["rows"]
    assert len(rows) == 3 and {r["file"] for r in rows} == {"/srv/shop/cart.py"}


def test_every_table_of_the_schema_has_a_merge_plan(tmp_path: Path) -> None:
    open_database(str(tmp_path / "fresh.db")).close()
    tables = {t for (t,) in db_rows(tmp_path / "fresh.db", "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables - planned_tables() == set()  # a new table needs a line in storage/merge.py


def test_bad_inputs_are_one_line_exit_2_and_leave_out_untouched(hosts: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "fleet.db"
    fleet.merge(str(out), [str(hosts[0])])
    digest = _digest(out)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not sqlite at all" * 100)
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE things (x)")
    newer = tmp_path / "newer.db"
    newer.write_bytes(hosts[1].read_bytes())
    with sqlite3.connect(newer) as conn:
        conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('leaksoak', '9999_future', 'x')")
    extra = tmp_path / "extra.db"
    extra.write_bytes(hosts[2].read_bytes())
    with sqlite3.connect(extra) as conn:
        conn.execute("CREATE TABLE my_notes (run_id INTEGER, note TEXT)")
    cases = [(garbage, "is not a leaksoak database"), (foreign, "is not a leaksoak database"),
             (newer, "newer leaksoak (schema 9999_future)"), (tmp_path / "missing.db", "no database at"),
             (extra, "does not know how to combine: my_notes"), (out, "is the output")]
    for bad, words in cases:
        # the good input before the bad one is not merged either
        result = run_soak("merge", str(out), str(hosts[3]), str(bad))
        assert result.returncode == 2 and words in result.stderr and result.stderr.count("\n") == 1, (bad, result.stderr)
        assert _digest(out) == digest
        if bad != out:  # into a new file: none is made
            with pytest.raises(BadInput, match=re.escape(words)):
                fleet.merge(str(tmp_path / "fresh.db"), [str(hosts[3]), str(bad)])
            assert not (tmp_path / "fresh.db").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary left behind
    assert run_soak("merge", str(out)).returncode == 2
