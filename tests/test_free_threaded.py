"""A free-threaded CPython (3.13t, built without the GIL): the sampled tracer is refused with one
line, and the exact tracer runs.

No machine here carries a free-threaded build, so the refusal is tested with the build's flag
patched: the logic that reads it and what each entry point (``soak run``, the agent) does with
the answer. That ``sysconfig``'s ``Py_GIL_DISABLED`` is what a free-threaded build sets is
CPython's documented contract, not tested here; the C extension also refuses to load on one
(``SAMPLER_UNSUPPORTED`` in soak/_sampler.c), which needs such a build to test.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest
from conftest import REFERENCE

import soak.agent
from soak.cli import main
from soak.inprocess.probes import sampled, tracer
from soak.inprocess.probes.exact import TracemallocTracer
from soak.inprocess.probes.tracer import BadTracer, check_tracer, make_tracer


@pytest.fixture
def free_threaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracer, "free_threaded", lambda: True)


def test_the_build_flag_is_read_from_sysconfig() -> None:
    assert sampled.free_threaded() is bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    assert sampled.free_threaded() is False  # the interpreters this suite runs on have the GIL


def test_the_sampled_tracer_is_refused_with_one_line_and_exact_runs(free_threaded: None) -> None:
    with pytest.raises(BadTracer) as refused:
        check_tracer("sampled")
    message = str(refused.value)
    assert "\n" not in message and "free-threaded" in message and "pass --tracer exact" in message
    with pytest.raises(BadTracer):
        make_tracer("sampled", warn=pytest.fail)  # refused, not fallen back from with a warning
    check_tracer("exact")
    check_tracer("off")
    assert isinstance(make_tracer("exact"), TracemallocTracer)


def test_soak_run_refuses_it_before_anything_runs(free_threaded: None, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "soak.db"
    with pytest.raises(SystemExit) as exited:
        main(["run", f"{REFERENCE / 'leaky_dict_cache.py'}:step", "--tracer", "sampled", "--duration", "2s", "--db", str(db)])
    assert exited.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("soak: error: --tracer sampled (the default) cannot run on a free-threaded Python")
    assert not db.exists()  # nothing half-written


def test_the_agent_refuses_it_with_one_line(free_threaded: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "service.py"
    script.write_text("print('service ran')\n")
    assert soak.agent.main(["--tracer", "sampled", "--", str(script)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "free-threaded" in err[0]
    # started from the service's own code: one line, and the service goes on
    assert soak.agent.start(str(tmp_path / "a" / "agent.sock"), tracer="sampled") is None
    assert capsys.readouterr().err.startswith("leaksoak agent not started: --tracer sampled (the default) cannot run on a free-threaded")
