"""Placement strategies, by the names `--strategy` takes."""

from manager.scheduler.strategies.base import Fit, Strategy, fit
from manager.scheduler.strategies.binpack import BinpackStrategy
from manager.scheduler.strategies.random import RandomStrategy
from manager.scheduler.strategies.spread import SpreadStrategy

STRATEGIES: dict[str, type[Strategy]] = {
    "spread": SpreadStrategy,
    "binpack": BinpackStrategy,
    "binpacking": BinpackStrategy,  # classic Swarm's old name
    "random": RandomStrategy,
}

__all__ = ["STRATEGIES", "Fit", "Strategy", "fit"]
