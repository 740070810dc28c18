"""The labels through which a container carries its scheduling intent, and what they say.

The engines are the truth: a restarted or newly elected manager learns a container's
rules, its reschedule policy, its swarm ID and its global group from these labels alone.
The cluster view reads them back from every engine, the scheduler reads and writes the
rules, placement writes the rest, so their keys live here, at the bottom of the
manager. Classic Swarm's keys (cluster/config.go) and Flock's own global group key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

SWARM_ID_LABEL = "com.docker.swarm.id"
CONSTRAINTS_LABEL = "com.docker.swarm.constraints"
AFFINITIES_LABEL = "com.docker.swarm.affinities"
RESCHEDULE_LABEL = "com.docker.swarm.reschedule-policies"
# Flock: the global group (`flock run --global`) a container is a copy of.
GLOBAL_LABEL = "com.flock.global"

ON_NODE_FAILURE = "on-node-failure"
RESCHEDULE_POLICIES = (ON_NODE_FAILURE, "off")


def wants_reschedule(labels: Mapping[str, str] | None) -> bool:
    """True when the labels ask for on-node-failure rescheduling. Lenient, unlike the
    create's check (scheduler/spec.py): a label written by hand as a bare word, not a
    JSON list, still counts, since the container already exists."""
    raw = (labels or {}).get(RESCHEDULE_LABEL)
    if not raw:
        return False
    try:
        policies = json.loads(raw)
    except ValueError:
        policies = [raw]
    return isinstance(policies, list) and ON_NODE_FAILURE in policies


def global_group(labels: Mapping[str, str] | None) -> str:
    """The global group the container is a copy of, "" when none."""
    return (labels or {}).get(GLOBAL_LABEL, "")
