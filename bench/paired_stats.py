"""Statistics for an interleaved A/B timing run: the ratio of medians and its confidence
interval, from pairs.

Timings on a shared 2-core machine drift by tens of percent over a minute, so the two
sides are measured in pairs (one of each, back to back) and the interval is bootstrapped
over whole pairs: a resample keeps each pair's two figures together, so the drift they
share cancels in the ratio instead of widening the interval. Pure and stdlib-only, so
tests/unit/test_paired_stats.py can check it.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Sequence


def alternating_pairs(base: Callable[[], float], other: Callable[[], float], runs: int
                      ) -> tuple[list[float], list[float]]:
    """`runs` pairs of one figure from each side (what each call returns); even pairs
    run `base` first, odd ones `other` first, so that drift and warm caches hit both."""
    figures: tuple[list[float], list[float]] = ([], [])
    for i in range(runs):
        for side in (0, 1) if i % 2 == 0 else (1, 0):
            figures[side].append((base, other)[side]())
    return figures


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (p90 is `fraction=0.9`): a value that was measured,
    never one interpolated between two."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = math.ceil(round(len(ordered) * fraction, 9))  # round: 100 * 0.07 is 7.000...1
    return ordered[min(len(ordered), max(1, rank)) - 1]


def median_ratio(base: Sequence[float], other: Sequence[float]) -> float:
    """median(other) / median(base): how much slower `other` is in the typical run."""
    return statistics.median(other) / statistics.median(base)


def bootstrap_ratio_ci(base: Sequence[float], other: Sequence[float], resamples: int = 2000,
                       confidence: float = 0.95, seed: int = 19) -> tuple[float, float]:
    """The percentile-bootstrap interval of `median_ratio` over pairs (base[i],
    other[i]); a fixed seed so that the same figures always give the same interval."""
    if len(base) != len(other) or not base:
        raise ValueError("need the same number of figures on both sides, at least one")
    rng = random.Random(seed)
    count = len(base)
    ratios = []
    for _ in range(resamples):
        picks = [rng.randrange(count) for _ in range(count)]
        ratios.append(median_ratio([base[i] for i in picks], [other[i] for i in picks]))
    tail = (1 - confidence) / 2
    return percentile(ratios, tail), percentile(ratios, 1 - tail)
