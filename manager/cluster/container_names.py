"""Container names across the cluster: which containers hold a name, and the claims of
the creates, renames and reschedules in flight.

A name is one cluster-wide: the engines only keep it unique per node, so the manager is
what stops two nodes from each making a container `web`. It does so with a claim that is
checked and taken in one synchronous step (no `await` can fall in between), held until
the change's record lands or the change fails. Pure data, no I/O; ClusterState owns one.

Two containers may still share a name when they were made behind the manager's back
(directly on two engines): every holder is indexed, so `node/name` finds each and
removing one leaves the other findable.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType


class NameTaken(Exception):
    """The name is held by a container (`holder`, its ID) or by a claim in flight
    (`holder` empty)."""

    def __init__(self, name: str, holder: str = "") -> None:
        super().__init__(f"container name {name!r} is already in use"
                         + (f" by {holder}" if holder else " by a container being created"))
        self.name = name
        self.holder = holder


class ContainerNames:
    """Name -> container IDs, and name -> the claim token holding it."""

    def __init__(self) -> None:
        # One holder per name in `_first`; more only when a name is shared (rare), so a
        # cluster of unique names pays for one dict entry per container.
        self._first: dict[str, str] = {}
        self._more: dict[str, set[str]] = {}
        self._claims: dict[str, int] = {}
        self._claimed: dict[int, str] = {}  # token -> name, to release by token

    # ------------------------------------------------------------ holders
    def add(self, name: str, container_id: str) -> None:
        first = self._first.setdefault(name, container_id)
        if first != container_id:
            self._more.setdefault(name, set()).add(container_id)

    def discard(self, name: str, container_id: str) -> None:
        """Drop one holder; another holder of the same name, if any, takes its place."""
        more = self._more.get(name)
        if self._first.get(name) == container_id:
            if more:
                self._first[name] = more.pop()
            else:
                del self._first[name]
        elif more is not None:
            more.discard(container_id)
        if more is not None and not more:
            del self._more[name]

    def holders(self, name: str) -> list[str]:
        """IDs of the containers named `name` (more than one only when the engines made
        them behind the manager's back)."""
        first = self._first.get(name)
        if first is None:
            return []
        return [first, *sorted(self._more.get(name, ()))]

    def first(self) -> Mapping[str, str]:
        """Name -> one of its holders, read-only and live."""
        return MappingProxyType(self._first)

    # ------------------------------------------------------------- claims
    def taken(self, name: str) -> bool:
        return name in self._first or name in self._claims

    def claim(self, name: str, token: int, replacing: str = "") -> None:
        """Take `name` for the change `token`, or raise NameTaken. `replacing`: the ID of
        a container that may keep holding the name meanwhile (a rescheduled container's
        old copy, which the new one replaces)."""
        if name in self._claims:
            raise NameTaken(name)
        others = [cid for cid in self.holders(name) if cid != replacing]
        if others:
            raise NameTaken(name, others[0])
        self._claims[name] = token
        self._claimed[token] = name

    def unclaim(self, token: int) -> None:
        """Drop the claim `token` (a no-op when it holds none, or was dropped already)."""
        name = self._claimed.pop(token, None)
        if name is not None and self._claims.get(name) == token:
            del self._claims[name]

    def claim_token(self, name: str) -> int | None:
        """The token of the claim holding `name`, if one does."""
        return self._claims.get(name)
