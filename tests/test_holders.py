"""Types and what holds them: the type census probe (the workload's objects only), holder chains
found from real objects to their roots, and real soaks whose reports name the module global
that keeps a leak alive -- also when the leaking line never names it."""

from __future__ import annotations

import gc
import threading
import types
from pathlib import Path
from typing import Any

import pytest
from conftest import db_rows, leak_lines, run_soak

from soak.inprocess.probes.holders import container_of, describe, find_holders
from soak.inprocess.probes.inprocess import InProcessProbes
from soak.inprocess.probes.probe import run_probes
from soak.inprocess.probes.tracer import SITE_TRACERS
from soak.inprocess.probes.types import TypeProbe, is_own_module, own_objects
from soak.judging.holders import requests_for
from soak.model.finding import Finding
from soak.model.options import RunOptions
from soak.storage.database import open_database
from soak.supervisor.schedule import HOLDER_ATTEMPTS
from soak.workloads.holders import cache_leak, handed_list, keyed_cache

SHORT = ("--type-findings", "--duration", "20s", "--interval", "0.25s", "--format", "json")
"""Long enough for a dozen censuses on a busy machine: the census runs within 2% of the time."""


class Token:
    """Instances held in the places the tests below put them."""


class Registry:
    entries: list[Token] = []


def test_a_module_global_dict_is_named_as_the_holder() -> None:
    for _ in range(50):
        cache_leak.step()
    found = find_holders([{"key": "k", "type": "soak.workloads.holders.cache_leak.Response"}])["k"]
    assert found["held_by"] == cache_leak.HELD_BY and found["holder_type"] == "dict"
    assert found["holder_root"] == "module global" and found["holder_samples"] == found["holder_searched"] > 0


def test_a_list_handed_to_the_leaking_line_is_named_by_its_global() -> None:
    for _ in range(50):
        handed_list.step()
    found = find_holders([{"key": "k", "type": "soak.workloads.holders.handed_list.AuditEvent"}])["k"]
    assert found["held_by"] == handed_list.HELD_BY == "soak.workloads.holders.sink._BACKLOG"
    assert found["holder_type"] == "list"


def test_a_class_attribute_is_a_root() -> None:
    Registry.entries.extend(Token() for _ in range(10))
    try:
        found = find_holders([{"key": "k", "type": f"{__name__}.Token"}])["k"]
        assert found["held_by"] == f"{__name__}.Registry.entries" and found["holder_root"] == "class attribute"
    finally:
        Registry.entries.clear()


def test_a_local_of_a_workload_thread_is_a_root() -> None:
    release, ready = threading.Event(), threading.Event()

    def hoard() -> None:
        kept = [Token() for _ in range(10)]
        ready.set()
        release.wait(10)
        del kept

    thread = threading.Thread(target=hoard, name="hoarder")
    thread.start()
    try:
        ready.wait(10)
        found = find_holders([{"key": "k", "type": f"{__name__}.Token"}])["k"]
        assert found["holder_root"] == "thread frame" and found["held_by"] == "hoard() in thread 'hoarder'.kept"
    finally:
        release.set()
        thread.join()


def test_a_search_with_no_time_finds_nothing_and_says_so() -> None:
    for _ in range(20):
        cache_leak.step()
    found = find_holders([{"key": "k", "type": "soak.workloads.holders.cache_leak.Response"}], limit_s=0.0)["k"]
    assert found["held_by"] is None and "in time" in found["holder_note"]


def test_the_census_leaves_out_leaksoaks_own_objects() -> None:
    own_state: dict[str, list[list[int]]] = {"stacks": []}  # like a host's table of stacks
    mine, everything = TypeProbe(lambda: (own_state,)), TypeProbe()
    gc.collect()  # earlier tests' garbage, freed between two censuses, would hide the 5,000 lists
    gc.disable()
    try:
        mine.collect(), everything.collect()  # the baselines
        own_state["stacks"].extend([n] for n in range(5000))
        counted = {r.series: r.value for r in mine.collect().readings}
        all_lists = {r.series: r.value for r in everything.collect().readings}["builtins.list"]
    finally:
        gc.enable()
    # values are growth since the first census: 5,000 more lists, less the census's own churn
    assert all_lists - counted.get("builtins.list", 0) >= 4500 and counted.get("builtins.list", 0) < 100
    assert len(own_objects([own_state])) >= 5001
    assert not any(is_own_module(r.series.rpartition(".")[0]) for r in everything.collect().readings)
    assert is_own_module("soak.inprocess.probes.probe") and not is_own_module("soak.workloads.holders.cache_leak")


def test_the_census_is_a_probe_of_objects_and_runs_within_its_budget() -> None:
    probes = InProcessProbes(None)
    entry = run_probes([probes.types])["types"]
    assert entry["kind"] == "type" and entry["series"] == []  # the first census is the baseline
    kept = [Token() for _ in range(2000)]
    entry = run_probes([probes.types])["types"]
    grown = {name: value for name, unit, value in entry["series"] if unit == "objects"}
    assert grown[f"{__name__}.Token"] >= 2000 and entry["evidence"][f"{__name__}.Token"] == {"objects_at_first_census": 0}
    del kept
    body = probes.collect()  # the host's first census: it runs whatever it costs
    assert "types" in body["probes"] and body["gc_objects"] > 0
    probes.budget.ran("types", 1.0)  # as if that census had paused for a second: the next waits
    body = probes.collect()
    assert "types" not in body["probes"] and body["gc_objects"] is None


def _finding(report: dict[str, Any], kind: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [f for f in report["findings"] if f["kind"] == kind]
    # what was found instead, for a failure seen once in CI (3.13) and never here since
    assert found, (report["analysis"], [(f["kind"], f["verdict"], f["evidence"]) for f in report["findings"]])
    return found[0]


@pytest.mark.parametrize("workload", ["handed_list", "cache_leak"])
def test_a_soak_reports_the_growing_type_and_its_holder(workload: str, db: Path) -> None:
    module = {"handed_list": handed_list, "cache_leak": cache_leak}[workload]
    # Unrationed searches: under the default budget a type's search may wait behind the sites'
    # (which rank first) past the end of a 20 s soak on a loaded machine; the budget has its own tests.
    result = run_soak("run", f"soak.workloads.holders.{workload}:step", "--db", str(db), "--pause-budget", "inf", *SHORT)
    assert result.returncode == 1, result.stdout + result.stderr
    found = _finding(result.json(), "type")
    assert found["verdict"] == "leak" and found["evidence"]["series"].startswith(f"soak.workloads.holders.{workload}.")
    assert found["evidence"]["held_by"] == module.HELD_BY
    assert found["growth_count_per_hour"] > 10_000
    held = f"held by `{module.HELD_BY}` ({'list' if workload == 'handed_list' else 'dict'})"
    for fmt in ("text", "markdown", "html"):
        shown = run_soak("report", "--db", str(db), "--format", fmt).stdout
        unescaped = shown.replace("\\", "") if fmt == "markdown" else shown.replace("&#x27;", "'").replace("&#96;", "`")
        assert held in unescaped, fmt
    # searched on suspicion only (the type and the sites, each up to three times), and its cost
    # is the snapshot's "holders" pause
    pauses = [p for (p,) in db_rows(db, "SELECT probe_ms FROM snapshots WHERE probe_ms LIKE '%holders%'")]
    snapshots = db_rows(db, "SELECT count(*) FROM snapshots")[0][0]
    assert 1 <= len(pauses) <= 2 * HOLDER_ATTEMPTS < snapshots


TRACED = {"exact": ("--tracer", "exact"), "sampled": ("--tracer", "sampled", "--sample-interval", "64")}
"""The tracers that tell a site's objects; the sampled one at a small interval, so that most of a
short soak's leaked objects are sampled."""


@pytest.mark.parametrize("tracer", ["exact", "sampled"])
@pytest.mark.parametrize("workload", ["cache_leak", "handed_list"])
def test_a_trace_names_the_holder_of_a_leaking_site(workload: str, tracer: str, db: Path) -> None:
    """Under either tracer that tells a site's objects, also when the leaking line never names
    the global (handed_list appends to a list handed to it)."""
    assert set(TRACED) == set(SITE_TRACERS)
    module = {"handed_list": handed_list, "cache_leak": cache_leak}[workload]
    result = run_soak("run", f"soak.workloads.holders.{workload}:step", *TRACED[tracer], "--db", str(db), *SHORT)
    assert result.returncode == 1, result.stdout + result.stderr
    site = _finding(result.json(), "site")
    assert site["evidence"]["held_by"] == module.HELD_BY
    assert f"held by `{module.HELD_BY}`" in run_soak("report", "--db", str(db)).stdout


def test_sites_that_one_container_holds_are_one_leak(db: Path) -> None:
    """A dict's keys and its values are allocated on two lines: one finding, with the other site
    as a member, held by the dict's global."""
    result = run_soak("run", "soak.workloads.holders.keyed_cache:step", "--tracer", "exact", "--db", str(db), *SHORT)
    assert result.returncode == 1, result.stdout + result.stderr
    sites = [f for f in result.json()["findings"] if f["kind"] == "site"]
    assert len(sites) == 1, sites
    evidence = sites[0]["evidence"]
    assert evidence["held_by"] == keyed_cache.HELD_BY
    lines = {sites[0]["where"]["line"], *(member["line"] for member in evidence["member_sites"])}
    assert lines == leak_lines(Path(keyed_cache.__file__))
    assert "one leak with the 1 other site(s) whose objects it holds" in run_soak("report", "--db", str(db)).stdout


def _row(kind: str, n: int) -> Finding:
    evidence = {"series": f"app.Kind{n}"} if kind == "type" else {}
    return Finding(f"{n:016x}", kind, "leak", [], None, None, 1e6, None, 0.01, 0.01, 0.99, None, None, evidence,
                   stack_id=None if kind == "type" else n)


def test_a_type_finding_is_searched_in_the_first_request_though_sites_rank_before_it(tmp_path: Path) -> None:
    """Sites rank before types, and each site may be tried three times: the most severe type
    still gets a place in the first request, so its holder is not starved."""
    db = open_database(str(tmp_path / "soak.db"))
    rows = [_row("site", n) for n in range(1, 6)] + [_row("type", 9), _row("type", 10)]
    assert [r["key"] for r in requests_for(db, rows, set(), sites=False)] == ["type:app.Kind9", "type:app.Kind10"]
    assert [r["key"] for r in requests_for(db, rows, set(), sites=True)] == ["type:app.Kind9", "site:1", "site:2"]
    searched = {"site:1", "type:app.Kind9"}
    assert [r["key"] for r in requests_for(db, rows, searched, sites=True)] == ["type:app.Kind10", "site:2", "site:3"]


class _Response:
    def __init__(self, body: str) -> None:
        self.body = body


def test_the_container_of_a_sample_is_what_holds_it_as_an_item_not_the_global_naming_it() -> None:
    """Sites merge when one container holds their objects (a dict's keys and values); lists
    inside one global list are containers of their own, so their sites stay apart."""
    module = handed_list  # any module: the chains are built by hand, as the search would find them
    namespace = vars(module)
    inner = [[b"a"], [b"b"]]
    assert container_of([module, namespace, inner, inner[1], inner[1][0]]) is inner[1]
    cache = {"key": "value"}
    assert container_of([module, namespace, cache, "value"]) is cache
    assert container_of([module, namespace, cache, "key"]) is cache  # a key: the same container
    responses = {"k": _Response("body text")}
    response = responses["k"]
    assert container_of([module, namespace, responses, response, vars(response), response.body]) is responses
    named = types.ModuleType("named")
    named.holder = _Response("direct")  # type: ignore[attr-defined]
    holder = named.holder
    chain = [named, vars(named), holder, vars(holder), holder.body]
    assert container_of(chain) is describe(chain)[2]  # no item on the way: the holder the chain names


def test_a_resumed_run_reads_its_materiality_back() -> None:
    options = RunOptions(target="x.py:step")
    assert RunOptions.from_stored(options.to_stored()).thresholds == options.thresholds
