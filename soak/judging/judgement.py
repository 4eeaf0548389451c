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

from soak.judging.suppressions import Accepted, Decision, Rule, apply_rules
from soak.model.finding import Finding
from soak.model.report import AcceptedFinding, Report
from soak.model.verdicts import counted_verdict
from soak.storage.schema import AcceptedRow, RuleRow


@dataclass(frozen=True)
class Judgement:
    """What ``rules`` decided of a run's findings (in the analysis' order, most severe first)."""

    rules: tuple[Rule, ...]
    decision: Decision
    verdict: str
    """The run's verdict from the findings that still count."""

    @property
    def findings(self) -> list[Finding]:
        return self.decision.findings

    @property
    def counted(self) -> list[int]:
        """Positions in ``findings`` of those that count."""
        return [i for i, taken in enumerate(self.decision.taken) if taken is None]

    @property
    def accepted(self) -> list[Accepted]:
        return self.decision.accepted

    @property
    def warnings(self) -> list[str]:
        return self.decision.warnings

    def accepted_findings(self) -> list[AcceptedFinding]:
        """The accepted findings as the report model shows them."""
        rules = {rule.id: rule for rule in self.rules}
        return [AcceptedFinding(a.finding, a.rule, rules[a.rule].reason, rules[a.rule].where, a.max_growth_bytes_per_hour)
                for a in self.accepted]

    def stored_rules(self) -> list[RuleRow]:
        """Rows of ``suppression_rules``: every rule, what became of it and what it accepted."""
        status = self.decision.suppressions
        accepted_by: dict[str, int] = {}
        for taken in self.accepted:
            accepted_by[taken.rule] = accepted_by.get(taken.rule, 0) + 1
        rows = []
        for position, rule in enumerate(self.rules):
            state = "expired" if rule.id in status.expired else "unused" if rule.id in status.unused else "applied"
            rows.append(RuleRow(
                rule_id=rule.id, source=rule.where, reason=rule.reason, owner=rule.owner,
                expires=rule.expires_text or (rule.expires.isoformat() if rule.expires else None),
                definition=json.dumps(rule.definition()), state=state,
                too_broad=int(rule.id in status.too_broad), accepted=accepted_by.get(rule.id, 0),
                warnings=json.dumps(self.decision.rule_warnings.get(rule.id, [])), position=position,
            ))
        return rows

    def stored_accepted(self) -> list[AcceptedRow]:
        """Rows of ``accepted_findings``."""
        return [AcceptedRow(finding_id=a.finding.finding_id, rule_id=a.rule, growth_bytes_per_hour=a.growth_bytes_per_hour,
                            max_growth_bytes_per_hour=a.max_growth_bytes_per_hour)
                for a in self.accepted]


def judge(findings: Sequence[Finding], verdict: str, rules: Sequence[Rule], *, target: str | None,
          today: datetime.date | None = None) -> Judgement:
    """Judge ``findings`` (whose analysis said ``verdict``) against ``rules`` for a run of ``target``."""
    decision = apply_rules(findings, rules, target=target, today=today or datetime.date.today())
    return Judgement(tuple(rules), decision, counted_verdict(verdict, [f.verdict for f in decision.remaining]))


def rejudge(report: Report, order: Sequence[str], rules: Sequence[Rule], today: datetime.date | None = None) -> Report:
    """``report`` with its findings judged afresh against ``rules`` instead of the stored decision.

    ``order`` is the run's finding ids in their stored order (most severe first). The analysis'
    own verdict is the one it stored before suppressions (runs before them stored only that one).
    """
    every = {f.finding_id: f for f in [*report.findings, *(a.finding for a in report.accepted)]}
    findings = [every[ident] for ident in order if ident in every]
    verdict = str(report.analysis.get("verdict") or report.verdict)
    judged = judge(findings, verdict, rules, target=report.run.target, today=today)
    return replace(report, verdict=judged.verdict, findings=judged.decision.remaining,
                   accepted=judged.accepted_findings(), suppressions=judged.decision.suppressions,
                   suppression_warnings=judged.warnings)
