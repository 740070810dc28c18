"""The manager's own events (observability/local_events.py): published to every open
stream in the Engine's shape, and kept or left out by `docker events` filters; and the
managers' own etcd keys (`_cron/...`) never taken for agent addresses."""

from __future__ import annotations

import asyncio

from flock.discovery.etcd import EtcdBackend
from flock.manager.observability.local_events import LocalEvents, wanted


def test_published_events_reach_every_open_stream_only():
    async def scenario() -> None:
        hub = LocalEvents()
        with hub.subscribe() as first, hub.subscribe() as second:
            event = hub.publish("cron", "start", "backup", {"name": "backup-x"})
            assert first.get_nowait() == event == second.get_nowait()
        hub.publish("cron", "succeeded", "backup", {})  # nobody listens: dropped
        with hub.subscribe(size=1) as small:
            hub.publish("cron", "start", "a", {})
            hub.publish("cron", "start", "b", {})  # a stalled stream loses, never blocks
            assert small.get_nowait()["Actor"]["ID"] == "a" and small.empty()

    asyncio.run(scenario())


def test_the_event_has_the_engines_shape():
    event = LocalEvents().publish("cron", "failed", "backup", {"exitCode": "3"})
    assert event["Type"] == "cron" and event["Action"] == "failed"
    assert event["Actor"] == {"ID": "backup", "Attributes": {"exitCode": "3"}}
    assert event["time"] == event["timeNano"] // 1_000_000_000


def test_filters():
    event = LocalEvents().publish("cron", "missed", "backup", {})
    assert wanted(event, {})
    assert wanted(event, {"type": ["cron"]}) and not wanted(event, {"type": ["container"]})
    assert wanted(event, {"event": ["missed"]}) and not wanted(event, {"event": ["start"]})
    assert not wanted(event, {"container": ["web"]})  # asks for container events only


def test_cron_keys_are_not_agent_addresses(caplog):
    """Skipped as the managers' own, not warned about as bad addresses on every run."""
    backend = EtcdBackend(["127.0.0.1:1"], "/flock")
    pairs = {"/flock/10.0.0.1:2375": b"10.0.0.1:2375", "/flock/_leader": b"10.0.0.9:2375",
             "/flock/_cron/jobs/backup": b'{"name": "backup"}',
             "/flock/_cron/runs/backup/001796562900000": b'{"job": "backup"}'}
    with caplog.at_level("WARNING", logger="flock.discovery.etcd"):
        assert backend._addresses(pairs) == ["10.0.0.1:2375"]
    assert not caplog.records
