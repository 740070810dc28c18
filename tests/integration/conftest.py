"""Fixtures the integration modules share. Each module brings its own `cluster` (its own
node names, engines and options); what is built on a cluster is here, once."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def names(cluster):
    """Unique container names (`names("web")` -> `web-1a2b3c`); whatever a test made on
    the module's cluster is removed afterwards."""
    before = cluster.container_ids()
    yield lambda prefix="c": f"{prefix}-{uuid.uuid4().hex[:6]}"
    cluster.remove_new_containers(before)


@pytest.fixture
def name(names):
    """The same, under the name some modules' tests ask for."""
    return names
