"""Shared fixtures: real Docker Engines, free ports, the busybox image."""

from __future__ import annotations

import socket

import pytest

from tests.support import engines


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def engine_pair(tmp_path_factory):
    """Two real engines, busybox imported in both: one on its own bridge, one
    with --bridge=none. Shared by the tests of a session to keep the suite fast;
    tests must remove the containers they make."""
    engines.need_dockerd()
    first = engines.start_engine(tmp_path_factory.mktemp("engine-a"), bridge=True)
    try:
        second = engines.start_engine(tmp_path_factory.mktemp("engine-b"), bridge=False)
    except Exception:
        first.stop()
        raise
    try:
        first.import_busybox()
        second.import_busybox()
        yield first, second
    finally:
        first.stop()
        second.stop()


@pytest.fixture(scope="session")
def engine(engine_pair):
    return engine_pair[0]
