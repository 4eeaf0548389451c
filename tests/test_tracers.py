"""Choosing a tracer: names, fallback, the shared frame rule, and `--tracer` / `--sample-interval`
on the CLI and the agent, for real (a worker process, a real service process)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REFERENCE, leak_lines, run_soak

from soak.inprocess.probes import sampled as sampled_module
from soak.inprocess.probes.exact import TracemallocTracer
from soak.inprocess.probes.frames import DRIVER_FILES, FrameFilter
from soak.inprocess.probes.sampled import DEFAULT_SAMPLE_INTERVAL, SampledTracer
from soak.inprocess.probes.tracer import TRACERS, BadTracer, check_tracer, make_tracer

SHORT = ("--duration", "8s", "--interval", "0.25s", "--quiet", "--format", "json")


def test_tracer_names_and_settings_are_checked_in_one_place() -> None:
    assert TRACERS == ("sampled", "exact", "off")
    with pytest.raises(BadTracer, match="must be one of sampled, exact, off, not 'fast'"):
        check_tracer("fast")
    with pytest.raises(BadTracer, match="--frames"):
        check_tracer("sampled", frames=0)
    with pytest.raises(BadTracer, match="--sample-interval"):
        check_tracer("sampled", sample_interval=0)
    assert make_tracer("off") is None
    assert isinstance(make_tracer("exact", 5), TracemallocTracer)
    tracer = make_tracer("sampled", 7, 4096)
    assert isinstance(tracer, SampledTracer) and tracer.frames == 7 and tracer.interval == 4096
    assert make_tracer("sampled").interval == DEFAULT_SAMPLE_INTERVAL  # type: ignore[union-attr]


def test_sampled_falls_back_to_exact_with_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sampled_module, "_module", None)
    monkeypatch.setattr(sampled_module, "_unavailable", "no compiler was found when leaksoak was installed")
    warnings: list[str] = []
    tracer = make_tracer("sampled", 10, warn=warnings.append)
    assert isinstance(tracer, TracemallocTracer)
    assert warnings == ["the sampled tracer is unavailable (no compiler was found when leaksoak was installed); "
                        "tracing exactly with tracemalloc instead"]


def test_one_frame_rule_for_every_tracer() -> None:
    driver = next(iter(DRIVER_FILES))
    probes = os.path.join(os.path.dirname(sampled_module.__file__), "inprocess.py")
    rule = FrameFilter()
    app = ("/app/handlers.py", 12)
    assert rule.workload_frames((app, ("/app/main.py", 3), (driver, 50), ("/x.py", 1))) == (app, ("/app/main.py", 3))
    assert rule.workload_frames((app, (probes, 40), (driver, 50))) == ()  # leaksoak's own memory
    assert rule.workload_frames(((driver, 50), app)) == ()
    for tracer in (TracemallocTracer(), SampledTracer()):
        assert isinstance(tracer._filter, FrameFilter)


def test_the_driver_files_are_named_as_their_frames_name_them() -> None:
    """runpy (which runs the agent's service) is frozen from 3.11: its frames are in "<frozen runpy>",
    not in the file its spec names, and a trace is cut there on every version."""
    import runpy

    assert runpy.run_path.__code__.co_filename in DRIVER_FILES
    assert all(name.startswith("<frozen ") or os.path.isfile(name) for name in DRIVER_FILES), DRIVER_FILES


def test_sampled_tracer_collects_estimates_cut_at_the_driver() -> None:
    tracer = SampledTracer(frames=10, interval=1024)
    tracer.start()
    try:
        kept = [bytes(500) for _ in range(4000)]  # KEPT
        result = tracer.collect()
    finally:
        tracer.stop()
    line = next(n for n, text in enumerate(Path(__file__).read_text().splitlines(), 1) if text.endswith("# KEPT"))
    here = [site for site in result.sites if site.frames[0] == (__file__, line)]
    assert here and result.sample_interval == 1024 and result.weight == 1024.0
    size = sum(site.size for site in here)
    assert abs(size - sys.getsizeof(kept[0]) * len(kept)) < 0.2 * sys.getsizeof(kept[0]) * len(kept)
    assert all(site.samples and site.samples > 0 for site in here)
    assert result.traced_bytes >= size and result.tracer_overhead_bytes > 0
    del kept


def test_bad_tracer_options_are_one_line_and_exit_2(tmp_path: Path) -> None:
    db = tmp_path / "soak.db"
    target = f"{REFERENCE / 'leaky_dict_cache.py'}:step"
    for extra, message in ((("--tracer", "fast"), "--tracer must be one of sampled, exact, off"),
                           (("--sample-interval", "0"), "--sample-interval '0' must be at least one byte"),
                           (("--sample-interval", "lots"), "--sample-interval 'lots' is not a size")):
        result = run_soak("run", target, "--duration", "2s", "--interval", "1s", "--db", str(db), *extra)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not db.exists()  # nothing half-written
    result = run_soak("ci", target, "--duration", "2s", "--db", str(db), "--tracer", "fast")
    assert result.returncode == 2 and "--tracer must be one of" in result.stderr


@pytest.mark.parametrize("tracer", ["sampled", "exact"])
def test_each_tracer_pins_the_leak_and_the_report_says_which(tracer: str, tmp_path: Path) -> None:
    path = REFERENCE / "leaky_dict_cache.py"
    db = tmp_path / "soak.db"
    result = run_soak("run", f"{path}:step", "--db", str(db), *SHORT, "--tracer", tracer)
    assert result.returncode == 1, result.stderr
    report = result.json()
    assert report["run"]["tracer"] == tracer
    assert report["run"]["sample_interval"] == (DEFAULT_SAMPLE_INTERVAL if tracer == "sampled" else None)
    first = report["findings"][0]
    assert first["where"]["file"] == str(path) and first["where"]["line"] in leak_lines(path)
    text = run_soak("report", "--db", str(db)).stdout
    assert ("heap figures are estimates from allocations sampled every 16.0 KiB" in text) == (tracer == "sampled")


def test_agent_with_a_bad_tracer(tmp_path: Path) -> None:
    script = tmp_path / "service.py"
    script.write_text("print('service ran')\n")
    bad = subprocess.run([sys.executable, "-m", "soak.agent", "--tracer", "fast", "--", str(script)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--tracer must be one of sampled, exact, off" in bad.stderr
    assert "service ran" not in bad.stdout  # refused before the service starts
    # In the service's own code, a bad tracer is one line on stderr, and the service goes on.
    code = textwrap.dedent(f"""
        import soak.agent
        agent = soak.agent.start({str(tmp_path / 'a' / 'agent.sock')!r}, tracer="fast")
        print("agent", agent)
        agent = soak.agent.start({str(tmp_path / 'a' / 'agent.sock')!r}, sample_interval=0)
        print("agent", agent)
        print("service goes on")
    """)
    started = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    assert started.stdout.splitlines() == ["agent None", "agent None", "service goes on"]
    lines = started.stderr.strip().splitlines()
    assert lines == ["leaksoak agent not started: --tracer must be one of sampled, exact, off, not 'fast'",
                     "leaksoak agent not started: --sample-interval must be at least 1 byte"]


def test_the_worker_measures_what_is_reachable_not_garbage_awaiting_collection() -> None:
    """Cyclic garbage waits for a full collection, which CPython runs rarely: the worker's
    probes collect first, so that it is not counted (and a clean workload that makes cycles is
    not a growing one). The agent's probes leave the service's collector alone."""
    import gc

    from soak.inprocess.probes.inprocess import InProcessProbes

    class Node:
        def __init__(self) -> None:
            self.me = self
            self.payload = bytes(10_000)  # CYCLE

    tracer = SampledTracer(frames=5, interval=1024)
    tracer.start()
    gc.disable()
    try:
        for _ in range(200):
            Node()
        line = next(n for n, text in enumerate(Path(__file__).read_text().splitlines(), 1) if text.endswith("# CYCLE"))

        def garbage_bytes(probes: InProcessProbes) -> tuple[int, float | None]:
            body = probes.collect()
            stacks = {int(k): v for k, v in body["new_stacks"].items()}
            size = sum(s[1] for s in body["sites"] if tuple(stacks.get(s[0], [[None, None]])[0]) == (__file__, line))
            return size, body["pause_ms"].get("gc_collect")

        assert garbage_bytes(InProcessProbes(tracer))[0] > 1_000_000  # the agent's view: garbage is there
        size, pause = garbage_bytes(InProcessProbes(tracer, collect_garbage=True))
        assert size == 0 and pause is not None and pause > 0  # the worker's: collected, and its cost recorded
    finally:
        gc.enable()
        tracer.stop()
