"""leaksoak as a user installs it: its version, its metadata, and the processes that run user code
(the worker, the agent) importing leaksoak from where it is installed, whatever folder named
``soak`` the current directory or the workload's folder holds.

.ci/versions runs this file against the wheel installed in a fresh venv on each Python; under the
editable install of the default interpreter, a ``soak/`` folder in the current directory was
found before the installed package too (sys.path before the editable finder), so the project
folders here raise on import to show it."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import Result, run_soak

import soak
from soak.judging.suppressions import parse_rules

SHORT = ("--duration", "5s", "--interval", "0.25s", "--format", "json", "--quiet")
NOT_OURS = "raise ImportError('the project\\'s own soak package was imported')\n"
"""A project's own ``soak/__init__.py``, here: importing it is the failure."""


def test_soak_version_answers_with_the_installed_version() -> None:
    assert soak.__version__ == importlib.metadata.version("leaksoak")
    result = run_soak("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"leaksoak {soak.__version__} ({platform.python_implementation()} {platform.python_version()}, ")


def test_the_package_declares_tomli_where_the_standard_library_has_no_tomllib() -> None:
    requires = [r.replace(" ", "").replace("'", '"') for r in importlib.metadata.requires("leaksoak") or []]
    assert any(r.startswith("tomli") and r.endswith(';python_version<"3.11"') for r in requires), requires
    # and on this Python, whichever reads it, a rules file is read
    [rule] = parse_rules('[[suppress]]\nid = "x"\nreason = "known"\ncall_site = "*app.py:handler"\n', "leaksoak.toml")
    assert rule.id == "x" and rule.call_site == "*app.py:handler"


def test_the_package_says_it_is_typed() -> None:
    assert importlib.resources.files("soak").joinpath("py.typed").is_file()


def _project(root: Path) -> Path:
    """A project with its own ``soak/`` package and a workload that imports the project's modules."""
    (root / "soak").mkdir(parents=True)
    (root / "soak" / "__init__.py").write_text(NOT_OURS)
    (root / "payloads.py").write_text("def payload() -> bytes:\n    return bytes(1000)\n")
    (root / "loadtest.py").write_text(textwrap.dedent("""\
        import payloads

        _kept = []


        def step() -> None:
            _kept.append(payloads.payload())  # LEAK
    """))
    return root


def _pinned(result: Result, path: Path, line: int) -> None:
    assert result.returncode == 1, result.stderr
    assert "own soak package" not in result.stderr
    first = result.json()["findings"][0]
    assert (first["where"]["file"], first["where"]["line"]) == (str(path), line)


def test_a_workload_run_from_a_project_with_its_own_soak_package(tmp_path: Path) -> None:
    """A module target found from the current directory, as ``python -m`` would, whose folder has
    a ``soak/`` package: the worker imports the installed leaksoak, then the workload its own modules."""
    project = _project(tmp_path / "project")
    result = run_soak("run", "loadtest:step", "--db", str(tmp_path / "soak.db"), *SHORT, cwd=project)
    _pinned(result, project / "payloads.py", 2)


def test_a_workload_file_whose_folder_holds_a_soak_package(tmp_path: Path) -> None:
    project = _project(tmp_path / "project")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_soak("run", f"{project / 'loadtest.py'}:step", "--db", str(tmp_path / "soak.db"), *SHORT, cwd=elsewhere)
    _pinned(result, project / "payloads.py", 2)


def test_the_agent_script_runs_a_service_from_a_project_with_its_own_soak_package(tmp_path: Path) -> None:
    """``soak-agent`` (unlike ``python -m soak.agent``, which Python resolves from the current
    directory first) starts the installed agent, then runs the service as ``python app.py`` would."""
    project = _project(tmp_path / "project")
    (project / "service.py").write_text(textwrap.dedent("""\
        import os
        import sys

        import payloads

        print(os.path.exists(sys.argv[1]), len(payloads.payload()), sys.argv[1:] == [sys.argv[1]], __file__)
    """))
    script = shutil.which("soak-agent", path=os.path.dirname(sys.executable))
    assert script, "soak-agent is not installed beside this Python (pip install -e . again?)"
    socket = tmp_path / "a" / "agent.sock"
    done = subprocess.run([script, "--socket", str(socket), "--tracer", "exact", "--", "service.py", str(socket)],
                          capture_output=True, text=True, cwd=project, timeout=60)
    assert done.returncode == 0, done.stderr
    # the agent listens; the service imports its own modules, gets its arguments, and its __file__
    # is absolute, as under python service.py
    assert done.stdout.split("\n")[0] == f"True 1000 True {project / 'service.py'}", done.stdout + done.stderr


ANALYSIS_STACK = ("typer", "click", "apscheduler", "sqlite_utils", "psutil", "numpy", "scipy", "prometheus_client",
                  "rich", "memray", "elftools", "tomli", "yaml")
"""leaksoak's dependencies that the agent is not to need (pip install --no-deps leaksoak)."""


@pytest.mark.parametrize("tracer", ["sampled", "exact"])
def test_the_agent_runs_and_answers_without_the_analysis_stack(tracer: str, tmp_path: Path) -> None:
    """The agent, in a process where no dependency of leaksoak can be imported, starts and
    answers a snapshot; no import of one is even tried. (.ci/versions does the same in a venv
    with ``pip install --no-deps`` of the wheel.)"""
    code = textwrap.dedent(f"""\
        import importlib.abc, json, socket, sys

        attempted = []

        class Refuse(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in {ANALYSIS_STACK!r}:
                    attempted.append(name)
                    raise ModuleNotFoundError(f"no module named {{name!r}} (refused)", name=name)
                return None

        sys.meta_path.insert(0, Refuse())
        import soak.agent
        from soak.inprocess.protocol import Channel

        path = {str(tmp_path / "a" / "agent.sock")!r}
        assert soak.agent.start(path, tracer={tracer!r}) is not None
        kept = [bytes(1000) for _ in range(5000)]
        client = socket.socket(socket.AF_UNIX)
        client.connect(path)
        channel = Channel(client.makefile("rb"), client.makefile("wb"))
        channel.send("hello")
        hello = channel.receive()
        channel.send("snapshot", seq=1)
        snapshot = channel.receive()
        print(json.dumps({{"attempted": attempted, "hello": hello["type"], "snapshot": snapshot["type"],
                          "error": snapshot.get("message"), "sites": len(snapshot.get("sites") or [])}}))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["attempted"] == [] and (answer["hello"], answer["snapshot"]) == ("hello", "snapshot"), answer
    assert answer["sites"] > 0, answer
