"""Pure parts of the exec runtime: import changes, references, tar confinement, time."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from flock.agent.runtimes.exec import references
from flock.agent.runtimes.exec.errors import ApiError
from flock.agent.runtimes.exec.filters import parse_filters
from flock.agent.runtimes.exec.imports import apply_changes, empty_config, extract_rootfs
from flock.agent.runtimes.exec.signals import parse_signal
from flock.agent.runtimes.exec.timefmt import parse_rfc3339nano, rfc3339nano
from flock.docker_compat.humanize import human_duration


def test_changes_json_and_shell_forms():
    config = apply_changes(empty_config(), [
        'CMD ["sh", "-c", "echo hi"]', "ENTRYPOINT /bin/run --fast", "ENV A=1 B=\"two words\"",
        "ENV LEGACY some value", "WORKDIR /srv", "WORKDIR app", "LABEL x=y", "EXPOSE 80",
        "USER nobody", "VOLUME /data"])
    assert config["Cmd"] == ["sh", "-c", "echo hi"]
    assert config["Entrypoint"] == ["/bin/sh", "-c", "/bin/run --fast"]
    assert config["Env"] == ["A=1", "B=two words", "LEGACY=some value"]
    assert config["WorkingDir"] == "/srv/app"
    assert config["Labels"] == {"x": "y"} and config["ExposedPorts"] == {"80/tcp": {}}
    assert config["User"] == "nobody" and config["Volumes"] == {"/data": {}}


def test_env_change_replaces_a_key():
    config = apply_changes(empty_config(), ["ENV A=1", "ENV A=2"])
    assert config["Env"] == ["A=2"]


def test_unknown_change_is_a_bad_request():
    with pytest.raises(ApiError) as err:
        apply_changes(empty_config(), ["RUN make"])
    assert err.value.status == 400 and "RUN is not a valid change command" in err.value.message


def test_references_normalize_like_the_engine():
    assert references.normalize("busybox") == "busybox:latest"
    assert references.normalize("docker.io/library/busybox:1") == "busybox:1"
    assert references.normalize("localhost:5000/team/app", "v2") == "localhost:5000/team/app:v2"
    with pytest.raises(ApiError):
        references.normalize("UPPER")
    with pytest.raises(ApiError):
        references.normalize("bad name")


def _tar(entries: list[tarfile.TarInfo], data: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info in entries:
            payload = data.get(info.name)
            if payload is not None:
                info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return buf.getvalue()


def test_extraction_stays_inside_the_root(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    link = tarfile.TarInfo("escape")
    link.type = tarfile.SYMTYPE
    link.linkname = str(outside)
    through = tarfile.TarInfo("escape/owned")
    dotdot = tarfile.TarInfo("../../dotdot")
    absolute = tarfile.TarInfo("/etc/abs")
    tar_path = tmp_path / "layer.tar.gz"
    tar_path.write_bytes(_tar([link, through, dotdot, absolute],
                              {"escape/owned": b"x", "../../dotdot": b"y", "/etc/abs": b"z"}))
    root = tmp_path / "rootfs"
    diff_id, size = extract_rootfs(str(tar_path), str(root))
    assert not (outside / "owned").exists()
    assert (root / str(outside).lstrip("/") / "owned").read_bytes() == b"x"
    assert (root / "dotdot").read_bytes() == b"y"
    assert (root / "etc" / "abs").read_bytes() == b"z"
    assert os.readlink(root / "escape") == str(outside)
    assert diff_id.startswith("sha256:") and size == 3


def test_filters_both_forms_and_unknown_keys():
    assert parse_filters('{"label": {"a=b": true}}', {"label"}) == {"label": ["a=b"]}
    assert parse_filters('{"label": ["a"]}', {"label"}) == {"label": ["a"]}
    with pytest.raises(ApiError) as err:
        parse_filters('{"nope": ["a"]}', {"label"})
    assert err.value.message == "Invalid filter 'nope'"


def test_signals_and_time_formats():
    assert parse_signal("SIGTERM") == parse_signal("term") == parse_signal("15") == 15
    with pytest.raises(ApiError):
        parse_signal("SIGNOPE")
    assert rfc3339nano(1_500_000_000) == "1970-01-01T00:00:01.5Z"
    assert parse_rfc3339nano("1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert parse_rfc3339nano("0001-01-01T00:00:00Z") == 0
    assert human_duration(0.2) == "Less than a second"
    assert human_duration(3) == "3 seconds" and human_duration(90) == "About a minute"
    assert human_duration(7200) == "2 hours"
