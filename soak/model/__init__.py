"""The model: plain typed data that every room shares. The finding and the report (analysis
produces them, storage saves them, judgement reads them, every renderer renders them), the
verdicts and the one rule that fails on them, the analysis' thresholds, and the options of run,
watch, ci and the pytest plugin. It imports nothing of leaksoak's but itself."""
