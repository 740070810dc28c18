"""The Go-template subset of `ls --format` and `inspect --format`."""

from __future__ import annotations

import json

import pytest

from flock.provisioner.template import TemplateError, go_string, parse, split_table, tabulate

DOC = {
    "Name": "m1",
    "Driver": {"IPAddress": "10.0.0.5", "ssh_port": 22, "tags": ["a", "b"]},
    "HostOptions": {"EngineOptions": {"Labels": ["zone=a", "disk=ssd"], "TlsVerify": True},
                    "SSHTimeout": 120.0},
}


@pytest.mark.parametrize("source, expected", [
    ("{{.Name}}", "m1"),
    ("{{ .Name }}", "m1"),
    ("name={{.Name}} ip={{.Driver.IPAddress}}", "name=m1 ip=10.0.0.5"),
    ("{{.Driver.SSHPort}}", "22"),                       # ssh_port, case/underscore-blind
    ("{{.Driver.tags}}", "[a b]"),
    ("{{.HostOptions.EngineOptions.TlsVerify}}", "true"),
    ("{{.HostOptions.SSHTimeout}}", "120"),
    ("{{.HostOptions.EngineOptions}}", "map[Labels:[zone=a disk=ssd] TlsVerify:true]"),
    ("{{json .Driver.tags}}", '["a","b"]'),
    ("{{.Name | upper}}", "M1"),
    ("{{upper .Name | lower}}", "m1"),
    ('{{join .HostOptions.EngineOptions.Labels ","}}', "zone=a,disk=ssd"),
    ("{{len .Driver.tags}}", "2"),
    ('{{"}}"}}', "}}"),
    ("a  {{- .Name -}}  b", "am1b"),
    ("plain text", "plain text"),
])
def test_render(source, expected):
    assert parse(source).render(DOC) == expected


def test_dot_and_json_of_a_record():
    assert json.loads(parse("{{json .}}").render(DOC)) == DOC
    assert json.loads(parse("{{json .Driver}}").render(DOC))["IPAddress"] == "10.0.0.5"


@pytest.mark.parametrize("source, message", [
    ("{{.Name", "unclosed action"),
    ("{{}}", "empty action"),
    ("{{range .Driver}}x{{end}}", "'range' is not supported"),
    ("{{if .Name}}", "'if' is not supported"),
    ("{{frob .Name}}", "function 'frob' not defined"),
    ("{{.Name .Driver}}", "a value cannot take arguments"),
    ("{{$x := 1}}", "cannot read"),
    ("{{.Name |}}", "missing value around '|'"),
    ("{{json .Name upper}}", "a function can only come first"),
])
def test_parse_errors(source, message):
    with pytest.raises(TemplateError, match=message):
        parse(source)


@pytest.mark.parametrize("source, message", [
    ("{{.Colour}}", "can't evaluate field Colour in .: its fields are Driver, HostOptions"),
    ("{{.Driver.Nope}}", "can't evaluate field Nope in .Driver"),
    ("{{.Name.First}}", "can't evaluate field First in .Name: it is str"),
    ("{{json}}", "json takes 1 argument, not 0"),
    ('{{join .Name ","}}', "join needs a list"),
    ("{{.Name | .Driver}}", "only a function can follow"),
])
def test_execution_errors(source, message):
    with pytest.raises(TemplateError, match=message):
        parse(source).render(DOC)


def test_go_string():
    assert go_string(None) == "<nil>"
    assert go_string(False) == "false"
    assert go_string(1.5) == "1.5"
    assert go_string({"b": 1, "a": [1, 2]}) == "map[a:[1 2] b:1]"


def test_split_table_like_docker():
    assert split_table("table {{.Name}}\\t{{.URL}}") == ("{{.Name}}\t{{.URL}}", True)
    assert split_table("{{.Name}}\\n") == ("{{.Name}}\n", False)


def test_tabulate_like_gos_tabwriter():
    text = tabulate(["NAME\tACTIVE\tERRORS", "a-long-name\t-\t", "b\t*\tboom"])
    assert text.splitlines() == [
        "NAME          ACTIVE   ERRORS",
        "a-long-name   -",
        "b             *        boom",
    ]


# --- inspect: Go executes Docker Machine's template on a map (commands/inspect.go) --------
INSPECT = {"Driver": {"IPAddress": "10.0.0.5", "SSHPort": 22.0},
           "HostOptions": {"SwarmOptions": {"Agent": True, "Env": None},
                           "AuthOptions": {"ServerCertSANs": []}},
           "Name": "m1", "Note": "a<b&c"}


@pytest.mark.parametrize("source, expected", [
    ("{{.Nope}}", "<no value>"),                                   # a key the map lacks
    ("{{.Driver.Nope}}", "<no value>"),
    ("{{.Nope.Deeper}}", "<no value>"),
    ("{{.HostOptions.SwarmOptions.Env}}", "<no value>"),           # null
    ("{{.HostOptions.SwarmOptions.Agent}}", "true"),
    ("{{.Driver.IPAddress}}:{{.Driver.SSHPort}}", "10.0.0.5:22"),  # float64 22 prints 22
    ("{{.HostOptions.AuthOptions.ServerCertSANs}}", "[]"),
    ("{{json .Nope}}", "null"),                                    # Go passes nil
    ("{{json .Driver}}", '{"IPAddress":"10.0.0.5","SSHPort":22}'),
    ("{{json .Note}}", '"a\\u003cb\\u0026c"'),                     # encoding/json escapes
    ("{{prettyjson .HostOptions.SwarmOptions}}",
     '{\n    "Agent": true,\n    "Env": null\n}'),                 # MarshalIndent, 4 spaces
])
def test_inspect_templates_read_a_map_as_go_does(source, expected):
    assert parse(source).render(INSPECT, missing_keys=True) == expected


def test_a_field_of_a_string_is_still_an_error_in_a_map():
    with pytest.raises(TemplateError, match="can't evaluate field First in .Name"):
        parse("{{.Name.First}}").render(INSPECT, missing_keys=True)
