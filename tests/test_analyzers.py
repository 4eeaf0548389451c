"""The analyzers on synthetic series with known answers."""

import numpy as np

from soak.analyzers import Series, Thresholds, analyze
from soak.analyzers.trend import fit_trend

RNG = np.random.default_rng(20261125)
T = np.arange(0, 60, 1.0)  # a 60-second run, one snapshot a second
MB = 1024 * 1024


def noise(scale: float, n: int = len(T)) -> np.ndarray:
    return RNG.normal(0, scale, n)


def test_theil_sen_recovers_a_slope_and_its_interval() -> None:
    y = 1000 + 500 * T + noise(200)
    trend = fit_trend(T, y)
    assert trend.slope_low < 500 < trend.slope_high
    assert trend.p_value < 1e-6


def test_constant_series_has_no_trend() -> None:
    trend = fit_trend(T, np.full(len(T), 4096.0))
    assert trend.slope == 0 and trend.p_value == 1.0


def test_linear_leak_in_noise_is_a_leak_with_its_rate() -> None:
    leak = Series("leak", 2 * MB + 20_000 * T + noise(30_000))  # 20 kB/s = 72 MB/h
    result = analyze(T, [leak])
    assert result.verdict == "leak"
    (finding,) = result.findings
    assert finding.key == "leak"
    assert abs(finding.growth_bytes_per_hour - 20_000 * 3600) < 0.15 * 20_000 * 3600


def test_flat_noise_is_clean() -> None:
    assert analyze(T, [Series(i, 5 * MB + noise(50_000)) for i in range(50)]).verdict == "clean"


def test_bounded_cache_that_filled_up_is_not_a_leak() -> None:
    # Fills at 100 kB/s for 20 s and stays full: growth that stopped is not a leak.
    cache = Series("cache", np.minimum(T, 20) * 100_000 + noise(2_000))
    result = analyze(T, [cache])
    assert result.verdict == "clean", result.findings


def test_sawtooth_buffer_is_not_a_leak() -> None:
    buffer = Series("buffer", (T % 7) * 150_000.0)
    assert analyze(T, [buffer]).verdict == "clean"


def test_late_onset_leak_is_still_found() -> None:
    late = Series("late", np.where(T < 30, 1 * MB, 1 * MB + (T - 30) * 50_000) + noise(5_000))
    result = analyze(T, [late])
    assert result.verdict == "leak"


def test_growth_below_the_material_floor_is_not_reported() -> None:
    # Perfectly steady but tiny: 10 bytes a second is 36 kB an hour.
    tiny = Series("tiny", 1000 + 10 * T)
    assert analyze(T, [tiny]).verdict == "clean"


def test_many_null_series_with_one_leak_find_only_the_leak() -> None:
    series = [Series(i, 3 * MB + noise(100_000)) for i in range(500)]
    series.append(Series("leak", 3 * MB + 30_000 * T + noise(100_000)))
    result = analyze(T, series)
    assert [f.key for f in result.findings if f.verdict == "leak"] == ["leak"]


def test_too_few_points_is_inconclusive_and_says_how_long_is_needed() -> None:
    t = np.arange(0, 5, 1.0)
    result = analyze(t, [Series("s", 1000 + 50_000 * t)])
    assert result.verdict == "inconclusive"
    assert result.needed_s is not None and result.needed_s > 5


def test_findings_carry_evidence_and_count_growth() -> None:
    counts = 10 + 100 * T
    result = analyze(T, [Series("s", 64 * counts, counts)], Thresholds())
    (finding,) = result.findings
    assert finding.growth_count_per_hour is not None and abs(finding.growth_count_per_hour - 360_000) < 1_000
    assert {"slope_interval", "warmup_until_s", "window_s", "recent_p_value", "points"} <= set(finding.evidence)
    assert 0 < finding.confidence <= 1


def test_a_steady_leak_is_called_as_soon_as_there_are_enough_points() -> None:
    t = np.arange(0, 11, 1.0)  # 8 points after a 2-second warm-up
    result = analyze(t, [Series("leak", 1 * MB + 100_000 * t + RNG.normal(0, 1_000, len(t)))])
    assert result.points == 9 and result.verdict == "leak"
