"""Request bodies checked at the front (manager/api/docker/validation.py), the JSON reader
under it (json_body.py) and the Engine endpoints it knows (engine_api.py).

The expected messages are dockerd's own (20.10.24, Go 1.19: encoding/json's
UnmarshalTypeError names the innermost struct, then the JSON field path from the top;
scanner.go refuses NaN and caps nesting at 10,000), as it answered the same bodies;
tests/integration/test_docker_api_bad_input.py compares with a live engine."""

from __future__ import annotations

import json

import pytest

from flock.manager.api.docker import engine_api, engine_api_gen, json_body, validation
from flock.manager.api.docker.errors import DockerError, parse_json_body

CREATE = "/containers/create"


def refusal(template: str, body: str | bytes, method: str = "POST") -> str | None:
    raw = body.encode() if isinstance(body, str) else body
    try:
        validation.check_body(method, template, raw)
    except DockerError as exc:
        assert exc.status == 400
        return exc.message
    return None


def test_the_shipped_schema_is_fresh():
    assert engine_api.SCHEMA_FILE.read_text() == engine_api_gen.render(), (
        "stale manager/api/docker/engine_api.json: run "
        "`python -m flock.manager.api.docker.engine_api_gen`")


@pytest.mark.parametrize("template,body,message", [
    (CREATE, '{"Image":"busybox","NetworkingConfig":"x"}',
     "json: cannot unmarshal string into Go struct field ContainerConfigWrapper."
     "NetworkingConfig of type network.NetworkingConfig"),
    (CREATE, '{"Image":"busybox","NetworkingConfig":[1]}',
     "json: cannot unmarshal array into Go struct field ContainerConfigWrapper."
     "NetworkingConfig of type network.NetworkingConfig"),
    (CREATE, '{"HostConfig":{"Memory":1e400}}',
     "json: cannot unmarshal number 1e400 into Go struct field HostConfig.HostConfig.Memory "
     "of type int64"),
    (CREATE, '{"HostConfig":{"Memory":1.5}}',
     "json: cannot unmarshal number 1.5 into Go struct field HostConfig.HostConfig.Memory "
     "of type int64"),
    (CREATE, '{"HostConfig":{"Memory":9223372036854775808}}',
     "json: cannot unmarshal number 9223372036854775808 into Go struct field "
     "HostConfig.HostConfig.Memory of type int64"),
    (CREATE, '{"HostConfig":{"memory":true}}',  # Go matches names case-insensitively
     "json: cannot unmarshal bool into Go struct field HostConfig.HostConfig.Memory "
     "of type int64"),
    (CREATE, '{"HostConfig":{"RestartPolicy":{"MaximumRetryCount":"x"}}}',
     "json: cannot unmarshal string into Go struct field RestartPolicy.HostConfig."
     "RestartPolicy.MaximumRetryCount of type int"),
    (CREATE, '{"NetworkingConfig":{"EndpointsConfig":{"a":{"IPAMConfig":{"IPv4Address":5}}}}}',
     "json: cannot unmarshal number into Go struct field EndpointIPAMConfig.NetworkingConfig."
     "EndpointsConfig.IPAMConfig.IPv4Address of type string"),
    (CREATE, '{"HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":80}]}}}',
     "json: cannot unmarshal number into Go struct field PortBinding.HostConfig.PortBindings."
     "HostPort of type string"),
    (CREATE, '{"Cmd":[1]}', "json: cannot unmarshal array into Go struct field "
                            "ContainerConfigWrapper.Cmd of type string"),
    (CREATE, "[]", "json: cannot unmarshal array into Go value of type "
                   "runconfig.ContainerConfigWrapper"),
    ("/containers/{id*}/update", '{"Memory":1e400}',
     "json: cannot unmarshal number 1e400 into Go struct field UpdateConfig.Memory "
     "of type int64"),
    ("/networks/create", '{"Name":"n","Labels":"x"}',
     "json: cannot unmarshal string into Go struct field NetworkCreateRequest.Labels "
     "of type map[string]string"),
    ("/networks/create", '{"Name":"n","Labels":[1]}',
     "json: cannot unmarshal array into Go struct field NetworkCreateRequest.Labels "
     "of type map[string]string"),
    ("/networks/create", '{"Name":"n","IPAM":{"Config":"x"}}',
     "json: cannot unmarshal string into Go struct field IPAM.IPAM.Config of type "
     "[]network.IPAMConfig"),
    ("/volumes/create", "[]",
     "json: cannot unmarshal array into Go value of type volume.VolumeCreateBody"),
    ("/volumes/create", '{"Labels":{"a":1}}',
     "json: cannot unmarshal number into Go struct field VolumeCreateBody.Labels of type string"),
    ("/volumes/create", "", "got EOF while reading request body"),
    ("/exec/{id}/start", '{"Detach":"x"}',
     "json: cannot unmarshal string into Go struct field ExecStartCheck.Detach of type bool"),
    ("/networks/{id*}/connect", '{"Container":5}',
     "json: cannot unmarshal number into Go struct field NetworkConnect.Container of type "
     "string"),
])
def test_a_body_the_engine_refuses_gets_its_words(template, body, message):
    assert refusal(template, body) == message


@pytest.mark.parametrize("body,message", [
    ('{"HostConfig":{"Memory":NaN}}', "invalid character 'N' looking for beginning of value"),
    ('{"HostConfig":{"Memory":Infinity}}',
     "invalid character 'I' looking for beginning of value"),
    ('{"HostConfig":{"Memory":-Infinity}}', "invalid character 'I' in numeric literal"),
])
def test_nan_and_infinity_are_not_json(body, message):
    assert refusal(CREATE, body) == message


@pytest.mark.parametrize("template,body", [
    (CREATE, '{"Image":"busybox","Cmd":"echo hi","Entrypoint":null}'),  # strslice
    (CREATE, '{"Image":"busybox","HostConfig":{"CapAdd":"NET_ADMIN","Memory":null}}'),
    (CREATE, '{"Image":"busybox","Foo":{"Bar":[1.5, "x"]},"HostConfig":{"Baz":"x"}}'),
    (CREATE, '{"Image":"busybox","HostConfig":{"NanoCpus":-0,"Memory":6291456}}'),
    (CREATE, "null"),  # the handler refuses it in the Engine's words
    ("/commit", ""),  # commit takes no body at all
    ("/containers/{id*}/update", '{"CpuShares":512,"RestartPolicy":{"Name":"always"}}'),
    ("/volumes/create", "null"),  # the Engine makes a volume of it too
    ("/networks/create", '{"Name":"n","IPAM":{"Config":[{"Subnet":"10.1.0.0/24"}]}}'),
])
def test_what_the_engine_takes_passes(template, body):
    assert refusal(template, body) is None


def test_the_docker_clis_create_body_passes():
    """The body `docker create` (20.10) sends for a run with the usual flags."""
    body = {
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
        "AttachStdout": True, "AttachStderr": True, "ExposedPorts": {"80/tcp": {}},
        "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": ["A=1"],
        "Cmd": ["sleep", "60"], "Healthcheck": {"Test": ["CMD", "true"], "Interval": 10 ** 9},
        "Image": "busybox", "Volumes": {"/data": {}}, "WorkingDir": "", "Entrypoint": None,
        "OnBuild": None, "Labels": {"a": "b"}, "StopTimeout": 3,
        "HostConfig": {
            "Binds": ["/tmp:/tmp"], "ContainerIDFile": "",
            "LogConfig": {"Type": "", "Config": {}}, "NetworkMode": "default",
            "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
            "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, "AutoRemove": False,
            "VolumeDriver": "", "VolumesFrom": None, "CapAdd": None, "CapDrop": None,
            "CgroupnsMode": "", "Dns": [], "DnsOptions": [], "DnsSearch": [], "ExtraHosts": None,
            "GroupAdd": None, "IpcMode": "", "Cgroup": "", "Links": None, "OomScoreAdj": 0,
            "PidMode": "", "Privileged": False, "PublishAllPorts": False, "ReadonlyRootfs": False,
            "SecurityOpt": None, "UTSMode": "", "UsernsMode": "", "ShmSize": 0,
            "ConsoleSize": [0, 0], "Isolation": "", "CpuShares": 0, "Memory": 268435456,
            "NanoCpus": 1500000000, "CgroupParent": "", "BlkioWeight": 0,
            "BlkioWeightDevice": [], "Devices": [], "DeviceCgroupRules": None,
            "DeviceRequests": None, "KernelMemory": 0, "MemoryReservation": 0, "MemorySwap": 0,
            "MemorySwappiness": -1, "OomKillDisable": False, "PidsLimit": None, "Ulimits": None,
            "Mounts": [{"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1024}}],
            "MaskedPaths": None, "ReadonlyPaths": None, "Init": None},
        "NetworkingConfig": {"EndpointsConfig": {"net": {"Aliases": ["x"], "IPAMConfig": None}}},
    }
    assert refusal(CREATE, json.dumps(body)) is None


def test_an_integer_literal_too_long_for_python_is_a_clean_refusal():
    digits = "9" * 5000  # int() refuses more than 4,300 digits with a ValueError
    message = refusal(CREATE, '{"HostConfig":{"Memory":' + digits + "}}")
    assert message.startswith("json: cannot unmarshal number 99999") and message.endswith(
        "... into Go struct field HostConfig.HostConfig.Memory of type int64")
    assert refusal(CREATE, '{"Unknown":' + digits + "}").startswith("json: number 99999")


def test_a_number_past_float64_is_refused_even_where_the_engine_ignores_it():
    """The manager re-encodes bodies, and JSON has no infinity to send on: Go would
    skip the unknown field, but sending `Infinity` would get a syntax error instead."""
    assert refusal(CREATE, '{"Image":"busybox","Foo":{"Bar":[1, -1e400]}}') == (
        "json: number -1e400 is out of range: flock passes on numbers that fit a float64 only")


# ------------------------------------------------------------------ nesting depth
def nested(depth: int, inner: str = "1") -> bytes:
    return ("[" * depth + inner + "]" * depth).encode()


def test_deep_nesting_is_refused_without_recursing():
    raw = b'{"Image":"busybox","Labels":' + nested(100_000) + b"}"
    with pytest.raises(DockerError) as refused:
        parse_json_body(raw)
    assert refused.value.status == 400
    assert refused.value.message.startswith("invalid character '[' exceeded max depth")
    assert refusal(CREATE, raw) == refused.value.message


def test_the_depth_limit_counts_levels_not_brackets():
    limit = json_body.MAX_DEPTH
    assert json_body.too_deep(nested(limit)) is None
    assert json_body.too_deep(nested(limit + 1)) == "["
    assert json_body.too_deep(b'{"a":' * (limit + 1) + b"1" + b"}" * (limit + 1)) == "{"
    siblings = b"[" + b",".join([b"[[]]"] * 10_000) + b"]"  # many brackets, 3 deep
    assert json_body.too_deep(siblings) is None
    assert parse_json_body(nested(limit)) is not None


def test_brackets_inside_strings_do_not_count():
    text = json.dumps({"Cmd": ["[" * 10_000, '\\"[[[' * 1000, "{" * 10_000]}).encode()
    assert json_body.too_deep(text) is None
    assert parse_json_body(text)["Cmd"][0] == "[" * 10_000


def test_numbers_keep_their_text_and_stay_plain_json():
    value = parse_json_body(b'{"a": 1e3, "b": 1.50, "c": 7}')
    assert value == {"a": 1000.0, "b": 1.5, "c": 7}
    assert value["a"].literal == "1e3" and type(value["c"]) is int
    assert json.dumps(value) == '{"a": 1000.0, "b": 1.5, "c": 7}'


# ------------------------------------------------------------------ endpoints
@pytest.mark.parametrize("method,path,known", [
    ("GET", "/containers/json", True),
    ("GET", "/containers/node-a/web/json", True),  # a node/name reference
    ("GET", "/swarm", True),
    ("POST", "/session", True),
    ("POST", "/grpc", True),  # not in the reference, served by dockerd all the same
    ("HEAD", "/_ping", True),
    ("BREW", "/containers/json", False),
    ("PATCH", "/volumes/create", False),
    ("HEAD", "/containers/json", False),
    ("GET", "/nothing/here", False),
])
def test_engine_endpoints_come_from_the_reference(method, path, known):
    assert engine_api.knows(method, path) is known


def test_every_route_with_a_json_body_is_checked():
    from flock.manager.api.docker.app import build_router

    router = build_router()
    checked = {key for key in engine_api.schema()["routes"]
               if router.match(*key.replace("{id}", "x").split(" ", 1)) is not None}
    assert checked == {key for key in engine_api.schema()["routes"] if key != "POST /auth"}
