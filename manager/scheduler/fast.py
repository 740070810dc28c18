"""One decision without building candidate sets: the filter chain's conditions as a
membership test (query.py), the strategy as a walk over the rank buckets (buckets.py).

A search either finds a node or says there is none. When a required collection is
small (a dependency's node, `node==x`, a rare label) its members are scored one by one;
otherwise buckets are walked best first. A walk that visits too many nodes (the few
candidates are spread thin) stops and scores the candidates one by one instead, so a
decision never costs more than the filter chain would. Soft rules are tried in chain
order, each kept only if a search with it still finds a node, exactly as the chain
does; the last successful search's node is the decision.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from flock.manager.cluster.state import ClusterState
from flock.manager.scheduler.buckets import Budget, OverBudget, RankBuckets, pick_tied
from flock.manager.scheduler.filters import Filter
from flock.manager.scheduler.index import index_for
from flock.manager.scheduler.query import Query
from flock.manager.scheduler.scores import Request
from flock.manager.scheduler.spec import ContainerSpec

DIRECT = 128  # a required collection this small is scored member by member
BUDGET = 4096  # node visits a bucket walk may spend before scoring one by one


class FastPath:
    def __init__(
        self, filters: list[Filter], strategy: str, overcommit: float, rng: random.Random
    ) -> None:
        self.filters = filters
        self.random = strategy == "random"
        self.lowest = strategy != "binpack"
        self.overcommit = overcommit
        self.rng = rng
        self.direct, self.budget = DIRECT, BUDGET  # tests lower them to reach every path

    def place(self, state: ClusterState, spec: ContainerSpec) -> tuple[str, list[str]] | None:
        """(node ID, soft rules dropped), or None when no node fits."""
        buckets = index_for(state).buckets
        request = Request(spec.cpus, spec.memory, self.overcommit)
        query = Query()
        for step in self.filters:
            step.restrict(state, spec, query)
        chosen = self._search(buckets, request, query)
        if chosen is None:
            return None
        dropped: list[str] = []
        for step in self.filters:
            for rule in step.soft_rules(spec):
                query.add(*step.hits(state, rule))
                narrowed = self._search(buckets, request, query)
                if narrowed is None:
                    query.undo()
                    dropped.append(rule.source)
                else:
                    chosen = narrowed
        return chosen, dropped

    def _search(self, buckets: RankBuckets, request: Request, query: Query) -> str | None:
        if query.impossible():
            return None
        smallest = query.smallest_required()
        if smallest is not None and len(smallest) <= self.direct:
            return self._one_by_one(buckets, smallest, request, query)
        if self.random:
            found = buckets.sample(self.rng, request, query.admits)
        else:
            try:
                tied = buckets.best(request, self.lowest, query.admits, Budget(self.budget))
            except OverBudget:
                tied = None
            else:
                return pick_tied(self.rng, tied, query.admits) if tied else None
            found = None
        if found is not None:
            return found
        return self._one_by_one(
            buckets, smallest if smallest is not None else buckets.all.items, request, query
        )

    def _one_by_one(
        self, buckets: RankBuckets, ids: Iterable[str], request: Request, query: Query
    ) -> str | None:
        admits = query.admits
        ranked = []
        for node_id in ids:
            if admits(node_id):
                rank = buckets.rank_of(node_id, request)
                if rank is not None:
                    ranked.append((rank, node_id))
        if not ranked:
            return None
        if not self.random:
            top = (min if self.lowest else max)(rank for rank, _ in ranked)
            ranked = [(rank, node_id) for rank, node_id in ranked if rank == top]
        return self.rng.choice(ranked)[1]
