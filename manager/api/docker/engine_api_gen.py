"""Generate engine_api.json, the request-body shapes the front checks, from the Engine
API reference (tests/data/docker-api-v1.41.yaml, Docker's Swagger 2.0 file).

Run `python -m flock.manager.api.docker.engine_api_gen` from the repository root after the
reference changes; tests/unit/test_body_validation.py fails when the JSON is stale. The
wheel carries only the JSON, so the manager needs neither the YAML nor a YAML parser.

The reference gives the JSON types; what it cannot give is the Engine's Go side, which
its error messages name (`... into Go struct field HostConfig.HostConfig.Memory of type
int64`). The few tables below add that, and the places where Go accepts more than the
reference says (a `strslice.StrSlice` takes a string as well as an array).
"""

from __future__ import annotations

import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "engine_api.json"
SOURCE = HERE.parents[2] / "tests" / "data" / "docker-api-v1.41.yaml"

# (method, path) -> (Go struct, Go type) of the value the Engine decodes the body into,
# for the bodies the manager takes. The reference's titles differ (VolumeConfig,
# ExecStartConfig, and connect/disconnect swapped). Checked against dockerd 20.10.
ROUTES = {
    ("POST", "/containers/create"): ("ContainerConfigWrapper",
                                     "runconfig.ContainerConfigWrapper"),
    ("POST", "/commit"): ("ContainerConfigWrapper", "runconfig.ContainerConfigWrapper"),
    ("POST", "/containers/{id}/update"): ("UpdateConfig", "container.UpdateConfig"),
    ("POST", "/containers/{id}/exec"): ("ExecConfig", "types.ExecConfig"),
    ("POST", "/exec/{id}/start"): ("ExecStartCheck", "types.ExecStartCheck"),
    ("POST", "/volumes/create"): ("VolumeCreateBody", "volume.VolumeCreateBody"),
    ("POST", "/networks/create"): ("NetworkCreateRequest", "types.NetworkCreateRequest"),
    ("POST", "/networks/{id}/connect"): ("NetworkConnect", "types.NetworkConnect"),
    ("POST", "/networks/{id}/disconnect"): ("NetworkDisconnect", "types.NetworkDisconnect"),
    ("POST", "/auth"): ("AuthConfig", "types.AuthConfig"),
}
# Routes whose empty body the Engine refuses with "got EOF while reading request body"
# (httputils.ReadJSON); create has its own words and commit takes an empty body.
EMPTY_REFUSED = {
    ("POST", "/volumes/create"), ("POST", "/networks/create"),
    ("POST", "/networks/{id}/connect"), ("POST", "/networks/{id}/disconnect"),
    ("POST", "/containers/{id}/exec"), ("POST", "/exec/{id}/start"),
}
# Endpoints dockerd serves that the reference leaves out: BuildKit's gRPC upgrade.
EXTRA_ENDPOINTS = ["POST /grpc"]
# Definition -> its Go type, as the Engine's messages print it.
GO_TYPES = {
    "ContainerConfig": "container.Config", "HostConfig": "container.HostConfig",
    "Resources": "container.Resources", "RestartPolicy": "container.RestartPolicy",
    "HealthConfig": "container.HealthConfig", "DeviceMapping": "container.DeviceMapping",
    "DeviceRequest": "container.DeviceRequest", "ThrottleDevice": "blkiodev.ThrottleDevice",
    "PortMap": "nat.PortMap", "PortBinding": "nat.PortBinding", "Mount": "mount.Mount",
    "MountType": "mount.Type", "NetworkingConfig": "network.NetworkingConfig",
    "EndpointSettings": "network.EndpointSettings",
    "EndpointIPAMConfig": "network.EndpointIPAMConfig", "IPAM": "network.IPAM",
    "IPAMConfig": "network.IPAMConfig", "ConfigReference": "network.ConfigReference",
    "AuthConfig": "types.AuthConfig", "VolumeCreateOptions": "volume.VolumeCreateBody",
}
# (definition, field) that Go reads with strslice.StrSlice: a string or an array.
STRSLICE = {("ContainerConfig", "Cmd"), ("ContainerConfig", "Entrypoint"),
            ("ContainerConfig", "Shell"), ("HostConfig", "CapAdd"),
            ("HostConfig", "CapDrop")}
# Integer formats -> (Go type, smallest, largest).
INTEGERS = {
    None: ("int", -(1 << 63), (1 << 63) - 1), "int64": ("int64", -(1 << 63), (1 << 63) - 1),
    "int32": ("int32", -(1 << 31), (1 << 31) - 1), "uint64": ("uint64", 0, (1 << 64) - 1),
    "uint32": ("uint32", 0, (1 << 32) - 1), "uint16": ("uint16", 0, (1 << 16) - 1),
    "uint8": ("uint8", 0, (1 << 8) - 1),
}


class Converter:
    """Swagger schemas -> compact nodes (see validation.py for their form)."""

    def __init__(self, definitions: dict) -> None:
        self.source = definitions
        self.definitions: dict[str, dict] = {}

    def ref(self, name: str) -> dict:
        if name not in self.definitions:
            self.definitions[name] = {}  # a placeholder, for definitions that nest
            self.definitions[name] = self.node(self.source[name], name)
        return {"ref": name}

    def node(self, schema: dict, name: str = "", owner: str = "") -> dict:
        """`name`: the definition or field this schema describes (the Go struct's name
        when it is an object); `owner`: the definition that holds the field."""
        if "$ref" in schema:
            return self.ref(schema["$ref"].rsplit("/", 1)[-1])
        if (owner, name) in STRSLICE:
            return {"kind": "strslice", "go": "string"}
        parts = schema.get("allOf")
        if parts:
            if len(parts) == 1 and "$ref" in parts[0]:
                return self.ref(parts[0]["$ref"].rsplit("/", 1)[-1])
            return self.merged(parts, schema.get("x-go-name") or name)
        kind = schema.get("type", "object" if "properties" in schema else None)
        if kind == "object":
            return self.object(schema, name)
        if kind == "array":
            items = self.node(schema.get("items") or {}, name, owner)
            return {"kind": "array", "items": items, "go": "[]" + self.go(items)}
        if kind == "integer":
            go, low, high = INTEGERS.get(schema.get("format"), INTEGERS[None])
            return {"kind": "integer", "go": GO_TYPES.get(name, go), "min": low, "max": high}
        if kind == "number":
            return {"kind": "number", "go": "float64"}
        if kind == "boolean":
            return {"kind": "boolean", "go": "bool"}
        if kind == "string":
            return {"kind": "string", "go": GO_TYPES.get(name, "string")}
        return {"kind": "any"}  # no type: anything goes, as for an interface{}

    def object(self, schema: dict, name: str) -> dict:
        struct = schema.get("x-go-name") or name
        properties = schema.get("properties")
        values = schema.get("additionalProperties")
        if properties:
            fields = {key: self.node(value, key, name) for key, value in properties.items()}
            return {"kind": "struct", "struct": struct, "fields": fields,
                    "go": GO_TYPES.get(name, struct)}
        if isinstance(values, dict) and values:
            node = self.node(values, name)
            return {"kind": "map", "values": node,
                    "go": GO_TYPES.get(name, "map[string]" + self.go(node))}
        # A free-form object (`{}` values of ExposedPorts, Volumes): any object.
        return {"kind": "struct", "struct": struct, "fields": {}, "go": "struct {}"}

    def merged(self, parts: list[dict], name: str) -> dict:
        """allOf: the fields of every part in one struct (Go's embedded structs)."""
        fields: dict[str, dict] = {}
        for part in parts:
            if "$ref" in part:
                ref = part["$ref"].rsplit("/", 1)[-1]
                self.ref(ref)
                fields.update(self.definitions[ref].get("fields", {}))
            else:
                fields.update(self.object(part, name).get("fields", {}))
        return {"kind": "struct", "struct": name, "fields": fields,
                "go": GO_TYPES.get(name, name)}

    def go(self, node: dict) -> str:
        if "ref" in node:
            return self.definitions[node["ref"]].get("go", node["ref"])
        return node.get("go", "interface {}")


def body_schema(spec: dict) -> dict:
    """The compact schema: per route the body's shape and how empty bodies go, every
    definition they use, and every (method, path) of the reference (to tell an Engine
    endpoint the manager lacks from a path the Engine does not know either)."""
    converter = Converter(spec["definitions"])
    routes = {}
    for (method, path), (struct, go) in ROUTES.items():
        operation = spec["paths"][path][method.lower()]
        body = next(p for p in operation["parameters"] if p["in"] == "body")
        node = converter.node(body["schema"], struct)
        if "ref" in node:  # the top level is named after the Engine's Go value
            node = dict(converter.definitions[node["ref"]])
        node.update(struct=struct, go=go)
        routes[f"{method} {path}"] = {"body": node,
                                      "empty_refused": (method, path) in EMPTY_REFUSED}
    endpoints = sorted([f"{method.upper()} {path}" for path, operations in spec["paths"].items()
                        for method in operations if method != "parameters"] + EXTRA_ENDPOINTS)
    return {"source": f"Docker Engine API v{spec['info']['version']}", "routes": routes,
            "definitions": dict(sorted(converter.definitions.items())),
            "endpoints": endpoints}


def render(source: pathlib.Path = SOURCE) -> str:
    import yaml  # a developer tool: the manager reads the generated JSON only

    schema = body_schema(yaml.safe_load(source.read_text()))
    return json.dumps(schema, sort_keys=True, indent=1) + "\n"


def main() -> int:
    OUT.write_text(render())
    print(f"wrote {OUT.relative_to(HERE.parents[2])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
