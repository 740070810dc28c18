"""The scheduler's own view of a ClusterState, kept current through the state's listener
hooks (`ClusterState.attach`): the rank buckets, plus the answers to glob and regex
rules, which would otherwise test every label value, node name or container name on
every decision.

- Node-side patterns (`constraint:region==eu-*`, `node==/web-[0-9]+/`) depend only on
  node labels and names: cached until `ClusterState.node_generation` moves.
- Container-name patterns (`affinity:container!=web-*`) change with every container:
  each pattern seen is counted per node once, then kept up to date as containers come
  and go (a few regex tests per change instead of 100,000 per decision).
"""

from __future__ import annotations

from collections.abc import Callable

from flock.manager.cluster.model import Node
from flock.manager.cluster.state import ClusterState, NodeUsage
from flock.manager.scheduler.buckets import RankBuckets
from flock.manager.scheduler.rules import Rule

KEY = "scheduler"
_MAX_PATTERNS = 64  # patterns remembered at once; the oldest is forgotten first


class PlacementIndex:
    def __init__(self, state: ClusterState) -> None:
        self.buckets = RankBuckets()
        usage = state.usage_map()
        for node_id, node in state.node_map().items():
            self.buckets.update(node_id, node, usage.get(node_id))
        self._state = state
        self._node_cache: dict[tuple, tuple[int, set[str]]] = {}
        self._container_patterns: dict[tuple[str, str], _NamePattern] = {}

    # ------------------------------------------------------- state listener
    def node_changed(self, node_id: str, node: Node | None, usage: NodeUsage | None) -> None:
        self.buckets.update(node_id, node, usage)

    def container_changed(self, container_id: str, name: str, node_id: str, added: bool) -> None:
        for pattern in self._container_patterns.values():
            pattern.count(container_id, name, node_id, 1 if added else -1)

    def container_rewritten(self, container_id: str, node_id: str) -> None:
        return None  # the patterns count names and IDs, which a rewrite keeps

    # --------------------------------------------------------------- lookups
    def node_hits(self, what: str, rule: Rule, compute: Callable[[], set[str]]) -> set[str]:
        """`compute()` (node IDs matching a pattern over node labels or names), reused
        while nodes, their names and labels stay the same."""
        key = (what, rule.key, rule.value)
        generation = self._state.node_generation
        cached = self._node_cache.get(key)
        if cached is not None and cached[0] == generation:
            return cached[1]
        hits = compute()
        _remember(self._node_cache, key, (generation, hits))
        return hits

    def container_hits(self, rule: Rule) -> dict[str, int]:
        """Node ID -> containers whose name or ID `rule`'s pattern matches. Live."""
        key = (rule.value, "")
        pattern = self._container_patterns.get(key)
        if pattern is None:
            pattern = _NamePattern(rule)
            for container in self._state.container_map().values():
                pattern.count(container.id, container.name, container.node_id, 1)
            _remember(self._container_patterns, key, pattern)
        return pattern.nodes


class _NamePattern:
    """Containers per node whose name or ID matches one glob or regex."""

    __slots__ = ("rule", "nodes")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.nodes: dict[str, int] = {}

    def count(self, container_id: str, name: str, node_id: str, delta: int) -> None:
        if not (self.rule.matches(name) or self.rule.matches(container_id)):
            return
        total = self.nodes.get(node_id, 0) + delta
        if total > 0:
            self.nodes[node_id] = total
        else:
            self.nodes.pop(node_id, None)


def _remember(cache: dict, key: object, value: object) -> None:
    if key not in cache and len(cache) >= _MAX_PATTERNS:
        del cache[next(iter(cache))]
    cache[key] = value


def index_for(state: ClusterState) -> PlacementIndex:
    return state.attach(KEY, PlacementIndex)
