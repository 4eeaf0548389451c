"""Options shared by several subcommands."""

from __future__ import annotations

import sys

import typer

from soak.durations import parse_size
from soak.inprocess.probes.sampled import DEFAULT_SAMPLE_INTERVAL
from soak.model.options import DEFAULT_TRACER
from soak.reports import FORMATS as FORMATS  # re-exported: the formats every command accepts

DB = typer.Option("soak.db", "--db", help="SQLite file holding the runs; many runs share one file.")
FORMAT = typer.Option(
    "text", "--format", "-f", help="text, json (schema leaksoak.report/1), markdown, or html (one self-contained page with charts).")

METRICS_PORT = typer.Option(None, "--metrics-port", help="Serve Prometheus /metrics on this port during the run.")
METRICS_TOP = typer.Option(10, "--metrics-top", help="Findings exported one by one on /metrics, most severe first; "
                                                    "the rest are counted (leaksoak_findings_not_exported).")
METRICS_HOST = typer.Option("127.0.0.1", "--metrics-host", help="Address for --metrics-port (default loopback only).")
MEMORY_LIMIT = typer.Option(None, "--memory-limit", help="Project time until memory reaches this (e.g. 2GiB); default the cgroup limit.")
KEEP_FULL = typer.Option("6h", "--keep-full", help="Keep every snapshot of the most recent window this long...")
THIN_EVERY = typer.Option(10, "--thin-every", help="...and every k-th one before it (1 keeps all).")
FAIL_ON = typer.Option("suspect", "--fail-on", help="Exit 1 on: leak, suspect (leak or suspect), never.")
SUPPRESSIONS = typer.Option(
    None, "--suppressions",
    help="Suppression rules (\\[\\[suppress]] tables) from this file instead of ./leaksoak.toml and"
    " \\[\\[tool.leaksoak.suppress]] of ./pyproject.toml: findings a rule accepts are reported apart and do not count.",
)
QUIET = typer.Option(False, "--quiet", "-q", help="No progress on stderr (neither the live panel nor the progress lines).")
TRACER = typer.Option(
    DEFAULT_TRACER, "--tracer",
    help="Allocation tracer: sampled (estimates from sampled allocations, a few percent of cost), "
         "exact (tracemalloc: every allocation, many times slower), or off (process memory only).",
)
SAMPLE_INTERVAL = typer.Option(
    None, "--sample-interval",
    help=f"The sampled tracer's mean bytes between two samples (default {DEFAULT_SAMPLE_INTERVAL // 1024}KiB): "
         "smaller is more precise and costs more.",
)


def print_warnings(warnings: list[str]) -> None:
    """What the suppression rules need looked at, one ``soak: warning:`` line each on stderr."""
    for warning in warnings:
        print(f"soak: warning: {warning}", file=sys.stderr)


def parse_sample_interval(text: str | None) -> int | None:
    """Bytes in ``--sample-interval`` (``16KiB``, ``65536``), or None when it is not given."""
    return parse_size(text, option="sample-interval") if text is not None else None
