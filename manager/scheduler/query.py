"""The hard and soft conditions of one decision as a membership test, never as a set.

The filter chain's classic form narrows a candidate set step by step, which copies sets
of up to every node on each step. For the decision itself only membership matters: a
node is a candidate when it is in every required ID collection (healthy nodes, nodes
with the label value, the node of a dependency…) and in none of the excluded ones
(nodes using the host port, full nodes, nodes with a container the rule avoids). The
collections are the state's live indexes, so building a query costs a few lookups and
testing a node a few hash probes, whatever the cluster size. Which condition removed
which node only matters for the error, and the chain form still computes that.
"""

from __future__ import annotations

from collections.abc import Collection

IdCollection = Collection[str]  # a set of node IDs, or a dict keyed by node ID


class Query:
    """Candidates = nodes in every `required` collection and in no `excluded` one."""

    __slots__ = ("required", "excluded", "_undo")

    def __init__(self) -> None:
        self.required: list[IdCollection] = []
        self.excluded: list[IdCollection] = []
        self._undo: list[list[IdCollection]] = []

    def add(self, ids: IdCollection, keep: bool) -> None:
        """Keep only the nodes in `ids` (keep) or only those not in it."""
        target = self.required if keep else self.excluded
        target.append(ids)
        self._undo.append(target)

    def undo(self) -> None:
        """Take back the last `add` (a soft rule that left no candidate)."""
        self._undo.pop().pop()

    def admits(self, node_id: str) -> bool:
        for ids in self.required:
            if node_id not in ids:
                return False
        for ids in self.excluded:
            if node_id in ids:
                return False
        return True

    def impossible(self) -> bool:
        """A required collection is empty: nothing can be a candidate."""
        return any(not ids for ids in self.required)

    def smallest_required(self) -> IdCollection | None:
        """The smallest required collection: the cheapest one to walk, when small."""
        return min(self.required, key=len) if self.required else None
