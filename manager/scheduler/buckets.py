"""Nodes kept in rank order, so that the best node is found without scoring every node.

A node's weight for a request depends only on its size (total CPUs and memory), what
is reserved on it, and its container count (the tie-break). Nodes equal in all of these
share a bucket; buckets are visited best first and the first with a candidate ends the
search, so a decision at 10,000 nodes looks at a handful of buckets, not at every node.

Within one size the order does not depend on the request: with CPUs and memory asked,
the weight grows with usedCPUs/totalCPUs + usedMemory/totalMemory; with one of them
asked, with that one's usage; with neither, every node weighs the same and only the
container count ranks. So each size keeps three sorted lists (one per kind of request),
updated as nodes change, plus one count -> nodes index. Across sizes the few bests are
compared with the exact weights (scores.py). Ties are drawn from uniformly at random,
by rejection sampling over the tied buckets, whose members can be picked in O(1).
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterator

from flock.manager.cluster.model import Node
from flock.manager.cluster.state import NodeUsage
from flock.manager.scheduler.scores import Request

# total CPUs, total memory, reserved CPUs, reserved memory, containers
Key = tuple[float, int, float, int, int]
Admits = Callable[[str], bool]
ORDERS = ("cm", "c", "m")
_SAMPLES = 32  # rejection-sampling tries before listing the tied candidates
_WINDOW = 1e-9  # sort values this close (relative) may still tie after rounding


class OverBudget(Exception):
    """The walk visited more nodes than allowed: scoring the candidates one by one is
    cheaper for this query (few candidates spread over many buckets)."""


class IdSet:
    """A set of node IDs that also picks a member uniformly in O(1)."""

    __slots__ = ("items", "_pos")

    def __init__(self) -> None:
        self.items: list[str] = []
        self._pos: dict[str, int] = {}

    def add(self, node_id: str) -> None:
        if node_id not in self._pos:
            self._pos[node_id] = len(self.items)
            self.items.append(node_id)

    def discard(self, node_id: str) -> None:
        index = self._pos.pop(node_id, None)
        if index is None:
            return
        last = self.items.pop()
        if index < len(self.items):
            self.items[index] = last
            self._pos[last] = index

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._pos

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[str]:
        return iter(self.items)


class Budget:
    """How many node visits one decision may spend walking buckets."""

    __slots__ = ("left",)

    def __init__(self, steps: int) -> None:
        self.left = steps

    def any_admitted(self, items: list[str], admits: Admits) -> bool:
        for node_id in items:
            self.left -= 1
            if admits(node_id):
                return True
            if self.left <= 0:
                raise OverBudget
        return False



class RankBuckets:
    """Every node in a bucket by Key, buckets sorted per size and kind of request."""

    def __init__(self) -> None:
        self.key_of: dict[str, Key] = {}
        self.all = IdSet()
        self._buckets: dict[Key, IdSet] = {}
        # (total CPUs, total memory) -> order ("cm", "c", "m") -> sorted (value, count, key)
        self._sizes: dict[tuple[float, int], dict[str, list[tuple]]] = {}
        self._by_count: dict[int, IdSet] = {}
        self._counts: list[int] = []  # sorted keys of _by_count

    # ------------------------------------------------------------ upkeep
    def update(self, node_id: str, node: Node | None, usage: NodeUsage | None) -> None:
        """Move a node to the bucket of its current size and usage (node None: drop it)."""
        old = self.key_of.get(node_id)
        new = None if node is None else key_of(node, usage)
        if old == new:
            return
        if old is not None:
            self._leave(node_id, old)
        if new is None:
            self.key_of.pop(node_id, None)
            self.all.discard(node_id)
            return
        self.key_of[node_id] = new
        self.all.add(node_id)
        self._join(node_id, new)

    def _join(self, node_id: str, key: Key) -> None:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = IdSet()
            orders = self._sizes.setdefault((key[0], key[1]), {o: [] for o in ORDERS})
            for order, entry in _entries(key):
                insort(orders[order], entry)
        bucket.add(node_id)
        counted = self._by_count.get(key[4])
        if counted is None:
            counted = self._by_count[key[4]] = IdSet()
            insort(self._counts, key[4])
        counted.add(node_id)

    def _leave(self, node_id: str, key: Key) -> None:
        bucket = self._buckets[key]
        bucket.discard(node_id)
        if not bucket:
            del self._buckets[key]
            size = (key[0], key[1])
            orders = self._sizes[size]
            for order, entry in _entries(key):
                entries = orders[order]
                del entries[bisect_left(entries, entry)]
            if not orders["cm"]:
                del self._sizes[size]
        counted = self._by_count[key[4]]
        counted.discard(node_id)
        if not counted:
            del self._by_count[key[4]]
            del self._counts[bisect_left(self._counts, key[4])]

    # ------------------------------------------------------------ search
    def best(self, request: Request, lowest: bool, admits: Admits, budget: Budget) -> list[IdSet]:
        """The buckets tied for best (lowest weight then fewest containers, or highest
        then most) that hold a candidate with enough resources; [] when none does."""
        if not request.order:
            counts = self._counts if lowest else reversed(self._counts)
            for count in counts:
                members = self._by_count[count]
                if budget.any_admitted(members.items, admits):
                    return [members]
            return []
        found: list[tuple[float, int, IdSet]] = []
        for size, orders in self._sizes.items():
            found += self._best_of_size(size, orders[request.order], request, lowest, admits,
                                        budget)
        if not found:
            return []
        pick = min if lowest else max
        top = pick((weight, count) for weight, count, _ in found)
        return [bucket for weight, count, bucket in found if (weight, count) == top]

    def _best_of_size(
        self,
        size: tuple[float, int],
        entries: list[tuple],
        request: Request,
        lowest: bool,
        admits: Admits,
        budget: Budget,
    ) -> list[tuple[float, int, IdSet]]:
        bound = _bound(size, request)
        if bound < 0:
            return []  # even an empty node of this size is too small
        end = bisect_right(entries, (bound, math.inf))  # entries past it cannot fit
        indexes = range(end) if lowest else range(end - 1, -1, -1)
        # Slightly generous per-resource limits: a cheap first test before the exact one.
        cpus, memory = request.headroom(*size)
        cpus = cpus if request.cpus else math.inf
        memory = memory if request.memory else math.inf
        found: list[tuple[float, int, IdSet]] = []
        first = best = None
        exact = request.order != "cm"  # the sort value alone decides the weight
        steps, limit = 0, budget.left
        for index in indexes:
            steps += 1
            if steps >= limit:
                raise OverBudget
            value, count, key = entries[index]
            if first is not None:
                if abs(value - first) > _WINDOW * (1 + abs(first)):
                    break
                if exact and value == first and _worse(count, best[1], lowest):
                    continue
            if key[2] > cpus or key[3] > memory:
                continue
            weight = request.weight(*key[:4])
            if weight is None or (best is not None and _worse((weight, count), best, lowest)):
                continue
            bucket = self._buckets[key]
            budget.left = limit - steps
            if budget.any_admitted(bucket.items, admits):
                if first is None:
                    first = value
                best = (weight, count)
                found.append((weight, count, bucket))
            steps, limit = 0, budget.left
        budget.left = limit - steps
        return found

    def sample(self, rng: random.Random, request: Request, admits: Admits) -> str | None:
        """A uniformly drawn node of all that are admitted and fit, or None after as
        many misses as allowed (the caller then lists the candidates)."""
        items = self.all.items
        for _ in range(_SAMPLES if items else 0):
            node_id = items[rng.randrange(len(items))]
            if admits(node_id) and self.fits(node_id, request):
                return node_id
        return None

    def fits(self, node_id: str, request: Request) -> bool:
        key = self.key_of.get(node_id)
        return key is not None and request.weight(*key[:4]) is not None

    def rank_of(self, node_id: str, request: Request) -> tuple[float, int] | None:
        """(weight, containers) of a node, or None when it lacks resources or is unknown."""
        key = self.key_of.get(node_id)
        if key is None:
            return None
        weight = request.weight(*key[:4])
        return None if weight is None else (weight, key[4])


def _worse(a: object, b: object, lowest: bool) -> bool:
    return a > b if lowest else a < b  # type: ignore[operator]


def pick_tied(rng: random.Random, buckets: list[IdSet], admits: Admits) -> str:
    """One admitted member of `buckets`, uniformly: rejection sampling, then a list."""
    sizes = [len(bucket) for bucket in buckets]
    total = sum(sizes)
    for _ in range(_SAMPLES):
        index = rng.randrange(total)
        for bucket, size in zip(buckets, sizes, strict=True):
            if index < size:
                node_id = bucket.items[index]
                break
            index -= size
        if admits(node_id):
            return node_id
    return rng.choice([nid for bucket in buckets for nid in bucket.items if admits(nid)])


def key_of(node: Node, usage: NodeUsage | None) -> Key:
    if usage is None:
        return (node.cpus, node.memory, 0.0, 0, 0)
    return (node.cpus, node.memory, round(usage.cpus, 9), usage.memory, usage.containers)


def _entries(key: Key) -> list[tuple[str, tuple]]:
    """The sort entries of a bucket: per order, (sort value, containers, key)."""
    total_cpus, total_memory, cpus, memory, count = key
    share = _share(cpus, total_cpus) + _share(memory, total_memory)
    return [("cm", (share, count, key)), ("c", (cpus, count, key)), ("m", (memory, count, key))]


def _share(used: float, total: float) -> float:
    return used / total if total > 0 else math.inf


def _bound(size: tuple[float, int], request: Request) -> float:
    """The largest sort value a node of `size` may have and still fit the request
    (slightly generous; the exact test follows); negative: none fits."""
    cpus, memory = request.headroom(*size)
    if (request.cpus and cpus < 0) or (request.memory and memory < 0):
        return -1.0
    slack = 1e-9
    if request.order == "c":
        return cpus + slack * (1 + abs(cpus))
    if request.order == "m":
        return memory + slack * (1 + abs(memory))
    share = _share(cpus, size[0]) + _share(memory, size[1])
    return share + slack * (1 + abs(share))
