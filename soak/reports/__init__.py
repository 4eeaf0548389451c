"""Reports: a model built from storage, and one renderer per format."""

from soak.reports.model import Report, build_report

__all__ = ["Report", "build_report", "render"]


def render(report: Report, fmt: str) -> str:
    if fmt == "json":
        from soak.reports.json_report import render_json

        return render_json(report)
    from soak.reports.text import render_text

    return render_text(report)
