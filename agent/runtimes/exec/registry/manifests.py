"""Manifests, image indexes and the choice of a platform: pure functions over the JSON a
registry serves (no I/O), so the rules are easy to read and to test."""

from __future__ import annotations

import json
from dataclasses import dataclass

from flock.agent.runtimes.exec.errors import ApiError

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
           "application/vnd.docker.distribution.manifest.v1+prettyjws")
IMAGE_MANIFESTS = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEXES = (DOCKER_LIST, OCI_INDEX)
# What a pull asks for, in the order dockerd sends them.
ACCEPT = ", ".join((DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX))
# Layer media types the unpacker reads (plain or gzip tar; zstd is not read here).
LAYER_TYPES = (DOCKER_LAYER, "application/vnd.docker.image.rootfs.diff.tar",
               "application/vnd.oci.image.layer.v1.tar+gzip",
               "application/vnd.oci.image.layer.v1.tar")
FOREIGN_LAYERS = ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                  "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip")


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int

    def as_json(self) -> dict:
        """In the field order of distribution's Go struct, so a re-pushed manifest has
        the bytes (and digest) dockerd would give it."""
        return {"mediaType": self.media_type, "size": self.size, "digest": self.digest}


@dataclass(frozen=True)
class ImageManifest:
    config: Descriptor
    layers: list[Descriptor]


def media_type(body: bytes, header: str) -> str:
    """The manifest's own mediaType wins over the Content-Type a registry may guess."""
    try:
        own = json.loads(body).get("mediaType")
    except (ValueError, AttributeError):
        own = None
    return own or header.split(";")[0].strip()


def _descriptor(data: object, where: str) -> Descriptor:
    if not isinstance(data, dict) or not isinstance(data.get("digest"), str):
        raise ApiError(500, f"invalid manifest: {where} has no digest")
    return Descriptor(str(data.get("mediaType") or ""), data["digest"], int(data.get("size") or 0))


def parse_manifest(body: bytes, kind: str) -> ImageManifest:
    """An image manifest (Docker v2 schema 2 or OCI)."""
    if kind in SCHEMA1:
        raise ApiError(501, "the exec runtime does not pull Docker image manifest v2 schema 1 "
                            "images; push the image again with a current docker")
    if kind not in IMAGE_MANIFESTS:
        raise ApiError(500, f"unsupported manifest media type {kind!r}")
    data = _load(body)
    layers = [_descriptor(layer, "a layer") for layer in data.get("layers") or []]
    for layer in layers:
        if layer.media_type in FOREIGN_LAYERS:
            raise ApiError(501, f"the exec runtime does not pull foreign layers ({layer.digest})")
        if layer.media_type and layer.media_type not in LAYER_TYPES:
            raise ApiError(501, f"the exec runtime cannot unpack layers of type "
                                f"{layer.media_type}")
    return ImageManifest(_descriptor(data.get("config"), "the config"), layers)


def _load(body: bytes) -> dict:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ApiError(500, f"invalid manifest: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(500, "invalid manifest: not a JSON object")
    return data


def pick_platform(body: bytes, os_name: str, arch: str, variant: str = "") -> Descriptor:
    """The entry of an index or manifest list for this node, as dockerd picks it:
    os and architecture must match; a matching variant is preferred."""
    entries = _load(body).get("manifests") or []
    fitting = []
    for entry in entries:
        platform = entry.get("platform") or {} if isinstance(entry, dict) else {}
        if platform.get("os") == os_name and platform.get("architecture") == arch:
            fitting.append(entry)
    if variant:
        fitting.sort(key=lambda e: (e.get("platform") or {}).get("variant") != variant)
    if not fitting:
        raise ApiError(404, f"no matching manifest for {os_name}/{arch} in the manifest "
                            f"list entries")
    return _descriptor(fitting[0], "the index entry")


def manifest_for_push(config: Descriptor, layers: list[Descriptor]) -> bytes:
    """A Docker v2 schema 2 manifest, as dockerd pushes one."""
    return json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                       "config": config.as_json(),
                       "layers": [layer.as_json() for layer in layers]},
                      indent=3).encode()
