"""Image references as the Engine spells them: `busybox` means `busybox:latest`, and the
docker.io/library/ prefix is implied; `repo@sha256:<hex>` names one manifest."""

from __future__ import annotations

import re
from dataclasses import dataclass

from flock.agent.runtimes.exec.errors import bad_request

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
DEFAULT_DOMAIN = "docker.io"


def split(ref: str) -> tuple[str, str]:
    """(repository, tag) of a reference; the tag is "" when none is given."""
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1:]
    return ref, ""


def normalize(ref: str, tag: str = "") -> str:
    """`repo[:tag]` in the short form dockerd reports in RepoTags; 400 when malformed."""
    if "@" in ref:
        return _normalize_digest(ref)
    repo, own_tag = split(ref)
    tag = tag or own_tag or "latest"
    if _DIGEST.match(tag):
        return _normalize_digest(f"{repo}@{tag}")
    repo = _short_repo(repo, ref)
    if not _TAG.match(tag):
        raise bad_request(f"invalid reference format: {ref}")
    return f"{repo}:{tag}"


def _short_repo(repo: str, ref: str) -> str:
    for prefix in ("docker.io/", "index.docker.io/"):
        if repo.startswith(prefix):
            repo = repo[len(prefix):]
    if repo.startswith("library/") and repo.count("/") == 1:
        repo = repo[len("library/"):]
    if repo != repo.lower():
        raise bad_request(f"invalid reference format: repository name must be lowercase: {ref}")
    if not _NAME.match(repo):
        raise bad_request(f"invalid reference format: {ref}")
    return repo


def _normalize_digest(ref: str) -> str:
    """`repo@sha256:<hex>`; a tag before the digest is dropped, as the Engine does."""
    name, _, digest = ref.partition("@")
    if not _DIGEST.match(digest):
        raise bad_request(f"invalid reference format: {ref}")
    return f"{_short_repo(split(name)[0], ref)}@{digest}"


def is_digest(ref: str) -> bool:
    """Whether a normalized reference names a manifest digest rather than a tag."""
    return "@" in ref


@dataclass(frozen=True)
class Remote:
    """Where a normalized reference lives: the registry host, the repository path in the
    registry's API (`library/busybox` on Docker Hub), and the tag or digest."""

    domain: str
    path: str
    reference: str  # a tag or "sha256:..."
    short: str  # the repository as RepoTags spell it

    @property
    def by_digest(self) -> bool:
        return self.reference.startswith("sha256:")


def remote(ref: str) -> Remote:
    """Split a reference for the registry API (reference/normalize.go's rules: a first
    component with a dot, a colon or `localhost` is a registry host)."""
    norm = normalize(ref)
    if "@" in norm:
        short, _, reference = norm.partition("@")
    else:
        short, reference = split(norm)
    first, sep, rest = short.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return Remote(first, rest, reference, short)
    path = short if "/" in short else f"library/{short}"
    return Remote(DEFAULT_DOMAIN, path, reference, short)
