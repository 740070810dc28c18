"""binpack: the most loaded node that still fits, then most containers, so that whole
nodes stay free for big containers."""

from flock.manager.scheduler.strategies.base import WeightedStrategy


class BinpackStrategy(WeightedStrategy):
    name = "binpack"
    lowest = False
