"""``--format html``: one self-contained page with the run, the verdict, charts and tracebacks.

Nothing is fetched: style and script are inline, charts are SVG drawn here, and a
Content-Security-Policy forbids the page any network access. Every text that comes from the
user (names, paths, source lines, event messages) is escaped.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from html import escape
from typing import Any

from soak import __version__
from soak.durations import format_duration
from soak.judging.sources import source_line
from soak.model.finding import Finding, Frame
from soak.model.report import Report
from soak.reports.accepted import NOTE, SECTION, rule_detail
from soak.reports.pauses import pause_note
from soak.reports.presenter import first_frame, growth, human_bytes, label, subject, why
from soak.reports.series import ChartData, FindingChart
from soak.reports.svg import Styled, line_chart, seconds_ticks
from soak.reports.text import display_path, format_confidence, projection_note, tracing_note, verdict_note
from soak.reports.tree import process_line, tree_headline

COLORS = {"rss": "#1f6fd1", "uss": "#8e44ad", "traced": "#e8730c", "site": "#c62828", "fit": "#1b8a3a",
          "lag p99": "#00838f", "lag max": "#9e9d24"}
MAX_FINDINGS = 200
MAX_EVENTS = 500

_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;margin:0;background:#f6f7f9}
main{max-width:1000px;margin:0 auto;padding:18px 20px 40px}
h1{font-size:21px;margin:4px 0 10px}h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #dde;padding-bottom:4px}
h3{font-size:15px;margin:0 0 6px}
code,pre{font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{margin:0;white-space:pre-wrap;word-break:break-all}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e6e8ec;vertical-align:top}
th{font-weight:600;color:#555}td.num{text-align:right;white-space:nowrap}
.meta th{width:150px}
.verdict{padding:10px 14px;border-radius:6px;font-size:16px;font-weight:600;color:#fff;margin:8px 0 4px}
.v-leak{background:#c62828}.v-suspect{background:#b26a00}.v-clean{background:#2e7d32}.v-inconclusive{background:#607080}
.badge{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;font-size:12px;margin-right:6px}
.finding{background:#fff;border:1px solid #e0e3e8;border-radius:6px;padding:12px 14px;margin:12px 0}
.stats,.why,.muted{color:#555;margin:2px 0}
.chart{width:100%;height:auto;display:block;background:#fff;margin:8px 0}
.chart .plot{fill:#fff;stroke:#ccd}.chart .grid{stroke:#eceef2}
.chart text{font:11px system-ui,sans-serif;fill:#555}.chart .ylab{text-anchor:end}.chart .xlab{text-anchor:middle}
.chart .warmup{fill:#8a94a6;fill-opacity:.12}.chart .cut{stroke:#555;stroke-dasharray:4 3}
.chart .segment{stroke:#999;stroke-dasharray:2 3}.chart .detected{stroke:#c62828;stroke-opacity:.6;stroke-dasharray:2 2}
.chart .note{paint-order:stroke;stroke:#fff;stroke-width:3px}.chart .series{fill:none;stroke-linejoin:round}
.chart .fit{stroke-width:2.5;stroke-dasharray:7 4}
.tb{list-style:none;padding:0;margin:8px 0 0}.tb li{padding:3px 0 3px 8px;border-left:3px solid #e0e3e8}
.tb li.alloc{border-left-color:#c62828}.tb li.caller{border-left-color:#1f6fd1}
.tb pre{color:#333;padding-left:16px}
.bar{height:10px;background:#c62828;border-radius:2px;min-width:1px}
footer{color:#888;font-size:12px;margin-top:30px}
"""

_HEAD_SCRIPT = """
(function () {
  var root = document.documentElement, errors = [];
  function record(message) {
    errors.push(String(message));
    root.setAttribute("data-errors", JSON.stringify(errors));
  }
  root.setAttribute("data-errors", "[]");
  window.addEventListener("error", function (e) { record(e.message || "error"); });
  window.addEventListener("unhandledrejection", function (e) { record(e.reason); });
})();
"""

# Once loaded, the page notes what it drew and whether anything was fetched: a check that the
# report can make of itself, and that a headless browser can read back.
_TAIL_SCRIPT = """
window.addEventListener("load", function () {
  var root = document.documentElement;
  var charts = Array.prototype.map.call(document.querySelectorAll("svg.chart"), function (svg) {
    var r = svg.getBoundingClientRect();
    return {id: svg.id, x: r.left + window.scrollX, y: r.top + window.scrollY, w: r.width, h: r.height,
            lines: svg.querySelectorAll("polyline.series").length};
  });
  root.setAttribute("data-charts", JSON.stringify(charts));
  root.setAttribute("data-fetched", String(performance.getEntriesByType("resource").length));
  root.setAttribute("data-ready", "1");
});
"""


def render_html(report: Report, charts: ChartData | None = None) -> str:
    """The page for ``report``; ``charts`` (from ``series.load_chart_data``) adds the charts."""
    run = report.run
    title = f"leaksoak run {run.id} {run.name}: {report.verdict.upper()}"
    body = [
        f"<h1>leaksoak run {run.id} <q>{escape(run.name)}</q></h1>",
        f'<div class="verdict v-{escape(report.verdict)}">{escape(report.verdict.upper())}'
        f"{escape(verdict_note(report).replace(' - ', ' — ', 1))}</div>",
        _run_table(report),
    ]
    projection = projection_note(report.analysis.get("projection")).strip()
    if projection:
        body.append(f'<p class="projection">{escape(projection[0].upper() + projection[1:])}</p>')
    if charts is not None:
        body.extend(_memory(charts))
    if report.processes:
        body.append("<h2>Processes</h2><ul>" + "".join(f"<li>{escape(process_line(p))}</li>" for p in report.processes) + "</ul>")
    if report.tree_findings:
        body.append("<h2>Findings across the processes</h2><ol>"
                    + "".join(f"<li>{escape(tree_headline(t))}</li>" for t in report.tree_findings) + "</ol>")
    body.extend(_findings(report, charts))
    body.extend(_accepted(report))
    body.extend(_libraries(report))
    if charts is not None and charts.types:
        body.extend(_types(charts.types))
    body.extend(_events(report))
    body.append(f"<footer>leaksoak {escape(__version__)} · schema {escape('leaksoak.report/1')}</footer>")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(title)}</title>",
            f"<style>{_STYLE}</style>",
            f"<script>{_HEAD_SCRIPT}</script>",
            "</head>",
            "<body><main>",
            *body,
            "</main>",
            f"<script>{_TAIL_SCRIPT}</script>",
            "</body>",
            "</html>",
            "",
        ]
    )


def _rows(pairs: Iterable[tuple[str, str]]) -> str:
    return "\n".join(f"<tr><th>{escape(key)}</th><td>{value}</td></tr>" for key, value in pairs)


def _run_table(report: Report) -> str:
    run = report.run
    status = escape(run.status) + (f" — {escape(run.status_reason)}" if run.status_reason else "")
    pairs = [
        ("target", f"<code>{escape(run.target)}</code>"),
        ("status", status),
        ("started", escape(run.started_at)),
        ("duration", escape(format_duration(run.duration_s))),
        ("snapshots", f"{run.snapshots:,}"),
        ("calls", f"{run.iterations:,}"),
    ]
    if run.interval_s:
        pairs.append(("interval", escape(format_duration(run.interval_s))))
    if run.mode:
        pairs.append(("mode", escape(run.mode)))
    if run.host:
        pairs.append(("host", escape(run.host)))
    first, last = report.first_snapshot, report.last_snapshot
    if first and last:
        memory = f"worker RSS {human_bytes(first['rss'])} → {human_bytes(last['rss'])}"
        if last.get("traced_bytes") is not None:
            memory += f", traced heap {human_bytes(first['traced_bytes'])} → {human_bytes(last['traced_bytes'])}"
        pairs.append(("memory", escape(memory)))
    tracing = tracing_note(report)
    if tracing:
        pairs.append(("tracer", escape(tracing)))
    pauses = pause_note(report.pauses)
    if pauses:
        pairs.append(("pauses", escape(pauses)))
    if run.options:
        options = json.dumps(run.options, indent=1, sort_keys=True)
        pairs.append(("options", f"<details><summary>as started</summary><pre>{escape(options)}</pre></details>"))
    return f'<table class="meta">\n{_rows(pairs)}\n</table>'


def _memory(charts: ChartData) -> list[str]:
    out = ["<h2>Memory</h2>"]
    marks: dict[str, Any] = {"end_s": charts.end_s, "warmup_until_s": charts.warmup_until_s, "segment_starts": charts.segment_starts}
    if charts.process:
        lines = [Styled(line, COLORS["rss" if line.label == "RSS" else "uss"]) for line in charts.process]
        out.append(line_chart("chart-process", "worker process memory over time", lines, **marks))
    if charts.traced:
        lines = [Styled(line, COLORS["traced"]) for line in charts.traced]
        out.append(line_chart("chart-traced", "traced heap over time", lines, from_zero=True, **marks))
    if len(out) == 1:
        out.append('<p class="muted">No snapshots were stored.</p>')
    else:
        out.append('<p class="muted">The shaded part is the warm-up the analysis set aside.</p>')
    if charts.loop_lag:
        lines = [Styled(line, COLORS[line.label]) for line in charts.loop_lag]
        out.append(line_chart("chart-loop-lag", "event loop lag over time", lines, from_zero=True,
                              value_ticks=seconds_ticks, **marks))
        out.append('<p class="muted">Event loop lag: how late a heartbeat on the loop ran, per snapshot'
                   " (leaksoak's own pauses left out).</p>")
    return out


def _where(frame: Frame) -> str:
    return f"<code>{escape(display_path(frame.file))}:{frame.line}</code> in <code>{escape(frame.function)}</code>"


def _findings(report: Report, charts: ChartData | None) -> list[str]:
    out = ["<h2>Findings</h2>"]
    if not report.findings:
        out.append('<p class="muted">None: no allocation site or process series grows significantly.</p>')
        return out
    shown = report.findings[:MAX_FINDINGS]
    for number, finding in enumerate(shown, 1):
        chart = charts.findings[number - 1] if charts is not None and number - 1 < len(charts.findings) else None
        out.append(_finding(number, finding, charts, chart))
    if len(report.findings) > len(shown):
        out.append(f'<p class="muted">{len(report.findings) - len(shown):,} more findings are not shown; '
                   "<code>soak report --format json</code> lists them all.</p>")
    return out


def _accepted(report: Report) -> list[str]:
    """The accepted findings, each with its rule and reason, and the warnings about the rules."""
    out = []
    if report.accepted:
        out += [f"<h2>{escape(SECTION)}</h2>", f'<p class="muted">{escape(NOTE[0].upper() + NOTE[1:])}.</p>',
                '<table class="accepted"><tr><th>#</th><th>verdict</th><th>where</th><th>growth</th><th>rule</th><th>reason</th></tr>']
        for number, accepted in enumerate(report.accepted[:MAX_FINDINGS], 1):
            finding = accepted.finding
            where = _where(finding.where) if finding.where else escape(label(finding) or finding.kind)
            if finding.call_site and finding.call_site != finding.where:
                where += f" called from {_where(finding.call_site)}"
            out.append(f'<tr id="accepted-{number}"><td>A{number}</td><td><span class="badge v-{escape(finding.verdict)}">'
                       f"{escape(finding.verdict.upper())}</span></td><td>{where}</td><td class=\"num\">{escape(growth(finding))}</td>"
                       f"<td><code>{escape(accepted.rule)}</code> {escape(rule_detail(accepted))}</td>"
                       f"<td>{escape(accepted.reason or '')}</td></tr>")
        out.append("</table>")
    if report.suppression_warnings:
        out += ["<h2>Suppression rules</h2>", '<ul class="warnings">']
        out += [f"<li>warning: {escape(warning)}</li>" for warning in report.suppression_warnings]
        out.append("</ul>")
    return out


def _finding(number: int, finding: Finding, charts: ChartData | None, chart: FindingChart | None) -> str:
    verdict = escape(finding.verdict)
    where = finding.where
    if where:
        place = f" at {_where(where)}"
    else:
        name = label(finding)
        place = f" in {escape(name)}" if name else ""
    parts = [
        f'<section class="finding" id="finding-{number}">',
        f'<h3>{number}. <span class="badge v-{verdict}">{verdict.upper()}</span>'
        f"{escape(growth(finding))}{place}</h3>",
    ]
    stats = []
    if finding.p_value is not None:
        stats.append(f"p={finding.p_value:.1e}")
    stats.append(f"confidence {format_confidence(finding.confidence)}")
    if finding.detected_at_s is not None:
        stats.append(f"first detected at {format_duration(finding.detected_at_s)}")
    if finding.library:
        stats.append(f"library {finding.library}")
    parts.append(f'<p class="stats">{escape(" · ".join(stats))}</p>')
    reason = why(finding)
    if reason:
        parts.append(f'<p class="why">why: {escape(reason)}</p>')
    if chart is not None and charts is not None:
        parts.append(
            line_chart(
                f"chart-finding-{number}",
                f"finding {number}: {chart.line.label} over time",
                [Styled(chart.line, COLORS["site"])],
                end_s=charts.end_s,
                warmup_until_s=finding.evidence.get("warmup_until_s", charts.warmup_until_s),
                segment_starts=charts.segment_starts,
                fit=chart.fit,
                fit_color=COLORS["fit"],
                detected_at_s=finding.detected_at_s,
                from_zero=finding.kind == "site",
            )
        )
    what = subject(finding)
    if what:
        parts.append(f'<p class="muted">{escape(what[0].upper() + what[1:])}.</p>')
    if finding.traceback:
        parts.append(_traceback(finding))
    parts.append("</section>")
    return "\n".join(parts)


def _traceback(finding: Finding) -> str:
    items = []
    for position, frame in enumerate(finding.traceback):
        role = "alloc" if position == 0 else ("caller" if frame == finding.call_site else "")
        note = f" ({first_frame(finding)})" if position == 0 else (" (your call into the library)" if role == "caller" else "")
        text = source_line(frame.file, frame.line)
        code = f"<pre>{escape(text)}</pre>" if text else ""
        items.append(f'<li class="{role}">{_where(frame)}{escape(note)}{code}</li>')
    return (f'<p class="muted">Traceback, {escape(first_frame(finding))} frame first:</p>\n<ol class="tb">\n'
            + "\n".join(items) + "\n</ol>")


def library_growth(report: Report) -> list[tuple[str, int, float]]:
    """(library, findings, summed growth in bytes/hour), largest growth first."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for finding in report.findings:
        name = finding.library or finding.kind
        totals[name][0] += 1
        totals[name][1] += finding.growth_bytes_per_hour or 0.0
    return sorted(((name, int(n), rate) for name, (n, rate) in totals.items()), key=lambda row: -row[2])


def _libraries(report: Report) -> list[str]:
    rows = library_growth(report)
    if not rows:
        return []
    top = max(rate for _, _, rate in rows) or 1.0
    body = "\n".join(
        f"<tr><td>{escape(name)}</td><td class=\"num\">{count:,}</td>"
        f"<td class=\"num\">+{escape(human_bytes(rate))}/hour</td>"
        f'<td style="width:40%"><div class="bar" style="width:{max(rate, 0) / top * 100:.1f}%"></div></td></tr>'
        for name, count, rate in rows
    )
    return [
        "<h2>Growth by library</h2>",
        "<table><tr><th>library</th><th>findings</th><th>growth</th><th></th></tr>", body, "</table>",
    ]


def _types(types: list[dict[str, Any]]) -> list[str]:
    body = "\n".join(
        f"<tr><td><code>{escape(row['name'])}</code></td><td class=\"num\">{row['first']:,}</td>"
        f"<td class=\"num\">{row['last']:,}</td><td class=\"num\">+{row['change']:,}</td></tr>"
        for row in types
    )
    return [
        "<h2>Growing types</h2>",
        '<p class="muted">Live gc-tracked objects per type, first census to last (not a statistical test).</p>',
        "<table><tr><th>type</th><th>first</th><th>last</th><th>change</th></tr>", body, "</table>",
    ]


def _events(report: Report) -> list[str]:
    if not report.events:
        return []
    shown = report.events[:MAX_EVENTS]
    body = "\n".join(
        f"<tr><td class=\"num\">{escape(format_duration(event['t_s']))}</td><td>{escape(str(event['kind']))}</td>"
        f"<td>{escape(str(event['message']))}</td></tr>"
        for event in shown
    )
    out = ["<h2>Events</h2>", "<table><tr><th>at</th><th>event</th><th>message</th></tr>", body, "</table>"]
    if len(report.events) > len(shown):
        out.append(f'<p class="muted">{len(report.events) - len(shown):,} later events are not shown.</p>')
    return out
