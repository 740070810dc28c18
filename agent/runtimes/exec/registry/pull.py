"""`docker pull` on the exec runtime: resolve the reference to one image manifest (an
index picks linux/<this node's arch>), fetch the config, download the layers this node
lacks (three at a time, resumable, verified), unpack each once, assemble the image
root, and record the image with its config so containers honour it."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from flock.agent.runtimes.exec import references
from flock.agent.runtimes.exec.errors import ApiError
from flock.agent.runtimes.exec.registry.auth import Credentials
from flock.agent.runtimes.exec.registry.client import RegistryClient
from flock.agent.runtimes.exec.registry.layers import LayerStore
from flock.agent.runtimes.exec.registry.manifests import (
    INDEXES,
    Descriptor,
    ImageManifest,
    parse_manifest,
    pick_platform,
)
from flock.agent.runtimes.exec.registry.progress import ProgressStream

CONCURRENT_DOWNLOADS = 3  # dockerd's max-concurrent-downloads default


@dataclass
class Pulled:
    """What the image manager needs to record a pulled image."""

    ref: str  # normalized: repo:tag or repo@sha256:...
    repo_digest: str  # repo@sha256:<manifest or index digest>
    config: dict  # the image config blob, parsed
    config_digest: str
    diff_ids: list[str]
    blobs: list[dict]


def _short(digest: str) -> str:
    return digest.split(":", 1)[1][:12]


async def resolve(client: RegistryClient, remote: references.Remote, arch: str,
                  display: str) -> tuple[ImageManifest, str]:
    """The image manifest for this node and the digest RepoDigests records (the
    index's when the reference names one, as dockerd records it)."""
    got = await client.manifest(remote.reference)
    if got is None:
        text = await client.not_found_text(remote.reference)
        raise ApiError(404, f"manifest for {display} not found: {text}")
    body, kind, digest = got
    if kind in INDEXES:
        entry = pick_platform(body, "linux", arch)
        chosen = await client.manifest(entry.digest)
        if chosen is None:
            raise ApiError(404, f"manifest for {display} not found: manifest unknown: "
                                f"{entry.digest} listed in the index is missing")
        body, kind, _ = chosen
    return parse_manifest(body, kind), digest


def _diff_ids(config: dict, manifest: ImageManifest) -> list[str]:
    rootfs = config.get("rootfs") if isinstance(config, dict) else None
    diff_ids = (rootfs or {}).get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or len(diff_ids) != len(manifest.layers):
        raise ApiError(500, "invalid image config: its diff_ids do not match the manifest's "
                            "layers")
    return [str(d) for d in diff_ids]


async def _config(client: RegistryClient, store: LayerStore, desc: Descriptor) -> dict:
    if store.has_blob(desc.digest):
        raw = store.blob_path(desc.digest).read_bytes()
    else:
        raw = await client.blob_bytes(desc)
        store.write_blob(desc.digest, raw)
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ApiError(500, f"invalid image config {desc.digest}: {exc}") from None


async def _download(client: RegistryClient, store: LayerStore, layer: Descriptor,
                    out: ProgressStream, gate: asyncio.Semaphore) -> None:
    ident = _short(layer.digest)
    async with gate, store.locks[layer.digest]:
        if store.has_blob(layer.digest):
            await out.status("Download complete", ident, detail=True)
            return

        async def moved(current: int, total: int) -> None:
            await out.progress("Downloading", ident, current, total)

        await client.download(layer, store.partial_path(layer.digest), moved)
        await out.status("Verifying Checksum", ident, detail=True)
        store.commit_blob(layer.digest)
        await out.status("Download complete", ident, detail=True)


async def _unpack(store: LayerStore, layer: Descriptor, diff_id: str,
                  out: ProgressStream) -> None:
    ident = _short(layer.digest)
    async with store.locks[diff_id]:
        if not store.has_layer(diff_id):
            await out.progress("Extracting", ident, 0, layer.size)
            await asyncio.to_thread(store.unpack, layer.digest, diff_id)
            await out.progress("Extracting", ident, layer.size, layer.size)
    await out.status("Pull complete", ident, detail=True)


async def fetch(ref: str, creds: Credentials, insecure: frozenset[str], store: LayerStore,
                arch: str, out: ProgressStream, known: set[str]) -> Pulled | None:
    """Download and unpack everything the image needs. None when `known` (the image IDs
    this node already has) holds the image: it is up to date."""
    remote = references.remote(ref)
    display = ref
    async with RegistryClient(remote.domain, remote.path, creds, insecure) as client:
        manifest, digest = await resolve(client, remote, arch, display)
        repo_digest = f"{remote.short}@{digest}"
        if manifest.config.digest in known:
            return Pulled(ref, repo_digest, {}, manifest.config.digest, [], [])
        label = remote.reference if not remote.by_digest else remote.reference
        await out.status(f"Pulling from {remote.path}", label)
        config = await _config(client, store, manifest.config)
        diff_ids = _diff_ids(config, manifest)
        todo = []
        for layer, diff_id in zip(manifest.layers, diff_ids, strict=True):
            if store.has_layer(diff_id):
                await out.status("Already exists", _short(layer.digest), detail=True)
            else:
                await out.status("Pulling fs layer", _short(layer.digest), detail=True)
                todo.append((layer, diff_id))
        gate = asyncio.Semaphore(CONCURRENT_DOWNLOADS)
        downloads = [asyncio.ensure_future(_download(client, store, layer, out, gate))
                     for layer, _ in todo]
        try:
            for (layer, diff_id), download in zip(todo, downloads, strict=True):
                await download
                await _unpack(store, layer, diff_id, out)
        finally:
            for task in downloads:
                task.cancel()
            await asyncio.gather(*downloads, return_exceptions=True)
    return Pulled(ref, repo_digest, config, manifest.config.digest, diff_ids,
                  [layer.as_json() for layer in manifest.layers])
