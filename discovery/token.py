"""`token://<id>`: a cluster kept by Flock's own token service (`flock token serve`).

Classic Swarm used Docker Hub's discovery service; it is gone, so the service's URL
comes from `--discovery-url` or FLOCK_DISCOVERY_URL (e.g. http://10.0.0.5:8500). The
HTTP shape is the classic one: `POST /v1/clusters/<id>?ttl=N` with the address as body
registers, `GET /v1/clusters/<id>` lists.
"""

from __future__ import annotations

import json
import os
import re

import aiohttp

from flock.discovery.addresses import check
from flock.discovery.backend import Backend, DiscoveryError

ENV_URL = "FLOCK_DISCOVERY_URL"
TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
TIMEOUT = aiohttp.ClientTimeout(total=5)


def service_url(explicit: str | None = None) -> str:
    """The token service's base URL: `explicit`, else $FLOCK_DISCOVERY_URL."""
    url = (explicit or os.environ.get(ENV_URL, "")).strip().rstrip("/")
    if not url:
        raise DiscoveryError(
            f"token:// needs the token service's URL: pass --discovery-url or set {ENV_URL} "
            "(run one with `flock token serve`)")
    if not url.startswith(("http://", "https://")):
        url = "http://" + url
    return url


class TokenBackend(Backend):
    def __init__(self, token: str, url: str | None = None) -> None:
        if not TOKEN.match(token):
            raise DiscoveryError(f"invalid cluster token {token!r}: expected letters and digits")
        self.token = token
        self.base = service_url(url)

    @property
    def cluster_url(self) -> str:
        return f"{self.base}/v1/clusters/{self.token}"

    async def _request(self, method: str, url: str, **kwargs) -> tuple[int, bytes]:
        try:
            async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
                async with session.request(method, url, **kwargs) as answer:
                    return answer.status, await answer.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DiscoveryError(f"cannot reach the token service at {self.base}: "
                                 f"{exc or type(exc).__name__}") from None

    def _check(self, status: int, body: bytes) -> None:
        if status == 404:
            raise DiscoveryError(f"no such cluster token {self.token!r} at {self.base}; "
                                 "create one with `flock create`")
        if status >= 300:
            raise DiscoveryError(f"token service {self.base} answered {status}: "
                                 f"{_message(body)}")

    async def fetch(self) -> list[str]:
        status, body = await self._request("GET", self.cluster_url)
        self._check(status, body)
        try:
            entries = json.loads(body)
        except ValueError:
            raise DiscoveryError(f"token service {self.base} sent something that is not "
                                 "a JSON list") from None
        if not isinstance(entries, list):
            raise DiscoveryError(f"token service {self.base} sent {type(entries).__name__}, "
                                 "expected a JSON list")
        out: dict[str, None] = {}
        for entry in entries:
            try:
                out.setdefault(check(str(entry)), None)
            except DiscoveryError:
                continue
        return list(out)

    async def register(self, addr: str, ttl: float) -> None:
        status, body = await self._request(
            "POST", self.cluster_url, params={"ttl": str(max(1, int(ttl)))}, data=addr.encode())
        self._check(status, body)

    async def deregister(self, addr: str) -> None:
        """Nothing to do: the entry expires on its own after its TTL."""


async def create_token(url: str | None = None) -> str:
    """A new cluster token from the service (`flock create`)."""
    base = service_url(url)
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            async with session.post(f"{base}/v1/clusters") as answer:
                body = await answer.read()
                status = answer.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DiscoveryError(f"cannot reach the token service at {base}: "
                             f"{exc or type(exc).__name__}") from None
    if status >= 300:
        raise DiscoveryError(f"token service {base} answered {status}: {_message(body)}")
    return body.decode().strip()


def _message(body: bytes) -> str:
    try:
        return str(json.loads(body).get("message", ""))
    except (ValueError, AttributeError):
        return body.decode(errors="replace")[:200]
