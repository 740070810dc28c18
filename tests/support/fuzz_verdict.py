"""How the API fuzz judges one answer of the manager, given the engines' answers to the
same request, and the figures of a run. Pure: answers in, verdicts and counts out.

A manager answer is a finding only where the engines show it is the manager's doing:
- a 5xx (but 501) that no engine gives with the same message: the manager's own 5xx;
- a 501 where an engine does the operation (anything but 501, or 404 "page not found");
- a spec violation (a failed check at a schema path) that no engine answering with the
  same status shows too;
- no answer within the timeout where an engine answered.
Allowances for intended Flock behaviour, applied before messages are compared: a
`<node>: ` prefix (an error from one node of a fan-out names it; `node-a: X; node-b: Y`
is relayed when each part is), `<node>/` in front of
names (`node/name` references and listings), and IDs (64 or 12 hex digits), which differ
between the objects of two engines; and `Content-Type: application/octet-stream` where
the engine sends none (aiohttp's default for a streamed answer). A 500 "Unable to find
a node that satisfies the following conditions" is the scheduler's refusal, classic
Swarm's status for it (README, Scheduling), not a failure.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

OK = "ok"
HANG = "hang"  # finding: the manager did not answer in time, an engine did
HANG_SHARED = "hang, the engine too"
RELAYED_5XX = "5xx relayed from the engine"
OWN_5XX = "5xx of the manager's own"  # finding
NOT_IMPLEMENTED = "501 for what the engine does"  # finding
UNKNOWN_501 = "501 where the engine has no such route"
NO_NODE_FITS = "500: no node fits the rules (classic Swarm's answer)"
VIOLATION = "spec violation the engine has not"  # finding
VIOLATION_SHARED = "spec violation the engines share (or answer otherwise)"
FINDINGS = frozenset({HANG, OWN_5XX, NOT_IMPLEMENTED, VIOLATION})
# aiohttp labels a streamed answer that has no Content-Type (the engine's logs, resize,
# archive put) application/octet-stream; no client reads it there.
_STREAM_DEFAULT = "application/octet-stream"
_UNDOCUMENTED_TYPE = "Undocumented Content-Type"
# The scheduler's refusals, classic's first lines (manager/scheduler/scheduler.py).
_NO_NODE = ("Unable to find a node that satisfies the following conditions",
            "no resources available to schedule container",
            "No healthy node available in the cluster")
_HEX_ID = re.compile(r"\b(?:sha256:)?(?:[0-9a-f]{64}|[0-9a-f]{12})\b")


@dataclass(frozen=True)
class Answer:
    """One side's answer: status (None: nothing within the timeout), the error message
    of a JSON error body, and the titles of the spec checks it failed."""

    status: int | None
    message: str = ""
    violations: tuple[str, ...] = ()
    content_type: str = ""


def needs_engines(manager: Answer) -> bool:
    """Whether the verdict depends on what the engines say (else it is OK at once)."""
    return (manager.status is None or manager.status >= 500 or bool(manager.violations))


def normalize(message: str, nodes: Sequence[str]) -> str:
    """The message with the allowances above applied."""
    text = message.strip()
    for node in nodes:
        if text.startswith(f"{node}: "):
            text = text[len(node) + 2:]
        text = text.replace(f"{node}/", "")
    return _HEX_ID.sub("<id>", text)


def per_node(message: str, nodes: Sequence[str]) -> list[str]:
    """The parts of a fan-out's error, `node-a: X; node-b: Y` -> [`node-a: X`,
    `node-b: Y`]; any other message is one part."""
    if not nodes:
        return [message]
    names = "|".join(re.escape(node) for node in nodes)
    return re.split(rf"; (?=(?:{names}): )", message.strip())


def verdict(manager: Answer, engines: Sequence[Answer], nodes: Sequence[str]) -> str:
    """The category of the manager's answer (see the module docstring)."""
    if manager.status is None:
        return HANG if any(e.status is not None for e in engines) else HANG_SHARED
    if manager.status == 501:
        if all(e.status == 501 or _no_route(e) for e in engines):
            return UNKNOWN_501
        return NOT_IMPLEMENTED
    if manager.status == 500 and manager.message.startswith(_NO_NODE):
        return NO_NODE_FITS
    if manager.status >= 500:
        theirs = {normalize(e.message, nodes) for e in engines if e.status == manager.status}
        if all(normalize(part, nodes) in theirs for part in per_node(manager.message, nodes)):
            return RELAYED_5XX
        return OWN_5XX
    if manager.violations:
        peers = [e for e in engines if e.status == manager.status]
        shared = {v for e in peers for v in e.violations}
        if manager.content_type == _STREAM_DEFAULT and any(not e.content_type for e in peers):
            shared.add(_UNDOCUMENTED_TYPE)
        if peers and set(manager.violations) - shared:
            return VIOLATION
        return VIOLATION_SHARED
    return OK


def _no_route(answer: Answer) -> bool:
    return answer.status == 404 and answer.message == "page not found"


@dataclass
class Finding:
    """One finding, with what it takes to reproduce it."""

    operation: str
    category: str
    request: str  # method, URL, and the body's beginning
    manager: Answer
    engines: tuple[Answer, ...]

    def line(self) -> str:
        engines = "; ".join(f"{e.status} {e.message[:120]!r}" for e in self.engines)
        violations = "; ".join(self.manager.violations)[:300]
        return (f"[{self.category}] {self.operation}: {self.request} -> manager "
                f"{self.manager.status} {self.manager.message[:200]!r} {violations}"
                f" | engines: {engines}")


@dataclass
class Figures:
    """Counts of a run: requests, answers by status class and by verdict, findings."""

    requests: int = 0
    classes: Counter = field(default_factory=Counter)
    verdicts: Counter = field(default_factory=Counter)
    operations: Counter = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)

    def add(self, operation: str, manager: Answer, category: str,
            finding: Finding | None = None) -> None:
        self.requests += 1
        self.operations[operation] += 1
        self.classes["timeout" if manager.status is None else f"{manager.status // 100}xx"] += 1
        self.verdicts[category] += 1
        if finding is not None:
            self.findings.append(finding)

    def distinct_findings(self) -> list[Finding]:
        """One finding per (operation, category, manager status, normalized message)."""
        seen: dict[tuple, Finding] = {}
        for finding in self.findings:
            key = (finding.operation, finding.category, finding.manager.status,
                   _HEX_ID.sub("<id>", finding.manager.message)[:80])
            seen.setdefault(key, finding)
        return list(seen.values())

    def summary(self) -> list[str]:
        lines = [f"requests sent: {self.requests} over {len(self.operations)} operations",
                 "responses by status class: " + ", ".join(
                     f"{k} {v}" for k, v in sorted(self.classes.items()))]
        for category in (OK, RELAYED_5XX, OWN_5XX, NO_NODE_FITS, NOT_IMPLEMENTED, UNKNOWN_501,
                         VIOLATION, VIOLATION_SHARED, HANG, HANG_SHARED):
            lines.append(f"  {category}: {self.verdicts.get(category, 0)}")
        distinct = self.distinct_findings()
        lines.append(f"findings: {len(self.findings)} ({len(distinct)} distinct)")
        lines += ["  " + f.line() for f in distinct]
        return lines
