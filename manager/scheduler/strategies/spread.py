"""spread: the least loaded node (lowest cpuScore + memScore), then fewest containers."""

from flock.manager.scheduler.strategies.base import WeightedStrategy


class SpreadStrategy(WeightedStrategy):
    name = "spread"
    lowest = True
