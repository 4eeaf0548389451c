"""The fleet summary (``soak fleet``) as text, JSON (``leaksoak.fleet/1``), Markdown or HTML."""

from __future__ import annotations

import json
from html import escape
from typing import TYPE_CHECKING, Any

from soak.model.verdicts import VERDICTS
from soak.reports.markdown import code, text
from soak.reports.presenter import human_bytes
from soak.reports.text import display_path

SCHEMA = "leaksoak.fleet/1"

if TYPE_CHECKING:
    from soak.judging.fleet import Fleet, FleetFinding


def render_fleet(fleet: Fleet, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(fleet_dict(fleet), indent=2) + "\n"
    if fmt == "markdown":
        return _markdown(fleet)
    if fmt == "html":
        return _html(fleet)
    return _text(fleet)


def fleet_dict(fleet: Fleet) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "findings": [{
            "id": f.id, "runs": f.runs, "hosts": f.hosts,
            "where": f.where.as_dict() if f.where else None,
            "library": f.library,
            "growth_bytes_per_hour": {"min": f.growth_bytes_per_hour.min, "median": f.growth_bytes_per_hour.median,
                                      "max": f.growth_bytes_per_hour.max},
            "kind": f.kind, "verdict": f.verdict, "verdicts": f.verdicts, "resource": f.resource,
            "host_names": f.host_names, "targets": f.targets,
        } for f in fleet.findings],
        "targets": [{"target": t.target, "hosts": t.hosts} for t in fleet.targets],
        "runs": [{"id": r.id, "name": r.name, "target": r.target, "host": r.host, "status": r.status,
                  "verdict": r.verdict, "started_at": r.started_at,
                  "source": {"file": r.source_file, "run_id": r.source_run_id} if r.source_file else None}
                 for r in fleet.runs],
    }


def _where(finding: FleetFinding) -> str:
    if finding.where is not None:
        return f"{display_path(finding.where.file)}:{finding.where.line} in {finding.where.function}"
    return finding.resource or finding.kind


def _rates(finding: FleetFinding) -> str:
    growth = finding.growth_bytes_per_hour
    if growth.median is None:
        return "?"
    if growth.min == growth.max:
        return f"{human_bytes(growth.median)}/h"
    return f"{human_bytes(growth.median)}/h (from {human_bytes(growth.min)} to {human_bytes(growth.max)})"


def _headline(fleet: Fleet) -> str:
    hosts = {r.host for r in fleet.runs}
    return (f"{len(fleet.runs)} runs on {len(hosts)} hosts, {len({r.target for r in fleet.runs})} targets; "
            f"{len(fleet.findings)} findings")


def _text(fleet: Fleet) -> str:
    lines = [f"leaksoak fleet: {_headline(fleet)}", ""]
    for f in fleet.findings:
        lines.append(f"{f.verdict.upper():8} {f.id}  {_where(f)}")
        lines.append(f"         on {f.runs} runs, {f.hosts} hosts ({', '.join(f.host_names)}); "
                     f"{_rates(f)}; library {f.library or '-'}")
    if fleet.findings:
        lines.append("")
    lines.append("targets:")
    for t in fleet.targets:
        lines.append(f"  {t.target}")
        for verdict, hosts in t.hosts.items():
            lines.append(f"    {verdict:12} on {', '.join(hosts)}")
    return "\n".join(lines) + "\n"


def _markdown(fleet: Fleet) -> str:
    lines = ["## leaksoak fleet", "", text(_headline(fleet)), ""]
    if fleet.findings:
        lines += ["| verdict | finding | where | runs | hosts | growth (median, min–max) | library |",
                  "|---|---|---|---:|---:|---|---|"]
        for f in fleet.findings:
            lines.append(f"| {f.verdict} | {code(f.id, cell=True)} | {code(_where(f), cell=True)} | {f.runs} | {f.hosts} "
                         f"| {text(_rates(f))} | {text(f.library or '-')} |")
        lines.append("")
    lines += ["| target | leak | suspect | clean | inconclusive |", "|---|---|---|---|---|"]
    for t in fleet.targets:
        cells = [text(", ".join(t.hosts.get(v, [])) or "-") for v in VERDICTS]
        lines.append(f"| {code(t.target, cell=True)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _html(fleet: Fleet) -> str:
    rows = "".join(
        f"<tr class='{escape(f.verdict)}'><td>{escape(f.verdict)}</td><td><code>{escape(f.id)}</code></td>"
        f"<td><code>{escape(_where(f))}</code></td><td>{f.runs}</td><td>{f.hosts}</td>"
        f"<td>{escape(_rates(f))}</td><td>{escape(f.library or '-')}</td></tr>"
        for f in fleet.findings
    )
    targets = "".join(
        f"<tr><td><code>{escape(t.target)}</code></td>"
        + "".join(f"<td>{escape(', '.join(t.hosts.get(v, [])) or '-')}</td>" for v in VERDICTS)
        + "</tr>"
        for t in fleet.targets
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>leaksoak fleet</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}"
        "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}tr.leak td:first-child{color:#b00}"
        "tr.suspect td:first-child{color:#a60}</style></head><body>"
        f"<h1>leaksoak fleet</h1><p>{escape(_headline(fleet))}</p>"
        "<h2>Findings</h2><table><tr><th>verdict</th><th>finding</th><th>where</th><th>runs</th><th>hosts</th>"
        f"<th>growth (median, min–max)</th><th>library</th></tr>{rows}</table>"
        "<h2>Targets</h2><table><tr><th>target</th><th>leak</th><th>suspect</th><th>clean</th><th>inconclusive</th></tr>"
        f"{targets}</table></body></html>\n"
    )
