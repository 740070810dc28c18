"""The names an image goes by in the scheduler's image index (ClusterState): pure."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=4096)
def image_aliases(ref: str) -> tuple[str, ...]:
    """The names an affinity `image==…` may use for image `ref` (see `image_index`).
    Cached: every container record written computes them, and clusters run few images."""
    if not ref:
        return ()
    if ref.startswith("sha256:"):
        digest = ref[len("sha256:") :]
        return (ref, digest, digest[:12])
    repo, sep, _digest = ref.partition("@")
    if sep:
        return (ref, repo)
    name, colon, tag = repo.rpartition(":")
    if colon and "/" not in tag:
        return (ref, name)
    return (ref, f"{ref}:latest")
