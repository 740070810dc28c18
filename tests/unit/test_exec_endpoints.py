"""NetworkingConfig.EndpointsConfig on the exec runtime (pure): aliases taken, the empty
fields every `docker run` sends ignored, the rest refused (issue 18, item 5)."""

from __future__ import annotations

import pytest

from flock.agent.runtimes.exec import endpoints
from flock.agent.runtimes.exec.errors import ApiError

# what docker CLI 28 sends on `docker run busybox` (API 1.41: the endpoint of NetworkMode)
CLI_DEFAULT = {"EndpointsConfig": {"default": {
    "IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "", "DriverOpts": None,
    "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
    "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": None}}}


def test_empty_fields_ask_for_nothing():
    assert endpoints.aliases(CLI_DEFAULT, "bridge") == []
    assert endpoints.aliases(None, "host") == []
    assert endpoints.aliases({"EndpointsConfig": {"host": None}}, "host") == []


def test_aliases_on_the_bridge_once_each():
    config = {"EndpointsConfig": {"bridge": {"Aliases": ["web", "db", "web"]}}}
    assert endpoints.aliases(config, "bridge") == ["web", "db"]


@pytest.mark.parametrize(("config", "mode", "status", "message"), [
    ({"EndpointsConfig": {"none": {"Aliases": ["a"]}}}, "none", 400,
     endpoints.ALIAS_NEEDS_NETWORK),
    ({"EndpointsConfig": {"bridge": {"Aliases": ["two words"]}}}, "bridge", 400,
     "invalid network alias"),
    ({"EndpointsConfig": {"bridge": {"Aliases": "web"}}}, "bridge", 400, "list of names"),
    ({"EndpointsConfig": "bridge"}, "bridge", 400, "must be an object"),
    ({"EndpointsConfig": {"bridge": {"IPAMConfig": {"IPv4Address": "10.0.0.9"}}}},
     "bridge", 501, "IPAMConfig.IPv4Address (--ip;"),
    ({"EndpointsConfig": {"bridge": {"IPAMConfig": {"IPv6Address": "fd00::1"}}}},
     "bridge", 501, "IPv6Address (--ip6; its network is IPv4 only)"),
    ({"EndpointsConfig": {"bridge": {"MacAddress": "02:42:ac:11:00:09"}}}, "bridge", 501,
     "EndpointsConfig.bridge.MacAddress"),
    ({"EndpointsConfig": {"mynet": {}}}, "bridge", 501, "not also to mynet"),
])
def test_refusals(config, mode, status, message):
    with pytest.raises(ApiError) as caught:
        endpoints.aliases(config, mode)
    assert caught.value.status == status and message in caught.value.message
