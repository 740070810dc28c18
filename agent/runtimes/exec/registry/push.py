"""`docker push` from the exec runtime: the layer blobs a pulled image came with (kept in
the layer store), or for an imported image one gzipped layer made from its root folder
with a config to match; then the config blob and a v2 schema 2 manifest."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tarfile
import tempfile

from flock.agent.runtimes.exec import references
from flock.agent.runtimes.exec.errors import ApiError, bad_request
from flock.agent.runtimes.exec.registry.auth import Credentials
from flock.agent.runtimes.exec.registry.client import RegistryClient
from flock.agent.runtimes.exec.registry.manifests import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    Descriptor,
    manifest_for_push,
)
from flock.agent.runtimes.exec.registry.progress import ProgressStream
from flock.agent.runtimes.exec.store import ImageRecord


def _sha256_file(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            sha.update(chunk)
    return "sha256:" + sha.hexdigest()


def layer_from_root(rootfs: str, folder: str) -> tuple[Descriptor, str, str]:
    """(descriptor of the gzipped layer, its path, its diff id) for a whole root."""
    plain = os.path.join(folder, "layer.tar")
    with tarfile.open(plain, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(os.listdir(rootfs)):
            tar.add(os.path.join(rootfs, name), arcname=name)
    diff_id = _sha256_file(plain)
    packed = os.path.join(folder, "layer.tar.gz")
    with open(plain, "rb") as src, gzip.GzipFile(packed, "wb", mtime=0) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    os.unlink(plain)
    desc = Descriptor(DOCKER_LAYER, _sha256_file(packed), os.path.getsize(packed))
    return desc, packed, diff_id


def config_for(record: ImageRecord, diff_ids: list[str]) -> bytes:
    return json.dumps({"architecture": record.architecture or "amd64",
                       "os": record.os or "linux", "created": record.created,
                       "comment": record.comment, "config": record.config,
                       "rootfs": {"type": "layers", "diff_ids": diff_ids},
                       "history": [{"created": record.created,
                                    "comment": record.comment}]}).encode()


def _repository_name(remote: references.Remote) -> str:
    """How dockerd names the target: `[127.0.0.1:5000/x]`, `[docker.io/library/x]`."""
    return f"{remote.domain}/{remote.path}" if remote.domain == "docker.io" else remote.short


async def push(images, record: ImageRecord, ref: str, creds: Credentials,
               out: ProgressStream) -> None:
    import asyncio

    if references.is_digest(ref):
        raise bad_request("cannot push a digest reference")
    remote = references.remote(ref)
    store = images.layers
    work = tempfile.mkdtemp(prefix=".push-", dir=store.partial)
    try:
        if record.blobs and all(store.has_blob(b["digest"]) for b in record.blobs) \
                and store.has_blob(record.id):
            layers = [(Descriptor(b["mediaType"] or DOCKER_LAYER, b["digest"], b["size"]),
                       str(store.blob_path(b["digest"]))) for b in record.blobs]
            config = store.blob_path(record.id).read_bytes()
        else:
            desc, path, diff_id = await asyncio.to_thread(
                layer_from_root, images.rootfs(record), work)
            layers = [(desc, path)]
            config = config_for(record, [diff_id])
        config_desc = Descriptor(DOCKER_CONFIG, "sha256:" + hashlib.sha256(config).hexdigest(),
                                 len(config))
        await out.status(f"The push refers to repository [{_repository_name(remote)}]")
        async with RegistryClient(remote.domain, remote.path, creds,
                                  images.insecure_registries, "pull,push") as client:
            for desc, _ in layers:
                await out.status("Preparing", desc.digest[7:19], detail=True)
            for desc, path in layers:
                ident = desc.digest[7:19]
                if await client.has_blob(desc.digest):
                    await out.status("Layer already exists", ident, detail=True)
                    continue
                await out.progress("Pushing", ident, 0, desc.size)
                await client.upload(desc.digest, path=path)
                await out.status("Pushed", ident, detail=True)
            if not await client.has_blob(config_desc.digest):
                await client.upload(config_desc.digest, content=config)
            manifest = manifest_for_push(config_desc, [d for d, _ in layers])
            digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
            await client.put_manifest(remote.reference, manifest, DOCKER_MANIFEST)
    except OSError as exc:
        raise ApiError(500, f"push of {ref} failed: {exc}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    repo_digest = f"{remote.short}@{digest}"
    if repo_digest not in record.repo_digests:
        record.repo_digests.append(repo_digest)
        images.store.save(record)
    await out.status(f"{remote.reference}: digest: {digest} size: {len(manifest)}")
    await out.aux({"Tag": remote.reference, "Digest": digest, "Size": len(manifest)})
    images.bus.emit("image", "push", record.id, {"name": ref})



