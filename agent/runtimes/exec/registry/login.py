"""`docker login` against the exec runtime (POST /auth): the credentials are tried on
the registry's /v2/ as dockerd tries them; the CLI keeps them and sends them back in
X-Registry-Auth with every pull and push."""

from __future__ import annotations

from flock.agent.runtimes.exec.errors import ApiError, bad_request
from flock.agent.runtimes.exec.registry import auth
from flock.agent.runtimes.exec.registry.client import RegistryClient

HUB_ADDRESSES = ("https://index.docker.io/v1/", "index.docker.io", "docker.io",
                 "registry-1.docker.io")


def domain_of(server: str) -> str:
    """`https://host:port/v2/` or `host:port` -> `host:port`; Docker Hub's many names
    -> its registry host."""
    if not server or server in HUB_ADDRESSES:
        return "registry-1.docker.io"
    bare = server.split("://", 1)[-1]
    return bare.split("/", 1)[0]


async def login(body: object, insecure: frozenset[str]) -> dict:
    if not isinstance(body, dict):
        raise bad_request("invalid auth configuration: a JSON object is required")
    creds = auth.Credentials(str(body.get("username") or ""), str(body.get("password") or ""),
                             str(body.get("identitytoken") or ""),
                             str(body.get("registrytoken") or ""))
    domain = domain_of(str(body.get("serveraddress") or ""))
    client = RegistryClient(domain, "", creds, insecure)
    try:
        await client.ping()
        if client.challenge is not None:
            url = f"{client.base}/v2/"
            failed = ApiError(500, f"login attempt to {url} failed with status: "
                                   f"401 Unauthorized")
            try:
                answer = await client.request("GET", url, ok=(200,))
            except ApiError as exc:
                raise failed if "unauthorized" in exc.message \
                    or "no basic auth" in exc.message else exc from None
            async with answer:
                if answer.status != 200:
                    raise failed
    finally:
        await client.close()
    return {"Status": "Login Succeeded", "IdentityToken": ""}
