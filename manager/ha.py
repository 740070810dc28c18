"""Replication: several managers, one primary elected through etcd, the others replicas.

Election is a key, `<prefix>/_leader`, created only if absent (an etcd transaction)
under a lease of `--replication-ttl` that the primary renews every quarter TTL. When the
primary dies its lease runs out and the key goes with it; the replicas, trying every
quarter TTL, elect one of themselves within about 1.25 TTL. A primary that cannot renew
for a whole TTL (etcd away) steps down on its own, so there are never two.

Every manager keeps its own view of the cluster from the agents, so replicas answer
reads themselves. Writes (anything but GET/HEAD) go to the primary through
`middleware`, so that placement decisions are made in one place; hijacked streams
(attach, exec start) are served where they arrive, as they only read and write a
container's streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
import time
from collections.abc import Callable

import aiohttp
from aiohttp import web

from flock.common.logs import HEADER, current_request_id, new_request_id
from flock.discovery.etcd_client import EtcdClient
from flock.docker_compat.hop_headers import HOP_REQUEST
from flock.manager.api.docker.errors import error_response
from flock.manager.observability.request_id import REQUEST_ID

log = logging.getLogger("flock.manager.ha")

LEADER_KEY = "_leader"
# Served where they arrive: hijacked streams and exec, which need no placement.
_LOCAL = re.compile(r"^(/v[\d.]+)?/(containers/(?P<ref>[^/]+)/(attach|exec|resize|wait)"
                    r"|exec/[^/]+/(start|resize))/?$")
CATCH_UP = 3.0  # seconds a replica waits for a container the primary just created


class Replication:
    """This manager's part in the election, and the forwarding of writes."""

    def __init__(self, client: EtcdClient, prefix: str, advertise: str, ttl: float) -> None:
        self.client = client
        self.key = f"{prefix.rstrip('/')}/{LEADER_KEY}"
        self.advertise = advertise
        self.ttl = max(1.0, ttl)
        self.period = max(0.2, self.ttl / 4)
        self.is_primary = False
        self.leader = ""  # the primary's advertised address, "" while unknown
        self._lease = 0
        self._renewed = 0.0  # monotonic time of the last good renewal
        self._task: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None
        # Set by the manager when its front speaks TLS: the primary's front does too,
        # and with --tlsverify it wants a cert of the CA, which ours is.
        self.client_ssl: ssl.SSLContext | None = None
        self.elected = asyncio.Event()  # set whenever a primary is known
        # Set by the manager: whether its own view knows a container reference.
        self.knows: Callable[[str], bool] = lambda ref: True

    # ---------------------------------------------------------------- election
    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5), auto_decompress=False)
        await self._round()
        self._task = asyncio.create_task(self._run(), name="election")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        if self.is_primary:  # hand over at once instead of after a TTL
            with contextlib.suppress(Exception):
                await self.client.delete_if(self.key, self.advertise.encode())
        if self._lease:
            with contextlib.suppress(Exception):
                await self.client.revoke(self._lease)
        self.is_primary = False
        if self._session is not None:
            await self._session.close()
        await self.client.close()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            await self._round()

    async def _round(self) -> None:
        try:
            await self._campaign()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - etcd away: decide from the clock
            if self.is_primary and time.monotonic() - self._renewed > self.ttl:
                log.warning("stepping down: cannot renew leadership for %.0fs: %s",
                            self.ttl, exc)
                self._set(False, "")
            else:
                log.debug("election round failed: %s", exc)

    async def _campaign(self) -> None:
        if self._lease and await self.client.keepalive(self._lease) <= 0:
            self._lease = 0
        if not self._lease:
            self._lease = await self.client.grant(self.ttl)
        self._renewed = time.monotonic()
        won, holder = await self.client.create(self.key, self.advertise.encode(), self._lease)
        holder_addr = holder.decode(errors="replace")
        self._set(won or holder_addr == self.advertise, self.advertise if won else holder_addr)

    def _set(self, primary: bool, leader: str) -> None:
        if primary and leader != self.advertise:
            leader = self.advertise
        if (primary, leader) != (self.is_primary, self.leader):
            if primary:
                log.info("this manager (%s) is now the primary", self.advertise)
            elif leader:
                log.info("replica of primary %s", leader)
        self.is_primary, self.leader = primary, leader
        if leader:
            self.elected.set()
        else:
            self.elected.clear()

    def role_rows(self) -> list[list[str]]:
        """`docker info`'s Role and Primary lines."""
        return [["Role", "primary" if self.is_primary else "replica"],
                ["Primary", self.leader or "(none elected)"]]

    # ---------------------------------------------------------------- forwarding
    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        local = _LOCAL.match(request.path)
        if self.is_primary or request.method in ("GET", "HEAD"):
            return await handler(request)
        if local:
            await self._catch_up(local.group("ref"))
            return await handler(request)
        if not self.leader:
            return error_response(503, "no primary manager is elected right now; "
                                       "retry in a few seconds")
        return await self.forward(request, self.leader)

    async def _catch_up(self, ref: str | None) -> None:
        """`docker run` through a replica: the create went to the primary a moment
        ago; give this manager's view (fed by the agents' events) time to see it."""
        deadline = time.monotonic() + CATCH_UP
        while ref and not self.knows(ref) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def forward(self, request: web.Request, leader: str) -> web.StreamResponse:
        """Send the request to the primary and stream its answer back as it comes."""
        assert self._session is not None
        headers = [(k, v) for k, v in request.headers.items()
                   if k.lower() not in HOP_REQUEST and k.lower() != HEADER.lower()]
        # The ID this manager gave the request (the client's, or a new one): the primary's
        # log lines then carry the same ID as this one's and as the answer's header.
        headers.append((HEADER, request.get(REQUEST_ID) or current_request_id()
                        or new_request_id()))
        # Streamed as it comes, as a node is sent it: a build context or an image upload
        # is neither held whole here nor capped at the JSON bodies' size.
        body = request.content if request.body_exists else None
        scheme = "https" if self.client_ssl is not None else "http"
        url = f"{scheme}://{leader}{request.rel_url}"
        response: web.StreamResponse | None = None
        try:
            async with self._session.request(request.method, url, headers=headers,
                                             data=body,
                                             allow_redirects=False,
                                             ssl=self.client_ssl or True) as answer:
                response = web.StreamResponse(status=answer.status, reason=answer.reason)
                for key, value in answer.headers.items():
                    if key.lower() not in HOP_REQUEST:
                        response.headers.add(key, value)
                await response.prepare(request)
                async for chunk in answer.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                return response
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            if response is not None and response.prepared:
                return response  # the primary went away mid-answer: the client sees EOF
            return error_response(
                503, f"Cannot reach the primary manager {leader}: "
                     f"{exc or type(exc).__name__}; retry in a few seconds")
