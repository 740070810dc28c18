"""The pure parts of the listings' filters: which nodes a `node` filter selects, the
query the engines get without the manager's own keys, and a network `name` value."""

from __future__ import annotations

import json
import urllib.parse

from flock.manager.api.docker.networks import name_matches
from flock.manager.api.docker.pernode import Found, select_nodes, without_filters
from flock.manager.cluster.model import Node

A = Node(id="AAAA:1111", name="node-1", addr="127.0.0.1:1")
B = Node(id="BBBB:2222", name="node-10", addr="127.0.0.1:2")


def test_a_value_is_an_exact_name_or_id_and_values_add_up():
    # classicswarm api/handlers.go getImagesJSON: Engine.Name or Engine.ID, any value.
    assert select_nodes([A, B], ["node-1"]) == [A]
    assert select_nodes([A, B], ["BBBB:2222"]) == [B]
    assert select_nodes([A, B], ["node-1", "node-10"]) == [A, B]
    assert select_nodes([A, B], ["node", "node-*", "node-1.*", "mars"]) == []


def test_the_engines_query_keeps_the_rest_as_encoded():
    filters = json.dumps({"node": {"node-1": True}, "dangling": {"true": True}})
    query = "all=1&filters=" + urllib.parse.quote(filters) + "&digests=a%20b"
    sent = without_filters(query, {"dangling": ["true"]})
    pairs = urllib.parse.parse_qs(sent)
    assert pairs["all"] == ["1"] and "digests=a%20b" in sent
    assert json.loads(pairs["filters"][0]) == {"dangling": {"true": True}}
    assert without_filters(query, {}) == "all=1&digests=a%20b"
    assert without_filters("", {}) == ""


def test_a_network_name_value_as_classic_reads_it():
    # classicswarm cluster/network.go: Networks.Get (node/name, ID, short ID) then
    # matchByName (the Engine's filters.Match on the plain name).
    item = Found(A, {"Name": "web_default", "Id": "0123456789abcdef" * 4})
    for value in ("web_default", "web", "^web_.*$", "node-1/web_default",
                  "AAAA:1111/web_default", "0123456789ab", "0123456789abcdef" * 4):
        assert name_matches(value, item), value
    for value in ("node-10/web_default", "node-1/web", "^default", "(bad"):
        assert not name_matches(value, item), value
