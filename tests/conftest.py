"""Shared fixtures: real Docker Engines, free ports, the busybox image."""

from __future__ import annotations

import warnings

import pytest

from tests.support import engines
from tests.support.ports import free_port


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
        _SHARED[:] = [first, second]
        yield first, second
    finally:
        _SHARED.clear()
        first.stop()
        second.stop()


_SHARED: list[engines.Engine] = []  # the session's engine pair, once started


def _containers(engine: engines.Engine) -> dict[str, str]:
    """ID -> name of every container on `engine`."""
    out = engine.docker("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}}",
                        check=False).stdout.decode()
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


@pytest.fixture(scope="module", autouse=True)
def shared_engines_left_clean(request):
    """What a module leaves on the session's shared engines is named (a warning in the
    summary) and removed after it, so that the next module meets the engines as it
    expects: a leftover container skews the next module's spread counts."""
    before = {engine.socket: set(_containers(engine)) for engine in _SHARED}
    yield
    for engine in list(_SHARED):
        now = _containers(engine)
        left = sorted(set(now) - before.get(engine.socket, set()))
        if left:
            warnings.warn(f"{request.module.__name__} left {len(left)} container(s) on the "
                          f"shared engine {engine.socket}: "
                          f"{', '.join(now[c] for c in left)}; removed", stacklevel=1)
            engine.docker("rm", "-f", *left, check=False)


@pytest.fixture(scope="session")
def engine(engine_pair):
    return engine_pair[0]
