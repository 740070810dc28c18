"""Image references as the Engine spells them: `busybox` means `busybox:latest`, and the
docker.io/library/ prefix is implied."""

from __future__ import annotations

import re

from flock.agent.runtimes.exec.errors import bad_request

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")


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
        raise bad_request("the exec runtime does not support image digests: " + ref)
    repo, own_tag = split(ref)
    tag = tag or own_tag or "latest"
    for prefix in ("docker.io/", "index.docker.io/"):
        if repo.startswith(prefix):
            repo = repo[len(prefix):]
    if repo.startswith("library/") and repo.count("/") == 1:
        repo = repo[len("library/"):]
    if repo != repo.lower():
        raise bad_request(f"invalid reference format: repository name must be lowercase: {ref}")
    if not _NAME.match(repo) or not _TAG.match(tag):
        raise bad_request(f"invalid reference format: {ref}")
    return f"{repo}:{tag}"
