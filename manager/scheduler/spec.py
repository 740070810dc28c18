"""What the scheduler needs to know about a container, read from a Docker create body.

Scheduling intent travels with the container as classic Swarm labels, so a restarted
manager (or the rescheduler) recovers it from the container itself: `spec_from_create`
reads rules from both `-e constraint:…` style Env entries and those labels, and
`prepare_create_body` moves the Env entries into the labels before the body goes to an
engine.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from flock.manager.cluster.cpu_shares import engine_shares
from flock.manager.cluster.labels import (
    AFFINITIES_LABEL,
    CONSTRAINTS_LABEL,
    RESCHEDULE_LABEL,
    RESCHEDULE_POLICIES,
    SWARM_ID_LABEL,
)
from flock.manager.scheduler.rules import Rule, RuleError, parse_rules

__all__ = [
    "ContainerSpec",
    "RuleError",
    "SpecError",
    "label_list",
    "prepare_create_body",
    "spec_from_create",
]

_ENV_PREFIXES = ("constraint:", "affinity:", "reschedule:")
_PROTOCOLS = ("tcp", "udp", "sctp")


class SpecError(RuleError):
    """A create body the scheduler cannot read (bad resources, ports, …).

    A RuleError subclass so that callers map every bad-input case of
    `spec_from_create` to a 400 with one `except RuleError`.
    """


@dataclass
class ContainerSpec:
    name: str  # requested name, "" when none
    image: str
    cpus: float  # CPUs to reserve: -c N reserves N CPUs (classic), --cpus reserves that many
    memory: int  # bytes to reserve (-m)
    constraints: list[Rule]
    affinities: list[Rule]
    ports: list[tuple[int, str]]  # host ports needed, (port, "tcp"|"udp")
    dependencies: list[str]  # container refs from --link, --volumes-from, --net=container:x
    labels: dict[str, str]
    reschedule: list[str]  # e.g. ["on-node-failure"]
    network_mode: str
    # Flock addition: each dependency's classic flag text (`--link=db:alias`) for errors.
    dependency_flags: dict[str, str] = field(default_factory=dict)


def spec_from_create(body: dict, name: str = "") -> ContainerSpec:
    """Read a Docker `POST /containers/create` body; RuleError (or SpecError) on bad input."""
    if not isinstance(body, dict):
        raise SpecError("the create body must be a JSON object")
    host = _mapping(body, "HostConfig")
    labels = _labels(body)
    env_rules = _env_rules(body)
    constraints = _rules(labels, CONSTRAINTS_LABEL, env_rules["constraint"], "constraint")
    affinities = _rules(labels, AFFINITIES_LABEL, env_rules["affinity"], "affinity")
    network_mode = host.get("NetworkMode") or ""
    if not isinstance(network_mode, str):
        raise SpecError("HostConfig.NetworkMode must be a string")
    flags = _dependencies(host, network_mode)
    image = body.get("Image") or ""
    if not isinstance(image, str):
        raise SpecError("Image must be a string")
    return ContainerSpec(
        name=name.lstrip("/") if name else "",
        image=image,
        cpus=_cpus(host, body),
        memory=_memory(host, body),
        constraints=constraints,
        affinities=affinities,
        ports=_ports(body, host, network_mode),
        dependencies=list(flags),
        labels=labels,
        reschedule=_reschedule(labels, env_rules["reschedule"]),
        network_mode=network_mode,
        dependency_flags=flags,
    )


def prepare_create_body(body: dict, spec: ContainerSpec, node_cpus: int) -> dict:
    """A copy of `body` for the engine of a node of `node_cpus` CPUs: rule Env entries
    moved into the classic labels, `-c N` turned into that node's shares for N CPUs.

    An existing `com.docker.swarm.id` is kept (a rescheduled container keeps its
    identity, as in classic Swarm); otherwise a new random 64-digit hex id is written.
    """
    out = json_copy(body)
    _convert_cpu_shares(out, node_cpus)
    env = out.get("Env")
    if isinstance(env, list):
        out["Env"] = [e for e in env if not (isinstance(e, str) and e.startswith(_ENV_PREFIXES))]
    labels = dict(out.get("Labels") or {})
    for key, values in (
        (CONSTRAINTS_LABEL, [str(rule) for rule in spec.constraints]),
        (AFFINITIES_LABEL, [str(rule) for rule in spec.affinities]),
        (RESCHEDULE_LABEL, list(spec.reschedule)),
    ):
        if values:
            labels[key] = json.dumps(values)
        else:
            labels.pop(key, None)
    if not labels.get(SWARM_ID_LABEL):
        labels[SWARM_ID_LABEL] = secrets.token_hex(32)
    out["Labels"] = labels
    return out


# ------------------------------------------------------------------ helpers
def json_copy(value: Any) -> Any:
    """A deep copy of parsed JSON (dicts, lists and immutable scalars): a few times
    cheaper than copy.deepcopy, which keeps a memo and dispatches on every type."""
    if isinstance(value, dict):
        return {key: json_copy(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_copy(item) for item in value]
    return value


def _mapping(where: dict, key: str) -> dict:
    value = where.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError(f"{key} must be a JSON object")
    return value


def _labels(body: dict) -> dict[str, str]:
    labels = _mapping(body, "Labels")
    for key, value in labels.items():
        if not isinstance(value, str):
            raise SpecError(f"label {key} must have a string value")
    return dict(labels)


def _env_rules(body: dict) -> dict[str, list[str]]:
    env = body.get("Env") or []
    if not isinstance(env, list):
        raise SpecError("Env must be a list of strings")
    found: dict[str, list[str]] = {"constraint": [], "affinity": [], "reschedule": []}
    for entry in env:
        if not isinstance(entry, str):
            raise SpecError(f"Env entry {entry!r} must be a string")
        kind, sep, rule = entry.partition(":")
        if sep and kind in found:
            found[kind].append(rule)
    return found


def label_list(labels: dict[str, str], key: str) -> list[str]:
    """A classic rule label's JSON list of strings ([] when absent or empty); RuleError
    when it is something else (classic ignored a malformed one silently)."""
    raw = labels.get(key)
    if raw is None or raw == "":
        return []
    try:
        values = json.loads(raw)
    except ValueError:
        values = None
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise RuleError(f"invalid label {key}={raw}: expected a JSON list of strings")
    return values


def _rules(labels: dict[str, str], key: str, from_env: list[str], kind: str) -> list[Rule]:
    """Label rules first, then Env rules (classic order), duplicates once."""
    texts = list(dict.fromkeys(label_list(labels, key) + from_env))
    return parse_rules(texts, kind)


def _reschedule(labels: dict[str, str], from_env: list[str]) -> list[str]:
    """Classic's checks in its order and words (cluster/config.go Validate), the count
    first; a policy given twice counts once (classic counts it twice)."""
    policies = list(dict.fromkeys(label_list(labels, RESCHEDULE_LABEL) + from_env))
    if len(policies) > 1:
        raise RuleError(f"too many reschedule policies: {', '.join(policies)}")
    if policies and policies[0] not in RESCHEDULE_POLICIES:
        raise RuleError(f"invalid reschedule policy: {policies[0]} (expected one of "
                        + ", ".join(RESCHEDULE_POLICIES) + ")")
    return policies


def _number(value: object, what: str) -> float:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise SpecError(f"{what} must be a non-negative number, got {value!r}")
    return value


def _cpus(host: dict, body: dict) -> float:
    """`-c N` reserves N CPUs (classic semantics); NanoCpus reserves NanoCpus/1e9."""
    shares = _number(host.get("CpuShares", body.get("CpuShares")), "CpuShares")
    nano = _number(host.get("NanoCpus"), "NanoCpus")
    return float(max(shares, nano / 1e9))


def _convert_cpu_shares(out: dict, node_cpus: int) -> None:
    """`-c N` reaches the engine as the node's shares for N CPUs (cpu_shares.py), in
    HostConfig and in the old top-level field when the client sent that one."""
    host = out.get("HostConfig")
    cpus = (host or {}).get("CpuShares", out.get("CpuShares"))
    if not cpus:
        return
    shares = engine_shares(cpus, node_cpus)
    out["HostConfig"] = dict(host or {}, CpuShares=shares)
    if "CpuShares" in out:
        out["CpuShares"] = shares


def _memory(host: dict, body: dict) -> int:
    memory = host.get("Memory")
    if not memory:
        memory = body.get("Memory")
    return int(_number(memory, "Memory"))


def _ports(body: dict, host: dict, network_mode: str) -> list[tuple[int, str]]:
    """Fixed host ports; a binding with no HostPort (or a range) is dynamic, no constraint."""
    ports: list[tuple[int, str]] = []
    if network_mode == "host":
        for key in _mapping(body, "ExposedPorts"):
            ports.extend(_port_key(key, "ExposedPorts"))
    else:
        for key, bindings in _mapping(host, "PortBindings").items():
            _, proto = _split_port_key(key, "PortBindings")
            if bindings is None:
                continue
            if not isinstance(bindings, list):
                raise SpecError(f"PortBindings[{key}] must be a list of bindings")
            for binding in bindings:
                port = _host_port(binding, key)
                if port is not None:
                    ports.append((port, proto))
    return list(dict.fromkeys(ports))


def _split_port_key(key: str, where: str) -> tuple[str, str]:
    number, _, proto = key.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in _PROTOCOLS:
        raise SpecError(f'invalid port "{key}" in {where}: unknown protocol {proto}')
    return number, proto


def _port_key(key: str, where: str) -> list[tuple[int, str]]:
    number, proto = _split_port_key(key, where)
    low, _, high = number.partition("-")
    try:
        first, last = int(low), int(high or low)
    except ValueError:
        raise SpecError(f'invalid port "{key}" in {where}') from None
    if not 0 < first <= last <= 65535:
        raise SpecError(f'invalid port "{key}" in {where}: out of range 1-65535')
    return [(port, proto) for port in range(first, last + 1)]


def _host_port(binding: object, key: str) -> int | None:
    if not isinstance(binding, dict):
        raise SpecError(f"PortBindings[{key}] entries must be objects with HostPort")
    text = binding.get("HostPort") or ""
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    if not isinstance(text, str):
        raise SpecError(f"invalid HostPort {text!r} for {key}")
    if text in ("", "0") or "-" in text:
        return None
    try:
        port = int(text)
    except ValueError:
        raise SpecError(f'invalid HostPort "{text}" for {key}') from None
    if not 0 < port <= 65535:
        raise SpecError(f'invalid HostPort "{text}" for {key}: out of range 1-65535')
    return port


def _dependencies(host: dict, network_mode: str) -> dict[str, str]:
    """Dependency ref -> its classic flag text, in the order classic Swarm lists them."""
    flags: dict[str, str] = {}
    for option, flag in (("VolumesFrom", "--volumes-from"), ("Links", "--link")):
        entries = host.get(option) or []
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise SpecError(f"HostConfig.{option} must be a list of strings")
        for entry in entries:
            ref = entry.split(":", 1)[0].lstrip("/")
            if not ref:
                raise SpecError(f'invalid {flag} "{entry}": the container name is missing')
            flags.setdefault(ref, f"{flag}={entry}")
    if network_mode.startswith("container:"):
        ref = network_mode[len("container:") :]
        if not ref:
            raise SpecError('invalid NetworkMode "container:": the container name is missing')
        flags.setdefault(ref, f"--net={network_mode}")
    return flags
