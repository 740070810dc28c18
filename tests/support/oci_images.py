"""Images written straight into a registry through its HTTP API (blob uploads, then a
manifest), for what a dockerd cannot push here: OCI manifests, multi-platform indexes,
layers with chosen content. Plain HTTP, no auth (the test registry's own address)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

from flock import local_registry
from flock.local_registry import digest, push_blob

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def tar_of(files: dict[str, bytes]) -> bytes:
    """An uncompressed layer tar holding `files` (path -> content), mode 0644."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for path, content in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


def push_manifest(address: str, repo: str, reference: str, body: dict, kind: str) -> str:
    return local_registry.push_manifest(address, repo, reference,
                                        json.dumps(body).encode(), kind)


def push_image(address: str, repo: str, reference: str, layer_tars: list[bytes],
               arch: str = "amd64", config: dict | None = None) -> tuple[str, dict]:
    """An OCI image of gzipped `layer_tars`; (manifest digest, index entry)."""
    packed = [gzip.compress(t, mtime=0) for t in layer_tars]
    image_config = json.dumps({
        "architecture": arch, "os": "linux", "config": config or {},
        "rootfs": {"type": "layers", "diff_ids": [digest(t) for t in layer_tars]},
    }).encode()
    push_blob(address, repo, image_config)
    for blob in packed:
        push_blob(address, repo, blob)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": digest(image_config),
                           "size": len(image_config)},
                "layers": [{"mediaType": OCI_LAYER, "digest": digest(b), "size": len(b)}
                           for b in packed]}
    raw_len = len(json.dumps(manifest).encode())
    manifest_digest = push_manifest(address, repo, reference, manifest, OCI_MANIFEST)
    entry = {"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": raw_len,
             "platform": {"architecture": arch, "os": "linux"}}
    return manifest_digest, entry


def push_index(address: str, repo: str, tag: str, entries: list[dict]) -> str:
    return push_manifest(address, repo, tag, {"schemaVersion": 2, "mediaType": OCI_INDEX,
                                               "manifests": entries}, OCI_INDEX)


def blob_file(registry_root, blob_digest: str):
    """Where docker-registry's filesystem driver keeps a blob's bytes."""
    hexa = blob_digest.split(":", 1)[1]
    return (registry_root / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256"
            / hexa[:2] / hexa / "data")
