"""The agent's run-time node spec: labels added/removed and availability, kept per node
ID in the state folder."""

from __future__ import annotations

import json

import pytest

from flock.agent.node_spec import NodeSpec, NodeSpecStore


def test_later_words_win_and_removed_keys_hide_the_node_own_labels():
    spec = NodeSpec()
    spec.update({"disk": "ssd"}, ["zone"], "")
    assert spec.apply({"zone": "a", "os": "linux"}) == {"os": "linux", "disk": "ssd"}
    spec.update({"zone": "b"}, ["disk"], "drain")
    assert spec.apply({"zone": "a", "os": "linux"}) == {"os": "linux", "zone": "b"}
    assert spec.availability == "drain"


@pytest.mark.parametrize("add, availability", [({"a=b": "c"}, ""), ({"": "x"}, ""),
                                               ({}, "paused")])
def test_bad_words_change_nothing(tmp_path, add, availability):
    store = NodeSpecStore(tmp_path)
    store.update("node1", {"keep": "1"}, [], "")
    with pytest.raises(ValueError):
        store.update("node1", add, [], availability)
    assert NodeSpecStore(tmp_path).get("node1").labels_add == {"keep": "1"}


def test_kept_per_node_id_with_a_private_file(tmp_path):
    store = NodeSpecStore(tmp_path)
    store.update("node1", {"disk": "ssd"}, [], "drain")
    again = NodeSpecStore(tmp_path)
    assert again.get("node1") == NodeSpec({"disk": "ssd"}, [], "drain")
    assert again.get("node2") == NodeSpec()  # agents sharing a folder do not mix
    path = tmp_path / "node-specs" / "node1.json"
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ValueError):
        store.path("../escape")


def test_a_broken_file_starts_empty_instead_of_stopping_the_agent(tmp_path):
    folder = tmp_path / "node-specs"
    folder.mkdir()
    (folder / "node1.json").write_text("{not json")
    assert NodeSpecStore(tmp_path).get("node1") == NodeSpec()
    (folder / "node2.json").write_text(json.dumps(["a list"]))
    assert NodeSpecStore(tmp_path).get("node2") == NodeSpec()


def test_without_a_folder_it_is_kept_in_memory():
    store = NodeSpecStore(None)
    store.update("n", {"a": "1"}, [], "")
    assert store.get("n").labels_add == {"a": "1"} and store.path("n") is None
