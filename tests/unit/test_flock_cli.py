import pytest

from flock.common.table import format_table
from flock.local_cluster import ClusterError, LocalCluster, pick_runtime
from flock.up import parse_tcp


def test_table_pads_columns_like_docker():
    text = format_table(["NAME", "NODE"], [["web", "node-1"], ["a-long-name", "n2"]])
    assert text.splitlines() == [
        "NAME          NODE",
        "web           node-1",
        "a-long-name   n2",
    ]


def test_parse_tcp():
    assert parse_tcp("tcp://127.0.0.1:2375") == ("127.0.0.1", 2375)
    for bad in ("127.0.0.1:2375", "tcp://host", "tcp://host:port", "unix:///x"):
        with pytest.raises(ClusterError, match="expected tcp://HOST:PORT"):
            parse_tcp(bad)


def test_explicit_runtime_is_kept():
    assert pick_runtime("exec", 3, "unix:///nonexistent.sock") == ("exec", "--runtime exec")


def test_auto_runtime_never_shares_one_engine_between_agents():
    runtime, why = pick_runtime("auto", 2, "unix:///var/run/docker.sock")
    assert runtime == "exec" and "cannot share" in why


def test_auto_runtime_without_engine_is_exec(tmp_path):
    runtime, why = pick_runtime("auto", 1, f"unix://{tmp_path}/no.sock")
    assert runtime == "exec" and "no Docker Engine answers" in why


def test_zero_agents_is_refused():
    with pytest.raises(ClusterError, match="at least 1"):
        LocalCluster(agents=0).start()
