"""The scheduler: filter chain -> resource fit -> soft rules -> strategy. Pure, no I/O.

Order of a decision:
1. every filter's hard conditions, in chain order, narrow the candidate node IDs;
2. nodes without the CPUs or memory asked for drop out (the strategy's arithmetic);
3. soft rules (`==~`, `!=~`), in chain order then the order given, each applied only if
   it leaves a candidate — Flock drops just the soft rules that cannot be met, where
   classic Swarm drops them all at once — and the dropped ones are reported;
4. the strategy picks one node.
When a step leaves nothing, NoNodeAvailable lists every condition that removed nodes.

`place` reaches the same node without building candidate sets (fast.py): the conditions
become membership tests over the state's live indexes and the strategy walks nodes in
rank order until the first candidate. Only when that finds nothing does the chain run
step by step, to say which condition removed which nodes; `explain` always does.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from time import perf_counter
from typing import Protocol

from flock.docker_compat.humanize import bytes_size
from flock.manager.cluster.model import Node
from flock.manager.cluster.state import ClusterState
from flock.manager.scheduler.fast import FastPath
from flock.manager.scheduler.filters import DEFAULT_FILTERS, FILTERS, Filter, Removal
from flock.manager.scheduler.filters.health import CONDITION as HEALTH_CONDITION
from flock.manager.scheduler.spec import ContainerSpec
from flock.manager.scheduler.strategies import STRATEGIES, Fit, fit

# Classic Swarm's three refusals, the first line of a NoNodeAvailable: a filter removed
# every node (scheduler/filter/filter.go ApplyFilters); the health filter did
# (scheduler/filter/health.go); the filters left nodes but none has the CPUs or memory
# asked for (scheduler/strategy/strategy.go, weighNodes). Scripts look for these.
HEADER = "Unable to find a node that satisfies the following conditions"
NO_HEALTHY = "No healthy node available in the cluster"
NO_RESOURCES = "no resources available to schedule container"
NO_NODES = "[no nodes in the cluster]"


class DecisionObserver(Protocol):
    """Told of every `place` outcome with its duration in seconds (manager/observability)."""

    def placed(self, seconds: float) -> None: ...

    def no_node(self, seconds: float, removals: list[Removal]) -> None: ...

    def failed(self, seconds: float) -> None: ...


class NoNodeAvailable(Exception):
    """Nothing fits. str() is the full message: classic's first line for the step that
    left nothing (`header`), then Flock's one line per condition that removed nodes
    (`[port 80 (Bridge mode)] (removed 2 nodes)`), which classic does not give."""

    def __init__(self, removals: list[Removal], lines: list[str] | None = None,
                 header: str = HEADER) -> None:
        self.removals = removals
        self.header = header
        self.lines = lines if lines is not None else [r.line() for r in removals]
        super().__init__("\n".join([header, *self.lines]))


@dataclass
class Decision:
    node: Node
    dropped_soft: list[str]  # soft rules dropped to find a node, as given: "constraint:k==~v"
    # Computed on first use (the filter chain, from the state as it is then):
    # `removals`, the hard conditions and what they removed; `candidates`, how many
    # nodes the strategy chose among. Deciding does not need them.
    details: Callable[[], tuple[list[Removal], int]] | None = field(
        default=None, repr=False, compare=False
    )
    _known: tuple[list[Removal], int] | None = field(default=None, repr=False, compare=False)

    @property
    def removals(self) -> list[Removal]:
        return self._details()[0]

    @property
    def candidates(self) -> int:
        return self._details()[1]

    def _details(self) -> tuple[list[Removal], int]:
        if self._known is None:
            self._known = self.details() if self.details is not None else ([], 0)
        return self._known


@dataclass
class Explanation:
    """The whole reasoning of one placement, for `explain` (sorts; place() does not)."""

    removals: list[Removal]
    dropped_soft: list[str]
    ranking: list[tuple[Node, float, int]]  # best first: node, weight, containers
    error: str = ""  # NoNodeAvailable's message when nothing fits


@dataclass
class _Outcome:
    candidates: set[str]
    fit: Fit
    removals: list[Removal]
    dropped_soft: list[str]


class Scheduler:
    def __init__(
        self,
        strategy: str = "spread",
        filters: list[str] | None = None,
        overcommit: float = 0.05,
        rng: random.Random | None = None,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f'unknown strategy "{strategy}": expected spread, binpack or random')
        names = list(DEFAULT_FILTERS if filters is None else dict.fromkeys(filters))
        unknown = [name for name in names if name not in FILTERS]
        if unknown:
            raise ValueError(
                f'unknown filter "{unknown[0]}": expected some of ' + ", ".join(DEFAULT_FILTERS)
            )
        if not isinstance(overcommit, (int, float)) or overcommit <= -1:
            raise ValueError(f"overcommit must be a number above -1, got {overcommit!r}")
        self.rng = rng or random.Random()
        self.strategy = STRATEGIES[strategy](self.rng)
        self.strategy_name = self.strategy.name
        self.filter_names = names
        self.filters: list[Filter] = [FILTERS[name]() for name in names]
        self.overcommit = float(overcommit)
        self.fast = FastPath(self.filters, self.strategy_name, self.overcommit, self.rng)
        self.observer: DecisionObserver | None = None  # set by the manager (metrics)

    def place(self, state: ClusterState, spec: ContainerSpec) -> Decision:
        """The node for `spec`; raises NoNodeAvailable with every failing condition.
        With an `observer` (the manager's metrics), each decision is timed and counted."""
        if self.observer is None:
            return self._place(state, spec)
        start = perf_counter()
        try:
            decision = self._place(state, spec)
        except NoNodeAvailable as exc:
            self.observer.no_node(perf_counter() - start, exc.removals)
            raise
        except Exception:
            self.observer.failed(perf_counter() - start)
            raise
        self.observer.placed(perf_counter() - start)
        return decision

    def _place(self, state: ClusterState, spec: ContainerSpec) -> Decision:
        found = self.fast.place(state, spec)
        if found is None:
            return self.place_by_chain(state, spec)  # raises NoNodeAvailable
        node_id, dropped = found
        return Decision(state.node_map()[node_id], dropped, lambda: self._details(state, spec))

    def place_by_chain(self, state: ClusterState, spec: ContainerSpec) -> Decision:
        """The same decision through the filter chain, step by step: slower, but it
        knows what removed which node (the error) and it is the reference the fast path
        is tested against."""
        outcome = self._narrow(state, spec)
        node_id = self.strategy.choose(state, outcome.candidates, outcome.fit)
        known = (outcome.removals, len(outcome.candidates))
        return Decision(state.node_map()[node_id], outcome.dropped_soft, _known=known)

    def _details(self, state: ClusterState, spec: ContainerSpec) -> tuple[list[Removal], int]:
        try:
            outcome = self._narrow(state, spec)
        except NoNodeAvailable as exc:
            return exc.removals, 0
        return outcome.removals, len(outcome.candidates)

    def explain(self, state: ClusterState, spec: ContainerSpec, limit: int = 20) -> Explanation:
        """What each filter removed and the strategy's ranking (best `limit` nodes)."""
        try:
            outcome = self._narrow(state, spec)
        except NoNodeAvailable as exc:
            return Explanation(exc.removals, [], [], str(exc))
        nodes, usage = state.node_map(), state.usage_map()
        weights = outcome.fit.weights()
        ranked = self.strategy.rank(state, outcome.candidates, outcome.fit)[:limit]
        ranking = [
            (nodes[nid], weights[nid], usage[nid].containers if nid in usage else 0)
            for nid in ranked
        ]
        return Explanation(outcome.removals, outcome.dropped_soft, ranking)

    # ------------------------------------------------------------- private
    def _narrow(self, state: ClusterState, spec: ContainerSpec) -> _Outcome:
        nodes = state.node_map()
        if not nodes:
            raise NoNodeAvailable([], [NO_NODES], NO_HEALTHY)
        candidates: AbstractSet[str] = nodes.keys()  # a live view: filters never mutate
        removals: list[Removal] = []
        for step in self.filters:
            result = step.apply(state, spec, candidates)
            for removal in result.removals:
                removal.filter = step.name
            removals.extend(result.removals)
            candidates = result.survivors
            if not candidates:
                raise NoNodeAvailable(removals, header=_refusal(step, result.removals))
        resources = fit(state, spec, candidates, self.overcommit)
        if not resources.nodes:
            raise NoNodeAvailable(removals + _shortages(spec, resources),
                                  header=NO_RESOURCES)
        candidates = resources.nodes
        dropped: list[str] = []
        for step in self.filters:
            for rule in step.soft_rules(spec):
                narrowed = step.apply_rule(state, spec, rule, candidates)
                if narrowed:
                    candidates = narrowed
                else:
                    dropped.append(rule.source)
        return _Outcome(candidates, resources, removals, dropped)


def _refusal(step: Filter, removals: list[Removal]) -> str:
    """Classic's first line when `step` left no candidate: the health filter's own
    sentence when only node health removed them (drained nodes are Flock's, and the
    sentence would mislead there), else the list header."""
    if step.name == "health" and all(r.condition == HEALTH_CONDITION for r in removals):
        return NO_HEALTHY
    return HEADER


def _shortages(spec: ContainerSpec, resources: Fit) -> list[Removal]:
    """Classic Swarm says only "no resources available to schedule container"; Flock
    names the resource and the amount asked for."""
    out = []
    if resources.short_cpus:
        out.append(Removal("available CPUs", resources.short_cpus, f"{spec.cpus:g} requested",
                           filter="resources"))
    if resources.short_memory:
        out.append(
            Removal("available Memory", resources.short_memory,
                    f"{bytes_size(spec.memory)} requested", filter="resources")
        )
    return out
