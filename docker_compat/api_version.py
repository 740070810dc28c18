"""The Docker Engine API versions Flock accepts, and dockerd's words for one it does not.

The manager and the agents' embedded runtimes answer the same clients: they must agree on
the oldest version they take and on how a refusal reads (moby's
api/server/middleware/version.go), or a client would be told two different things."""

from __future__ import annotations

# The oldest API version served (dockerd's default MinAPIVersion since 20.10).
MIN_API_VERSION = "1.24"
# The newest version the embedded runtimes speak, and the manager's until it has heard
# its engines' own (it serves the lowest of their versions).
API_VERSION = "1.41"


def version_tuple(version: str) -> tuple[int, ...]:
    """(1, 41) for "1.41", compared as numbers ("1.9" < "1.10"); (0,) for text that is
    not a version, so that it sorts below every real one and is refused as too old."""
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return (0,)


def version_refusal(version: str, maximum: str = API_VERSION,
                    minimum: str = MIN_API_VERSION) -> str | None:
    """dockerd's 400 message for a client version outside [minimum, maximum]; None when
    the version is served (or not given: the path had no /vX.Y prefix)."""
    if not version:
        return None
    if version_tuple(version) < version_tuple(minimum):
        return (f"client version {version} is too old. Minimum supported API version is "
                f"{minimum}, please upgrade your client to a newer version")
    if version_tuple(version) > version_tuple(maximum):
        return (f"client version {version} is too new. "
                f"Maximum supported API version is {maximum}")
    return None
