"""`docker ps` as cached bytes (manager/api/docker/ps_json.py): always the very bytes
json_answer would send for `ps.select`, with Status live, whatever changed since the
last call (a record replaced, a node renamed, a container gone)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import pytest

from flock.manager.api.docker.errors import answer_bytes
from flock.manager.api.docker.ps import select
from flock.manager.api.docker.ps_json import ENCODE_AFTER, listing_json
from flock.manager.cluster.convert import STATE_KEY
from flock.manager.cluster.state import ClusterState
from tests.unit.test_manager_ps import CONTAINERS, NODES, NOW, make


def _state() -> ClusterState:
    state = ClusterState()
    for node in NODES.values():
        state.upsert_node(replace(node))
    for container in CONTAINERS:
        state.upsert_container(container)
    return state


def _expected(state: ClusterState, now: float, **kwargs) -> bytes:
    entries = select(state.containers(), state.node_map(), now=now, **kwargs)
    return answer_bytes(entries)


@pytest.mark.parametrize("kwargs", [
    {"show_all": True, "limit": -1, "filters": {}},
    {"show_all": False, "limit": -1, "filters": {}},
    {"show_all": False, "limit": 2, "filters": {}},
    {"show_all": True, "limit": -1, "filters": {"label": ["tier=web"]}},
    {"show_all": True, "limit": -1, "filters": {"status": ["exited"]}},
    {"show_all": True, "limit": -1, "filters": {"name": ["nothing-like-it"]}},
])
def test_bytes_are_those_of_the_listing(kwargs):
    state = _state()
    for now in (NOW, NOW + 3600):  # cached pieces, live Status
        assert listing_json(state, state.node_map(), now=now, **kwargs) == _expected(
            state, now, **kwargs)


def test_changes_show_on_the_next_call():
    state = _state()
    every = {"show_all": True, "limit": -1, "filters": {}}
    listing_json(state, state.node_map(), now=NOW, **every)  # fill the cache
    web1 = state.container("aaa111")
    summary = dict(web1.summary, State="exited",
                   **{STATE_KEY: dict(web1.summary[STATE_KEY], Status="exited",
                                      FinishedAt=NOW - 5, ExitCode=3)})
    state.upsert_container(replace(web1, state="exited", summary=summary))
    node = state.node("B|2")
    state.upsert_node(replace(node, name="node-b2", addr="10.0.0.9:4000"))
    state.remove_container("bbb333")
    no_times = make("ddd555", "plain", "A|1", created=9)
    no_times.summary.pop(STATE_KEY)
    state.upsert_container(no_times)
    body = listing_json(state, state.node_map(), now=NOW, **every)
    assert body == _expected(state, NOW, **every)
    entries = {e["Id"]: e for e in json.loads(body)}
    assert entries["aaa111"]["Status"] == "Exited (3) 5 seconds ago"
    assert entries["aaa222"]["Names"] == ["/node-b2/web2"]
    assert entries["aaa222"]["Ports"][0]["IP"] == "10.0.0.9"
    assert "bbb333" not in entries
    assert entries["ddd555"]["Status"] == "stale"  # no state times: as the engine said


def test_unknown_node_and_empty_cluster():
    state = ClusterState()
    assert listing_json(state, state.node_map(), show_all=True, limit=-1, filters={}) == b"[]\n"
    state.upsert_container(make("eee666", "orphan", "gone|9"))
    every = {"show_all": True, "limit": -1, "filters": {}}
    assert listing_json(state, {}, now=NOW, **every) == answer_bytes(
        select(state.containers(), {}, now=NOW, **every))


def test_writes_inside_the_loop_show_before_and_after_their_deferred_encoding():
    """On the manager's loop an entry is encoded a moment after its record's write
    (ENCODE_AFTER): a listing before that moment encodes it itself, one after finds
    it encoded; both are the listing's exact bytes."""
    async def scenario() -> None:
        state = _state()
        every = {"show_all": True, "limit": -1, "filters": {}}
        listing_json(state, state.node_map(), now=NOW, **every)
        for step in range(2):  # two writes of one record a moment apart, as a docker run
            web1 = state.container("aaa111")
            state.upsert_container(replace(web1, summary=dict(
                web1.summary, Status=f"Up {step}", Labels={"step": str(step)})))
        early = listing_json(state, state.node_map(), now=NOW, **every)
        assert early == _expected(state, NOW, **every)
        assert {e["Id"]: e for e in json.loads(early)}["aaa111"]["Labels"] == {"step": "1"}
        await asyncio.sleep(ENCODE_AFTER * 2)
        assert listing_json(state, state.node_map(), now=NOW, **every) == early

    asyncio.run(scenario())
