"""classic Swarm 1.2.9's `manage`, `join` and `list` command lines, as `flock` parses them.

The flags, defaults, env vars and refusals are classic's: docker-archive/classicswarm
cli/flags.go (the flag set and its EnvVar names), cli/commands.go (which command takes
which), cli/manage.go, cli/join.go and cli/list.go (the checks and their messages).
"""

from __future__ import annotations

import argparse

import pytest

from flock.agent.cli import JoinError, _advertise, _durations, _resolve_discovery
from flock.agent.cli import register as register_join
from flock.common.durations import parse_duration
from flock.discovery.options import DiscoveryOptionError, resolve
from flock.listing import ListError, options
from flock.listing import register as register_list
from flock.manager.app import ConfigError
from flock.manager.cli import config_from_args
from flock.manager.cli import register as register_manage
from flock.manager.cluster.sync import RefreshRange

SWARM_ENV = ("SWARM_HOST", "SWARM_STRATEGY", "SWARM_ADVERTISE", "SWARM_DISCOVERY")


@pytest.fixture(autouse=True)
def _no_swarm_env(monkeypatch):
    for name in SWARM_ENV:
        monkeypatch.delenv(name, raising=False)


def parse(command: str, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command")
    {"manage": register_manage, "join": register_join, "list": register_list}[command](
        commands)
    return parser.parse_args([command, *argv])


# Every flag of classic's `manage` (cli/commands.go), in classic's own spelling.
CLASSIC_MANAGE = [
    "--strategy", "spread", "--filter", "health", "-f", "constraint",
    "--host", "tcp://127.0.0.1:4000", "--replication", "--replication-ttl", "20s",
    "--advertise", "127.0.0.1:4000", "--tls", "--tlscacert", "ca.pem", "--tlscert",
    "cert.pem", "--tlskey", "key.pem", "--tlsverify",
    "--engine-refresh-min-interval", "30s", "--engine-refresh-max-interval", "60s",
    "--engine-failure-retry", "3", "--engine-refresh-retry", "3", "--heartbeat", "60s",
    "--api-enable-cors", "--cluster-driver", "swarm", "--discovery-opt", "kv.path=nodes",
    "--cluster-opt", "swarm.overcommit=0.1", "--refresh-on-node-filter",
    "--container-name-refresh-filter", "probe", "etcd://127.0.0.1:2379/swarm",
]


def test_every_classic_manage_flag_is_accepted_and_honoured():
    config = config_from_args(parse("manage", CLASSIC_MANAGE))
    assert config.refresh == RefreshRange(30, 60)
    assert (config.heartbeat, config.failure_retry, config.replication_ttl) == (60, 3, 20)
    assert config.discovery == "etcd://127.0.0.1:2379/swarm/nodes"  # libkv's kv.path join
    assert (config.cors, config.refresh_on_node_filter,
            config.container_name_refresh_filter) == (True, True, "probe")
    assert (config.hosts, config.advertise, config.overcommit) == (
        ["tcp://127.0.0.1:4000"], "127.0.0.1:4000", 0.1)
    assert config.tlsverify and config.tls_files.ca == "ca.pem"


def test_short_and_alias_spellings():
    config = config_from_args(parse("manage", [
        "-H", "tcp://127.0.0.1:4001", "--cors", "-c", "swarm", "--addr", "127.0.0.1:9",
        "nodes://a:1"]))
    assert (config.hosts, config.cors, config.advertise) == (
        ["tcp://127.0.0.1:4001"], True, "127.0.0.1:9")


def test_swarm_environment_variables_fill_in_what_the_command_line_leaves_out(monkeypatch):
    monkeypatch.setenv("SWARM_HOST", "tcp://127.0.0.1:4002,unix:///tmp/s.sock")
    monkeypatch.setenv("SWARM_STRATEGY", "binpack")
    monkeypatch.setenv("SWARM_ADVERTISE", "127.0.0.1:4002")
    monkeypatch.setenv("SWARM_DISCOVERY", "nodes://a:1,b:2")
    config = config_from_args(parse("manage", []))
    assert (config.discovery, config.strategy, config.advertise) == (
        "nodes://a:1,b:2", "binpack", "127.0.0.1:4002")
    assert config.hosts == ["tcp://127.0.0.1:4002", "unix:///tmp/s.sock"]
    given = config_from_args(parse("manage", ["--strategy", "random", "-H", "tcp://h:1",
                                              "nodes://c:3"]))
    assert (given.discovery, given.strategy, given.hosts) == ("nodes://c:3", "random",
                                                              ["tcp://h:1"])


def test_refresh_bounds_default_to_the_heartbeat_and_one_bound_stretches_the_other():
    assert config_from_args(parse("manage", ["nodes://a:1"])).refresh is None
    one = config_from_args(parse("manage", ["--heartbeat", "5s",
                                            "--engine-refresh-min-interval", "10s", "a:1"]))
    assert one.refresh == RefreshRange(10, 10)
    other = config_from_args(parse("manage", ["--heartbeat", "5s",
                                              "--engine-refresh-max-interval", "2s", "a:1"]))
    assert other.refresh == RefreshRange(2, 2)


@pytest.mark.parametrize("argv, words", [
    # cli/manage.go's own messages
    (["--engine-refresh-min-interval", "0s"], "min refresh interval should be a positive"),
    (["--engine-refresh-min-interval", "20s", "--engine-refresh-max-interval", "10s"],
     "max refresh interval cannot be less than min refresh interval"),
    (["--engine-refresh-retry", "5"],
     "--engine-refresh-retry is deprecated. Use --engine-failure-retry"),
    (["--cluster-driver", "mesos-experimental"], 'unsupported cluster "mesos-experimental"'),
    (["--discovery-opt", "kv.path"], "--discovery-opt must contain key=value strings"),
    (["--cluster-opt", "swarm.overcommit=-1"],
     "swarm.overcommit should be larger than -1, -1 is invalid"),
    # refused with Flock's reason
    (["--engine-refresh-min-interval", "soon"], "--engine-refresh-min-interval: invalid"),
    (["--discovery-opt", "kv.cacertfile=/ca.pem"], "does not speak TLS to etcd"),
    (["--discovery-opt", "zk.timeout=1s"], "unsupported --discovery-opt 'zk.timeout'"),
    (["--cluster-opt", "swarm.createretry=2"], "does not retry a create"),
])
def test_classic_refusals(argv, words):
    with pytest.raises(ConfigError) as caught:
        config_from_args(parse("manage", [*argv, "nodes://a:1"]))
    assert words in str(caught.value)


def test_kv_path_applies_to_etcd_only_and_a_missing_discovery_is_named():
    with pytest.raises(ConfigError, match="kv.path applies to etcd:// discovery only"):
        config_from_args(parse("manage", ["--discovery-opt", "kv.path=x", "nodes://a:1"]))
    with pytest.raises(ConfigError, match="discovery required to manage a cluster"):
        config_from_args(parse("manage", []))


def test_negative_overcommit_above_minus_one_is_classic_headroom():
    config = config_from_args(parse("manage", ["--cluster-opt", "swarm.overcommit=-0.5",
                                               "a:1"]))
    assert config.overcommit == -0.5


@pytest.mark.parametrize("url, opts, want", [
    ("etcd://h:1", ["kv.path=docker/swarm/nodes"], "etcd://h:1/docker/swarm/nodes"),
    ("etcd://h:1,h:2/flock/", ["kv.path=/nodes/"], "etcd://h:1,h:2/flock/nodes"),
    ("etcd://h:1/flock", [], "etcd://h:1/flock"),
])
def test_kv_path_joins_the_url_path_as_libkv_does(url, opts, want):
    assert resolve(url, opts) == want


def test_a_bad_discovery_option_is_a_value_error():
    with pytest.raises(DiscoveryOptionError):
        resolve("etcd://h:1", ["nokey"])


# ---------------------------------------------------------------- join
def test_classic_join_flags(monkeypatch):
    args = parse("join", ["--addr", "127.0.0.1:2375", "--heartbeat", "20s", "--ttl", "60s",
                          "--delay", "3s", "--discovery-opt", "kv.path=nodes",
                          "etcd://127.0.0.1:2379"])
    assert _advertise(args) == "127.0.0.1:2375"
    args.discovery = _resolve_discovery(args)
    assert args.discovery == "etcd://127.0.0.1:2379/nodes"
    assert _durations(args) == (20, 60, 3)
    monkeypatch.setenv("SWARM_ADVERTISE", "127.0.0.1:7")
    monkeypatch.setenv("SWARM_DISCOVERY", "nodes://127.0.0.1:7")
    bare = parse("join", [])
    assert (_advertise(bare), _resolve_discovery(bare)) == ("127.0.0.1:7",
                                                            "nodes://127.0.0.1:7")


@pytest.mark.parametrize("argv, words", [
    ([], "missing mandatory --advertise flag"),
    (["--advertise", "127.0.0.1:1", "--heartbeat", "10s", "--ttl", "10s", "nodes://a:1"],
     "--ttl must be strictly superior to the heartbeat value"),
    (["--advertise", "127.0.0.1:1", "--delay=-1s", "nodes://a:1"], "--delay: invalid"),
])
def test_classic_join_refusals(argv, words):
    args = parse("join", argv)
    with pytest.raises(JoinError) as caught:
        _advertise(args)
        args.discovery = _resolve_discovery(args)
        _durations(args)
    assert words in str(caught.value)


def test_an_agent_without_discovery_keeps_any_ttl():
    args = parse("join", ["--advertise", "127.0.0.1:1", "--heartbeat", "10s", "--ttl", "5s"])
    assert _durations(args) == (10, 5, 0)


# ---------------------------------------------------------------- list
def test_classic_list_flags(monkeypatch):
    args = parse("list", ["--timeout", "2s", "--discovery-opt", "kv.path=n", "etcd://h:1"])
    assert options(args) == ("etcd://h:1/n", 2)
    monkeypatch.setenv("SWARM_DISCOVERY", "nodes://a:1")
    assert options(parse("list", [])) == ("nodes://a:1", 10)
    monkeypatch.delenv("SWARM_DISCOVERY")
    with pytest.raises(ListError, match="discovery required to list a cluster"):
        options(parse("list", []))
    with pytest.raises(ListError, match="--timeout should be a positive number"):
        options(parse("list", ["--timeout", "0s", "nodes://a:1"]))


# ---------------------------------------------------------------- durations
@pytest.mark.parametrize("text, seconds", [
    # Go's time.ParseDuration units and sign
    ("300ms", 0.3), ("1.5us", 1.5e-6), ("1µs", 1e-6), ("2ns", 2e-9), ("+5s", 5),
    ("0", 0), ("2h45m", 9900),
])
def test_go_duration_syntax(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["inf", "nan", "1e3", "+", "-0"])
def test_not_durations(text):
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


# ---------------------------------------------------------------- global flags
@pytest.mark.parametrize("argv, env, level", [
    # cli/cli.go: --debug (or $DEBUG) means debug unless -l is given; logrus's level names
    (["--debug", "list", "a:1"], "", "debug"),
    (["list", "a:1"], "true", "debug"),
    (["--debug", "-l", "warn", "list", "a:1"], "", "warning"),
    (["-l", "fatal", "--experimental", "list", "a:1"], "", "critical"),
    (["list", "a:1"], "0", "info"),
])
def test_classic_global_flags(monkeypatch, argv, env, level):
    from flock.cli import build_parser, command_word, log_level

    monkeypatch.setenv("DEBUG", env)
    assert command_word(argv) == "list"
    assert log_level(build_parser(argv).parse_args(argv)) == level
