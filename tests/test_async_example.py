"""The async RAG-style example (examples/rag_service): one soak of its handler, with the fake LLM
server a real process on 127.0.0.1, reports the conversation history's leak at its line and the
LLM client's hidden thread pool at the client's line and the application's call."""

from __future__ import annotations

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
