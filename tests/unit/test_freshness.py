"""Freshness: which container records still need a re-read (manager/cluster/freshness.py)."""

from flock.manager.cluster.freshness import Freshness


def test_a_reason_needs_a_read_until_a_read_starts_after_it():
    fresh = Freshness()
    assert not fresh.needs_read("a")
    fresh.want("a")
    assert fresh.needs_read("a") and not fresh.needs_read("b")
    fresh.reading("a")
    assert not fresh.needs_read("a")
    fresh.want("a")  # a reason during the read: one more read
    assert fresh.needs_read("a")


def test_a_read_back_covers_the_events_up_to_its_time_only():
    fresh = Freshness()
    assert not fresh.covers_event("a", 100)
    fresh.reading("a", engine_ns=1_000)
    assert fresh.covers_event("a", 999) and fresh.covers_event("a", 1_000)
    assert not fresh.covers_event("a", 1_001) and not fresh.covers_event("b", 10)
    assert not fresh.covers_event("a", 0)  # an event without a time is never covered
    fresh.reading("a", engine_ns=500)  # an older read-back does not move time back
    assert fresh.covers_event("a", 1_000)
    fresh.reading("a")  # a manager-side read carries no engine time
    assert fresh.covers_event("a", 1_000)


def test_forgotten_and_oldest_entries_are_dropped():
    fresh = Freshness(keep=2)
    for cid in ("a", "b", "c"):
        fresh.want(cid)
    assert not fresh.needs_read("a") and fresh.needs_read("b") and fresh.needs_read("c")
    fresh.reading("c", engine_ns=5)
    fresh.forget("c")
    assert not fresh.needs_read("c") and not fresh.covers_event("c", 5)


def test_a_read_back_is_older_than_the_newest_one_taken_by_the_agent_s_clock():
    fresh = Freshness()
    assert not fresh.newer_read_back("a", 500)  # nothing taken yet
    fresh.reading("a", engine_ns=1_000)
    assert fresh.newer_read_back("a", 999)
    assert not fresh.newer_read_back("a", 1_000) and not fresh.newer_read_back("a", 1_001)
    assert not fresh.newer_read_back("a", 0)    # an agent that sends no time: taken
    assert not fresh.newer_read_back("b", 999)
