"""The manager's JSON answers, success and error alike, validated with openapi-core
against the Engine API reference (tests/data/docker-api-v1.41.yaml, a copy of Docker's
Swagger 2.0 file, turned into OpenAPI 3.0 here since openapi-core reads only 3.x)."""

from __future__ import annotations

import json
import pathlib
import re
import uuid

import pytest
import yaml
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

pytestmark = pytest.mark.docker
SPEC = pathlib.Path(__file__).resolve().parents[1] / "data" / "docker-api-v1.41.yaml"
SERVER = "http://flock"


def _schema(node, names: bool = False):
    """A Swagger 2 schema as OpenAPI 3.0, refs moved. Any typed value may be null: the
    reference marks few fields x-nullable, yet the Engine itself answers null for many
    unset lists and maps (IPAM.Options, image Labels and RepoDigests, Config.Env, ...);
    types, enums and required keys are checked as written."""
    if isinstance(node, dict):
        out = {"nullable": True} if "type" in node and not names else {}
        for key, value in node.items():
            if key == "x-nullable":
                continue
            elif key == "$ref":
                out[key] = value.replace("#/definitions/", "#/components/schemas/")
            elif key == "example":
                continue
            else:
                out[key] = _schema(value, names=key in ("properties", "definitions") and
                                   not names)
        return out
    if isinstance(node, list):
        return [_schema(item) for item in node]
    return node


def _operation(op: dict) -> dict:
    parameters = [
        {"name": p["name"], "in": p["in"], "required": p.get("required", p["in"] == "path"),
         "schema": {"type": p.get("type", "string")} if p.get("type") != "array"
         else {"type": "array", "items": {"type": "string"}}}
        for p in op.get("parameters", []) if p.get("in") in ("path", "query")
    ]
    responses = {}
    for code, answer in op.get("responses", {}).items():
        converted = {"description": answer.get("description", "") or "-"}
        schema = answer.get("schema")
        if schema is not None and schema.get("type") != "file":
            converted["content"] = {"application/json": {"schema": _schema(schema)}}
        responses[str(code)] = converted
    return {"parameters": parameters, "responses": responses}


def openapi3(swagger: dict) -> dict:
    paths = {}
    for path, ops in swagger["paths"].items():
        paths[path] = {m: _operation(op) for m, op in ops.items() if m != "parameters"}
    return {"openapi": "3.0.3", "info": swagger["info"], "servers": [{"url": SERVER}],
            "paths": paths, "components": {"schemas": _schema(swagger["definitions"], names=True)}}


@pytest.fixture(scope="module")
def api() -> OpenAPI:
    return OpenAPI.from_dict(openapi3(yaml.safe_load(SPEC.read_text())))


def check(api: OpenAPI, cluster, method: str, path: str, body: object = None,
          status: int | None = None) -> object:
    """Call the manager (with a version prefix) and validate its answer for `path`."""
    raw = None if body is None else json.dumps(body).encode()
    got, answer, head = cluster.api(method, "/v1.41" + path, raw,
                                    {"Content-Type": "application/json"} if raw else {})
    if status is not None:
        assert got == status, (path, answer)
    assert head.get("Content-Type") == "application/json", (path, head)
    bare, _, query = path.partition("?")
    request = MockRequest(SERVER, method.lower(), bare, args=dict(
        pair.split("=", 1) for pair in query.split("&") if "=" in pair))
    response = MockResponse(json.dumps(answer).encode(), status_code=got,
                            content_type="application/json")
    api.validate_response(request, response)
    return answer


def test_system_and_container_answers_match_the_reference(api, cluster):
    check(api, cluster, "GET", "/version", status=200)
    check(api, cluster, "GET", "/info", status=200)
    name = f"shape-{uuid.uuid4().hex[:6]}"
    created = check(api, cluster, "POST", f"/containers/create?name={name}",
                    {"Image": "busybox", "Cmd": ["sleep", "300"], "Labels": {"a": "b"}},
                    status=201)
    try:
        cluster.docker("start", name)
        check(api, cluster, "GET", "/containers/json?all=1", status=200)
        check(api, cluster, "GET", f"/containers/{name}/json", status=200)
        check(api, cluster, "GET", f"/containers/{name}/top", status=200)
        check(api, cluster, "GET", f"/containers/{name}/changes", status=200)
        made = check(api, cluster, "POST", f"/containers/{name}/exec",
                     {"Cmd": ["true"]}, status=201)
        check(api, cluster, "GET", f"/exec/{made['Id']}/json", status=200)
        check(api, cluster, "POST", f"/containers/{name}/update", {"Memory": 0}, status=200)
        # Errors: 404, 409 and 400 bodies have the Engine's shape too.
        check(api, cluster, "GET", "/containers/nosuch/json", status=404)
        check(api, cluster, "POST", f"/containers/create?name={name}", {"Image": "busybox"},
              status=409)
        check(api, cluster, "POST", "/containers/create", {"Image": "busybox",
                                                          "Env": ["constraint:x=~/[/"]},
              status=400)
        check(api, cluster, "POST", "/containers/create", {"Image": "nosuch:1"}, status=404)
    finally:
        cluster.docker("rm", "-f", created["Id"], check=False)


def test_image_network_and_volume_answers_match_the_reference(api, cluster):
    check(api, cluster, "GET", "/images/json", status=200)
    check(api, cluster, "GET", "/images/busybox/json", status=200)
    check(api, cluster, "GET", "/images/busybox/history", status=200)
    check(api, cluster, "GET", "/images/nosuch:1/json", status=404)
    tag = uuid.uuid4().hex[:6]
    net = check(api, cluster, "POST", "/networks/create", {"Name": f"shape-{tag}"}, status=201)
    try:
        assert re.fullmatch(r"[0-9a-f]{64}", net["Id"])
        check(api, cluster, "GET", "/networks", status=200)
        check(api, cluster, "GET", f"/networks/shape-{tag}", status=200)
        check(api, cluster, "GET", "/networks/nosuch", status=404)
        check(api, cluster, "POST", "/networks/create", {"Driver": "bridge"}, status=400)
    finally:
        cluster.docker("network", "rm", f"shape-{tag}", check=False)
    check(api, cluster, "POST", "/volumes/create", {"Name": f"shape-{tag}"}, status=201)
    try:
        check(api, cluster, "GET", "/volumes", status=200)
        check(api, cluster, "GET", f"/volumes/shape-{tag}", status=200)
        check(api, cluster, "GET", "/volumes/nosuch", status=404)
    finally:
        cluster.docker("volume", "rm", f"shape-{tag}", check=False)
    check(api, cluster, "POST", "/networks/prune", status=200)
    check(api, cluster, "POST", "/volumes/prune", status=200)
    check(api, cluster, "POST", "/containers/prune", status=200)
