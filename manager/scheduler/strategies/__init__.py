"""Placement strategies, by the names `--strategy` takes."""

from flock.manager.scheduler.strategies.base import Fit, Strategy, fit
from flock.manager.scheduler.strategies.binpack import BinpackStrategy
from flock.manager.scheduler.strategies.random import RandomStrategy
from flock.manager.scheduler.strategies.spread import SpreadStrategy

STRATEGIES: dict[str, type[Strategy]] = {
    "spread": SpreadStrategy,
    "binpack": BinpackStrategy,
    "binpacking": BinpackStrategy,  # classic Swarm's old name
    "random": RandomStrategy,
}

__all__ = ["STRATEGIES", "Fit", "Strategy", "fit"]
