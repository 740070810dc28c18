"""random: uniformly among the nodes with enough resources."""

from __future__ import annotations

from flock.manager.cluster.state import ClusterState
from flock.manager.scheduler.filters.base import NodeIds
from flock.manager.scheduler.strategies.base import Fit, Strategy, pick


class RandomStrategy(Strategy):
    name = "random"

    def choose(self, state: ClusterState, candidates: NodeIds, fit: Fit) -> str:
        if not candidates:
            raise ValueError("no candidates to choose from")
        return pick(self.rng, candidates)

    def rank(self, state: ClusterState, candidates: NodeIds, fit: Fit) -> list[str]:
        ranked = list(candidates)
        self.rng.shuffle(ranked)
        return ranked
