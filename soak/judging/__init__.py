"""From stored series to judged findings: the analysis of a run, attribution of frames to code,
suppression rules and their judgement, the comparison against a baseline, and the fleet summary."""
