"""agent/reflected_events.py: which events a named stream leaves out because its
manager's read-back already reflects them."""

from __future__ import annotations

from flock.agent.reflected_events import KEEP, ReflectedEvents
from flock.protos.agent_pb2 import EventsRequest


def _named(token: str) -> EventsRequest:
    """A manager's stream: named, and taking read-backs."""
    return EventsRequest(token=token, read_backs=True)


def _event(action: str, cid: str, ns: int, kind: str = "container") -> dict:
    return {"Type": kind, "Action": action, "Actor": {"ID": cid, "Attributes": {}},
            "timeNano": ns}


def test_events_up_to_the_read_are_left_out_and_later_ones_and_destroys_are_sent():
    streams = ReflectedEvents()
    with streams.stream(_named("mine")) as mine, streams.stream(_named("theirs")) as theirs:
        streams.note("mine", "c1", 1_000)
        assert mine.covers(_event("create", "c1", 900))
        assert mine.covers(_event("start", "c1", 1_000))
        assert not mine.covers(_event("die", "c1", 1_001))  # after the read
        assert not mine.covers(_event("destroy", "c1", 900))  # no read says it is gone
        assert not mine.covers(_event("start", "c2", 900))  # never read back
        assert not mine.covers(_event("tag", "c1", 900, kind="image"))
        assert not mine.covers(_event("create", "c1", 0))  # no time: not comparable
        assert not theirs  # another stream's manager got no read
        assert not theirs.covers(_event("create", "c1", 900))


def test_an_older_read_does_not_take_a_newer_one_back():
    streams = ReflectedEvents()
    with streams.stream(_named("mine")) as mine:
        streams.note("mine", "c1", 2_000)
        streams.note("mine", "c1", 1_000)
        assert mine.covers(_event("start", "c1", 1_500))


def test_reads_for_unknown_or_unnamed_streams_are_dropped_and_a_closed_stream_forgets():
    streams = ReflectedEvents()
    streams.note("early", "c1", 1_000)  # the call came before its stream opened
    with streams.stream(_named("early")) as early:
        assert not early
    with streams.stream(_named("")) as unnamed:
        assert unnamed is None
    # A stream without read-backs gets every event, whatever its name.
    with streams.stream(EventsRequest(token="early")) as unfollowed:
        assert unfollowed is None
        streams.note("early", "c1", 1_000)
    streams.note("", "c1", 1_000)
    with streams.stream(_named("early")):
        streams.note("early", "c1", 1_000)
    assert streams._streams == {}


def test_a_stream_remembers_the_newest_containers_only():
    streams = ReflectedEvents()
    with streams.stream(_named("mine")) as mine:
        for index in range(KEEP + 1):
            streams.note("mine", f"c{index}", 1_000)
        assert not mine.covers(_event("start", "c0", 900))
        assert mine.covers(_event("start", f"c{KEEP}", 900))
