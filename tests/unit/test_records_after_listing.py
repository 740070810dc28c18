"""records.after_listing: the record written from the engine's list entry when a
change's read-back came without its inspect (agent/read_back.py)."""

from __future__ import annotations

import time

from flock.manager.cluster.convert import STATE_KEY
from flock.manager.cluster.model import Container
from flock.manager.cluster.records import after_listing

CID = "c" * 64


def _created() -> Container:
    return Container(id=CID, name="web", node_id="n1", reserved_memory=64 << 20,
                     ports=[(8080, "tcp")], state="created",
                     summary={"Id": CID, "State": "created", "Ports": [],
                              STATE_KEY: {"Status": "created", "StartedAt": 0.0,
                                          "FinishedAt": 0.0, "ExitCode": 0}})


def _entry(state: str, status: str) -> dict:
    return {"Id": CID, "State": state, "Status": status,
            "Ports": [{"PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}],
            "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.18.0.2"}}}}


def test_a_started_container_takes_the_engine_s_entry_and_a_start_time():
    before = time.time()
    record = after_listing(_created(), [_entry("running", "Up Less than a second")])
    assert record is not None and record.state == "running"
    assert record.summary["Ports"][0]["PublicPort"] == 8080  # the engine's own entry
    assert record.summary["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
    assert record.summary[STATE_KEY]["StartedAt"] >= before
    assert record.reserved_memory == 64 << 20 and record.ports == [(8080, "tcp")]


def test_a_command_that_exited_at_once_has_its_exit_code_from_the_status_text():
    record = after_listing(_created(), [_entry("exited", "Exited (3) Less than a second ago")])
    times = record.summary[STATE_KEY]
    assert record.state == "exited" and times["ExitCode"] == 3
    assert times["StartedAt"] > 0 and times["FinishedAt"] >= times["StartedAt"]


def test_an_unpaused_container_keeps_its_start_time():
    paused = after_listing(_created(), [_entry("running", "Up 1 second")])
    started = paused.summary[STATE_KEY]["StartedAt"]
    paused = after_listing(paused, [_entry("paused", "Up 2 seconds (Paused)")])
    resumed = after_listing(paused, [_entry("running", "Up 3 seconds")])
    assert resumed.summary[STATE_KEY]["StartedAt"] == started


def test_an_answer_without_this_container_says_nothing():
    assert after_listing(_created(), []) is None
    assert after_listing(_created(), [dict(_entry("running", "Up"), Id="d" * 64)]) is None
    assert after_listing(_created(), {"message": "oops"}) is None
    assert after_listing(_created(), [dict(_entry("", ""))]) is None
