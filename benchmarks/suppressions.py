"""What judging suppression rules costs at each analysis refresh, beside the refresh it rides on.

    python benchmarks/suppressions.py [--findings 20 200 5000] [--rules 0 10 50] [--repeat 5]

Findings are made as the analysis makes them (Findings with 10-frame stacks, half in the
application and half in a library, each a distinct leak), rules as a rules file holds them (a
``frames`` rule with ``"..."`` on both sides, a ``call_site`` rule, a ``max_growth`` rule, in
turn; one in ten matches a finding, the rest match nothing). Printed per size: the time of
:func:`soak.judging.judgement.judge` (matching every finding against every rule, and the verdict),
of building the rows the decision stores, and of one analysis refresh's ``placed_findings`` step for
scale is not measured here: compare with ``benchmarks/storage.py`` and the supervisor's
``analysis_ms`` of a real run.
"""

from __future__ import annotations

import argparse
import statistics
import time

from soak.judging.judgement import judge
from soak.judging.suppressions import Rule, parse_rate
from soak.model.finding import Finding, Frame


def findings(n: int) -> list[Finding]:
    made = []
    for i in range(n):
        application = i % 2 == 0
        stack = [Frame(f"/srv/app/module{i}.py" if application else f"/venv/site-packages/lib{i % 7}/core.py", 10 + i, f"work_{i}")]
        stack += [Frame(f"/srv/app/caller{j}.py", j, f"call_{j}") for j in range(9)]
        made.append(Finding(
            finding_id=f"{i:016x}", kind="site", verdict="leak", traceback=stack,
            library="application" if application else f"lib{i % 7}",
            call_site=None if application else Frame("/srv/app/caller0.py", 0, "call_0"),
            growth_bytes_per_hour=1e6 * (1 + i % 10), growth_count_per_hour=10.0, p_value=1e-6, q_value=1e-5,
            confidence=0.99999, detected_at_s=None, resource=None,
            evidence={"slope_bytes_per_s": 300.0, "slope_interval": [250.0, 350.0]}, stack_id=i,
        ))
    return made


def rules(n: int, findings_count: int) -> list[Rule]:
    out = []
    for i in range(n):
        target = (i * 10) % max(findings_count, 1) if i % 10 == 0 else None  # one in ten names a real finding
        name = f"module{target}.py:work_{target}" if target is not None else f"nowhere{i}.py:gone"
        kind = i % 3
        if kind == 0:
            out.append(Rule(id=f"r{i}", reason="bench", source="bench.toml", line=i + 1, frames=("...", f"*{name}", "...")))
        elif kind == 1:
            out.append(Rule(id=f"r{i}", reason="bench", source="bench.toml", line=i + 1, call_site=f"*{name}"))
        else:
            out.append(Rule(id=f"r{i}", reason="bench", source="bench.toml", line=i + 1, frames=(f"*{name}", "..."),
                            max_growth="50 MB/h", max_growth_bytes_per_hour=parse_rate("50 MB/h")))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, nargs="+", default=[20, 200, 5000])
    parser.add_argument("--rules", type=int, nargs="+", default=[0, 10, 50])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{'findings':>9} {'rules':>6} {'judge ms':>10} {'store rows ms':>14} {'accepted':>9} {'per finding x rule us':>22}")
    for n in args.findings:
        made = findings(n)
        for m in args.rules:
            rule_set = rules(m, n)
            judged_times, stored_times = [], []
            for _ in range(args.repeat):
                start = time.perf_counter()
                judged = judge(made, "leak", rule_set, target="app/handlers.py:handle_one")
                judged_times.append(time.perf_counter() - start)
                start = time.perf_counter()
                judged.stored_rules()
                judged.stored_accepted()
                stored_times.append(time.perf_counter() - start)
            judge_ms = statistics.median(judged_times) * 1000
            pairs = n * max(m, 1)
            print(f"{n:>9} {m:>6} {judge_ms:>10.2f} {statistics.median(stored_times) * 1000:>14.3f} "
                  f"{len(judged.accepted):>9} {judge_ms * 1000 / pairs:>22.2f}")


if __name__ == "__main__":
    main()
