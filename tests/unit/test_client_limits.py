"""The client connection limits as pure logic (manager/api/client_limits.py): which
deadline runs when, and the count per address."""

from __future__ import annotations

import math

import pytest

from flock.manager.api.client_limits import (
    AddressCounts,
    ClientLimits,
    HeadClock,
    Phase,
    aiohttp_keepalive,
)

LIMITS = ClientLimits(header_timeout=5, idle_timeout=60, max_per_client=2)


def test_a_new_connection_waits_in_idle_time():
    clock = HeadClock(LIMITS, now=100)
    assert clock.phase is Phase.IDLE and clock.deadline == 160
    assert clock.expired(159) is None
    assert clock.expired(160) == "idle for 60s"


def test_the_header_timeout_runs_from_a_heads_first_byte():
    clock = HeadClock(LIMITS, now=100)
    clock.received(b"GET /_ping HTTP/1.1\r\n", now=130)
    assert clock.phase is Phase.HEAD and clock.deadline == 135
    clock.received(b"Host: x\r\n", now=134)  # more of the head moves nothing
    assert clock.expired(135) == "no complete request head in 5s"


def test_a_whole_head_stops_the_clock_until_the_request_is_done():
    clock = HeadClock(LIMITS, now=0)
    clock.received(b"POST /build HTTP/1.1\r\nHost: x\r\n\r\nbody", now=1)
    assert clock.phase is Phase.BUSY and clock.deadline is None
    clock.received(b"\x00" * 1000, now=500)  # body bytes: no head of their own
    assert clock.expired(10_000) is None
    clock.request_done(now=600)
    assert clock.phase is Phase.IDLE and clock.deadline == 660


@pytest.mark.parametrize("split", [1, 2, 3])
def test_a_blank_line_split_across_reads_ends_the_head(split):
    head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    clock = HeadClock(LIMITS, now=0)
    clock.received(head[:len(head) - split], now=1)
    assert clock.phase is Phase.HEAD
    clock.received(head[len(head) - split:], now=2)
    assert clock.phase is Phase.BUSY


def test_the_server_may_say_a_request_started():
    clock = HeadClock(LIMITS, now=0)
    clock.received(b"GET / HTTP/1.1\n", now=1)  # bare LF heads: the parser knows
    clock.request_started()
    assert clock.deadline is None


def test_zero_turns_a_timeout_off():
    clock = HeadClock(ClientLimits(header_timeout=0, idle_timeout=0), now=0)
    assert clock.deadline is None
    clock.received(b"G", now=1)
    assert clock.deadline is None and clock.expired(1e9) is None


@pytest.mark.parametrize("field", ["header_timeout", "idle_timeout", "max_per_client"])
@pytest.mark.parametrize("value", [-1, math.nan])
def test_limits_refuse_negative_and_nan(field, value):
    with pytest.raises(ValueError, match=field):
        ClientLimits(**{field: value})


def test_addresses_are_counted_apart_and_released():
    counts = AddressCounts(limit=2)
    assert counts.admit("10.0.0.1") and counts.admit("10.0.0.1")
    assert not counts.admit("10.0.0.1")
    assert counts.admit("10.0.0.2")
    counts.release("10.0.0.1")
    assert counts.open("10.0.0.1") == 1 and counts.admit("10.0.0.1")
    counts.release("10.0.0.2")
    assert counts.open("10.0.0.2") == 0


def test_no_cap_at_zero():
    counts = AddressCounts(limit=0)
    assert all(counts.admit("10.0.0.1") for _ in range(1000))


def test_aiohttps_timer_never_fires_before_ours():
    assert aiohttp_keepalive(LIMITS) > LIMITS.idle_timeout + LIMITS.header_timeout
    assert aiohttp_keepalive(ClientLimits(idle_timeout=0)) > 365 * 86400
