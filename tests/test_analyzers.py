"""The analyzers on synthetic series with known answers."""

from collections.abc import Hashable

import numpy as np
import pytest
from scipy import stats

from soak.analyzers import Series, Thresholds, analyze
from soak.analyzers.changepoint import envelope_width, lower_envelope, pettitt, regime_start
from soak.analyzers.mann_kendall import mann_kendall
from soak.analyzers.rollup import roll_up
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
    t = np.arange(0, 9, 1.0)  # 8 points after the 10% warm-up floor
    result = analyze(t, [Series("leak", 1 * MB + 100_000 * t + RNG.normal(0, 1_000, len(t)))])
    assert result.points == 8 and result.verdict == "leak"


def ar1(phi: float, scale: float, n: int = len(T), rng: np.random.Generator = RNG) -> np.ndarray:
    """Autocorrelated noise: each value keeps ``phi`` of the one before."""
    shocks = rng.normal(0, scale, n)
    out = np.zeros(n)
    for i in range(1, n):
        out[i] = phi * out[i - 1] + shocks[i]
    return out


# --- the trend test -------------------------------------------------------------------------------

def test_mann_kendall_matches_kendalls_tau_on_independent_points() -> None:
    y = 10 * T + noise(300)
    plain = mann_kendall(y, autocorrelation=False)
    tau = stats.kendalltau(T, y, alternative="greater")
    assert plain.p_value == pytest.approx(tau.pvalue, rel=0.5, abs=1e-12)
    assert plain.correction == 1.0


def test_autocorrelated_noise_inflates_the_variance_and_keeps_false_alarms_near_alpha() -> None:
    rng = np.random.default_rng(3)
    plain = corrected = 0
    for _ in range(300):
        y = ar1(0.8, 1.0, rng=rng)
        plain += int(stats.kendalltau(T, y, alternative="greater").pvalue < 0.01)
        corrected += int(fit_trend(T, y).p_value < 0.01)
    # The plain test calls about one random walk in five a trend; the corrected one stays near α.
    assert plain > 40
    assert corrected <= 12


def test_autocorrelated_noise_is_clean() -> None:
    rng = np.random.default_rng(11)
    alarms = sum(analyze(T, [Series(0, 5 * MB + ar1(0.8, 200_000, rng=rng))]).verdict != "clean" for _ in range(200))
    assert alarms <= 2


def test_a_leak_in_autocorrelated_noise_is_still_a_leak() -> None:
    rng = np.random.default_rng(5)
    results = [analyze(T, [Series("leak", 5 * MB + 40_000 * T + ar1(0.8, 60_000, rng=rng))]) for _ in range(50)]
    assert sum(r.verdict == "leak" for r in results) >= 45
    assert all(r.verdict in ("leak", "suspect") for r in results)
    assert np.median([r.findings[0].evidence["autocorrelation_correction"] for r in results]) > 1


def test_a_noisy_leak_whose_steps_are_random_is_a_leak() -> None:
    # Each second allocates a random amount: around a line the series wanders like a random walk,
    # which the level test discounts and the drift test sees.
    rng = np.random.default_rng(8)
    results = [analyze(T, [Series("leak", 5 * MB + np.cumsum(np.maximum(0, rng.normal(20_000, 15_000, len(T)))))])
               for _ in range(50)]
    assert sum(r.verdict == "leak" for r in results) >= 48


# --- regimes: warm-up, late onset, steps ---------------------------------------------------------

def test_pettitt_finds_a_shift_of_level() -> None:
    x = np.r_[np.zeros(30), np.full(30, 5.0)] + noise(1.0)
    shift = pettitt(x)
    assert 28 <= shift.index <= 32 and shift.p_value < 1e-6
    assert pettitt(noise(1.0)).p_value > 0.01


def test_regime_start_is_where_growth_rate_changed() -> None:
    y = np.where(T < 30, 0, (T - 30) * 5_000) + noise(500)
    start, pending = regime_start(y, 0.01, 8)
    assert 28 <= start <= 33 and pending is None
    assert regime_start(5_000 * T + noise(500), 0.01, 8) == (0, None)


def test_late_onset_leak_is_analysed_from_its_onset_at_its_own_rate() -> None:
    late = Series("late", np.where(T < 30, 1 * MB, 1 * MB + (T - 30) * 50_000) + noise(5_000))
    (finding,) = analyze(T, [late]).findings
    assert finding.verdict == "leak"
    assert finding.evidence["regime_shift"] and 28 <= finding.evidence["warmup_until_s"] <= 34
    assert finding.growth_bytes_per_hour == pytest.approx(50_000 * 3600, rel=0.1)


def test_long_warm_up_then_flat_is_clean() -> None:
    # 40% of the run spent warming caches: well past the 10% always set aside.
    warm = Series("warm", np.minimum(T, 24) * 100_000 + noise(2_000))
    assert analyze(T, [warm]).verdict == "clean"


@pytest.mark.parametrize("at", [20, 35, 50])
def test_a_one_off_step_is_not_a_leak(at: int) -> None:
    table = Series("table", np.where(T < at, 1 * MB, 3 * MB) + noise(3_000))
    assert analyze(T, [table]).verdict == "clean"


# --- sawtooth and the lower envelope --------------------------------------------------------------

def test_lower_envelope_is_a_trailing_minimum() -> None:
    assert lower_envelope(np.array([3.0, 1, 2, 5, 4]), 2).tolist() == [3, 1, 1, 2, 4]
    saw = (T % 7) * 10.0
    assert envelope_width(saw, 3, 15) == 8
    assert envelope_width(T + noise(0.1), 3, 15) == 3


@pytest.mark.parametrize("period", [5, 7, 13])
def test_sawtooth_buffers_of_any_period_are_clean(period: int) -> None:
    assert analyze(T, [Series("buffer", (T % period) * 150_000.0 + noise(1_000))]).verdict == "clean"


def test_a_leak_under_a_sawtooth_is_judged_by_its_floor() -> None:
    result = analyze(T, [Series("both", (T % 7) * 150_000.0 + 20_000 * T)])
    assert result.verdict == "leak"
    assert result.findings[0].growth_bytes_per_hour == pytest.approx(20_000 * 3600, rel=0.15)


def test_a_cache_filling_slowly_then_stopping_late_is_not_called_a_leak_too_soon() -> None:
    # Fills for 50 s then stops: at 60 s the stop is too recent to be sure, so at most suspect.
    cache = Series("cache", np.minimum(T, 50) * 30_000 + noise(1_000))
    assert analyze(T, [cache]).verdict in ("suspect", "clean")


# --- material, many, roll-ups ---------------------------------------------------------------------

def test_growth_below_the_heap_share_floor_is_not_material() -> None:
    slow = Series("slow", 1 * MB + 2_000 * T + noise(100))  # 7.2 MB/h
    assert analyze(T, [slow]).verdict == "leak"
    # ...but in a 10 GiB heap the floor is 0.1% of it per hour, about 10 MiB/h.
    assert analyze(T, [slow], heap_bytes=10 * 1024 * MB).verdict == "clean"


def test_library_sites_from_one_call_site_roll_up_into_one_series() -> None:
    parts = [Series(("site", i), 1_000 + 300 * T + noise(50)) for i in range(6)]  # each ~1 MB/h
    other = Series(("site", 99), 5_000 + noise(50))
    labels: dict[Hashable, Hashable] = {("site", i): ("library", "somelib", ("app.py", 12)) for i in range(6)}
    series, groups = roll_up([*parts, other], labels)
    assert len(series) == 2
    (key,) = groups
    assert key == ("library", "somelib", ("app.py", 12)) and len(groups[key].members) == 6
    result = analyze(T, series)
    assert [f.key for f in result.findings] == [key]
    assert result.findings[0].growth_bytes_per_hour == pytest.approx(6 * 300 * 3600, rel=0.1)


def test_a_single_library_site_is_not_rolled_up() -> None:
    one = Series(("site", 1), 1_000 + 300 * T)
    series, groups = roll_up([one], {("site", 1): ("library", "somelib", ("app.py", 3))})
    assert series == [one] and groups == {}


def test_evidence_says_why() -> None:
    (finding,) = analyze(T, [Series("s", 1 * MB + 30_000 * T + noise(3_000))]).findings
    evidence = finding.evidence
    low, high = evidence["slope_interval"]
    assert low < evidence["slope_bytes_per_s"] < high
    assert evidence["early_slope_bytes_per_s"] > 0 and evidence["recent_slope_bytes_per_s"] > 0
    assert finding.q_value <= 0.01 and evidence["recent_p_value"] <= 0.05


def test_a_buffer_whose_capacity_grows_in_steps_is_a_leak_on_any_plateau() -> None:
    # A bytearray that is appended to: its capacity grows by 1/8 at each reallocation, so its
    # series is a staircase whose steps lengthen; ending on a plateau is not growth that stopped.
    t = np.arange(0, 600, 1.0)
    wanted = 200_000 + 4_000 * t
    capacity = np.empty_like(wanted)
    current = wanted[0]
    for i, need in enumerate(wanted):
        while current < need:
            current *= 1.125
        capacity[i] = current
    for end in (300, 420, 480, 600):
        result = analyze(t[:end], [Series("buffer", capacity[:end])])
        assert result.verdict == "leak", (end, result.findings[0].evidence if result.findings else None)


def test_projection_against_a_limit_or_the_cgroup() -> None:
    from soak.judging.analysis import projection

    rows = [{"rss": 100 * MB, "cgroup_limit": None, "cgroup_bytes": None}]
    assert projection(rows, MB / 3600, 200 * MB)["seconds_until_limit"] == pytest.approx(100 * 3600)
    cgroup = [{"rss": 100 * MB, "cgroup_limit": 512 * MB, "cgroup_bytes": 256 * MB}]
    p = projection(cgroup, 2 * MB / 3600, None)
    assert p["limit_source"] == "cgroup" and p["seconds_until_limit"] == pytest.approx(128 * 3600)
    assert projection(rows, 0.0, 200 * MB)["seconds_until_limit"] is None  # not growing
    assert projection(rows, MB, None)["limit_bytes"] is None
