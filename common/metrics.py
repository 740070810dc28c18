"""A small metrics registry of our own, rendered in the Prometheus text format (0.0.4).

Why not `prometheus_client`: a scheduling decision takes 20-100 µs, and that library's
locked counters and linear bucket search cost ~1.5 µs per decision, several times more
than these plain attributes and a bisect. Everything here is updated from one asyncio
loop (the manager's or the agent's), so no locks are needed; a scrape renders from the
same loop.

    registry = Registry()
    decisions = registry.counter("flock_decisions_total", "Decisions.", ["outcome"])
    decisions.labels("placed").inc()
    latency = registry.histogram("flock_decision_seconds", "Decision time.")
    latency.observe(0.0003)
    registry.gauge("flock_nodes", "Nodes.", ["health"], lambda: {("healthy",): 2})
    text = registry.render()
"""

from __future__ import annotations

import bisect
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# From 50 µs (a decision at 1,000 nodes) to 10 s (a slow agent or a pull); seconds.
LATENCY_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                   0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

LabelValues = tuple[str, ...]
GaugeSource = Callable[[], Mapping[LabelValues, float]]


class _Family(ABC):
    """One metric name with its HELP, TYPE and label names; children per label values."""

    kind = ""

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        if not _NAME.match(name):
            raise ValueError(f"invalid metric name {name!r}: use letters, digits, _ and :")
        bad = [label for label in labels if not _LABEL.match(label) or label == "le"]
        if bad:
            raise ValueError(f"invalid label name {bad[0]!r} for {name}")
        self.name = name
        self.help = help_text
        self.label_names = tuple(labels)
        self._children: dict[LabelValues, object] = {}

    def labels(self, *values: str):
        """The child for these label values (in the order the labels were declared).
        Callers on a hot path keep the child rather than looking it up each time."""
        child = self._children.get(values)  # values given as strings: the usual case
        if child is not None:
            return child
        key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            if len(key) != len(self.label_names):
                raise ValueError(f"{self.name} takes labels {list(self.label_names)}, "
                                 f"got {len(key)} values")
            child = self._children[key] = self._child()
        return child

    @abstractmethod
    def _child(self) -> object:
        """A new child for one set of label values."""

    def head(self) -> list[str]:
        text = self.help.replace("\\", "\\\\").replace("\n", "\\n")
        return [f"# HELP {self.name} {text}", f"# TYPE {self.name} {self.kind}"]

    @abstractmethod
    def samples(self) -> list[str]:
        """The exposition lines of every child."""

    def _pairs(self, values: LabelValues, extra: str = "") -> str:
        parts = [f'{k}="{_escape(v)}"' for k, v in zip(self.label_names, values, strict=True)]
        if extra:
            parts.append(extra)
        return "{" + ",".join(parts) + "}" if parts else ""


class CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        self.value += amount


class Counter(_Family):
    """Counts that only go up; the name should end in `_total`."""

    kind = "counter"

    def _child(self) -> CounterChild:
        return CounterChild()

    def inc(self, amount: float = 1.0) -> None:
        """For a counter without labels."""
        self.labels().inc(amount)

    def value(self, *values: str) -> float:
        child = self._children.get(tuple(values))
        return child.value if isinstance(child, CounterChild) else 0.0

    def samples(self) -> list[str]:
        return [f"{self.name}{self._pairs(k)} {_num(c.value)}"
                for k, c in self._children.items() if isinstance(c, CounterChild)]


class HistogramChild:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)


class Histogram(_Family):
    """Observations counted into buckets (upper bounds, inclusive), with sum and count."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = (),
                 buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        super().__init__(name, help_text, labels)
        bounds = tuple(sorted(float(b) for b in buckets if not math.isinf(b)))
        if not bounds or len(set(bounds)) != len(bounds):
            raise ValueError(f"{name}: buckets must be distinct numbers, got {list(buckets)}")
        self.bounds = bounds

    def _child(self) -> HistogramChild:
        return HistogramChild(self.bounds)

    def observe(self, value: float) -> None:
        """For a histogram without labels."""
        self.labels().observe(value)

    def samples(self) -> list[str]:
        out = []
        for key, child in self._children.items():
            if not isinstance(child, HistogramChild):
                continue
            running = 0
            for bound, count in zip((*self.bounds, math.inf), child.counts, strict=True):
                running += count
                le = 'le="' + ("+Inf" if math.isinf(bound) else repr(bound)) + '"'
                out.append(f"{self.name}_bucket{self._pairs(key, le)} {running}")
            out.append(f"{self.name}_sum{self._pairs(key)} {_num(child.sum)}")
            out.append(f"{self.name}_count{self._pairs(key)} {running}")
        return out


class Gauge(_Family):
    """A value computed when scraped, by `source` (label values -> value), so it never
    goes stale and costs nothing between scrapes."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, labels: Sequence[str],
                 source: GaugeSource) -> None:
        super().__init__(name, help_text, labels)
        self.source = source

    def _child(self) -> object:
        raise TypeError(f"{self.name} is computed when scraped, from its source: it has no "
                        "children to set")

    def samples(self) -> list[str]:
        out = []
        for key, value in self.source().items():
            values = tuple(str(v) for v in key)
            if len(values) != len(self.label_names):
                raise ValueError(f"{self.name}: the source gave {values}, expected values "
                                 f"for {list(self.label_names)}")
            out.append(f"{self.name}{self._pairs(values)} {_num(value)}")
        return out


F = TypeVar("F", bound=_Family)


class Registry:
    """The metrics of one process part (a manager, an agent), rendered together."""

    def __init__(self) -> None:
        self._families: dict[str, _Family] = {}

    def _add(self, family: F) -> F:
        if family.name in self._families:
            raise ValueError(f"metric {family.name} is already registered")
        self._families[family.name] = family
        return family

    def counter(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Counter:
        return self._add(Counter(name, help_text, labels))

    def histogram(self, name: str, help_text: str, labels: Sequence[str] = (),
                  buckets: Sequence[float] = LATENCY_BUCKETS) -> Histogram:
        return self._add(Histogram(name, help_text, labels, buckets))

    def gauge(self, name: str, help_text: str, labels: Sequence[str],
              source: GaugeSource) -> Gauge:
        return self._add(Gauge(name, help_text, labels, source))

    def render(self) -> str:
        """Every metric in the Prometheus text exposition format."""
        lines: list[str] = []
        for family in self._families.values():
            lines += family.head()
            lines += family.samples()
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))
