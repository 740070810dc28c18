"""Registry credentials: the X-Registry-Auth header the docker CLI sends after
`docker login`, the WWW-Authenticate challenges registries answer with, and the
Bearer token flow (docker/distribution's registry/auth/token and the docker CLI's
types/registry AuthConfig)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

import aiohttp

from flock.agent.runtimes.exec.errors import ApiError


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""

    @property
    def empty(self) -> bool:
        return not (self.username or self.password or self.identity_token
                    or self.registry_token)


def from_header(value: str | None) -> Credentials:
    """Decode X-Registry-Auth: base64url JSON (padding optional, and the CLI's older
    standard alphabet too). Unreadable headers give no credentials, as dockerd does."""
    if not value:
        return Credentials()
    text = value.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        data = json.loads(base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_")))
    except (binascii.Error, ValueError):
        return Credentials()
    if not isinstance(data, dict):
        return Credentials()
    return Credentials(str(data.get("username") or ""), str(data.get("password") or ""),
                       str(data.get("identitytoken") or ""),
                       str(data.get("registrytoken") or ""))


_PARAM = re.compile(r'([a-zA-Z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer"
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """`Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
              for m in _PARAM.finditer(rest)}
    return Challenge(scheme.lower(), params)


def basic_header(creds: Credentials) -> str:
    raw = f"{creds.username}:{creds.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


async def fetch_token(session: aiohttp.ClientSession, challenge: Challenge, scope: str,
                      creds: Credentials) -> str:
    """A Bearer token from the challenge's realm: GET with basic auth, or the OAuth2
    refresh-token POST when the CLI holds an identity token."""
    realm = challenge.params.get("realm", "")
    if not realm:
        raise ApiError(500, "the registry asked for a Bearer token without a realm")
    service = challenge.params.get("service", "")
    scopes = [scope] if scope else []
    try:
        if creds.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token,
                    "service": service, "client_id": "docker", "scope": " ".join(scopes)}
            answer = await session.post(realm, data=form)
        else:
            query = [("service", service), *[("scope", s) for s in scopes],
                     ("client_id", "docker")]
            headers = {"Authorization": basic_header(creds)} if creds.username else {}
            answer = await session.get(realm, params=query, headers=headers)
        async with answer:
            if answer.status in (401, 403):
                raise ApiError(500, f"Get \"{realm}\": unauthorized: incorrect username or "
                                    f"password")
            if answer.status != 200:
                raise ApiError(500, f"Get \"{realm}\": token server answered "
                                    f"{answer.status}")
            data = await answer.json(content_type=None)
    except aiohttp.ClientError as exc:
        raise ApiError(500, f"Get \"{realm}\": {exc}") from None
    token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
    if not token:
        raise ApiError(500, f"Get \"{realm}\": the token server sent no token")
    return str(token)
