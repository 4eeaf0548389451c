"""Which of a run's findings count: its suppression rules judged against its findings, in one place.

The supervisor judges every analysis refresh and stores the decision with the run;
``soak report --suppressions`` judges a stored run again against other rules. The verdict, the
exit code, every report format and the metrics take the counted findings and the verdict from
here; the accepted ones are reported apart, never dropped.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from soak.judging.report_builder import finding_info
from soak.judging.suppressions import Accepted, Decision, Rule, apply_rules
from soak.model.report import AcceptedFinding, FindingInfo, Report
from soak.model.verdicts import counted_verdict
from soak.reports.json_report import finding_dict
from soak.storage.writer import FindingRow


@dataclass(frozen=True)
class Judgement:
    """What ``rules`` decided of ``findings`` (in the analysis' order, most severe first)."""

    findings: list[FindingInfo]
    rules: tuple[Rule, ...]
    decision: Decision
    verdict: str
    """The run's verdict from the findings that still count."""
    counted: list[int]
    """Positions in ``findings`` of those that count."""
    accepted: list[tuple[int, Accepted]]
    """Positions in ``findings`` of those a rule accepted, with the acceptance."""

    @property
    def warnings(self) -> list[str]:
        return self.decision.warnings

    def accepted_findings(self) -> list[AcceptedFinding]:
        """The accepted findings as the report model shows them."""
        rules = {rule.id: rule for rule in self.rules}
        return [AcceptedFinding(self.findings[i], a.rule, rules[a.rule].reason, rules[a.rule].where,
                                a.max_growth_bytes_per_hour) for i, a in self.accepted]

    def stored_rules(self) -> list[dict[str, Any]]:
        """Rows of ``suppression_rules``: every rule, what became of it and what it accepted."""
        status = self.decision.suppressions
        accepted_by: dict[str, int] = {}
        for _, taken in self.accepted:
            accepted_by[taken.rule] = accepted_by.get(taken.rule, 0) + 1
        rows = []
        for position, rule in enumerate(self.rules):
            state = "expired" if rule.id in status.expired else "unused" if rule.id in status.unused else "applied"
            rows.append({
                "rule_id": rule.id, "source": rule.where, "reason": rule.reason, "owner": rule.owner,
                "expires": rule.expires_text or (rule.expires.isoformat() if rule.expires else None),
                "definition": json.dumps(rule.definition()), "state": state,
                "too_broad": int(rule.id in status.too_broad), "accepted": accepted_by.get(rule.id, 0),
                "warnings": json.dumps(self.decision.rule_warnings.get(rule.id, [])), "position": position,
            })
        return rows

    def stored_accepted(self) -> list[dict[str, Any]]:
        """Rows of ``accepted_findings``."""
        return [{"finding_id": self.findings[i].finding_id, "rule_id": a.rule,
                 "growth_bytes_per_hour": a.growth_bytes_per_hour, "max_growth_bytes_per_hour": a.max_growth_bytes_per_hour}
                for i, a in self.accepted]


def judge(findings: Sequence[FindingInfo], verdict: str, rules: Sequence[Rule], *, target: str | None,
          today: datetime.date | None = None) -> Judgement:
    """Judge ``findings`` (whose analysis said ``verdict``) against ``rules`` for a run of ``target``."""
    shown = [finding_dict(f) for f in findings]
    position = {id(d): i for i, d in enumerate(shown)}
    decision = apply_rules(shown, rules, target=target, today=today or datetime.date.today())
    counted = [position[id(d)] for d in decision.remaining]
    accepted = [(position[id(a.finding)], a) for a in decision.accepted]
    return Judgement(list(findings), tuple(rules), decision, counted_verdict(verdict, [findings[i].verdict for i in counted]),
                     counted, accepted)


def judge_rows(rows: Sequence[FindingRow], frames: dict[int, list[dict[str, Any]]], verdict: str,
               rules: Sequence[Rule], *, target: str | None) -> Judgement:
    """:func:`judge` of findings as an analysis refresh is about to store them."""
    infos = [finding_info(vars(row), frames.get(row.stack_id, []) if row.stack_id is not None else []) for row in rows]
    return judge(infos, verdict, rules, target=target)


def rejudge(report: Report, order: Sequence[str], rules: Sequence[Rule], today: datetime.date | None = None) -> Report:
    """``report`` with its findings judged afresh against ``rules`` instead of the stored decision.

    ``order`` is the run's finding ids in their stored order (most severe first). The analysis'
    own verdict is the one it stored before suppressions (runs before them stored only that one).
    """
    every = {f.finding_id: f for f in [*report.findings, *(a.finding for a in report.accepted)]}
    findings = [every[ident] for ident in order if ident in every]
    verdict = str(report.analysis.get("verdict") or report.verdict)
    judged = judge(findings, verdict, rules, target=report.run.target, today=today)
    return replace(report, verdict=judged.verdict, findings=[findings[i] for i in judged.counted],
                   accepted=judged.accepted_findings(), suppressions=judged.decision.suppressions,
                   suppression_warnings=judged.warnings)
