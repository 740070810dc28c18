"""What the API fuzz may send: the Engine API v1.41 spec narrowed so that every case is
safe to run here and ends by itself, and the objects that path parameters name.

Pure: a spec dict in, a narrowed copy out; no I/O. The runner (tests/support/api_fuzz.py)
turns the narrowed spec into cases with schemathesis. Every exclusion and every narrowing
says why: a case that streams forever, waits forever, reaches a registry or makes the
engine look for a plugin for 15 s (dockerd's plugin lookup retries that long: measured
with `docker volume create -d nosuch`) is not a finding, it is a bad case.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

# Operations never sent, by operationId prefix or exact id, and why.
EXCLUDED: dict[str, str] = {
    "ContainerAttach": "hijacked stream (101 UPGRADED) held open until the container ends",
    "ContainerAttachWebsocket": "a WebSocket upgrade; the fuzz speaks plain HTTP",
    "Session": "BuildKit's h2c hijack",
    "SystemAuth": "logs in at the registry the body names: any host, and no network here",
    "ImagePush": "pushes to the registry the name points at (any host)",
    "ImageSearch": "asks the registry index the term names (any host)",
    "DistributionInspect": "asks the registry the name points at (any host)",
    "Swarm": "swarm mode: the manager answers 501 by design (Flock is a classic Swarm)",
    "Service": "swarm mode (as above)",
    "Task": "swarm mode (as above)",
    "Node": "swarm mode (as above)",
    "Secret": "swarm mode (as above)",
    "Config": "swarm mode (as above)",
    "Plugin": "plugins: 501 by design (manager/api/docker/app.py SWARM_MODE); pulls reach a "
              "registry",
    "GetPlugin": "plugins (as above)",
}

# Operations fuzzed with valid values only: an invalid one could stream or wait forever
# (dockerd's BoolValue reads any odd text as true: follow=x, stream=x), stop a container
# that ignores SIGTERM for as long as `t` says, or make fromSrc a URL the engine fetches.
POSITIVE_ONLY = frozenset({
    "ContainerLogs", "ContainerStats", "ContainerWait", "SystemEvents", "ExecStart",
    "ContainerStop", "ContainerRestart", "ContainerKill", "ImageCreate", "ImageBuild",
})

# Operations whose body is a JSON object the manager reads: also fuzzed with one field of
# another type (tests/support/api_fuzz.py, mode "mistyped").
JSON_OBJECT_BODIES = frozenset({
    "ContainerCreate", "ContainerUpdate", "ContainerExec", "ImageCommit", "NetworkCreate",
    "NetworkConnect", "NetworkDisconnect", "VolumeCreate",
})

# Query parameters dropped, and values pinned (name -> allowed values, required).
_DROP_QUERY: dict[str, tuple[str, ...]] = {
    "ContainerLogs": ("follow",),  # follow=1 on a running container never ends
    "ImageCreate": ("fromImage",),  # a pull: the registry is any host the name names
    "ImageBuild": ("remote",),  # a git clone or download from any URL
}
_PIN_QUERY: dict[str, dict[str, tuple[list, bool]]] = {
    "ContainerStats": {"stream": ([False], True), "one-shot": ([True], True)},
    "ContainerWait": {"condition": (["not-running"], False)},  # next-exit/removed wait
    "ContainerStop": {"t": ([0, 1, 2], False)},
    "ContainerRestart": {"t": ([0, 1, 2], False)},
    "ContainerKill": {"signal": (["SIGKILL", "SIGTERM", "SIGHUP", "KILL", "9", "SIGNOSUCH"],
                                 False)},
    "SystemEvents": {"until": (["1", "1000000000"], True)},  # in the past: ends at once
    "ImageCreate": {"fromSrc": (["-"], True)},  # import the body, no download
    "ContainerArchive": {"path": (["/", "/etc", "/etc/hostname", "/tmp", "/nosuch"], True)},
    "ContainerArchiveInfo": {"path": (["/", "/etc", "/etc/hostname", "/nosuch"], True)},
    "PutContainerArchive": {"path": (["/", "/tmp", "/nosuch"], True)},
}
# Body properties that name a plugin (volume, network, IPAM, logging driver): any name
# but the built-in ones costs dockerd a 15 s lookup. Dropped from the schema, so never
# generated (a drop only loosens the checks of answers that carry them).
_DROP_DEFINITION_PROPERTIES = {
    "VolumeCreateOptions": ("Driver",),
    "IPAM": ("Driver",),
}
# The scheduler's own rules come in through Env and Labels; the fuzz leaves them random.


@dataclass
class Seeds:
    """Objects made before the fuzz, whose references path parameters take, so that
    cases reach deep code paths, not just 404s. Names are stable; IDs are read anew
    whenever a seed is made again."""

    nodes: tuple[str, ...]
    running: str = "fuzz-run"
    exited: str = "fuzz-exited"
    created: str = "fuzz-created"
    network: str = "fuzz-net"
    volume: str = "fuzz-vol"
    image: str = "fuzz-img:latest"
    ids: dict[str, str] = field(default_factory=dict)  # seed name -> full ID
    exec_id: str = ""
    placed: dict[str, str] = field(default_factory=dict)  # seed name -> node name

    @property
    def containers(self) -> tuple[str, ...]:
        return (self.running, self.exited, self.created)

    def qualified(self, name: str) -> str:
        return f"{self.placed[name]}/{name}" if name in self.placed else name


def excluded(operation_id: str) -> str | None:
    """Why an operation is not fuzzed, or None."""
    for prefix, reason in EXCLUDED.items():
        if operation_id == prefix or (prefix[0].isupper() and operation_id.startswith(prefix)
                                      and operation_id[len(prefix):][:1].isupper()):
            return reason
    return None


def narrow(spec: dict, seeds: Seeds) -> dict:
    """A copy of the Swagger 2.0 `spec` with excluded operations removed and the rest
    narrowed as the tables above say; request bodies name seeded objects and local
    images where a free string would only ever miss."""
    out = copy.deepcopy(spec)
    for path, item in list(out["paths"].items()):
        for method in [m for m in item if m != "parameters"]:
            op = item[method]
            op_id = op.get("operationId", "")
            if excluded(op_id):
                del item[method]
                continue
            _narrow_operation(op_id, op, seeds)
            _nullable(op.get("responses", {}))
        if not [m for m in item if m != "parameters"]:
            del out["paths"][path]
    definitions = out["definitions"]
    for name, props in _DROP_DEFINITION_PROPERTIES.items():
        for prop in props:
            definitions[name]["properties"].pop(prop, None)
    host = definitions["HostConfig"]["allOf"][1]["properties"]
    host.pop("LogConfig", None)  # a logging plugin lookup
    host.pop("VolumeDriver", None)  # a volume plugin lookup
    definitions["Mount"]["properties"]["VolumeOptions"]["properties"].pop("DriverConfig", None)
    _nullable(definitions)
    return out


def _nullable(node: object) -> None:
    """Any typed value may be null (x-nullable): the reference marks few fields so, yet
    the Engine itself answers null for many unset lists and maps (as in
    tests/integration/test_openapi_shapes.py); types, enums and required keys stay."""
    if isinstance(node, dict):
        if "type" in node and isinstance(node["type"], str):
            node["x-nullable"] = True
        for value in node.values():
            _nullable(value)
    elif isinstance(node, list):
        for item in node:
            _nullable(item)


def _narrow_operation(op_id: str, op: dict, seeds: Seeds) -> None:
    params = op.setdefault("parameters", [])
    drop = _DROP_QUERY.get(op_id, ())
    params[:] = [p for p in params if not (p.get("in") == "query" and p["name"] in drop)]
    for name, (values, required) in _PIN_QUERY.get(op_id, {}).items():
        param = _param(params, name)
        if param is not None:
            param["enum"] = list(values)
            param["required"] = required
    if op_id == "ContainerCreate":
        _body(params)["schema"]["allOf"].append(
            {"type": "object", "required": ["Image"], "properties": {"Image": {
                "type": "string", "enum": ["busybox", seeds.image, "nosuch-img:1"]}}})
    elif op_id == "NetworkCreate":
        _body(params)["schema"]["properties"].pop("Driver", None)  # a network plugin lookup
    elif op_id in ("NetworkConnect", "NetworkDisconnect"):
        schema = _body(params)["schema"]
        schema["properties"]["Container"]["enum"] = [*seeds.containers, "nosuch-fuzz"]
        schema["required"] = ["Container"]
    elif op_id == "ExecStart":
        schema = _body(params)["schema"]
        schema["properties"]["Detach"]["enum"] = [True]  # else a hijacked stream
        schema["required"] = ["Detach"]
    for name in ("container",):  # /commit?container=
        param = _param(params, name)
        if param is not None and param.get("in") == "query":
            param["enum"] = [*seeds.containers, "nosuch-fuzz"]
            param["required"] = True


def _param(params: list[dict], name: str) -> dict | None:
    return next((p for p in params if p.get("name") == name and p.get("in") != "body"), None)


def _body(params: list[dict]) -> dict:
    return next(p for p in params if p.get("in") == "body")


def path_refs(path: str, method: str, seeds: Seeds) -> dict[str, list[str]]:
    """Path parameter -> the references to try: seeded objects by name, node/name, full
    ID and ID prefix, plus one that names nothing and one that needs encoding. A DELETE
    of an image names only the seed's tag (busybox itself must survive); a wait only
    containers that are not running (else it waits for an exit that never comes)."""
    odd = ["nosuch-fuzz", "ünï cøde?x=1#y"]
    if path.startswith("/containers/{id}"):
        if path.endswith("/wait"):
            return {"id": [seeds.exited, seeds.created, seeds.ids.get(seeds.exited, ""),
                           *odd]}
        run_id = seeds.ids.get(seeds.running, "")
        return {"id": [seeds.running, seeds.exited, seeds.created, run_id, run_id[:12],
                       seeds.qualified(seeds.running), seeds.qualified(seeds.created), *odd]}
    if path.startswith("/exec/{id}"):
        return {"id": [seeds.exec_id, *odd]}
    if path.startswith("/images/{name}"):
        refs = [seeds.image, seeds.image.split(":")[0], "nosuch-img:1", *odd]
        return {"name": refs if method == "delete" else [*refs, "busybox"]}
    if path.startswith("/networks/{id}"):
        return {"id": [seeds.network, seeds.qualified(seeds.network),
                       seeds.ids.get(seeds.network, ""), "bridge", *odd]}
    if path.startswith("/volumes/{name}"):
        return {"name": [seeds.volume, f"{seeds.nodes[-1]}/{seeds.volume}", *odd]}
    return {}
