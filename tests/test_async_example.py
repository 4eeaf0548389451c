"""The async RAG-style example (examples/rag_service): one soak of its handler, with the fake LLM
server a real process on 127.0.0.1, reports the conversation history's leak at its line and the
LLM client's hidden thread pool at the client's line and the application's call."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from conftest import REPO, run_soak

EXAMPLE = REPO / "examples" / "rag_service"


def _marked(path: Path, mark: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if line.rstrip().endswith(f"# {mark}"))


def test_the_example_soak_reports_the_history_leak_and_the_hidden_pool(db: Path) -> None:
    result = run_soak("run", f"{EXAMPLE / 'soak_target.py'}:ask", "--concurrency", "4", "--duration", "10s",
                      "--interval", "0.25s", "--db", str(db), "--format", "json")
    assert result.returncode == 1, result.stdout + result.stderr
    report = result.json()
    assert report["verdict"] == "leak"
    rag, client = EXAMPLE / "app" / "rag.py", EXAMPLE / "llmclient" / "client.py"
    leak = next(f for f in report["findings"] if f["kind"] in ("site", "library"))
    assert (leak["where"]["file"], leak["where"]["line"]) == (str(rag), _marked(rag, "LEAK"))
    assert leak["verdict"] == "leak"
    [pool] = [f for f in report["findings"] if f["kind"] == "async"]
    assert pool["resource"] == "thread_pools" and pool["verdict"] == "suspect"
    assert (pool["where"]["file"], pool["where"]["line"]) == (str(client), _marked(client, "HIDDEN POOL"))
    assert (pool["call_site"]["file"], pool["call_site"]["line"]) == (str(rag), _marked(rag, "CALLS THE CLIENT"))
    assert pool["evidence"]["submitted"] == "llmclient.client.LLMClient._post"
    assert pool["evidence"]["share"] > 0.5  # the fake LLM's 20 ms dwarfs the embedding and the search
    markdown = run_soak("report", "--db", str(db), "--format", "markdown").stdout
    assert "waiting in a thread pool" in markdown and "LLMClient.complete" in markdown
    html = run_soak("report", "--db", str(db), "--format", "html").stdout
    assert 'id="chart-loop-lag"' in html and 'id="chart-process"' in html


def test_soak_watch_on_the_example_service_under_the_agent(tmp_path: Path, db: Path) -> None:
    """The service itself, under ``python -m soak.agent``, driven over HTTP by a load in this
    process: ``soak watch`` reports the history leak and the hidden pool from the agent's probes."""
    llm = subprocess.Popen([sys.executable, str(EXAMPLE / "fake_llm.py")], stdout=subprocess.PIPE, text=True)
    socket_path = tmp_path / "agent" / "agent.sock"
    service = None
    stop = threading.Event()
    try:
        assert llm.stdout is not None
        llm_port = int(llm.stdout.readline().split()[-1])
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        service = subprocess.Popen(
            [sys.executable, "-m", "soak.agent", "--socket", str(socket_path), "--",
             str(EXAMPLE / "app" / "server.py"), "--llm", f"http://127.0.0.1:{llm_port}", "--port", str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert service.stdout is not None and service.stdout.readline().startswith("listening"), service.stderr

        def load(n: int) -> None:
            turn = 0
            while not stop.is_set():
                body = json.dumps({"session": f"s{n}", "question": f"who handles billing {turn}"}).encode()
                try:
                    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/ask", data=body), timeout=5).read()
                except OSError:
                    time.sleep(0.05)
                turn += 1

        for n in range(4):
            threading.Thread(target=load, args=(n,), daemon=True).start()
        result = run_soak("watch", "--pid", str(service.pid), "--socket", str(socket_path), "--db", str(db),
                          "--duration", "15s", "--interval", "0.5s", "--format", "json", "-q")
        assert result.returncode == 1, result.stdout + result.stderr
        report = result.json()
        rag, client = EXAMPLE / "app" / "rag.py", EXAMPLE / "llmclient" / "client.py"
        leaks = [f for f in report["findings"] if f["kind"] in ("site", "library")]
        assert any((f["where"]["file"], f["where"]["line"]) == (str(rag), _marked(rag, "LEAK")) for f in leaks), leaks
        [pool] = [f for f in report["findings"] if f["kind"] == "async"]
        assert (pool["where"]["file"], pool["where"]["line"]) == (str(client), _marked(client, "HIDDEN POOL"))
        assert (pool["call_site"]["file"], pool["call_site"]["line"]) == (str(rag), _marked(rag, "CALLS THE CLIENT"))
        assert pool["evidence"]["share_of"] == "wall time"
        assert service.poll() is None  # the service was left running
    finally:
        stop.set()
        for proc in (service, llm):
            if proc is not None:
                proc.kill()
                proc.wait()
