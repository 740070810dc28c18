"""Placement of containers on nodes: filters narrow, a strategy picks. Pure, no I/O."""

from flock.manager.scheduler.rules import Rule, RuleError, parse_rule
from flock.manager.scheduler.scheduler import Decision, Explanation, NoNodeAvailable, Scheduler
from flock.manager.scheduler.spec import (
    ContainerSpec,
    SpecError,
    prepare_create_body,
    spec_from_create,
)

__all__ = [
    "ContainerSpec",
    "Decision",
    "Explanation",
    "NoNodeAvailable",
    "Rule",
    "RuleError",
    "Scheduler",
    "SpecError",
    "parse_rule",
    "prepare_create_body",
    "spec_from_create",
]
