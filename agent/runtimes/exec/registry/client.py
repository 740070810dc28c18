"""One registry, spoken to over HTTP(S) with aiohttp: the /v2/ ping that picks the
scheme, the auth challenge and retry, manifests, blob downloads that resume with Range
and are verified by sha256, and blob/manifest uploads."""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import os
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from flock.agent.runtimes.exec.errors import ApiError
from flock.agent.runtimes.exec.registry import auth
from flock.agent.runtimes.exec.registry.manifests import ACCEPT, Descriptor, media_type

CHUNK = 1 << 20
HUB_API = "registry-1.docker.io"  # where docker.io's registry API answers
# A refusal without a body (a HEAD's, as push's blob checks send) in the words of
# docker/distribution's errcode for its status, as dockerd prints them
EMPTY_REFUSAL = {401: "unauthorized: authentication required",
                 403: "denied: requested access to the resource is denied"}
Progress = Callable[[int, int], Awaitable[None]]


def is_loopback(domain: str) -> bool:
    """dockerd trusts 127.0.0.0/8 (and localhost, ::1) over plain HTTP with no option."""
    host = domain.rsplit(":", 1)[0] if domain.count(":") == 1 else domain
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def registry_errors(body: bytes) -> str:
    """`code: message` the way docker/distribution's errcode prints them."""
    import json

    try:
        errors = json.loads(body).get("errors") or []
        parts = [f"{str(e.get('code', '')).lower().replace('_', ' ')}: {e.get('message', '')}"
                 for e in errors if isinstance(e, dict)]
    except (ValueError, AttributeError):
        parts = []
    return "; ".join(parts) or body.decode(errors="replace").strip()[:200]


def _connection_text(method: str, url: str, exc: Exception) -> str:
    """Go's wording for a refused dial, which is what the CLI user knows from dockerd."""
    cause = getattr(exc, "os_error", None) or exc.__cause__
    host = url.split("/")[2]
    if isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED:
        return f'{method} "{url}": dial tcp {host}: connect: connection refused'
    if isinstance(cause, socket.gaierror):
        return f'{method} "{url}": dial tcp: lookup {host.rsplit(":", 1)[0]}: no such host'
    return f'{method} "{url}": {exc}'


class RegistryClient:
    """Calls against one registry for one repository, with the credentials of one
    request; tokens are kept for the life of the client (one pull or push)."""

    def __init__(self, domain: str, path: str, creds: auth.Credentials,
                 insecure: frozenset[str], actions: str = "pull") -> None:
        self.domain = HUB_API if domain == "docker.io" else domain
        self.path = path
        self.creds = creds
        self.insecure = is_loopback(domain) or domain in insecure
        self.scope = f"repository:{path}:{actions}" if path else ""
        self.base = ""
        self.authorization = ""
        self.challenge: auth.Challenge | None = None
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=15, sock_read=120)
        self.session = aiohttp.ClientSession(timeout=timeout, auto_decompress=False)

    async def close(self) -> None:
        await self.session.close()

    async def __aenter__(self) -> RegistryClient:
        await self.ping()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- scheme and auth -------------------------------------------------------------
    async def ping(self) -> None:
        """GET /v2/ over HTTPS, then plain HTTP for an insecure registry (dockerd's
        order); the answer's challenge says how to authenticate."""
        schemes = ["https", "http"] if self.insecure else ["https"]
        last: Exception | None = None
        for scheme in schemes:
            url = f"{scheme}://{self.domain}/v2/"
            try:
                ssl_ctx: Any = False if self.insecure else None
                async with self.session.get(url, ssl=ssl_ctx) as answer:
                    await answer.read()
                    self.base = f"{scheme}://{self.domain}"
                    if answer.status == 401:
                        self.challenge = auth.parse_challenge(
                            answer.headers.get("WWW-Authenticate", ""))
                    return
            except (aiohttp.ClientError, ssl.SSLError, OSError) as exc:
                last = exc
                url_failed = url
        assert last is not None
        raise ApiError(500, _connection_text("Get", url_failed, last))

    async def _authorize(self, url: str, answer: aiohttp.ClientResponse) -> None:
        challenge = auth.parse_challenge(answer.headers.get("WWW-Authenticate", "")) \
            or self.challenge
        if challenge is None:
            raise ApiError(500, f'Get "{url}": unauthorized: the registry asked for '
                                f'credentials without a challenge')
        self.challenge = challenge
        if challenge.scheme == "basic":
            if self.creds.empty or not self.creds.username:
                verb = "Head" if "/manifests/" in url else "Get"  # dockerd HEADs first
                raise ApiError(500, f'{verb} "{url}": no basic auth credentials')
            self.authorization = auth.basic_header(self.creds)
        elif challenge.scheme == "bearer":
            if self.creds.registry_token:
                self.authorization = f"Bearer {self.creds.registry_token}"
            else:
                token = await auth.fetch_token(self.session, challenge, self.scope, self.creds)
                self.authorization = f"Bearer {token}"
        else:
            raise ApiError(501, f"unsupported registry auth scheme {challenge.scheme!r}")

    async def request(self, method: str, url: str, *, ok: tuple[int, ...],
                      headers: dict[str, str] | None = None, data: Any = None,
                      ) -> aiohttp.ClientResponse:
        """Send, authenticating once on 401; the caller reads and releases the answer.
        Answers outside `ok` (other than 404, left to the caller) become ApiErrors."""
        if not url.startswith("http"):
            url = self.base + url
        for attempt in (1, 2):
            sent = dict(headers or {})
            if self.authorization:
                sent["Authorization"] = self.authorization
            try:
                answer = await self.session.request(method, url, headers=sent, data=data,
                                                    ssl=False if self.insecure else None)
            except (aiohttp.ClientError, OSError) as exc:
                raise ApiError(500, _connection_text(method.title(), url, exc)) from None
            if answer.status == 401 and attempt == 1 and not hasattr(data, "__aiter__"):
                await answer.read()
                answer.release()
                previous = self.authorization
                await self._authorize(url, answer)
                if self.authorization != previous:
                    continue
            if answer.status in ok or answer.status == 404:
                return answer
            body = await answer.read()
            answer.release()
            text = registry_errors(body) or EMPTY_REFUSAL.get(answer.status, "")
            if answer.status in (401, 403):
                # dockerd's words and status (500: a 401 would make the CLI prompt for
                # a login, which dockerd never causes)
                if not text.startswith(("unauthorized", "denied")):
                    text = f"unauthorized: {text}"
                raise ApiError(500, text)
            raise ApiError(500, f'{method.title()} "{url}": {answer.status}: {text}')
        raise AssertionError("unreachable")

    # --- manifests -------------------------------------------------------------------
    async def manifest(self, reference: str) -> tuple[bytes, str, str] | None:
        """(body, media type, digest) of a manifest; None when the registry has none."""
        url = f"{self.base}/v2/{self.path}/manifests/{reference}"
        answer = await self.request("GET", url, ok=(200,), headers={"Accept": ACCEPT})
        async with answer:
            body = await answer.read()
            if answer.status == 404:
                return None
            kind = media_type(body, answer.headers.get("Content-Type", ""))
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and reference != digest:
            raise ApiError(500, f"manifest verification failed for digest {reference}")
        return body, kind, digest

    async def not_found_text(self, reference: str) -> str:
        """The registry's own words for a missing manifest (for the Engine's message)."""
        url = f"{self.base}/v2/{self.path}/manifests/{reference}"
        answer = await self.request("GET", url, ok=(200,), headers={"Accept": ACCEPT})
        async with answer:
            return registry_errors(await answer.read())

    async def put_manifest(self, reference: str, body: bytes, kind: str) -> None:
        url = f"{self.base}/v2/{self.path}/manifests/{reference}"
        answer = await self.request("PUT", url, ok=(200, 201), data=body,
                                    headers={"Content-Type": kind})
        async with answer:
            if answer.status == 404:
                raise ApiError(404, f'Put "{url}": {registry_errors(await answer.read())}')

    # --- blobs -----------------------------------------------------------------------
    async def blob_bytes(self, desc: Descriptor) -> bytes:
        """A small blob (an image config), verified."""
        url = f"{self.base}/v2/{self.path}/blobs/{desc.digest}"
        answer = await self.request("GET", url, ok=(200,))
        async with answer:
            body = await answer.read()
            if answer.status == 404:
                raise ApiError(404, f"blob {desc.digest} not found: {registry_errors(body)}")
        if "sha256:" + hashlib.sha256(body).hexdigest() != desc.digest:
            raise ApiError(500, f"filesystem layer verification failed for digest "
                                f"{desc.digest}")
        return body

    async def download(self, desc: Descriptor, partial: str, progress: Progress) -> None:
        """Into `partial`, continuing what an earlier try left there (Range), then
        verified: a wrong digest leaves no file behind."""
        have = os.path.getsize(partial) if os.path.exists(partial) else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        url = f"{self.base}/v2/{self.path}/blobs/{desc.digest}"
        answer = await self.request("GET", url, ok=(200, 206, 416), headers=headers)
        async with answer:
            if answer.status == 404:
                raise ApiError(404, f"blob {desc.digest} not found: "
                                    f"{registry_errors(await answer.read())}")
            resumed = answer.status == 206
            if answer.status == 416:  # already whole
                resumed = True
            sha = _hash_file(partial) if resumed else hashlib.sha256()
            current = have if resumed else 0
            try:
                with open(partial, "ab" if resumed else "wb") as out:
                    if answer.status != 416:
                        async for chunk in answer.content.iter_chunked(CHUNK):
                            out.write(chunk)
                            sha.update(chunk)
                            current += len(chunk)
                            await progress(current, desc.size)
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    _unlink(partial)
                    raise ApiError(500, f"write {partial}: no space left on device") from None
                raise ApiError(500, f"write {partial}: {exc.strerror}") from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise ApiError(500, f"unexpected EOF while downloading {desc.digest} "
                                    f"({current} of {desc.size} bytes): {exc}") from None
        if desc.size and current < desc.size:
            raise ApiError(500, f"unexpected EOF while downloading {desc.digest} "
                                f"({current} of {desc.size} bytes)")
        if "sha256:" + sha.hexdigest() != desc.digest:
            _unlink(partial)
            raise ApiError(500, f"filesystem layer verification failed for digest "
                                f"{desc.digest}")

    async def has_blob(self, digest: str) -> bool:
        url = f"{self.base}/v2/{self.path}/blobs/{digest}"
        answer = await self.request("HEAD", url, ok=(200,))
        async with answer:
            return answer.status == 200

    async def upload(self, digest: str, path: str | None = None,
                     content: bytes | None = None) -> None:
        """POST a new upload, then PUT the whole blob with its digest (monolithic)."""
        start = await self.request("POST", f"{self.base}/v2/{self.path}/blobs/uploads/",
                                   ok=(202,))
        async with start:
            if start.status == 404:
                raise ApiError(404, registry_errors(await start.read()))
            location = start.headers.get("Location", "")
        if location.startswith("/"):
            location = self.base + location
        sep = "&" if "?" in location else "?"
        url = f"{location}{sep}digest={digest}"
        body: Any = content if content is not None else _file_sender(path or "")
        answer = await self.request("PUT", url, ok=(201, 204), data=body,
                                    headers={"Content-Type": "application/octet-stream"})
        async with answer:
            if answer.status == 404:
                raise ApiError(500, f"upload of {digest}: {registry_errors(await answer.read())}")


async def _file_sender(path: str):
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def _hash_file(path: str):
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            sha.update(chunk)
    return sha


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
