"""The exec runtime's port specs, addresses and hosts files (pure parts of its network)."""

from __future__ import annotations

import ipaddress

import pytest

from flock.agent.runtimes.exec import ipam, ports
from flock.agent.runtimes.exec.errors import ApiError


def test_bindings_from_port_bindings_and_publish_all():
    config = {"ExposedPorts": {"80/tcp": {}, "53/udp": {}, "9000/tcp": {}}}
    host = {"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}],
                             "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5300-5310"}]},
            "PublishAllPorts": True}
    found = ports.bindings(config, host)
    assert found == [ports.Binding(80, "tcp", "0.0.0.0", 8080, 8080),
                     ports.Binding(53, "udp", "127.0.0.1", 5300, 5310),
                     ports.Binding(9000, "tcp", "0.0.0.0", 0, 0)]


@pytest.mark.parametrize(("table", "message"), [
    ({"x/tcp": []}, "invalid containerPort: x"),
    ({"0/tcp": []}, "invalid containerPort: 0"),
    ({"80/icmp": []}, "invalid proto: icmp"),
    ({"80/tcp": [{"HostPort": "70000"}]}, "invalid hostPort: 70000"),
    ({"80/tcp": [{"HostPort": "9-8"}]}, "invalid hostPort: 9-8"),
    ({"80/tcp": [{"HostIp": "local", "HostPort": "1"}]}, "invalid IP address in port binding"),
])
def test_bad_specs_are_400(table, message):
    with pytest.raises(ApiError) as caught:
        ports.bindings({}, {"PortBindings": table})
    assert caught.value.status == 400 and message in caught.value.message


@pytest.mark.parametrize(("table", "message"), [
    ({"80/tcp": [{"HostIp": "::1", "HostPort": "1"}]}, "IPv6 address ::1"),
    ({"80/sctp": [{"HostPort": "1"}]}, "publishes tcp and udp ports, not sctp"),
])
def test_valid_specs_it_cannot_honour_are_501(table, message):
    """Issue 18: what stays unsupported answers 501, a bad spec 400."""
    with pytest.raises(ApiError) as caught:
        ports.bindings({}, {"PortBindings": table})
    assert caught.value.status == 501 and message in caught.value.message


def test_shapes_for_inspect_and_ps():
    config = {"ExposedPorts": {"80/tcp": {}, "443/tcp": {}}}
    published = [{"key": "80/tcp", "host_ip": "0.0.0.0", "host_port": 8080}]
    assert ports.ports_map(config, published) == {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "443/tcp": None}
    assert ports.ps_ports(config, published) == [
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        {"PrivatePort": 443, "Type": "tcp"}]


def test_merged_exposed_takes_the_image_ports():
    assert ports.merged_exposed({"ExposedPorts": {"80/tcp": {}}},
                                {"ExposedPorts": {"53/udp": {}}}) == {"80/tcp": {}, "53/udp": {}}
    with pytest.raises(ApiError):
        ports.merged_exposed({}, {"ExposedPorts": ["80"]})


def test_addresses_skip_the_gateway_and_the_taken():
    net = ipaddress.ip_network("10.210.7.0/29")
    assert str(ipam.gateway(net)) == "10.210.7.1"
    assert str(ipam.allocate(net, [])) == "10.210.7.2"
    assert str(ipam.allocate(net, ["10.210.7.2", "10.210.7.4"])) == "10.210.7.3"
    with pytest.raises(ApiError) as caught:
        ipam.allocate(net, [f"10.210.7.{i}" for i in range(2, 7)])
    assert caught.value.status == 500 and "no available IPv4 addresses" in caught.value.message


def test_mac_and_hosts_file():
    assert ipam.mac_for(ipaddress.ip_address("172.17.0.2")) == "02:42:ac:11:00:02"
    text = ipam.hosts_file(("10.0.0.2", "abc123", ["web"]), [("10.0.0.3", ["db", "def456"])])
    assert "10.0.0.2\tabc123\tweb\n" in text and "10.0.0.3\tdb\tdef456\n" in text
    assert text.startswith("127.0.0.1\tlocalhost\n")


def test_resolv_conf_drops_loopback_servers_and_takes_options():
    host = "nameserver 127.0.0.53\nsearch corp\noptions edns0\n"
    assert ipam.resolv_conf(host, [], [], []) == (
        "search corp\noptions edns0\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n")
    assert ipam.resolv_conf(host, ["10.0.0.2"], ["a.test"], ["ndots:2"]) == (
        "nameserver 10.0.0.2\nsearch a.test\noptions ndots:2\n")


def test_extra_hosts():
    assert ipam.extra_hosts(["db:10.0.0.3", "v6:::1"]) == [("db", "10.0.0.3"), ("v6", "::1")]
    with pytest.raises(ApiError) as caught:
        ipam.extra_hosts(["db"])
    assert caught.value.status == 400
