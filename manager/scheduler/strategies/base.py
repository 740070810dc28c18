"""Resource fit and ranking over an explicit candidate set, with classic Swarm's
arithmetic (scores.py): the filter chain's form, used to explain a decision and to
name what removed every node when nothing fits. `Scheduler.place` finds the same node
through the ranking buckets (buckets.py) without building candidate sets.

Stopped containers and pending creates count in "used": ClusterState's usage totals
hold all of them.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from flock.manager.cluster.state import ClusterState
from flock.manager.scheduler.filters.base import NodeIds
from flock.manager.scheduler.scores import LIMIT, NOTHING_REQUESTED, Request
from flock.manager.scheduler.spec import ContainerSpec


@dataclass
class Fit:
    """The candidates with enough resources, grouped by weight, and those short of them."""

    nodes: NodeIds
    groups: dict[float, NodeIds] | None  # weight -> node IDs; None: nothing requested
    short_cpus: set[str] = field(default_factory=set)
    short_memory: set[str] = field(default_factory=set)

    def weights(self) -> dict[str, float]:
        """Weight by node ID (visits every node: for explanations only)."""
        if self.groups is None:
            return dict.fromkeys(self.nodes, NOTHING_REQUESTED)
        return {nid: weight for weight, ids in self.groups.items() for nid in ids}


def fit(state: ClusterState, spec: ContainerSpec, candidates: NodeIds, overcommit: float) -> Fit:
    """Score each resource class once (see ClusterState.nodes_by_resource_class), or
    each candidate when there are fewer candidates than classes."""
    if not spec.cpus and not spec.memory:
        return Fit(candidates, None)
    request = Request(spec.cpus, spec.memory, overcommit)
    classes = state.nodes_by_resource_class()
    result = Fit(set(), {})
    groups: dict[float, set[str]] = {}
    if len(candidates) < len(classes):
        nodes, usage = state.node_map(), state.usage_map()
        for nid in candidates:
            node, used = nodes[nid], usage.get(nid)
            weight = _weigh(
                request,
                node.cpus,
                node.memory,
                used.cpus if used else 0.0,
                used.memory if used else 0,
                result,
                (nid,),
            )
            if weight is not None:
                groups.setdefault(weight, set()).add(nid)
    else:
        everyone = len(candidates) == len(state.node_map())
        for cls, ids in classes.items():
            members = ids if everyone else ids & candidates
            if not members:
                continue
            weight = _weigh(request, *cls, result, members)
            if weight is not None:
                if weight in groups:
                    groups[weight] = groups[weight] | members
                else:
                    groups[weight] = members
    result.groups = groups
    result.nodes = set().union(*groups.values()) if groups else set()
    return result


def _weigh(
    request: Request,
    total_cpus: float,
    total_memory: int,
    used_cpus: float,
    used_memory: int,
    result: Fit,
    ids: Iterable[str],
) -> float | None:
    """Request.weight, noting the IDs short of CPUs or memory (the error names both)."""
    cpu = request.cpu_score(total_cpus, used_cpus)
    memory = request.memory_score(total_memory, used_memory)
    if cpu > LIMIT:
        result.short_cpus.update(ids)
    if memory > LIMIT:
        result.short_memory.update(ids)
    if cpu > LIMIT or memory > LIMIT:
        return None
    return round(cpu + memory, 9)


class Strategy:
    """Picks one node among candidates that all have enough resources."""

    name = ""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def choose(self, state: ClusterState, candidates: NodeIds, fit: Fit) -> str:
        raise NotImplementedError

    def rank(self, state: ClusterState, candidates: NodeIds, fit: Fit) -> list[str]:
        """Every candidate, best first (for explanations; `choose` never sorts)."""
        raise NotImplementedError


class WeightedStrategy(Strategy):
    """Best by (weight, container count), lowest first (spread) or highest (binpack);
    the nodes still tied are drawn from uniformly at random. Works on buckets (weight
    groups, ClusterState's container-count buckets) so no node is visited one by one."""

    lowest = True

    def choose(self, state: ClusterState, candidates: NodeIds, fit: Fit) -> str:
        if not candidates:
            raise ValueError("no candidates to choose from")
        best = candidates
        if fit.groups is not None:
            # Every group lies within fit.nodes: no need to intersect with it.
            best = self._best_group(None if candidates is fit.nodes else candidates, fit.groups)
        return pick(self.rng, self._fewest_containers(state, best))

    def rank(self, state: ClusterState, candidates: NodeIds, fit: Fit) -> list[str]:
        usage, weights = state.usage_map(), fit.weights()
        sign = 1 if self.lowest else -1

        def key(nid: str) -> tuple[float, int]:
            used = usage.get(nid)
            return sign * weights[nid], sign * (used.containers if used else 0)

        return sorted(candidates, key=key)

    def _best_group(self, candidates: NodeIds | None, groups: dict[float, NodeIds]) -> NodeIds:
        if candidates is None:
            return groups[(min if self.lowest else max)(groups)]
        for weight in sorted(groups, reverse=not self.lowest):
            members = _common(groups[weight], candidates)
            if members:
                return members
        raise ValueError("no candidates to choose from")

    def _fewest_containers(self, state: ClusterState, members: NodeIds) -> NodeIds:
        """The members with the fewest (spread) or most (binpack) containers."""
        buckets = state.nodes_by_container_count()
        if len(buckets) == 1:
            return members  # every node has as many containers
        for count in sorted(buckets, reverse=not self.lowest):
            ties = _common(buckets[count], members)
            if ties:
                return ties
        return members  # members the buckets do not know: all even


def pick(rng: random.Random, ids: NodeIds) -> str:
    """One of `ids` uniformly at random, without copying the set into a sequence."""
    if len(ids) == 1:
        return next(iter(ids))
    return next(itertools.islice(ids, rng.randrange(len(ids)), None))


def _common(a: NodeIds, b: NodeIds) -> NodeIds:
    """a ∩ b (the C set code visits the smaller side)."""
    if not a or not b:
        return frozenset()
    return a & b
