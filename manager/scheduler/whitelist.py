"""Classic Swarm's node whitelists: `com.docker.swarm.whitelists='["node==n1|n2"]'` on a
volume create names the nodes the volume is made on (classic: cluster/swarm/cluster.go
CreateVolume, scheduler/filter/whitelist.go). Pure: parsing and narrowing a node list.

Each whitelist keeps the nodes whose name is one of its `|`-separated values (its key
is not looked at, as in classic); several whitelists all apply. A hard whitelist that
leaves no node is an error naming it; a soft one (`==~`) is dropped instead. Where
classic silently ignored a malformed label or treated `!=` as `==`, Flock refuses the
request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from flock.manager.cluster.model import Node
from flock.manager.scheduler.rules import EQ, Rule, RuleError, parse_rule
from flock.manager.scheduler.spec import label_list

WHITELISTS_LABEL = "com.docker.swarm.whitelists"


class NotWhitelisted(LookupError):
    """No node satisfies a hard whitelist."""


def parse_whitelists(labels: object) -> list[Rule] | None:
    """The whitelists of a create body's Labels; None when there is no such label.
    RuleError when the label is not a JSON list of `key==value` rules."""
    if not isinstance(labels, Mapping) or WHITELISTS_LABEL not in labels:
        return None
    raw = labels[WHITELISTS_LABEL]
    if not isinstance(raw, str):
        raise RuleError(f"invalid label {WHITELISTS_LABEL}: expected a JSON list of strings")
    rules = [parse_rule(text, "whitelist") for text in label_list(labels, WHITELISTS_LABEL)]
    for rule in rules:
        if rule.operator != EQ:
            raise RuleError(f'invalid whitelist "{rule}": a whitelist names the nodes to '
                            f"use, as {rule.key}=={rule.value}")
    return rules


def whitelisted(nodes: Sequence[Node], rules: Sequence[Rule]) -> list[Node]:
    """The nodes every whitelist keeps; NotWhitelisted (classic's text) when a hard one
    keeps none."""
    kept = list(nodes)
    for rule in rules:
        names = set(rule.value.split("|"))
        narrowed = [node for node in kept if node.name in names]
        if narrowed or rule.soft:
            kept = narrowed or kept
            continue
        raise NotWhitelisted(
            f"unable to find a node that satisfies the whitelist {rule.condition}")
    return kept
