"""Fleet-safe /metrics, the example Prometheus rules under promtool, and a real fleet: two
sidecars scraped by a real Prometheus server on 127.0.0.1, their databases merged."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from soak.analyzers import Analysis
from soak.judging.analysis import Refreshed, projection
from soak.model.finding import Finding, Frame
from soak.supervisor.metrics import FIXED_SERIES, SoakCollector, max_series, published_findings, serve_metrics

EXAMPLES = REPO / "examples" / "prometheus"
PROMTOOL = shutil.which("promtool")


def _refreshed(findings: int) -> Refreshed:
    """An analysis refresh with ``findings`` leaking sites, each on its own line."""
    rows = [
        Finding(finding_id=f"{n:016x}", kind="site", verdict="leak" if n % 3 else "suspect",
                traceback=[Frame(f"/srv/app/module_{n}.py", n + 1, f"handler_{n}")], library="application", call_site=None,
                growth_bytes_per_hour=1e6 - n, growth_count_per_hour=10.0, p_value=1e-6, q_value=1e-5, confidence=0.99,
                detected_at_s=None, resource=None, stack_id=n)
        for n in range(findings)
    ]
    return Refreshed(Analysis("leak", [], 0.0, 0, 0), rows, 100.0, projection([], 0.0, None))


def _series(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples]


def _scrape(state: dict[str, object], top: int) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SoakCollector(lambda: state, top))
    return generate_latest(registry).decode()


def _state(findings: int, top: int) -> dict[str, object]:
    process = {"rss": 1 << 30, "uss": 1 << 29, "pss": 1 << 29, "cgroup_bytes": 1 << 30, "cgroup_limit": 1 << 32,
               "traced_bytes": 1 << 28}
    return {"run_name": "shop", "run_id": 7, "target": "pid:42", "verdict": "leak", "snapshots": 12, "pause_ms": 3.0,
            "process": process, "seconds_until_limit": 3600.0, **published_findings(_refreshed(findings), top)}


@pytest.mark.parametrize("top", [0, 1, 10, 50])
def test_thousands_of_findings_give_a_bounded_number_of_series(top: int) -> None:
    text = _scrape(_state(5000, top), top)
    series = _series(text)
    assert len(series) == max_series(top) == 2 * top + FIXED_SERIES
    growth = [labels for name, labels, _ in series if name == "leaksoak_finding_growth_bytes_per_hour"]
    assert len(growth) == top and all(set(labels) == {"finding_id"} for labels in growth)
    info = {labels["finding_id"]: labels for name, labels, _ in series if name == "leaksoak_finding_info"}
    assert list(info) == [labels["finding_id"] for labels in growth]  # joined by finding_id, most severe first
    (not_exported,) = [value for name, _, value in series if name == "leaksoak_findings_not_exported"]
    assert not_exported == 5000 - top


def test_findings_are_described_in_the_info_metric() -> None:
    series = _series(_scrape(_state(3, 10), 10))
    info = [labels for name, labels, _ in series if name == "leaksoak_finding_info"]
    assert info[1] == {"finding_id": f"{1:016x}", "kind": "site", "verdict": "leak", "where": "module_1.py:2",
                       "function": "handler_1", "library": "application", "resource": ""}
    states = {labels["leaksoak_verdict"]: value for name, labels, value in series if name == "leaksoak_verdict"}
    assert states == {"leak": 1.0, "suspect": 0.0, "clean": 0.0, "inconclusive": 0.0}
    (run,) = [labels for name, labels, _ in series if name == "leaksoak_run_info"]
    assert run["run"] == "shop" and run["run_id"] == "7" and run["target"] == "pid:42" and run["host"]
    (until,) = [value for name, _, value in series if name == "leaksoak_seconds_until_memory_limit"]
    assert until == 3600.0
    assert [value for name, _, value in series if name == "leaksoak_findings_not_exported"] == [0.0]


def test_the_collector_bounds_series_even_when_the_state_holds_more() -> None:
    state = _state(2000, 2000)  # a state publishing every finding: the collector still cuts at its top
    assert len(_series(_scrape(state, 5))) == max_series(5)


def test_served_metrics_stay_bounded_and_openmetrics_parses(unused_port: int) -> None:
    state = _state(3000, 10)
    server = serve_metrics(lambda: state, unused_port, top=10)
    try:
        plain = urllib.request.urlopen(f"http://127.0.0.1:{unused_port}/metrics", timeout=5).read().decode()
        request = urllib.request.Request(f"http://127.0.0.1:{unused_port}/metrics",
                                         headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        openmetrics = urllib.request.urlopen(request, timeout=5).read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert len(_series(plain)) == max_series(10)
    assert "# TYPE leaksoak_verdict stateset" in openmetrics and "# TYPE leaksoak_finding info" in openmetrics
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families

    families = list(openmetrics_families(openmetrics))  # type: ignore[no-untyped-call]  # prometheus_client's parser is untyped
    assert sum(len(family.samples) for family in families) == max_series(10)


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian package prometheus)")


@needs_promtool
def test_example_rules_pass_their_promtool_unit_tests() -> None:
    rules = sorted(p for p in EXAMPLES.glob("*.yml") if "test" not in p.name and p.name != "prometheus.yml")
    tests = sorted(EXAMPLES.glob("*test*.yml"))
    assert rules and tests
    assert PROMTOOL is not None
    for command in ([PROMTOOL, "check", "rules", *map(str, rules)], [PROMTOOL, "test", "rules", *map(str, tests)]):
        result = subprocess.run(command, cwd=EXAMPLES, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


def test_the_scrape_config_and_the_dashboard_are_well_formed() -> None:
    import yaml

    config = yaml.safe_load((EXAMPLES / "prometheus.yml").read_text())
    assert [(EXAMPLES / f).exists() for f in config["rule_files"]] == [True]
    (job,) = config["scrape_configs"]
    assert job["sample_limit"] >= max_series(10)
    dashboard = json.loads((EXAMPLES / "grafana-dashboard.json").read_text())
    assert dashboard["uid"] == "leaksoak-fleet" and len(dashboard_queries()) >= 7


def dashboard_queries() -> list[str]:
    """The dashboard's PromQL, with its ``$app`` variable set to match every app."""
    dashboard = json.loads((EXAMPLES / "grafana-dashboard.json").read_text())
    return [t["expr"].replace("$app", ".*") for p in dashboard["panels"] for t in p["targets"]]


PROMETHEUS = shutil.which("prometheus")


class PrometheusServer:
    """A real Prometheus on 127.0.0.1 scraping the given sidecars every second, with the example rules."""

    def __init__(self, tmp: Path, targets: dict[str, int]) -> None:
        assert PROMETHEUS is not None
        self.port = _port()
        static = [{"targets": [f"127.0.0.1:{port}"], "labels": {"app": "shop", "pod": pod}} for pod, port in targets.items()]
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "rule_files": [str(EXAMPLES / "leaksoak-rules.yml")],
                  "scrape_configs": [{"job_name": "leaksoak", "static_configs": static}]}
        (tmp / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        self.log = tmp / "prometheus.log"
        self._log = open(self.log, "w")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=self._log,
        )

    def get(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}?{urllib.parse.urlencode(params)}"
        body = json.loads(urllib.request.urlopen(url, timeout=5).read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.get("/api/v1/query", query=expr)["result"]  # type: ignore[no-any-return]

    def value(self, expr: str) -> dict[str, float]:
        """Each series of an instant query as its pod (or finding id) and value."""
        return {r["metric"].get("pod", r["metric"].get("finding_id", "")): float(r["value"][1]) for r in self.query(expr)}

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def _port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _until(deadline: float, check: Callable[[], bool]) -> bool:
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


@pytest.mark.skipif(PROMTOOL is None or PROMETHEUS is None, reason="prometheus is not installed (Debian package prometheus)")
def test_two_sidecars_scraped_by_a_real_prometheus_then_merged(tmp_path: Path) -> None:
    from conftest import leak_lines, run_soak, soak_command
    from test_watch import SERVICE, Service

    top = 3
    services: list[Service] = []
    watchers: dict[str, subprocess.Popen[str]] = {}
    prometheus: PrometheusServer | None = None
    ports = {"shop-leaky": _port(), "shop-clean": _port()}
    started = time.monotonic()
    try:
        for pod, path in (("shop-leaky", "/leak"), ("shop-clean", "/ok")):
            (tmp_path / pod).mkdir()
            service = Service(tmp_path / pod, agent=True)
            services.append(service)
            service.load(path, 60)
            watchers[pod] = subprocess.Popen(
                [*soak_command(), "watch", "--pid", str(service.proc.pid), "--socket", str(service.socket),
                 "--db", str(tmp_path / f"{pod}.db"), "--name", pod, "--duration", "60s", "--interval", "0.5s",
                 "--metrics-port", str(ports[pod]), "--metrics-top", str(top), "--memory-limit", "4GiB",
                 "--format", "json", "-q"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
        prometheus = PrometheusServer(tmp_path, ports)
        server = prometheus
        deadline = time.monotonic() + 60

        assert _until(deadline, lambda: urllib.request.urlopen(f"http://127.0.0.1:{server.port}/-/ready", timeout=2).status == 200), \
            server.log.read_text()
        # the leak judged, its finding recorded by the rules, and the clean pod judged too
        assert _until(deadline, lambda: server.value('app_finding:leaksoak_leak_pods:count{app="shop"}') != {}
                      and server.value('leaksoak_verdict{leaksoak_verdict=~"clean|leak"} == 1').keys() == set(ports)), \
            (server.query('leaksoak_verdict == 1'), server.log.read_text())
        judged_s = time.monotonic() - started

        infos = server.query('leaksoak_finding_info{pod="shop-leaky"}')
        leak_id = next(i["metric"]["finding_id"] for i in infos
                       if i["metric"]["where"] in {f"{SERVICE.name}:{n}" for n in leak_lines(SERVICE)})
        assert server.value(f'leaksoak_finding_growth_bytes_per_hour{{finding_id="{leak_id}"}}').keys() == {"shop-leaky"}
        assert server.value('leaksoak_verdict{leaksoak_verdict="leak"} == 1').keys() == {"shop-leaky"}
        assert server.value('leaksoak_verdict{leaksoak_verdict="clean"} == 1').keys() == {"shop-clean"}
        # bounded: what each scrape held, and the series stored per pod
        scraped = server.value('scrape_samples_scraped{job="leaksoak"}')
        stored = server.value('count by (pod) ({job="leaksoak", __name__=~"leaksoak_.+"})')
        assert scraped.keys() == stored.keys() == set(ports)
        assert all(n <= max_series(top) for n in (*scraped.values(), *stored.values())), (scraped, stored)
        # the recording rules over the two pods, once an evaluation has followed both pods' scrapes
        # (a rule evaluated between the first pod's scrape and the second's counts one pod)
        rules_deadline = time.monotonic() + 30
        assert _until(rules_deadline, lambda: server.value('app:leaksoak_pods:count') == {"": 2.0}), \
            server.value('app:leaksoak_pods:count')
        assert _until(rules_deadline, lambda: server.value('app:leaksoak_verdict_pods:count{leaksoak_verdict="leak"}')
                      == {"": 1.0}), server.value('app:leaksoak_verdict_pods:count{leaksoak_verdict="leak"}')
        assert server.value('app_finding:leaksoak_leak_pods:count')[leak_id] == 1.0
        assert _until(rules_deadline, lambda: server.value('app_finding:leaksoak_leak_pods:ratio').get(leak_id) == 0.5), \
            server.value('app_finding:leaksoak_leak_pods:ratio')
        growth = server.value(f'leaksoak_finding_growth_bytes_per_hour{{finding_id="{leak_id}"}}')["shop-leaky"]
        recorded = server.value('app_finding:leaksoak_finding_growth_bytes_per_hour:max')[leak_id]
        assert growth > 0 and recorded > 0  # the same gauge, up to one scrape apart
        rules = [r for g in server.get("/api/v1/rules")["groups"] for r in g["rules"]]
        assert len(rules) == 9 and all(r["health"] == "ok" for r in rules), rules
        for expr in dashboard_queries():
            server.query(expr)  # each panel's query is valid PromQL over these series
        top_findings = server.query(dashboard_queries()[1])
        assert leak_id in {r["metric"]["finding_id"] for r in top_findings}
        print(f"\nfleet test: both verdicts in Prometheus after {judged_s:.1f}s; series per pod stored {stored}, "
              f"scraped {scraped} (bound {max_series(top)}); rules {len(rules)}")
    finally:
        if prometheus is not None:
            prometheus.close()
        for watcher in watchers.values():  # end the watches as Ctrl-C would, rather than wait out 60 s
            if watcher.poll() is None:
                watcher.send_signal(signal.SIGINT)
        outcomes = {pod: (w.communicate(timeout=60), w.returncode) for pod, w in watchers.items()}
        for service in services:
            service.close()
    assert outcomes["shop-leaky"][1] == 1 and outcomes["shop-clean"][1] == 0, outcomes

    merged = tmp_path / "fleet.db"
    result = run_soak("merge", str(merged), str(tmp_path / "shop-leaky.db"), str(tmp_path / "shop-clean.db"))
    assert result.returncode == 0 and result.stdout.count("1 runs merged") == 2, result.stdout + result.stderr
    summary = json.loads(run_soak("fleet", "--db", str(merged), "--format", "json").stdout)
    by_id = {f["id"]: f for f in summary["findings"]}
    assert by_id[leak_id]["runs"] == 1 and by_id[leak_id]["hosts"] == 1 and by_id[leak_id]["verdict"] == "leak"
    assert by_id[leak_id]["where"]["file"] == str(SERVICE)
    runs = {r["name"]: r for r in summary["runs"]}
    assert (runs["shop-leaky"]["verdict"], runs["shop-clean"]["verdict"]) == ("leak", "clean")
    assert all(r["source"]["run_id"] == 1 for r in runs.values())  # run 1 on each sidecar, two runs here
    targets = {t["target"]: t["hosts"] for t in summary["targets"]}
    assert [list(targets[runs[pod]["target"]]) for pod in ("shop-leaky", "shop-clean")] == [["leak"], ["clean"]]
    report = run_soak("report", "--db", str(merged), "--run", str(runs["shop-leaky"]["id"]), "--format", "json").json()
    assert report["findings"][0]["id"] == leak_id
