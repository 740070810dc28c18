"""The filters `docker ps` may send, as the Engine accepts them (moby daemon/list.go,
acceptedPsFilterTags): the manager checks a cluster-wide listing against the same words
as each node's runtime checks its own, so a filter one accepts the other does too."""

from __future__ import annotations

# Filter keys the Engine knows; any other is "Invalid filter 'key'". (The manager adds
# its own `node`.)
LIST_FILTERS = frozenset({"id", "name", "label", "status", "exited", "ancestor", "before",
                          "since", "volume", "network", "health", "publish", "expose",
                          "isolation", "is-task"})
# The values of `status` (a container's State.Status).
STATUSES = frozenset({"created", "restarting", "running", "removing", "paused", "exited",
                      "dead"})
