"""The statistics behind bench/docker_run_latency.py (issue 19's `docker run` ratio): the
ratio of medians, its bootstrap interval over pairs, and nearest-rank percentiles."""

from __future__ import annotations

import random

import pytest

from bench.paired_stats import alternating_pairs, bootstrap_ratio_ci, median_ratio, percentile


def test_equal_samples_have_ratio_one_and_a_point_interval():
    times = [10.0, 12.0, 11.0, 30.0, 9.5]
    assert median_ratio(times, list(times)) == 1.0
    assert bootstrap_ratio_ci(times, list(times)) == (1.0, 1.0)


def test_ratio_is_other_over_base_of_the_medians():
    assert median_ratio([1.0, 2.0, 100.0], [3.0, 4.0, 5.0]) == 2.0


def test_interval_contains_the_true_ratio_of_a_known_sample():
    # Pairs that share a machine speed drifting up to 2x: Flock's side is 1.05x the
    # direct one, each with 5% noise of its own. Resampled as pairs, the shared drift
    # cancels and the interval excludes 1.0; resampling each side on its own (the
    # mistake this guards against) gives about 0.98-1.11 here.
    rng = random.Random(1)
    base, other = [], []
    for i in range(200):
        drift = 100 * (1 + (i % 20) / 20)
        base.append(drift * rng.uniform(0.95, 1.05))
        other.append(drift * 1.05 * rng.uniform(0.95, 1.05))
    low, high = bootstrap_ratio_ci(base, other)
    assert low < 1.05 < high
    assert low > 1.0  # the interval is narrow enough to tell 5% from nothing
    assert low <= median_ratio(base, other) <= high


def test_interval_is_the_same_for_the_same_figures_and_seed():
    rng = random.Random(2)
    base = [rng.uniform(90, 110) for _ in range(50)]
    other = [rng.uniform(90, 120) for _ in range(50)]
    assert bootstrap_ratio_ci(base, other) == bootstrap_ratio_ci(base, other)
    assert bootstrap_ratio_ci(base, other, seed=3) != bootstrap_ratio_ci(base, other, seed=4)


def test_more_confidence_widens_the_interval():
    rng = random.Random(5)
    base = [rng.uniform(90, 110) for _ in range(60)]
    other = [rng.uniform(95, 125) for _ in range(60)]
    low90, high90 = bootstrap_ratio_ci(base, other, confidence=0.90)
    low99, high99 = bootstrap_ratio_ci(base, other, confidence=0.99)
    assert low99 <= low90 < high90 <= high99
    assert (low99, high99) != (low90, high90)


def test_unpaired_figures_are_refused():
    with pytest.raises(ValueError, match="same number"):
        bootstrap_ratio_ci([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="same number"):
        bootstrap_ratio_ci([], [])


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(100, 0, -1)]  # 100 .. 1, unsorted on purpose
    assert percentile(values, 0.9) == 90.0
    assert percentile(values, 0.07) == 7.0  # 100 * 0.07 is 7.000...1 in floating point
    assert percentile(values, 1.0) == 100.0
    assert percentile(values, 0.0) == 1.0
    assert percentile([4.0], 0.5) == 4.0
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_pairs_alternate_which_side_goes_first():
    order: list[str] = []

    def side(name: str, figure: float):
        def run() -> float:
            order.append(name)
            return figure
        return run

    base, other = alternating_pairs(side("a", 1.0), side("b", 2.0), 3)
    assert order == ["a", "b", "b", "a", "a", "b"]
    assert (base, other) == ([1.0, 1.0, 1.0], [2.0, 2.0, 2.0])
