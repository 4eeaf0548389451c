"""Known, accepted growth: suppression rules read from TOML, judged against a run's findings.

Rules come from ``[[suppress]]`` tables in ``leaksoak.toml``, ``[[tool.leaksoak.suppress]]`` in
``pyproject.toml`` or an explicit file. :func:`apply_rules` is pure: findings (the model's,
soak.model.finding.Finding) in, a :class:`Decision` out. :func:`generate_rules` writes rules for findings.

One module per concern: the rule (:mod:`.rule`), reading it from TOML (:mod:`.reading`), growth
rates (:mod:`.rates`), matching findings (:mod:`.matching`) and generating rules (:mod:`.generating`).
"""

from soak.judging.suppressions.generating import add_months, generate_rules
from soak.judging.suppressions.matching import Accepted, Decision, OverLimit, apply_rules, frames_match, path_matches
from soak.judging.suppressions.rates import format_rate, parse_rate
from soak.judging.suppressions.reading import SuppressionsError, load_rules, parse_rules
from soak.judging.suppressions.rule import BASELINE_RULE, TODO_REASON, Rule, baseline_rule

__all__ = ["BASELINE_RULE", "TODO_REASON", "Accepted", "Decision", "OverLimit", "Rule", "SuppressionsError", "add_months",
           "apply_rules", "baseline_rule", "format_rate", "frames_match", "generate_rules", "load_rules", "parse_rate",
           "parse_rules", "path_matches"]
