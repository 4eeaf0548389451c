"""``soak export``: a run's stored series and findings as CSV or JSON, for other tools.

Site samples are exported as stored: a row when a site's value changed, carried forward
until its next row (a row of zeros when the site vanished).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlite_utils import Database

from soak.judging.report_builder import build_report
from soak.reports.json_report import report_dict
from soak.storage import queries

WHAT = ("snapshots", "sites", "findings")


def export_json(db: Database, selector: str) -> str:
    report = build_report(db, selector)
    run_id = report.run.id
    sites = queries.site_samples(db, run_id)
    frames = queries.stack_frames(db, sorted({row["stack_id"] for row in sites}))
    by_stack: dict[int, list[list[int]]] = {}
    for row in sites:
        by_stack.setdefault(row["stack_id"], []).append([row["seq"], row["bytes"], row["count"]])
    data: dict[str, Any] = report_dict(report)
    data["snapshots"] = queries.snapshots(db, run_id)
    data["sites"] = [
        {"stack_id": stack_id, "traceback": [frame.as_dict() for frame in frames[stack_id]], "samples": samples}
        for stack_id, samples in by_stack.items()
    ]
    data["events"] = queries.events(db, run_id)
    return json.dumps(data, indent=1) + "\n"


def export_csv(db: Database, selector: str, what: str) -> str:
    run_id = queries.find_run(db, selector)["id"]
    rows: Sequence[Mapping[str, Any]]
    if what == "snapshots":
        rows = queries.snapshots(db, run_id)
    elif what == "sites":
        rows = queries.site_samples(db, run_id, with_frames=True)
    else:
        rows = queries.findings(db, run_id)  # the evidence as stored: JSON text
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()
