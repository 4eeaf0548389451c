"""`soak report --format html` and `--format markdown` on a real run, and the page in a real browser.

One short leaky soak (a few seconds) serves every test here. Its workload sits in a directory
named ``<script>app&"x`` and the run's name is a script element, so escaping is tested on what
a real run stores.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import REFERENCE, db_rows, leak_lines, run_soak

from soak.judging.report_builder import pause_summary
from soak.model.finding import Finding, Frame
from soak.model.report import Report, RunInfo
from soak.reports.markdown import render_markdown
from soak.reports.pauses import pause_note
from soak.reports.series import MAX_POINTS, make_line

NASTY_NAME = "<script>alert('pwned')</script>"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def leaky(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(database, workload file) of a finished leaky run."""
    root = tmp_path_factory.mktemp("report-formats")
    folder = root / '<script>app&"x'
    folder.mkdir()
    workload = folder / "leaky.py"
    shutil.copy(REFERENCE / "leaky_dict_cache.py", workload)
    db = root / "soak.db"
    result = run_soak("run", f"{workload}:step", "--db", str(db), "--duration", "6s", "--interval", "0.2s",
                      "--name", NASTY_NAME, "--quiet", "--format", "json")
    assert result.returncode == 1, result.stderr
    assert result.json()["findings"], result.stdout
    return db, workload


@pytest.fixture(scope="module")
def page(leaky: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    db, _ = leaky
    out = tmp_path_factory.mktemp("page") / "report.html"
    result = run_soak("report", "--db", str(db), "--format", "html", "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    return out


def test_markdown_names_the_leaking_line(leaky: tuple[Path, Path]) -> None:
    db, workload = leaky
    result = run_soak("report", "--db", str(db), "--format", "markdown")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("## leaksoak: LEAK")
    assert any(f"leaky.py:{n}`" in text for n in leak_lines(workload)), text
    assert "| 1 | LEAK |" in text
    assert "_responses[request_id] = body.upper()  # LEAK" in text  # the source line, in a fenced block
    assert "```\nTraceback (allocation frame first):" in text


def _finding(number: int) -> Finding:
    frames = [Frame(f"/srv/app/{'deep/' * 30}module_{number}_{k}.py", 100 + k, f"handler_{k}") for k in range(40)]
    return Finding(
        finding_id=f"{number:016x}", kind="site", verdict="leak", traceback=frames, library="application",
        call_site=None, growth_bytes_per_hour=1e9 - number, growth_count_per_hour=1e6, p_value=1e-12, q_value=1e-10,
        confidence=1 - 1e-10, detected_at_s=12.0, resource=None,
        evidence={"slope_bytes_per_s": 2e5, "slope_interval": [1e5, 3e5], "recent_p_value": 1e-4,
                  "warmup_until_s": 60.0, "window_s": [60.0, 300.0]},
    )


def test_markdown_stays_small_with_many_findings() -> None:
    run = RunInfo(1, "many", "app.py:step", "completed", None, "2026-01-01T00:00:00+00:00", 300.0, 300, 10_000, 1.0)
    report = Report(run, "leak", [_finding(n) for n in range(2_000)], [], None, None)
    text = render_markdown(report)
    assert len(text.encode()) < 256 * 1024  # far below GitHub's 1 MiB step-summary cap
    assert text.count("\n#### ") == 20
    assert "1,980 more findings not shown" in text
    assert "10 more frames" in text


def test_html_escapes_what_the_user_named(page: Path) -> None:
    text = page.read_text()
    assert NASTY_NAME not in text
    assert html.escape(NASTY_NAME) in text
    assert "&lt;script&gt;app&amp;&quot;x" in text  # the target's folder
    assert '<script>app&"x' not in text
    assert text.count("<script>") == 2  # the page's own: the error recorder and the self-check


def test_html_is_self_contained(page: Path) -> None:
    text = page.read_text()
    assert "http://" not in text and "https://" not in text
    assert not re.search(r"""(?i)\b(?:src|href|action|poster|srcset)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//""", text)
    assert not re.search(r"""(?i)url\(\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//""", text)
    assert not re.search(r"(?i)<(?:link|img|iframe|object|embed)\b|@import", text)
    assert "default-src 'none'" in text  # the page may not fetch anything, even if it tried
    assert len(text.encode()) < 512 * 1024


def test_html_holds_the_run_and_its_findings(page: Path, leaky: tuple[Path, Path]) -> None:
    _, workload = leaky
    text = page.read_text()
    assert 'class="verdict v-leak"' in text
    assert 'id="chart-process"' in text and 'id="chart-traced"' in text and 'id="chart-finding-1"' in text
    assert "warm-up ends" in text and 'class="fit"' in text
    assert "_responses[request_id] = body.upper()  # LEAK" in text
    assert any(f"leaky.py:{n}</code>" in text for n in leak_lines(workload))
    assert "<h2>Growth by library</h2>" in text and "<h2>Events</h2>" in text and "worker_start" in text


def test_report_format_errors_and_stdout(leaky: tuple[Path, Path], tmp_path: Path) -> None:
    db, _ = leaky
    target = tmp_path / "report.pdf"
    bad = run_soak("report", "--db", str(db), "--format", "pdf", "--output", str(target))
    assert bad.returncode == 2
    assert bad.stderr == "soak: error: --format must be one of text, json, html, markdown\n"
    assert not target.exists() and list(tmp_path.iterdir()) == []
    to_stdout = run_soak("report", "--db", str(db), "--format", "html")
    assert to_stdout.returncode == 0 and to_stdout.stdout.startswith("<!DOCTYPE html>")


def test_long_series_are_thinned_keeping_peaks() -> None:
    times = np.arange(20_000, dtype=float)
    values = (times % 997) * 10.0  # a sawtooth: plain decimation would miss its peaks
    values[12_345] = 1e9
    line = make_line("x", times, list(values), np.zeros(len(times), dtype=np.int64))
    assert line is not None and line.points <= MAX_POINTS
    kept = [y for run in line.runs for _, y in run]
    assert max(kept) == 1e9 and min(kept) == 0.0
    assert sum(1 for y in kept if y == 9960.0) > 10  # sawtooth peaks survive


# --- the page in a real headless browser --------------------------------------------------------

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--force-device-scale-factor=1", "--window-size=1200,2000",
        "--hide-scrollbars", *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


def read_png(path: Path) -> tuple[int, int, np.ndarray]:
    """(width, height, RGB array) of an 8-bit RGB or RGBA, non-interlaced PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, header = 8, [], b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        pos += 12 + length
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and color in (2, 6) and interlace == 0
    channels = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    out = np.zeros((height, stride), dtype=np.int32)
    previous = np.zeros(stride, dtype=np.int32)
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], np.frombuffer(raw[start + 1:start + 1 + stride], dtype=np.uint8).astype(np.int32)
        if kind == 2:
            line = (line + previous) & 0xFF
        elif kind in (1, 3, 4):  # these depend on the pixel to the left: decoded byte by byte
            line = _unfilter(kind, line, previous, channels)
        out[row] = line
        previous = line
    return width, height, out.reshape(height, width, channels)[:, :, :3]


def _unfilter(kind: int, line: np.ndarray, above: np.ndarray, bpp: int) -> np.ndarray:
    result = line.tolist()
    up = above.tolist()
    for i in range(len(result)):
        left = result[i - bpp] if i >= bpp else 0
        upper_left = up[i - bpp] if i >= bpp else 0
        if kind == 1:
            predictor = left
        elif kind == 3:
            predictor = (left + up[i]) // 2
        else:
            p = left + up[i] - upper_left
            pa, pb, pc = abs(p - left), abs(p - up[i]), abs(p - upper_left)
            predictor = left if pa <= pb and pa <= pc else (up[i] if pb <= pc else upper_left)
        result[i] = (result[i] + predictor) & 0xFF
    return np.array(result, dtype=np.int32)


def _columns_of_color(image: np.ndarray, chart: dict[str, float], color: str) -> int:
    """Distinct pixel columns inside the chart's plot area (not its legend) drawn in ``color``."""
    from soak.reports import svg

    scale = chart["w"] / svg.WIDTH
    x0, x1 = int(chart["x"] + svg.LEFT * scale) + 1, int(chart["x"] + (svg.WIDTH - svg.RIGHT) * scale) - 1
    y0, y1 = int(chart["y"] + svg.TOP * scale) + 1, int(chart["y"] + (svg.HEIGHT - svg.BOTTOM) * scale) - 1
    area = image[y0:y1, x0:x1]
    target = np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)])
    close = (np.abs(area - target) <= 12).all(axis=2)
    return int(close.any(axis=0).sum())


@needs_chromium
def test_page_draws_its_charts_in_a_real_browser_without_errors(page: Path, tmp_path: Path) -> None:
    from soak.reports import svg
    from soak.reports.html import COLORS

    dom = _chromium(tmp_path / "profile-dom", "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    root = re.search(r"<html[^>]*>", dom.stdout)
    assert root, dom.stdout[:500]
    attributes = {k: html.unescape(v) for k, v in re.findall(r'([\w-]+)="([^"]*)"', root.group(0))}
    assert attributes.get("data-ready") == "1", attributes
    assert json.loads(attributes["data-errors"]) == []
    assert attributes["data-fetched"] == "0"
    # The run's name is a text node (serialised with < and > escaped), never a script element.
    assert "&lt;script&gt;alert('pwned')&lt;/script&gt;" in dom.stdout and NASTY_NAME not in dom.stdout
    charts = {chart["id"]: chart for chart in json.loads(attributes["data-charts"])}
    assert {"chart-process", "chart-traced", "chart-finding-1"} <= set(charts)
    assert all(chart["lines"] >= 1 and chart["w"] > 500 and chart["h"] > 100 for chart in charts.values())

    shot = tmp_path / "report.png"
    result = _chromium(tmp_path / "profile-shot", f"--screenshot={shot}", page.as_uri())
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    width, height, image = read_png(shot)
    assert (width, height) == (1200, 2000)
    expected = [("chart-process", COLORS["rss"]), ("chart-traced", COLORS["traced"]),
                ("chart-finding-1", COLORS["site"]), ("chart-finding-1", COLORS["fit"])]
    for chart_id, color in expected:
        chart = charts[chart_id]
        assert chart["y"] + chart["h"] <= height, f"{chart_id} is below the screenshot: {chart}"
        plot_width = (svg.WIDTH - svg.LEFT - svg.RIGHT) * chart["w"] / svg.WIDTH
        columns = _columns_of_color(image, chart, color)
        assert columns >= 0.1 * plot_width, f"{chart_id}: {color} drawn in {columns} of {plot_width:.0f} columns"


def test_lines_break_at_gaps_and_new_segments() -> None:
    times = np.arange(6, dtype=float)
    line = make_line("rss", times, [1, 2, None, 4, 5, 6], np.array([0, 0, 0, 0, 1, 1]))
    assert line is not None
    assert line.runs == [[(0.0, 1.0), (1.0, 2.0)], [(3.0, 4.0)], [(4.0, 5.0), (5.0, 6.0)]]


def test_markdown_keeps_user_text_out_of_its_markup() -> None:
    run = RunInfo(1, "a|b`c<img src=x>", "x|y.py:step", "failed", "raised <b>*boom*</b> | here",
                  "2026-01-01T00:00:00+00:00", 60.0, 60, 100, 1.0)
    frame = Frame("/srv/a|b`.py", 7, "f|g")
    finding = Finding("0" * 16, "site", "leak", [frame], "application", None, 4e6, None, 1e-9, 1e-8,
                          1 - 1e-8, 30.0, None)
    text = render_markdown(Report(run, "leak", [finding], [], None, None))
    row = next(line for line in text.splitlines() if line.startswith("| 1 |"))
    assert len(re.split(r"(?<!\\)\|", row)) == 10  # 8 cells: no user "|" splits the row
    outside_code = re.sub(r"(`+).+?\1", "", text)
    assert "<img" not in outside_code and "<b>" not in outside_code
    assert "\\<b\\>\\*boom\\*\\</b\\> \\| here" in text


def test_every_format_shows_the_snapshots_pauses(leaky: tuple[Path, Path]) -> None:
    """The pauses the run's snapshots recorded, as a share of its wall time and per probe."""
    db, _ = leaky
    [(total_ms, duration_s)] = db_rows(db, "SELECT (SELECT sum(pause_ms) FROM snapshots), duration_s FROM runs")
    pauses = json.loads(run_soak("report", "--db", str(db), "--format", "json").stdout)["pauses"]
    assert pauses["share"] == pytest.approx(total_ms / 1000 / duration_s)
    assert 0 < pauses["p50_ms"] <= pauses["p99_ms"] <= pauses["max_ms"]
    probes = {p["probe"]: p for p in pauses["probes"]}
    assert "tracer" in probes and "process" not in probes  # read from outside: no pause of the workload
    assert sum(p["total_ms"] for p in pauses["probes"]) <= total_ms * 1.01
    for fmt in ("text", "markdown", "html"):
        shown = run_soak("report", "--db", str(db), "--format", fmt).stdout
        assert f"snapshot pauses {pauses['share']:.2%} of wall time" in shown, fmt


def test_pause_summary_of_rationed_probes_and_of_no_pauses() -> None:
    rows = [{"pause_ms": 10.0, "probe_ms": json.dumps({"tracer": 1.0, "types": 9.0, "process": 50.0})},
            {"pause_ms": 2.0, "probe_ms": json.dumps({"tracer": 2.0, "process": 50.0})}]
    summary = pause_summary(rows, wall_s=1.2)
    assert summary is not None and summary.share == pytest.approx(0.01)
    assert [(p.probe, p.runs, p.total_ms) for p in summary.probes] == [("types", 1, 9.0), ("tracer", 2, 3.0)]
    assert pause_summary([{"pause_ms": None, "probe_ms": None}], wall_s=5) is None
    assert pause_summary(rows, wall_s=0) is None and pause_note(None) is None
