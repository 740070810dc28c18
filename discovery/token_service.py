"""Flock's token service: what Docker Hub's discovery service was for classic Swarm.

    POST   /v1/clusters          -> a new token (text/plain)
    POST   /v1/clusters/<token>  body: HOST:PORT, ?ttl=SECONDS -> registered
    GET    /v1/clusters/<token>  -> JSON list of the addresses not yet expired
    DELETE /v1/clusters/<token>  -> the cluster is gone

State is a dict token -> address -> expiry (wall clock, so that it survives a restart),
written to `--state FILE` whenever a token or an address comes or goes (not on every
renewal: an agent heartbeat must not cost a disk write).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from pathlib import Path

from aiohttp import web

from flock.discovery.addresses import check
from flock.discovery.backend import DiscoveryError

log = logging.getLogger("flock.token")

DEFAULT_TTL = 180.0
MAX_TTL = 24 * 3600.0


class TokenStore:
    """Clusters and their members, optionally persisted to a JSON file."""

    def __init__(self, path: Path | None = None, clock=time.time) -> None:
        self.path = path
        self.clock = clock
        self.clusters: dict[str, dict[str, float]] = {}
        if path is not None and path.exists():
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DiscoveryError(f"cannot read token state {path}: {exc}") from None
        if not isinstance(data, dict):
            raise DiscoveryError(f"token state {path} is not a JSON object")
        for token, members in data.items():
            if isinstance(members, dict):
                self.clusters[str(token)] = {str(a): float(e) for a, e in members.items()}

    def save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.clusters))
        os.replace(tmp, self.path)

    def create(self) -> str:
        token = secrets.token_hex(16)
        self.clusters[token] = {}
        self.save()
        return token

    def register(self, token: str, addr: str, ttl: float) -> None:
        members = self.clusters[token]  # KeyError: no such token
        new = addr not in members or members[addr] < self.clock()
        members[addr] = self.clock() + ttl
        if new:
            self.save()

    def members(self, token: str) -> list[str]:
        now = self.clock()
        members = self.clusters[token]
        expired = [a for a, until in members.items() if until < now]
        for addr in expired:
            del members[addr]
        if expired:
            self.save()
        return sorted(members)

    def delete(self, token: str) -> None:
        del self.clusters[token]
        self.save()


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


def build_app(store: TokenStore) -> web.Application:
    async def create(request: web.Request) -> web.Response:
        token = store.create()
        log.info("created cluster %s", token)
        return web.Response(text=token, status=201)

    def known(token: str) -> web.Response | None:
        if token not in store.clusters:
            return _error(404, f"no such cluster token: {token}")
        return None

    async def register(request: web.Request) -> web.Response:
        token = request.match_info["token"]
        if (missing := known(token)) is not None:
            return missing
        addr = (await request.text()).strip()
        try:
            check(addr)
            ttl = float(request.query.get("ttl", DEFAULT_TTL))
        except (DiscoveryError, ValueError) as exc:
            return _error(400, str(exc) if isinstance(exc, DiscoveryError)
                          else f"invalid ttl {request.query.get('ttl')!r}")
        if not 0 < ttl <= MAX_TTL:
            return _error(400, f"ttl must be between 0 and {MAX_TTL:.0f} seconds")
        store.register(token, addr, ttl)
        return web.Response(text="", status=200)

    async def members(request: web.Request) -> web.Response:
        token = request.match_info["token"]
        if (missing := known(token)) is not None:
            return missing
        return web.json_response(store.members(token))

    async def delete(request: web.Request) -> web.Response:
        token = request.match_info["token"]
        if (missing := known(token)) is not None:
            return missing
        store.delete(token)
        return web.Response(status=204)

    app = web.Application(client_max_size=4096)
    app.router.add_post("/v1/clusters", create)
    app.router.add_post("/v1/clusters/{token}", register)
    app.router.add_get("/v1/clusters/{token}", members)
    app.router.add_delete("/v1/clusters/{token}", delete)
    return app


async def serve(host: str, port: int, state: Path | None) -> web.AppRunner:
    """Start serving; the caller keeps the runner and calls `cleanup()` to stop."""
    runner = web.AppRunner(build_app(TokenStore(state)), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise DiscoveryError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return runner
