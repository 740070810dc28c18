"""The pure parts of the exec runtime's registry client: references, X-Registry-Auth,
challenges, platform choice, and the whiteout rules of applying a layer."""

from __future__ import annotations

import base64
import json
import os

import pytest

from flock.agent.runtimes.exec import references
from flock.agent.runtimes.exec.errors import ApiError
from flock.agent.runtimes.exec.registry import auth, manifests
from flock.agent.runtimes.exec.registry.client import is_loopback, registry_errors
from flock.agent.runtimes.exec.registry.layers import apply_layer

DIGEST = "sha256:" + "ab" * 32


def test_references_split_for_the_registry_api():
    assert references.remote("busybox") == references.Remote(
        "docker.io", "library/busybox", "latest", "busybox")
    assert references.remote("localhost:5000/a/b:2").path == "a/b"
    by_digest = references.remote(f"reg.example:5000/x:1@{DIGEST}")
    assert (by_digest.reference, by_digest.short) == (DIGEST, "reg.example:5000/x")
    assert references.normalize("x", DIGEST) == f"x@{DIGEST}"
    with pytest.raises(ApiError):
        references.normalize("x@sha256:short")


def test_x_registry_auth_as_the_cli_encodes_it():
    data = {"username": "alice", "password": "p+/=", "serveraddress": "r:5000"}
    encoded = base64.urlsafe_b64encode(json.dumps(data).encode()).decode()
    assert auth.from_header(encoded.rstrip("=")) == auth.Credentials("alice", "p+/=")
    assert auth.from_header("%%%").empty and auth.from_header(None).empty


def test_bearer_challenge_is_parsed():
    challenge = auth.parse_challenge(
        'Bearer realm="https://auth.example/token",service="reg",scope="repository:a:pull"')
    assert challenge.scheme == "bearer"
    assert challenge.params == {"realm": "https://auth.example/token", "service": "reg",
                                "scope": "repository:a:pull"}


def test_platform_choice_and_errors():
    index = json.dumps({"manifests": [
        {"digest": "sha256:" + "1" * 64, "platform": {"os": "linux", "architecture": "arm64"}},
        {"digest": "sha256:" + "2" * 64, "platform": {"os": "linux", "architecture": "amd64"}},
        {"digest": "sha256:" + "3" * 64, "platform": {"os": "unknown",
                                                      "architecture": "unknown"}},
    ]}).encode()
    assert manifests.pick_platform(index, "linux", "amd64").digest == "sha256:" + "2" * 64
    with pytest.raises(ApiError, match="no matching manifest for linux/s390x"):
        manifests.pick_platform(index, "linux", "s390x")
    with pytest.raises(ApiError) as schema1:
        manifests.parse_manifest(b"{}", manifests.SCHEMA1[0])
    assert schema1.value.status == 501
    zstd = json.dumps({"config": {"digest": DIGEST}, "layers": [
        {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": DIGEST}]})
    with pytest.raises(ApiError, match="cannot unpack layers"):
        manifests.parse_manifest(zstd.encode(), manifests.OCI_MANIFEST)


def test_registry_words():
    body = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN",
                                   "message": "manifest unknown"}]}).encode()
    assert registry_errors(body) == "manifest unknown: manifest unknown"
    assert is_loopback("127.0.0.5:5000") and is_loopback("localhost")
    assert not is_loopback("10.0.0.1:5000") and not is_loopback("reg.example")


def test_whiteouts_and_opaque_folders(tmp_path):
    lower, upper, image = tmp_path / "lower", tmp_path / "upper", tmp_path / "image"
    for path in ("keep", "gone", "dir/old", "dir/older", "link"):
        (lower / path).parent.mkdir(parents=True, exist_ok=True)
        (lower / path).write_text(path)
    (upper / "dir").mkdir(parents=True)
    (upper / ".wh.gone").write_text("")
    (upper / "dir" / ".wh..wh..opq").write_text("")
    (upper / "dir" / "new").write_text("new")
    (upper / "link").symlink_to("keep")
    image.mkdir()
    apply_layer(str(lower), str(image))
    apply_layer(str(upper), str(image))
    assert sorted(os.listdir(image)) == ["dir", "keep", "link"]
    assert os.listdir(image / "dir") == ["new"]
    assert os.readlink(image / "link") == "keep"
    assert os.stat(image / "keep").st_ino == os.stat(lower / "keep").st_ino  # shared
